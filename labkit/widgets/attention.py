"""Attention explorer: where a teacher and a student "look", layer by layer (attention transfer).

The activations of the chosen layers are computed once for the given images
(``labkit.distill.layer_features``: eval mode, no_grad, hooks removed). Each control only re-applies
``labkit.distill.normalized_attention`` (Σ_c |F_c|^p, divided by its L2 norm) and
``labkit.distill.attention_transfer_loss`` to cached tensors, so redraws are instant. Three heat-maps
side by side: the teacher's map, the student's map and their difference (student − teacher); the
readout gives the AT loss of this image and the mean over all images.
Explained in notebooks/12_distillation_features.ipynb.
"""
from __future__ import annotations

import html

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from labkit import train
from labkit.distill import attention_transfer_loss, layer_features, normalized_attention
from labkit.validate import require_float, require_int, require_module
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, dropdown, int_slider, readout_rows, slider

P_MIN, P_MAX, P_STEP = 0.5, 8.0, 0.5


class AttentionExplorer(Explorer):
    """Teacher's vs student's normalised attention maps ``q̂ = vec(Σ_c |F_c|^p) / ‖·‖₂`` for one image.

    ``AttentionExplorer(teacher, student, images, layers=(("pool1", "pool1"),), p=2.0, index=0)``:
    ``teacher`` an ``nn.Module``; ``student`` an ``nn.Module`` or a dict ``{name: nn.Module}`` (e.g. the
    student before and after attention transfer; then a ``student`` dropdown appears); ``images`` a
    float tensor ``[N, C, H, W]``, an ``(x, y)`` pair or a labelled ``TensorDataset``; ``layers`` pairs
    ``(student_layer, teacher_layer)`` of layers with the same spatial size. Models are never modified.
    Controls: ``image`` (IntSlider), ``layer`` (Dropdown of the pairs), ``p`` (FloatSlider 0.5–8, on
    release) and ``student`` (only for a dict). ``stats``: ``index``, ``label``, ``student``,
    ``layer`` (the pair), ``p``, ``teacher_map``, ``student_map`` (H×W nested lists, unit L2 norm),
    ``at_loss`` (this image), ``at_loss_mean`` (all images). Explained in notebooks/12_distillation_features.ipynb.
    """

    name = "attention"

    def __init__(self, teacher: nn.Module, student, images, layers=(("pool1", "pool1"),), p: float = 2.0,
                 index: int = 0):
        require_module("teacher", teacher)
        students = student if isinstance(student, dict) else {"student": student}
        if not students or not all(isinstance(m, nn.Module) for m in students.values()):
            raise TypeError("student must be a torch.nn.Module or a non-empty dict {name: torch.nn.Module}, "
                            f"got {type(student).__name__}")
        self.x, self.labels = train.as_tensors(images, "images", image_dims=4)
        self.pairs = _check_layers(layers)
        self._p = require_float("p", p, P_MIN, P_MAX)
        self._index = require_int("index", index, 0, len(self.x) - 1)
        self.teacher_features = layer_features(teacher, self.x, [t for _, t in self.pairs])
        self.student_features = {name: layer_features(m, self.x, [s for s, _ in self.pairs])
                                 for name, m in students.items()}
        for s_layer, t_layer in self.pairs:
            t_shape = self.teacher_features[t_layer].shape
            for name, cache in self.student_features.items():
                s_shape = cache[s_layer].shape
                if len(s_shape) != 4 or len(t_shape) != 4 or s_shape[2:] != t_shape[2:]:
                    raise ValueError(f"layers: student layer {s_layer!r} {tuple(s_shape[1:])} and teacher layer "
                                     f"{t_layer!r} {tuple(t_shape[1:])} must be feature maps of the same spatial size")
        self.student_names = list(students)
        super().__init__()

    def build_controls(self) -> dict:
        controls = {
            "image": int_slider(self.name, "image", value=self._index, min=0, max=len(self.x) - 1, description="image"),
            "layer": dropdown(self.name, "layer", options=[(f"student {s} ↔ teacher {t}", (s, t)) for s, t in self.pairs],
                              value=self.pairs[0], description="layers"),
            "p": slider(self.name, "p", value=self._p, min=P_MIN, max=P_MAX, step=P_STEP, readout_format=".1f",
                        description="power p"),
        }
        if len(self.student_names) > 1:
            controls["student"] = dropdown(self.name, "student", options=self.student_names,
                                           value=self.student_names[0], description="student")
        return controls

    def build_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.06,
                            subplot_titles=("teacher", "student", "student − teacher"))
        for col, (name, scale) in enumerate((("teacher", "Viridis"), ("student", "Viridis"),
                                             ("student − teacher", "RdBu_r")), start=1):
            fig.add_trace(go.Heatmap(z=[[0.0]], colorscale=scale, showscale=col == 3, zmid=0 if col == 3 else None,
                                     name=name, showlegend=False,
                                     colorbar=dict(title=dict(text="q̂ difference", side="right")) if col == 3 else None,
                                     hovertemplate="column %{x}, row %{y}: %{z:.3f}<extra>" + name + "</extra>"),
                          1, col)
        fig.update_layout(height=330, margin=dict(l=20, r=20, t=80, b=20), template=FIGURE_TEMPLATE)
        fig.update_xaxes(visible=False)
        for col in (1, 2, 3):
            fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{'' if col == 1 else col}",
                             row=1, col=col)
        return FigureWidget(fig)

    def setting(self, image: int, layer: tuple, p: float, student: str | None = None) -> dict:
        """The ``stats`` of ``image`` for the layer pair ``layer`` at power ``p`` and ``student`` (default: the
        first), from the cached features; no redraw."""
        index, p = require_int("image", image, 0, len(self.x) - 1), require_float("p", p, P_MIN, P_MAX)
        if tuple(layer) not in self.pairs:
            raise ValueError(f"layer must be one of {self.pairs}, got {layer!r}")
        student = self.student_names[0] if student is None else student
        if student not in self.student_features:
            raise ValueError(f"student must be one of {self.student_names}, got {student!r}")
        s_layer, t_layer = tuple(layer)
        s_all, t_all = self.student_features[student][s_layer], self.teacher_features[t_layer]
        side = t_all.shape[2:]
        q_t = normalized_attention(t_all[index:index + 1], p)[0].reshape(side)
        q_s = normalized_attention(s_all[index:index + 1], p)[0].reshape(side)
        label = None if self.labels is None else int(self.labels[index])
        return {"index": index, "label": label, "student": student, "layer": (s_layer, t_layer), "p": p,
                "teacher_map": q_t.tolist(), "student_map": q_s.tolist(),
                "at_loss": float(attention_transfer_loss(s_all[index:index + 1], t_all[index:index + 1], p)),
                "at_loss_mean": float(attention_transfer_loss(s_all, t_all, p))}

    def draw(self, values: dict) -> None:
        self.stats = stats = self.setting(int(values["image"]), tuple(values["layer"]), float(values["p"]),
                                          values.get("student"))
        q_t, q_s = torch.tensor(stats["teacher_map"]), torch.tensor(stats["student_map"])
        teacher_trace, student_trace, diff_trace = self.figure.data
        # plain lists: numpy arrays do not reach plotly.js intact
        teacher_trace.z, student_trace.z, diff_trace.z = stats["teacher_map"], stats["student_map"], (q_s - q_t).tolist()
        top = float(max(q_t.max(), q_s.max()))
        teacher_trace.zmin = student_trace.zmin = 0.0
        teacher_trace.zmax = student_trace.zmax = top
        (s_layer, t_layer), label = stats["layer"], stats["label"]
        self.figure.layout.title.text = (f"image {stats['index']}" + ("" if label is None else f" (label {label})")
                                         + f": attention maps at p = {stats['p']:g}, {s_layer} ↔ {t_layer}")
        self.readout.value = _readout_html(stats, tuple(self.student_features[stats["student"]][s_layer].shape[1:]),
                                           tuple(self.teacher_features[t_layer].shape[1:]))


def _check_layers(layers) -> list[tuple[str, str]]:
    if isinstance(layers, tuple) and len(layers) == 2 and all(isinstance(n, str) for n in layers):
        layers = [layers]
    ok = isinstance(layers, (list, tuple)) and layers and all(
        isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(n, str) for n in pair) for pair in layers)
    if not ok:
        raise TypeError(f"layers must be a non-empty list of (student_layer, teacher_layer) name pairs, got {layers!r}")
    return [tuple(pair) for pair in layers]


def _readout_html(stats: dict, s_shape: tuple, t_shape: tuple) -> str:
    rows = [("AT loss, this image", f"{stats['at_loss']:.4f}"),
            ("AT loss, mean over images", f"{stats['at_loss_mean']:.4f}"),
            ("student features [C, H, W]", str(list(s_shape))),
            ("teacher features [C, H, W]", str(list(t_shape)))]
    body = readout_rows(rows)
    label = "" if stats["label"] is None else f", label {stats['label']}"
    return (f"<b>image {stats['index']}</b>{label}, {html.escape(stats['student'])}, p = {stats['p']:g}"
            f"<table style='font-size:90%'>{body}</table>")
