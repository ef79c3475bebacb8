"""labkit.quant — quantization built from scratch.

Core (this package's ``__init__`` re-exports these names):

- ``affine``      scale / zero point, quantize / dequantize / fake-quantize, per tensor / channel /
                  group, error metrics (MSE, SQNR) — notebooks/01_quantization_basics.ipynb
- ``observers``   min/max, moving average, histogram (L2), percentile, MSE, entropy (KL) — 03_ptq
- ``fake_quant``  straight-through estimator, LSQ, PACT — 05_qat
- ``modules``     quantized / observed / QAT layer wrappers, dynamic-quantized Linear — 03_ptq
- ``ptq``         BN folding, calibration, static and dynamic post-training quantization — 03_ptq
- ``qat``         quantization-aware training, progressive bit widths — 05_qat
- ``mixed``       per-layer sensitivity and bit allocation under a size budget — 06_mixed_precision

Other submodules (binary/ternary, non-uniform, codebooks, Huffman, integer-only inference) are
imported by name: ``from labkit.quant import binary``.
"""
from labkit.quant.affine import (QParams, dequantize, fake_quantize, grid_levels, mse, qparams_from_range, qrange,
                                 quantize, quantize_activation, quantize_tensor, quantize_weight, quantized_nbytes,
                                 sqnr_db, tensor_range, valid_group_sizes, weight_quantization_error)
from labkit.quant.fake_quant import (FakeQuantize, LSQQuantizer, PACTQuantizer, fake_quantize_ste, quantizer_response,
                                     round_ste)
from labkit.quant.mixed import (allocate_bits, allocation_bytes, apply_bit_allocation, layer_sensitivity,
                                layer_sizes, uniform_allocation)
from labkit.quant.modules import DynamicQuantLinear, QuantizedConv2d, QuantizedLinear, activation_taps
from labkit.quant.observers import (EntropyObserver, HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver,
                                    MSEObserver, PercentileObserver, PerChannelMinMaxObserver, make_observer)
from labkit.quant.ptq import calibrate, fold_batchnorm, quantize_dynamic, quantize_static
from labkit.quant.qat import convert, fit_progressive, freeze_observers, prepare_qat, set_bits

__all__ = [
    "QParams", "qrange", "qparams_from_range", "quantize", "dequantize", "fake_quantize", "quantize_tensor",
    "tensor_range", "mse", "sqnr_db", "quantize_activation", "grid_levels", "quantized_nbytes", "quantize_weight",
    "weight_quantization_error", "valid_group_sizes",
    "MinMaxObserver", "PerChannelMinMaxObserver", "MovingAverageMinMaxObserver", "HistogramObserver",
    "PercentileObserver", "MSEObserver", "EntropyObserver", "make_observer",
    "round_ste", "fake_quantize_ste", "FakeQuantize", "LSQQuantizer", "PACTQuantizer", "quantizer_response",
    "QuantizedLinear", "QuantizedConv2d", "DynamicQuantLinear", "activation_taps",
    "fold_batchnorm", "calibrate", "quantize_static", "quantize_dynamic",
    "prepare_qat", "freeze_observers", "convert", "set_bits", "fit_progressive",
    "layer_sizes", "layer_sensitivity", "allocate_bits", "allocation_bytes", "uniform_allocation",
    "apply_bit_allocation",
]
