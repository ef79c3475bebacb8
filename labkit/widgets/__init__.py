"""Interactive explorers for the notebooks: thin views (ipywidgets 8 + plotly FigureWidget) over labkit.

The conventions every explorer follows are written in ``labkit.widgets.base``.
"""
from labkit.widgets.base import Explorer, checkbox, css_class, dropdown, int_slider, slider
from labkit.widgets.histogram import WeightHistogramExplorer, weight_statistics, weight_tensors

__all__ = ["Explorer", "WeightHistogramExplorer", "checkbox", "css_class", "dropdown", "int_slider",
           "slider", "weight_statistics", "weight_tensors"]
