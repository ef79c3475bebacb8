"""Attack explorer: move ε, pick the attack and the model, and watch an invisible change flip a digit.

For one test image the figure shows the clean image, the perturbation ``δ = x' − x`` the attack adds
(``labkit.robust.fgsm`` / ``pgd``; every pixel moves by at most ε), the adversarial image and the
model's class probabilities before and after. The readout gives the prediction before → after and the
robust accuracy of the chosen model on a fixed evaluation subset at this ε (each model × attack × ε
computed once and cached). Quantized models are attacked through their straight-through twin
(``labkit.robust.attack_view``) and scored as they are. Explained in notebooks/15_robustness_faq_trends.ipynb.
"""
from __future__ import annotations

import html

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn
from torch.utils.data import TensorDataset

from labkit import robust, stats, train
from labkit.validate import require_choice, require_float, require_int
from labkit.widgets.base import FIGURE_TEMPLATE, Explorer, FigureWidget, dropdown, int_slider, readout_rows, slider

EPS_MAX, EPS_STEP = 0.3, 0.01
CLASS_NAMES = [f"digit {c}" for c in range(10)]


class AttackExplorer(Explorer):
    """FGSM / PGD on one image and on an evaluation subset, for several models.

    ``AttackExplorer(models, eval_data, eps=0.05, attack="pgd", image=0)``: ``models`` maps names to
    trained classifiers of 10 classes (copied references, never modified); ``eval_data`` a labelled
    ``TensorDataset`` (use ``data.eval_subset``). Controls: ``model`` (Dropdown), ``attack`` (fgsm/pgd),
    ``eps`` (FloatSlider 0–0.3, on release), ``image`` (IntSlider over ``eval_data``). ``stats``:
    ``model``, ``attack``, ``eps``, ``image``, ``label``, ``clean_prediction``, ``adversarial_prediction``,
    ``linf`` (max |δ|), ``robust_accuracy`` with its Wilson interval ``robust_low``/``robust_high``,
    ``clean_accuracy``, ``images``; ``setting(model, attack, eps, image)`` gives them without a redraw. Explained in notebooks/15_robustness_faq_trends.ipynb.
    """

    name = "attack"

    def __init__(self, models: dict, eval_data, eps: float = 0.05, attack: str = "pgd", image: int = 0):
        if not isinstance(models, dict) or not models or not all(isinstance(m, nn.Module) for m in models.values()):
            raise TypeError("models must be a non-empty dict {name: torch.nn.Module}")
        if not isinstance(eval_data, TensorDataset) or len(eval_data.tensors) != 2 or eval_data.tensors[0].dim() != 4:
            raise TypeError("eval_data must be a labelled TensorDataset (x float [N, 1, H, W] in [0, 1], y int64 [N]); "
                            "use labkit.data.eval_subset")
        self.models = {name: model.eval() for name, model in models.items()}
        self._views = {name: robust.attack_view(model) for name, model in self.models.items()}
        self.x, self.y = eval_data.tensors
        self._eps = round(require_float("eps", eps, 0.0, EPS_MAX), 2)
        self._attack = require_choice("attack", attack, robust.ATTACKS)
        self._image = require_int("image", image, 0, len(self.x) - 1)
        self._clean = {name: train.correct(model, eval_data).float().mean().item() for name, model in self.models.items()}
        super().__init__()

    def build_controls(self) -> dict:
        return {"model": dropdown(self.name, "model", options=list(self.models), value=next(iter(self.models)),
                                  description="model"),
                "attack": dropdown(self.name, "attack", options=[("FGSM", "fgsm"), ("PGD-10", "pgd")],
                                   value=self._attack, description="attack"),
                "eps": slider(self.name, "eps", value=self._eps, min=0.0, max=EPS_MAX, step=EPS_STEP,
                              readout_format=".2f", description="ε (L∞)"),
                "image": int_slider(self.name, "image", value=self._image, min=0, max=len(self.x) - 1,
                                    description="test image")}

    def build_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=2, cols=3, row_heights=[0.55, 0.45], vertical_spacing=0.2, horizontal_spacing=0.08,
                            specs=[[{}, {}, {}], [{"colspan": 3}, None, None]],
                            subplot_titles=("clean image x", "perturbation δ = x′ − x", "adversarial image x′",
                                            "class probabilities before and after the attack"))
        gray, pixels = [[0, "black"], [1, "white"]], list(range(self.x.shape[-1]))
        fig.add_trace(go.Heatmap(x=pixels, y=pixels, z=[[0.0]], zmin=0, zmax=1, colorscale=gray, showscale=False,
                                 name="clean image"), 1, 1)
        fig.add_trace(go.Heatmap(x=pixels, y=pixels, z=[[0.0]], zmin=-EPS_MAX, zmax=EPS_MAX, colorscale="RdBu",
                                 showscale=False, name="perturbation"), 1, 2)
        fig.add_trace(go.Heatmap(x=pixels, y=pixels, z=[[0.0]], zmin=0, zmax=1, colorscale=gray, showscale=False,
                                 name="adversarial image"), 1, 3)
        fig.add_trace(go.Bar(x=CLASS_NAMES, y=[0.0] * 10, name="clean image", marker_color="#4C72B0"), 2, 1)
        fig.add_trace(go.Bar(x=CLASS_NAMES, y=[0.0] * 10, name="adversarial image", marker_color="#d62728"), 2, 1)
        fig.update_layout(height=560, width=700, margin=dict(l=60, r=20, t=90, b=50), template=FIGURE_TEMPLATE,
                          barmode="group", legend=dict(orientation="h", x=0.0, y=-0.16))
        for col in (1, 2, 3):
            fig.update_xaxes(showticklabels=False, title_text="pixel column", row=1, col=col)
            fig.update_yaxes(showticklabels=False, autorange="reversed", scaleanchor=f"x{col if col > 1 else ''}",
                             title_text="pixel row", title_standoff=2, row=1, col=col)
        fig.update_xaxes(type="category", title_text="class", row=2, col=1)
        fig.update_yaxes(range=[0, 1.02], title_text="probability", row=2, col=1)
        return FigureWidget(fig)

    # --- the numbers (labkit.robust / labkit.train) ---------------------------------------------
    def examples(self, model: str, attack: str, eps: float) -> torch.Tensor:
        """The attacked evaluation subset ``x'`` float ``[N, C, H, W]`` (cached per model, attack, ε)."""
        return self._attacked(model, attack, eps)[0]

    def robust_accuracy(self, model: str, attack: str, eps: float) -> stats.Estimate:
        """Accuracy of ``model`` on the subset attacked at ``eps``, with its Wilson interval (cached)."""
        return self._attacked(model, attack, eps)[1]

    def _attacked(self, model: str, attack: str, eps: float) -> tuple[torch.Tensor, stats.Estimate]:
        require_choice("model", model, tuple(self.models))
        require_choice("attack", attack, robust.ATTACKS)
        key = (model, attack, round(require_float("eps", eps, 0.0, EPS_MAX), 4))

        def attack_and_evaluate() -> tuple[torch.Tensor, stats.Estimate]:
            attacked = robust.adversarial_examples(self._views[model], (self.x, self.y), key[2], attack=attack)
            return attacked.tensors[0], stats.accuracy_interval(train.correct(self.models[model], attacked))
        return self.remember("attacked", key, attack_and_evaluate)

    def setting(self, model: str, attack: str, eps: float, image: int) -> dict:
        """The ``stats`` the explorer shows for these control values, plus ``"probabilities"`` (clean and
        adversarial, 10 each) and the images ``"x"``, ``"x_adv"`` float ``[H, W]``; cached, no redraw."""
        image = require_int("image", image, 0, len(self.x) - 1)
        x_adv, robust_acc = self._attacked(model, attack, eps)
        eps = round(float(eps), 4)
        with torch.no_grad():
            probs = self.models[model](torch.stack([self.x[image], x_adv[image]])).softmax(1)
        return {"model": model, "attack": attack, "eps": eps, "image": image, "label": int(self.y[image]),
                "clean_prediction": int(probs[0].argmax()), "adversarial_prediction": int(probs[1].argmax()),
                "linf": float((x_adv[image] - self.x[image]).abs().max()), "robust_accuracy": robust_acc.value,
                "robust_low": robust_acc.low, "robust_high": robust_acc.high, "clean_accuracy": self._clean[model],
                "images": len(self.x), "probabilities": probs.tolist(), "x": self.x[image, 0], "x_adv": x_adv[image, 0]}

    def draw(self, values: dict) -> None:
        shown = self.setting(values["model"], values["attack"], values["eps"], values["image"])
        pixels = list(range(self.x.shape[-1]))
        images = (shown["x"], shown["x_adv"] - shown["x"], shown["x_adv"])
        for trace, image in zip(self.figure.data[:3], images):   # the whole data (x, y, z): see base.complete_batch
            trace.x, trace.y, trace.z = pixels, pixels, image.tolist()
        p_clean, p_adv = self.figure.data[3:]
        p_clean.x, p_clean.y = CLASS_NAMES, shown["probabilities"][0]
        p_adv.x, p_adv.y = CLASS_NAMES, shown["probabilities"][1]
        self.figure.layout.title.text = (
            f"{shown['model']}, {'PGD-10' if shown['attack'] == 'pgd' else 'FGSM'} at ε = {shown['eps']:.2f}: "
            f"digit {shown['clean_prediction']} → digit {shown['adversarial_prediction']} (label {shown['label']})")
        self.stats = {k: v for k, v in shown.items() if k not in ("probabilities", "x", "x_adv")}
        self.readout.value = _readout_html(self.stats)


def _readout_html(s: dict) -> str:
    rows = [("prediction", f"{s['clean_prediction']} → {s['adversarial_prediction']}"),
            ("max |δ|", f"{s['linf']:.3f}"),
            ("robust accuracy", f"{s['robust_accuracy']:.1%} [{s['robust_low']:.1%}, {s['robust_high']:.1%}]"),
            ("clean accuracy", f"{s['clean_accuracy']:.1%}")]
    body = readout_rows(rows)
    return (f"<b>{html.escape(s['model'])}</b>, {'PGD-10' if s['attack'] == 'pgd' else 'FGSM'} ε = {s['eps']:.2f}"
            f"<table style='font-size:90%'>{body}</table>"
            f"<small>on {s['images']} test images; [95 % Wilson interval]</small>")
