"""Interactive explorers for the notebooks: thin views (ipywidgets 8 + plotly FigureWidget) over labkit.

The conventions every explorer follows are written in ``labkit.widgets.base``.
"""
from labkit.widgets.agp import AGPExplorer
from labkit.widgets.attack import AttackExplorer
from labkit.widgets.attention import AttentionExplorer
from labkit.widgets.base import Explorer, checkbox, css_class, dropdown, int_slider, slider
from labkit.widgets.budget import BudgetExplorer
from labkit.widgets.calibration import CalibrationExplorer, activation_taps
from labkit.widgets.criteria import CriteriaExplorer
from labkit.widgets.distill import TemperatureExplorer
from labkit.widgets.histogram import WeightHistogramExplorer, weight_statistics, weight_tensors
from labkit.widgets.llm_bits import WeightBitsExplorer
from labkit.widgets.lowrank import RankExplorer
from labkit.widgets.pruning import PruningExplorer
from labkit.widgets.quant_grid import QuantGridExplorer, valid_group_sizes
from labkit.widgets.ste import QuantizerGradientExplorer, quantizer_response
from labkit.widgets.structured import ChannelPruningExplorer
from labkit.widgets.tradeoffs import TradeoffExplorer

__all__ = ["AGPExplorer", "AttackExplorer", "AttentionExplorer", "BudgetExplorer", "CalibrationExplorer",
           "ChannelPruningExplorer", "CriteriaExplorer", "Explorer", "PruningExplorer", "QuantGridExplorer",
           "QuantizerGradientExplorer", "RankExplorer", "TemperatureExplorer", "TradeoffExplorer",
           "WeightBitsExplorer", "WeightHistogramExplorer",
           "activation_taps", "checkbox", "css_class", "dropdown", "int_slider", "quantizer_response",
           "slider", "valid_group_sizes", "weight_statistics", "weight_tensors"]
