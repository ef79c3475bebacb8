"""Interactive explorers for the notebooks: thin views (ipywidgets 8 + plotly FigureWidget) over labkit.

The conventions every explorer follows are written in ``labkit.widgets.base``.

Every explorer is imported from here (``from labkit.widgets import PruningExplorer``) and has one
name: ``ChannelPruningExplorer`` lives in ``channel_pruning.py``, its CSS classes start with
``labkit-channel-pruning``, and its tests are ``tests/test_widgets_channel_pruning.py`` and
``tests/browser/test_09_channel_pruning.py``. Names are imported on first
use (PEP 562), so a notebook that uses one explorer does not load the others' dependencies — the attack
explorer alone pulls in torchvision, ~160 MB of a notebook kernel's memory.
"""
from importlib import import_module

_HOMES = {   # each explorer's module is its name in snake case; its CSS slug the same in kebab case
    "AGPExplorer": "agp",
    "AttackExplorer": "attack",
    "AttentionExplorer": "attention",
    "BudgetExplorer": "budget",
    "CalibrationExplorer": "calibration",
    "ChannelPruningExplorer": "channel_pruning",
    "CriteriaExplorer": "criteria",
    "PruningExplorer": "pruning",
    "QuantGridExplorer": "quant_grid",
    "QuantizerGradientExplorer": "quantizer_gradient",
    "RankExplorer": "rank",
    "TemperatureExplorer": "temperature",
    "TernaryThresholdExplorer": "ternary_threshold",
    "TradeoffExplorer": "tradeoff",
    "WeightBitsExplorer": "weight_bits",
    "WeightHistogramExplorer": "weight_histogram",
    # the conventions, for writing an explorer or a figure of one's own (base.py)
    "Explorer": "base", "FIGURE_TEMPLATE": "base", "FigureWidget": "base", "checkbox": "base",
    "complete_batch": "base", "css_class": "base", "dropdown": "base", "int_slider": "base", "slider": "base",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'labkit.widgets' has no attribute {name!r}")
    value = getattr(import_module(f"labkit.widgets.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOMES))
