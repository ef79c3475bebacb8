"""Temperature explorer: what a teacher's soft labels look like as the temperature T grows.

The teacher's logits for the given images are computed once (``labkit.distill.teacher_logits``:
eval mode, no_grad); moving the **temperature** slider only re-applies
``labkit.distill.soft_targets(logits, T)``, so every redraw is instant. The left plot is the
image, the right one the ten class probabilities at T = 1 (grey, for reference) and at the
slider's T (blue). The readout gives the predicted class, the entropy at both temperatures, and
the "dark knowledge": the second most likely class and its probability, which a hard label throws
away. Explained in notebooks/11_distillation_soft_labels.ipynb.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from labkit import train
from labkit.distill import soft_targets, teacher_logits
from labkit.validate import require_float, require_int, require_module
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, int_slider, readout_rows, slider

T_MIN, T_MAX, T_STEP = 0.5, 20.0, 0.5


class TemperatureExplorer(Explorer):
    """The teacher's softened class probabilities ``softmax(z / T)`` for one image at a time.

    ``TemperatureExplorer(teacher, images, T=4.0, index=0)``: ``teacher`` is an ``nn.Module``
    mapping ``[N, C, H, W]`` to logits (never modified; its mode is restored); ``images`` is a
    float tensor ``[N, C, H, W]``, an ``(x, y)`` pair or a labelled ``TensorDataset`` (labels, if
    any, are shown). Controls: ``temperature`` (FloatSlider 0.5–20, on release), ``image``
    (IntSlider over the N images). ``stats``: ``index``, ``T``, ``label`` (or None), ``probs``,
    ``probs_T1`` (lists of C floats), ``top_class``, ``top_prob``, ``second_class``,
    ``second_prob``, ``entropy``, ``entropy_T1`` (nats), ``max_entropy`` (= ln C).
    Explained in notebooks/11_distillation_soft_labels.ipynb.
    """

    name = "temperature"

    def __init__(self, teacher: nn.Module, images, T: float = 4.0, index: int = 0):
        require_module("teacher", teacher)
        self.x, self.labels = train.as_tensors(images, "images", image_dims=4)
        self._T = require_float("T", T, T_MIN, T_MAX)
        self._index = require_int("index", index, 0, len(self.x) - 1)
        self.logits = teacher_logits(teacher, self.x)
        self.num_classes = self.logits.shape[1]
        super().__init__()

    def build_controls(self) -> dict:
        return {
            "temperature": slider(self.name, "temperature", value=self._T, min=T_MIN, max=T_MAX, step=T_STEP,
                                  readout_format=".1f", description="temperature T"),
            "image": int_slider(self.name, "image", value=self._index, min=0, max=len(self.x) - 1,
                                description="image"),
        }

    def build_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.3, 0.7], horizontal_spacing=0.1,
                            subplot_titles=("input image", "teacher's class probabilities"))
        fig.add_trace(go.Heatmap(z=[[0.0]], colorscale="gray_r", showscale=False, hoverinfo="skip",
                                 name="input image", showlegend=False), 1, 1)
        classes = list(range(self.num_classes))
        # Trace names are fixed here, once: the temperature lives in the title and the readout, so the
        # legend never shows a stale or duplicated name (plotly.js keeps the names it was first sent).
        fig.add_trace(go.Bar(x=classes, y=[0.0] * self.num_classes, name="T = 1 (ordinary softmax)",
                             marker_color="#b0b0b0", hovertemplate="class %{x}: %{y:.4f}<extra>T = 1</extra>"), 1, 2)
        fig.add_trace(go.Bar(x=classes, y=[0.0] * self.num_classes, name="slider's T", marker_color="#4C72B0",
                             hovertemplate="class %{x}: %{y:.4f}<extra>slider's T</extra>"), 1, 2)
        fig.update_layout(height=380, margin=dict(l=50, r=20, t=80, b=90), template=FIGURE_TEMPLATE,
                          barmode="group", legend=dict(orientation="h", x=0.3, y=-0.3))
        fig.update_xaxes(visible=False, row=1, col=1)
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", row=1, col=1)
        fig.update_xaxes(title_text="class (digit)", tickmode="linear", dtick=1, row=1, col=2)
        fig.update_yaxes(title_text="probability", range=[0, 1.02], row=1, col=2)
        return FigureWidget(fig)

    def setting(self, T: float, index: int) -> dict:
        """The ``stats`` of image ``index`` at temperature ``T`` (computed from the cached logits; no redraw)."""
        T, index = require_float("T", T, T_MIN, T_MAX), require_int("index", index, 0, len(self.x) - 1)
        row = self.logits[index:index + 1]
        probs, probs_t1 = soft_targets(row, T)[0], soft_targets(row, 1.0)[0]
        second, top = torch.topk(probs, 2).indices.tolist()[::-1]
        label = None if self.labels is None else int(self.labels[index])
        return {"index": index, "T": T, "label": label, "probs": probs.tolist(),
                "probs_T1": probs_t1.tolist(), "top_class": top, "top_prob": float(probs[top]),
                "second_class": second, "second_prob": float(probs[second]),
                "entropy": _entropy(probs), "entropy_T1": _entropy(probs_t1),
                "max_entropy": math.log(self.num_classes)}

    def draw(self, values: dict) -> None:
        self.stats = stats = self.setting(float(values["temperature"]), int(values["image"]))
        image, reference, soft = self.figure.data
        classes = list(range(self.num_classes))
        # every trace gets its whole data, as plain lists (numpy arrays reach plotly.js badly)
        image.z = self.x[stats["index"]].mean(0).tolist()
        reference.x, reference.y = classes, stats["probs_T1"]
        soft.x, soft.y = classes, stats["probs"]
        label = stats["label"]
        self.figure.layout.title.text = (f"image {stats['index']}" + ("" if label is None else f" (label {label})")
                                         + f": teacher's softmax at T = {stats['T']:g} (blue) and T = 1 (grey)")
        self.readout.value = _readout_html(stats)


def _entropy(probs: torch.Tensor) -> float:
    """Shannon entropy ``−Σ p ln p`` in nats (0 · ln 0 = 0)."""
    return float(-torch.special.xlogy(probs, probs).sum())


def _readout_html(stats: dict) -> str:
    rows = [("predicted class", f"{stats['top_class']} ({stats['top_prob']:.1%})"),
            ("dark knowledge: 2nd class", f"{stats['second_class']} ({stats['second_prob']:.1%})"),
            (f"entropy at T = {stats['T']:g}", f"{stats['entropy']:.3f} nats"),
            ("entropy at T = 1", f"{stats['entropy_T1']:.3f} nats"),
            ("uniform (ln C)", f"{stats['max_entropy']:.3f} nats")]
    body = readout_rows(rows)
    label = "" if stats["label"] is None else f", label {stats['label']}"
    return f"<b>image {stats['index']}</b>{label}, T = {stats['T']:g}<table style='font-size:90%'>{body}</table>"
