"""Interactive explorers for the notebooks: thin views (ipywidgets 8 + plotly FigureWidget) over labkit.

The conventions every explorer follows are written in ``labkit.widgets.base``.

Every explorer is importable from here (``from labkit.widgets import PruningExplorer``) or from its own
module (``from labkit.widgets.structured import ChannelPruningExplorer``). Names are imported on first
use (PEP 562), so a notebook that uses one explorer does not load the others' dependencies — the attack
explorer alone pulls in torchvision, ~160 MB of a notebook kernel's memory.
"""
from importlib import import_module

_HOMES = {
    "AGPExplorer": "agp",
    "AttackExplorer": "attack",
    "AttentionExplorer": "attention",
    "Explorer": "base", "checkbox": "base", "css_class": "base", "dropdown": "base", "int_slider": "base",
    "slider": "base",
    "BudgetExplorer": "budget",
    "CalibrationExplorer": "calibration", "activation_taps": "calibration",
    "CriteriaExplorer": "criteria",
    "TemperatureExplorer": "distill",
    "WeightHistogramExplorer": "histogram", "weight_statistics": "histogram", "weight_tensors": "histogram",
    "WeightBitsExplorer": "llm_bits",
    "RankExplorer": "lowrank",
    "PruningExplorer": "pruning",
    "QuantGridExplorer": "quant_grid", "valid_group_sizes": "quant_grid",
    "QuantizerGradientExplorer": "ste", "quantizer_response": "ste",
    "ChannelPruningExplorer": "structured",
    "TradeoffExplorer": "tradeoffs",
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
