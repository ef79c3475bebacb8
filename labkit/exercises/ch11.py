"""Checkers for notebooks/11_distillation_soft_labels.ipynb: softmax at a temperature, the KD loss
value (batchmean, T²) and its gradient with respect to the student's logits.

Every expected value is computed here in NumPy from the formulas (never with ``labkit.distill`` and
never from the learner's answer); the tests check that these agree with labkit and with torch. A
wrong answer raises ``ExerciseError``; when it equals a known mistake — the seed's ``reduction='mean'``,
the missing T², the KL the wrong way round, probabilities where log-probabilities belong — the hint
names that mistake. A right answer returns a ``✓`` line.
"""
from __future__ import annotations

import numpy as np

from labkit.exercises import ExerciseError, checker, expect_close_or_known_mistake, float_array, passed

# Exercise 1: one teacher's logits, softened at T = 4.
LOGITS = (6.0, 2.0, -1.0, 0.5)
T_SOFT = 4.0

# Exercises 2 and 3: a batch of two samples, four classes, T = 3 (T² = 9 ≠ C = 4, so the seed bugs differ).
STUDENT = ((2.0, 1.0, 0.0, -1.0),
           (0.5, 0.5, 2.0, -0.5))
TEACHER = ((4.0, 1.0, -1.0, -2.0),
           (-1.0, 1.0, 3.0, 0.0))
T_KD = 3.0


# ----------------------------------------------------------------------------- references
def softmax(z, T: float = 1.0) -> np.ndarray:
    """``exp(z/T) / Σ exp(z/T)`` along the last axis, in float64 (max subtracted for stability)."""
    z = np.asarray(z, dtype=np.float64) / T
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kd_reference(student=STUDENT, teacher=TEACHER, T: float = T_KD) -> float:
    """``T² · (1/N) Σ_n Σ_c p_t (ln p_t − ln p_s)`` with ``p = softmax(z / T)``."""
    p_s, p_t = softmax(student, T), softmax(teacher, T)
    return float(T * T * (p_t * (np.log(p_t) - np.log(p_s))).sum(axis=1).mean())


def gradient_reference(student=STUDENT, teacher=TEACHER, T: float = T_KD) -> np.ndarray:
    """``∂ kd / ∂ s = (T / N) (p_s − p_t)``, shape ``[N, C]``."""
    p_s, p_t = softmax(student, T), softmax(teacher, T)
    return T * (p_s - p_t) / len(p_s)


# ----------------------------------------------------------------------------- exercise 1
@checker
def check_soft_targets(probs) -> str:
    """Exercise: ``probs`` = softmax of ``LOGITS`` at temperature ``T_SOFT`` (4 numbers summing to 1)."""
    got = float_array("probs", probs)
    got = got.reshape(-1) if got.size == len(LOGITS) else got         # [4] or [1, 4]
    z = np.asarray(LOGITS)
    expected = softmax(z, T_SOFT)
    mistakes = [(softmax(z), "That is the ordinary softmax (T = 1): divide the logits by T first, softmax(z / T)."),
                (softmax(z * T_SOFT), "You multiplied by T; a temperature *divides*: softmax(z / T) is flatter."),
                (z / T_SOFT, "z / T are still logits: apply the softmax (exp, then normalise) to get probabilities."),
                (softmax(z, T_SOFT) ** (1 / T_SOFT),
                 "Divide the logits by T *inside* the exponential, then normalise."),
                (softmax(z) ** (1 / T_SOFT) / (softmax(z) ** (1 / T_SOFT)).sum(),
                 "Close, but write it as exp(z_i / T) / Σ_j exp(z_j / T) and check the arithmetic."),
                (None, "p_i = exp(z_i / T) / Σ_j exp(z_j / T) with T = 4; the four values sum to 1.")]
    expect_close_or_known_mistake("probs", got, expected, mistakes)
    return passed(f"softmax(z / {T_SOFT:g}) = {np.round(expected, 4).tolist()}: the top class keeps "
                  f"{expected[0]:.1%} instead of {softmax(z)[0]:.1%} at T = 1, and the others become visible.")


# ----------------------------------------------------------------------------- exercise 2
@checker
def check_kd_loss(loss) -> str:
    """Exercise: the KD loss of ``STUDENT`` against ``TEACHER`` at ``T_KD``: T² · KL(p_t ‖ p_s), batch mean."""
    got = float_array("loss", loss)
    if got.size != 1:
        raise ExerciseError(f"`loss` should be one number (a scalar), got shape {got.shape}.",
                            "Sum the KL over the classes, then average over the samples.")
    got = got.reshape(())
    T, c = T_KD, len(STUDENT[0])
    expected = kd_reference()
    p_s, p_t = softmax(STUDENT, T), softmax(TEACHER, T)
    kl_rows = (p_t * (np.log(p_t) - np.log(p_s))).sum(axis=1)
    reverse = (p_s * (np.log(p_s) - np.log(p_t))).sum(axis=1).mean() * T * T
    cross_entropy = -(p_t * np.log(p_s)).sum(axis=1).mean() * T * T
    # nn.KLDivLoss fed probabilities instead of log-probabilities: Σ p_t (ln p_t − p_s).
    prob_input = (p_t * (np.log(p_t) - p_s)).sum(axis=1).mean() * T * T
    mistakes = [
        (expected / c, "That is reduction='mean' (seed 003 §1's nn.KLDivLoss() default): it divides by N·C, "
                       "not N. Use 'batchmean': sum over the classes, average over the samples."),
        (expected / (c * T * T), "reduction='mean' *and* no T²: divide by N only, and multiply by T²."),
        (expected / (T * T), "The T² factor is missing (Hinton et al. 2015): without it the soft-target "
                             "gradients shrink as 1/T² when T grows."),
        (kl_rows.sum() * T * T, "That is the sum over the batch ('sum'); average over the N samples ('batchmean')."),
        (reverse, "That is KL(p_s ‖ p_t), the wrong way round: the teacher's distribution p_t weights the logs."),
        (cross_entropy, "That is the cross-entropy H(p_t, p_s) = KL + H(p_t): subtract the teacher's entropy "
                        "(same gradient, different value)."),
        (prob_input, "nn.KLDivLoss wants *log*-probabilities as its input: log_softmax(s / T), not softmax."),
        (None, "KD = T² · (1/N) Σ_n Σ_c p_t (ln p_t − ln p_s), p = softmax(z / T), T = 3, N = 2."),
    ]
    expect_close_or_known_mistake("loss", got, expected, mistakes)
    return passed(f"KD loss = {expected:.4f} (torch: F.kl_div(log_softmax(s/T), softmax(t/T), "
                  f"reduction='batchmean') · T²); 'mean' would give {expected / c:.4f}, "
                  f"no T² {expected / T / T:.4f}.")


# ----------------------------------------------------------------------------- exercise 3
@checker
def check_kd_gradient(grad) -> str:
    """Exercise: ``grad`` = ∂ KD / ∂ student logits for ``STUDENT``/``TEACHER`` at ``T_KD`` (shape [2, 4])."""
    got = float_array("grad", grad)
    T, n = T_KD, len(STUDENT)
    expected = gradient_reference()
    if got.shape != expected.shape:
        raise ExerciseError(f"`grad` should have the logits' shape {expected.shape}, got {got.shape}.",
                            "One partial derivative per student logit.")
    diff = softmax(STUDENT, T) - softmax(TEACHER, T)
    mistakes = [(diff / (n * T), "That is the gradient *without* the T² factor: (1 / (N·T)) (p_s − p_t). "
                                 "With T² it is T / N · (p_s − p_t)."),
                (-expected, "Wrong sign: the loss decreases when p_s moves towards p_t, "
                            "so ∂/∂s = +(p_s − p_t)·T/N."),
                (T * diff, "Forgot the batch mean: divide by N = 2."),
                (diff / n, "Chain rule: ∂(s/T)/∂s = 1/T, times T² gives a factor T, not 1."),
                (None, "∂ KD / ∂ s = T² · (1/N) · (1/T) · (p_s − p_t) = (T / N)(p_s − p_t).")]
    expect_close_or_known_mistake("grad", got, expected, mistakes)
    return passed(f"∂KD/∂s = (T/N)(p_s − p_t): largest entry {np.abs(expected).max():.4f}; without T² "
                  f"every entry would be T² = {T * T:g}× smaller.")
