"""Weight-histogram explorer: pick a layer, see how its weights are distributed.

Most trained weights sit in a narrow bell around zero with a few large outliers; that shape is what
makes quantization (few levels suffice for the bell, the outliers set the range) and pruning (many
weights are nearly zero) work. ``weight_statistics`` computes the numbers the readout shows; it is
small enough to live here for now and will move to ``labkit.measure`` once that module hosts
per-tensor statistics.

Explained in notebooks/00_why_compress.ipynb.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from labkit.validate import require_bool, require_float, require_int, require_module
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, checkbox, dropdown, int_slider, readout_rows


def weight_statistics(tensor, near_zero: float = 0.01) -> dict:
    """Summary statistics of one weight tensor (any shape; torch tensor or numpy array).

    With the values ``w`` flattened to ``n`` float64 numbers: ``mean = Σw/n``, ``std`` is the
    population standard deviation ``sqrt(Σ(w-mean)²/n)``, ``zeros`` the fraction with ``w == 0``,
    ``near_zero`` the fraction with ``|w| <= near_zero`` (default 0.01) and ``kurtosis`` the excess
    kurtosis ``mean(((w-mean)/std)⁴) - 3`` (0 for a Gaussian, large for heavy tails; NaN if std is 0).
    Returns ``shape`` (tuple), ``numel`` (int) and those values as Python floats.
    """
    if isinstance(tensor, torch.Tensor):
        values = tensor.detach().cpu().to(torch.float64).numpy()
    elif isinstance(tensor, np.ndarray):
        values = tensor.astype(np.float64)
    else:
        raise TypeError(f"tensor must be a torch.Tensor or numpy.ndarray, got {type(tensor).__name__}")
    near_zero = require_float("near_zero", near_zero, 0.0)
    if values.size == 0:
        raise ValueError(f"tensor must have at least one element, got shape {tuple(values.shape)}")
    _require_finite("tensor", values)
    flat = values.reshape(-1)
    mean = float(flat.mean())
    std = float(flat.std())
    kurtosis = float(np.mean(((flat - mean) / std) ** 4) - 3.0) if std > 0 else float("nan")
    return {
        "shape": tuple(values.shape),
        "numel": int(flat.size),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "mean": mean,
        "std": std,
        "zeros": float(np.mean(flat == 0.0)),
        "near_zero": float(np.mean(np.abs(flat) <= near_zero)),
        "kurtosis": kurtosis,
    }


def weight_tensors(model: nn.Module) -> dict:
    """The model's weight tensors by name, as zero-argument functions returning the *current* tensor.

    A weight is a module attribute ``weight`` (or a parameter whose name ends in ``weight``) with at
    least 2 dimensions — the conv/linear/embedding weights; names are those of ``named_parameters``
    (``features.0.weight``). Reading ``module.weight`` rather than the parameter means a pruned
    (``torch.nn.utils.prune``) or parametrized layer shows its effective, masked weight. If the
    model has no such tensor, 1-D weights (normalisation scales) are returned instead.
    """
    require_module("model", model)
    found: dict[str, tuple[nn.Module, str, int]] = {}
    for module_name, module in model.named_modules():
        attrs = [name for name, _ in module.named_parameters(recurse=False) if name.endswith("weight")]
        if "weight" not in attrs and isinstance(getattr(module, "weight", None), torch.Tensor):
            attrs.insert(0, "weight")  # pruned (weight_orig + mask) or parametrized layers
        for attr in attrs:
            full = f"{module_name}.{attr}" if module_name else attr
            found[full] = (module, attr, getattr(module, attr).dim())
    if any(ndim >= 2 for *_, ndim in found.values()):
        found = {name: entry for name, entry in found.items() if entry[2] >= 2}
    if not found:
        raise ValueError(f"model ({type(model).__name__}) has no weight tensors; "
                         "expected at least one conv/linear layer with a .weight")
    return {name: (lambda module=module, attr=attr: getattr(module, attr).detach())
            for name, (module, attr, _) in found.items()}


class WeightHistogramExplorer(Explorer):
    """Histogram of one layer's weights with a layer picker, bins slider, log-y toggle and statistics.

    ``WeightHistogramExplorer(model, bins=80)`` works on any ``nn.Module`` with at least one weight
    tensor (see ``weight_tensors``). Controls: ``layer`` (Dropdown of weight names), ``bins``
    (IntSlider, 5–250) and ``log`` (Checkbox: logarithmic count axis). ``stats`` holds
    ``weight_statistics`` of the shown layer plus ``layer`` and ``bins``. Call ``update()`` after
    changing the model (pruning, quantization) to redraw from its current weights.

    Explained in notebooks/00_why_compress.ipynb.
    """

    name = "histogram"

    def __init__(self, model: nn.Module, bins: int = 80, layer: str | None = None, log: bool = False):
        self.weights = weight_tensors(model)  # TypeError / ValueError at the boundary
        self.model = model
        self._bins = require_int("bins", bins, 5, 250)
        if layer is not None and layer not in self.weights:
            raise ValueError(f"layer must be one of {list(self.weights)}, got {layer!r}")
        self._layer = layer or next(iter(self.weights))
        require_bool("log", log)
        self._log = log
        super().__init__()

    def build_controls(self) -> dict:
        options = [(f"{name}  {_shape_text(fn().shape)}", name) for name, fn in self.weights.items()]
        return {
            "layer": dropdown(self.name, "layer", options=options, value=self._layer, description="layer"),
            "bins": int_slider(self.name, "bins", value=self._bins, min=5, max=250, step=5, description="bins"),
            "log": checkbox(self.name, "log", value=self._log, description="log-scale counts"),
        }

    def build_figure(self) -> go.FigureWidget:
        # Bars, not a step line: on the log-scale count axis an empty bin simply has no bar.
        figure = FigureWidget(data=[go.Bar(x=[], y=[], name="weights", marker_color="#4C72B0", marker_line_width=0,
                                              hovertemplate="w ≈ %{x:.4f}<br>count %{y}<extra></extra>")])
        figure.update_layout(height=360, margin=dict(l=70, r=20, t=50, b=50), bargap=0, template=FIGURE_TEMPLATE,
                             xaxis_title="weight value", yaxis_title="count (weights per bin)")
        return figure

    def draw(self, values: dict) -> None:
        weight = self.weights[values["layer"]]()
        flat = weight.to(torch.float64).reshape(-1).cpu().numpy()
        _require_finite(f"layer {values['layer']!r}", flat)  # numpy's own error names no layer
        counts, edges = np.histogram(flat, bins=values["bins"])
        stats = weight_statistics(weight)
        bar = self.figure.data[0]
        bar.x, bar.y = ((edges[:-1] + edges[1:]) / 2).tolist(), counts.tolist()     # plain lists, never numpy
        bar.width = float(edges[1] - edges[0])
        scale = "log" if values["log"] else "linear"
        if self.figure.layout.yaxis.type != scale:      # an axis change only when `log` changes
            # log ticks at 1, 2, 5, 10, 20, 50, …: plotly's default labels every digit of a short decade
            self.figure.layout.yaxis.update(type=scale, dtick="D2" if values["log"] else None)
        self.figure.layout.title.text = (f"{values['layer']} — {_shape_text(stats['shape'])}, "
                                         f"{stats['numel']:,} weights")
        self.stats = {"layer": values["layer"], "bins": values["bins"], **stats}
        self.readout.value = _readout_html(self.stats)


def _require_finite(what: str, values: np.ndarray) -> None:
    """A NaN or Inf (a diverged training run) has no place on a histogram axis: say where it is."""
    finite = np.isfinite(values)
    if not finite.all():
        raise ValueError(f"{what} holds {int(finite.size - finite.sum())} NaN or Inf value(s) of "
                         f"{finite.size}; a histogram needs finite weights (did training diverge?)")


def _shape_text(shape) -> str:
    return "[" + "×".join(str(int(s)) for s in shape) + "]"


def _readout_html(stats: dict) -> str:
    rows = [
        ("shape", _shape_text(stats["shape"])),
        ("parameters", f"{stats['numel']:,}"),
        ("min / max", f"{stats['min']:.4g} / {stats['max']:.4g}"),
        ("mean", f"{stats['mean']:.3g}"),
        ("std", f"{stats['std']:.3g}"),
        ("exactly zero", f"{stats['zeros']:.1%}"),
        ("|w| ≤ 0.01", f"{stats['near_zero']:.1%}"),
        ("excess kurtosis", "—" if np.isnan(stats["kurtosis"]) else f"{stats['kurtosis']:.2f}"),
    ]
    body = readout_rows(rows)
    return f"<b>{html.escape(stats['layer'])}</b><table style='font-size:90%'>{body}</table>"
