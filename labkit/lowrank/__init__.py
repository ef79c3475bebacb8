"""Low-rank factorisation and lightweight architectures: truncated SVD of Linear layers, Tucker-2 and
CP of Conv2d kernels, rank selection by energy, whole-model decomposition with a per-layer report,
and a tiny architecture search over depthwise-separable CNNs (``labkit.lowrank.nas``).
Explained in notebooks/13_lowrank_lightweight.ipynb.
"""
from labkit.lowrank.cp import cp_als, cp_conv, cp_params, cp_reconstruct
from labkit.lowrank.decompose import (CONV_METHODS, decompose_model, factorisable_layers, factorised_copy,
                                     model_input_shape, report_totals)
from labkit.lowrank.svd import (break_even_rank, cumulative_energy, energy_rank, relative_error, singular_values,
                                svd_factors, svd_linear, svd_params, truncation_error)
from labkit.lowrank.tucker import (mode_singular_values, tucker2_conv, tucker2_factors, tucker2_params, tucker2_ranks,
                                   tucker2_reconstruct, tucker2_weight)

__all__ = ["CONV_METHODS", "break_even_rank", "cp_als", "cp_conv", "cp_params", "cp_reconstruct",
           "cumulative_energy", "decompose_model", "energy_rank", "factorisable_layers", "factorised_copy",
           "mode_singular_values", "model_input_shape",
           "relative_error", "report_totals", "singular_values", "svd_factors",
           "svd_linear", "svd_params", "truncation_error", "tucker2_conv", "tucker2_factors", "tucker2_params", "tucker2_ranks",
           "tucker2_reconstruct", "tucker2_weight"]
