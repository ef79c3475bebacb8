"""Pruning: masks as a re-parametrisation, importance criteria, unstructured pruning, schedules,
per-layer sensitivity, sparse training and structured (channel) pruning with surgery — written from scratch after ``torch.nn.utils.prune``;
budgeted per-layer allocations, NetAdapt and the lottery ticket (chapter 10).

Import direction: ``prune`` uses ``data``, ``models``, ``train``, ``measure`` and ``validate`` only.
Explained in notebooks/07_unstructured_pruning.ipynb and notebooks/08_importance_criteria.ipynb
and notebooks/09_structured_pruning.ipynb (structured, surgery) and
notebooks/10_pruning_schedules_automation.ipynb (AGPSchedule, prune_on_schedule, allocation, netadapt, lottery).
"""
from labkit.prune.allocation import (apply_allocation, check_budget, global_allocation, global_channel_keep,
                                     measured_bytes, measured_latency, scale_allocation, sensitivity_allocation,
                                     uniform_allocation)
from labkit.prune.criteria import (ALL_CRITERIA, CRITERIA, DATA_CRITERIA, Criterion, batch_gradients, criterion_names,
                                   fisher_diagonal, get_criterion, gradient_scores, magnitude_scores, mask_jaccard,
                                   obd_scores, random_scores, rank_correlation, register_criterion, saliency,
                                   taylor_scores, unregister_criterion)
from labkit.prune.masks import (apply_mask, is_pruned, prunable_layers, reapply_masks, remove,
                                remove_all, sparsity)
from labkit.prune.lottery import (lottery_ticket, prune_remaining, rewind,
                                  train_with_early_stopping, weights_snapshot)
from labkit.prune.netadapt import netadapt
from labkit.prune.schedules import (AGPSchedule, agp_schedule, agp_sparsity, iterative_schedule, one_shot_schedule,
                                    plan_rounds, prune_and_finetune, prune_on_schedule, training_steps)
from labkit.prune.sensitivity import sensitivity_scan
from labkit.prune.sparse_training import (group_lasso_penalty, group_lasso_regularizer, group_norms, l1_penalty,
                                          l1_proximal, l1_regularizer, near_zero_report, soft_threshold)
from labkit.prune.structured import (CHANNEL_CRITERIA, bn_l1_penalty, bn_l1_regularizer, bn_scale_scores,
                                     channel_scores, correlation_scores, filter_norms, geometric_median_scores,
                                     keep_indices, structured_prune)
from labkit.prune.surgery import ChannelGroup, channel_groups, prune_channels, zero_channels
from labkit.prune.unstructured import (global_magnitude_prune, global_prune, global_threshold, layerwise_prune,
                                       prune_layer)

__all__ = ["AGPSchedule", "apply_allocation", "check_budget", "global_allocation", "global_channel_keep",
           "lottery_ticket", "measured_bytes", "measured_latency", "netadapt", "plan_rounds", "prune_on_schedule",
           "prune_remaining", "rewind", "scale_allocation", "sensitivity_allocation",
           "train_with_early_stopping", "training_steps", "uniform_allocation",
           "weights_snapshot", "ALL_CRITERIA", "CHANNEL_CRITERIA", "ChannelGroup", "bn_l1_penalty", "bn_l1_regularizer",
           "bn_scale_scores", "channel_groups", "channel_scores", "correlation_scores", "filter_norms",
           "geometric_median_scores", "keep_indices", "prune_channels", "structured_prune", "zero_channels",
           "CRITERIA", "DATA_CRITERIA", "Criterion", "criterion_names", "get_criterion", "register_criterion",
           "unregister_criterion", "agp_schedule", "agp_sparsity", "apply_mask",
           "batch_gradients", "fisher_diagonal", "global_magnitude_prune", "global_prune",
           "global_threshold", "gradient_scores", "group_lasso_penalty", "group_lasso_regularizer", "group_norms",
           "is_pruned", "iterative_schedule", "l1_penalty", "l1_proximal", "l1_regularizer", "layerwise_prune",
           "magnitude_scores", "mask_jaccard", "near_zero_report", "obd_scores", "one_shot_schedule",
           "prunable_layers", "prune_and_finetune", "prune_layer", "random_scores", "rank_correlation",
           "reapply_masks", "remove", "remove_all", "saliency", "sensitivity_scan", "soft_threshold",
           "sparsity", "taylor_scores"]
