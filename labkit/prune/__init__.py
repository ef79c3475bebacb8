"""Pruning: masks as a re-parametrisation, importance criteria, unstructured pruning, schedules
and per-layer sensitivity — written from scratch after ``torch.nn.utils.prune``.

Import direction: ``prune`` uses ``data``, ``models``, ``train``, ``measure`` and ``validate`` only.
Explained in notebooks/07_unstructured_pruning.ipynb.
"""
from labkit.prune.criteria import CRITERIA, magnitude_scores, random_scores
from labkit.prune.masks import (apply_mask, get_mask, is_pruned, prunable_layers, reapply_masks, remove,
                                remove_all, sparsity)
from labkit.prune.schedules import (agp_schedule, agp_sparsity, iterative_schedule, one_shot_schedule,
                                    prune_and_finetune)
from labkit.prune.sensitivity import sensitivity_scan
from labkit.prune.unstructured import (global_magnitude_prune, global_prune, global_threshold, layerwise_prune,
                                       prune_layer)

__all__ = ["CRITERIA", "agp_schedule", "agp_sparsity", "apply_mask", "get_mask", "global_magnitude_prune",
           "global_prune", "global_threshold", "is_pruned", "iterative_schedule", "layerwise_prune",
           "magnitude_scores", "one_shot_schedule", "prunable_layers", "prune_and_finetune", "prune_layer",
           "random_scores", "reapply_masks", "remove", "remove_all", "sensitivity_scan", "sparsity"]
