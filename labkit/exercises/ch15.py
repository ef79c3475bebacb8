"""Checkers for notebooks/15_robustness_faq_trends.ipynb: one FGSM step by hand on a tiny linear model, and the
bytes a federated client sends under each update codec.

Every expected value is computed here from first principles (numpy, integer arithmetic), never with
``labkit.robust`` or ``labkit.federated`` and never from the learner's answer; the tests check that these
independent values agree with labkit. A wrong answer raises ``ExerciseError`` with a hint aimed at the
most likely mistake; a right one returns a ``✓`` line.
"""
from __future__ import annotations

import math

import numpy as np

from labkit.exercises import (checker, expect_answered, expect_close_or_known_mistake, expect_count, float_array,
                              passed, whole_number)

# Exercise 1: f(x) = W x + b on a 4-pixel image, 3 classes; the true class y; budget eps.
W = [[1.0, -2.0, 0.5, 0.0], [-1.0, 1.0, 0.0, 2.0], [0.5, 0.5, -1.0, -1.0]]
B = [0.1, -0.2, 0.0]
X = [0.05, 0.95, 0.5, 0.3]
Y = 0
EPS = 0.1

# Exercise 2: an MLP 784-100-10 (four tensors), 10 clients, 20 rounds.
TENSORS = {"fc1.weight": 78_400, "fc1.bias": 100, "fc2.weight": 1_000, "fc2.bias": 10}
CLIENTS, ROUNDS, BITS, KEEP = 10, 20, 2, 0.01


def input_gradient_reference(w=W, b=B, x=X, y=Y) -> np.ndarray:
    """``Wᵀ(softmax(Wx + b) − e_y)``: the gradient of a linear model's cross-entropy with respect to its input."""
    w, b, x = (np.asarray(v, dtype=np.float64) for v in (w, b, x))
    z = w @ x + b
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    return w.T @ (p - np.eye(len(b))[y])


def fgsm_reference(w=W, b=B, x=X, y=Y, eps=EPS) -> np.ndarray:
    """``clip(x + ε·sign(∇ₓL), 0, 1)`` with the gradient of ``input_gradient_reference``."""
    return np.clip(np.asarray(x, dtype=np.float64) + eps * np.sign(input_gradient_reference(w, b, x, y)), 0.0, 1.0)


def bytes_reference(tensors=TENSORS, clients=CLIENTS, rounds=ROUNDS, bits=BITS, keep=KEEP) -> tuple[int, int, int]:
    """``(float32, bits-bit, top-keep)`` uplink bytes of all clients over all rounds: per tensor of n
    entries 4n; 4 + ⌈n·bits/8⌉ (a float32 scale, then packed codes); 8·max(1, round(keep·n))."""
    per = [sum(4 * n for n in tensors.values()),
           sum(4 + math.ceil(n * bits / 8) for n in tensors.values()),
           sum(8 * max(1, round(keep * n)) for n in tensors.values())]
    return tuple(clients * rounds * p for p in per)


@checker
def check_fgsm_step(x_adv) -> str:
    """Exercise: the FGSM example of ``X`` (true class ``Y``) at ``EPS`` for ``f(x) = W x + B``."""
    got = float_array("x_adv", x_adv)
    x, g = np.asarray(X, dtype=np.float64), input_gradient_reference()
    row_only = np.asarray(W, dtype=np.float64)[Y]                  # "the gradient is the true class's weights"
    mistakes = [
        (np.clip(x - EPS * np.sign(g), 0, 1), "you stepped *down* the loss (x − ε·sign g): an attack climbs it, "
                                              "x + ε·sign(∇ₓL)."),
        (x + EPS * np.sign(g), "pixels live in [0, 1]: clip the result."),
        (np.clip(x - EPS * np.sign(row_only), 0, 1), "the gradient of the cross-entropy is Wᵀ(p − e_y): the softmax "
                                                     "p of every class matters, not only the true class's row of W."),
        (None, "compute z = W x + b, p = softmax(z), g = Wᵀ(p − e_y), then x + ε·sign(g) clipped to [0, 1]."),
    ]
    expect_close_or_known_mistake("x_adv", got, fgsm_reference(), mistakes, rtol=0, atol=1e-6)
    return passed(f"x_adv = {np.round(fgsm_reference(), 3).tolist()}: every pixel moved by ε = {EPS} along the "
                  f"sign of its gradient {np.sign(g).astype(int).tolist()} (and was clipped to [0, 1]).")


@checker
def check_uplink_bytes(float32_bytes, quantized_bytes, topk_bytes) -> str:
    """Exercise: the uplink bytes of ``CLIENTS`` clients over ``ROUNDS`` rounds for the MLP of ``TENSORS``,
    with float32 updates, ``BITS``-bit updates (a float32 scale per tensor) and the top ``KEEP`` (uint32
    index + float32 value per kept entry, per tensor)."""
    for name, value in (("float32_bytes", float32_bytes), ("quantized_bytes", quantized_bytes),
                        ("topk_bytes", topk_bytes)):
        expect_answered(name, value)
    exp_f, exp_q, exp_t = bytes_reference()
    n, per_run = sum(TENSORS.values()), CLIENTS * ROUNDS
    hint_f = {n * 4: f"every one of the {CLIENTS} clients sends every one of the {ROUNDS} rounds.",
              per_run * n: "a float32 is 4 bytes."}.get(whole_number(float32_bytes),
                                                        "4 bytes per parameter, per client, per round.")
    expect_count("float32_bytes", float32_bytes, exp_f, hint_f)
    hint_q = {per_run * math.ceil(n * BITS / 8): "each tensor also sends its float32 scale (4 bytes).",
              per_run * n * BITS: "bits are not bytes: divide by 8."}.get(
        whole_number(quantized_bytes), "per tensor: 4 + ⌈n·bits/8⌉ bytes.")
    expect_count("quantized_bytes", quantized_bytes, exp_q, hint_q)
    hint_t = {per_run * 4 * sum(max(1, round(KEEP * v)) for v in TENSORS.values()):
              "each kept entry needs its position too: a 4-byte index and a 4-byte value.",
              per_run * 8 * round(KEEP * n): "top-k is taken per tensor: round(0.01·n) of each, at least one."}.get(
        whole_number(topk_bytes), "per tensor: k = max(1, round(0.01·n)) entries of 8 bytes.")
    expect_count("topk_bytes", topk_bytes, exp_t, hint_t)
    return passed(f"float32 {exp_f:,} B, {BITS}-bit {exp_q:,} B ({exp_f / exp_q:.1f}× fewer), top {KEEP:.0%} "
                  f"{exp_t:,} B ({exp_f / exp_t:.1f}× fewer).")
