"""How good is a liveness model? Pure functions of (scores, labels, threshold).

Conventions used everywhere in this project:

* ``labels``: 1 = real (bona fide), 0 = fake (presentation attack);
* ``scores``: the model's P(real), higher = more real;
* decision: a face is accepted as real iff ``score >= threshold``.

The field's error rates (ISO/IEC 30107-3), for a threshold t::

    APCER(t) = #{fakes with score >= t} / #fakes     attack presentations accepted as real
    BPCER(t) = #{reals with score <  t} / #reals     bona fide presentations rejected
    ACER(t)  = (APCER(t) + BPCER(t)) / 2

Sweeping t over every distinct score traces the ROC curve, here with "real" as the positive
class: x = false positive rate = APCER, y = true positive rate = 1 - BPCER. Its area (AUC) is
the probability that a random real scores above a random fake, ties counting one half (the
Mann-Whitney statistic), so it measures the *ranking* alone: a model can have a high AUC and
still a useless threshold (the typical cross-recording failure). The equal error rate (EER)
is the point where APCER and BPCER meet.

A rate whose denominator is empty (APCER on a set with no fakes) is ``nan``, not an error:
evaluating a folder of real faces only is a legitimate question ("how many are rejected?").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liveness.net import CLASSES


def check_inputs(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert: 1-D float64 scores and 0/1 int64 labels of the same length."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in length: {scores.size} vs {labels.size}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (fake) or 1 (real), got {np.unique(labels)}")
    return scores, labels.astype(np.int64)


def _rate(count: int, total: int) -> float:
    return count / total if total else math.nan


def predict(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Decisions as labels: 1 (real) where ``score >= threshold``, else 0 (fake)."""
    return (np.asarray(scores) >= threshold).astype(np.int64)


def apcer(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Attack presentation classification error rate: share of fakes accepted as real."""
    scores, labels = check_inputs(scores, labels)
    fakes = scores[labels == 0]
    return _rate(int((fakes >= threshold).sum()), fakes.size)


def bpcer(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Bona fide presentation classification error rate: share of reals rejected as fake."""
    scores, labels = check_inputs(scores, labels)
    reals = scores[labels == 1]
    return _rate(int((reals < threshold).sum()), reals.size)


def acer(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Average classification error rate: (APCER + BPCER) / 2."""
    return (apcer(scores, labels, threshold) + bpcer(scores, labels, threshold)) / 2


@dataclass(frozen=True)
class Roc:
    """Operating points for thresholds in decreasing order (first one +inf: nothing accepted).

    ``apcer[i]`` / ``bpcer[i]`` are the error rates at ``thresholds[i]``; the ROC curve is
    (x, y) = (apcer, 1 - bpcer), running from (0, 0) to (1, 1).
    """

    thresholds: np.ndarray
    apcer: np.ndarray
    bpcer: np.ndarray

    @property
    def fpr(self) -> np.ndarray:
        return self.apcer

    @property
    def tpr(self) -> np.ndarray:
        return 1.0 - self.bpcer


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> Roc:
    """All distinct operating points, one per distinct score (tied scores move together).

    With the scores sorted in decreasing order, lowering the threshold to the next distinct
    value u accepts every sample scoring exactly u at once, so

        APCER(u) = #{fakes >= u} / #fakes,   BPCER(u) = (#reals - #{reals >= u}) / #reals

    are cumulative counts taken at the last index of each run of equal scores.
    Needs at least one real and one fake.
    """
    scores, labels = check_inputs(scores, labels)
    n_real, n_fake = int(labels.sum()), int((labels == 0).sum())
    if n_real == 0 or n_fake == 0:
        raise ValueError(f"ROC needs both classes, got {n_real} real and {n_fake} fake")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last_of_run = np.r_[s[1:] != s[:-1], True]
    reals_accepted = np.cumsum(y)[last_of_run]
    fakes_accepted = np.cumsum(1 - y)[last_of_run]
    return Roc(thresholds=np.r_[np.inf, s[last_of_run]],
               apcer=np.r_[0.0, fakes_accepted / n_fake],
               bpcer=np.r_[1.0, (n_real - reals_accepted) / n_real])


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids, so tied scores count 1/2); ``nan`` with one class."""
    scores, labels = check_inputs(scores, labels)
    if not 0 < labels.sum() < labels.size:  # one class only
        return math.nan
    roc = roc_curve(scores, labels)
    return float(np.trapezoid(roc.tpr, roc.fpr))


def eer(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Equal error rate and its threshold: ``(eer, threshold)``.

    Among the distinct scores used as thresholds, take the one where APCER and BPCER are
    closest (ties: the lower mean) and report their mean there. No interpolation, so the
    threshold returned reproduces the rates exactly on this data.
    """
    roc = roc_curve(scores, labels)
    i = _eer_index(roc)
    return float((roc.apcer[i] + roc.bpcer[i]) / 2), float(roc.thresholds[i])


def _eer_index(roc: Roc) -> int:
    """Index into ``roc`` of the finite threshold where APCER and BPCER are closest (ties: the
    lower mean)."""
    a, b = roc.apcer[1:], roc.bpcer[1:]  # finite thresholds only
    gap = np.round(np.abs(a - b), 12)  # so that equal gaps compare equal despite rounding
    return 1 + int(np.lexsort((a + b, gap))[0])


def eer_midpoint_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The EER operating point's threshold moved to the middle of its interval.

    On data, the rates of :func:`eer` hold for every threshold t in (u, s], where s is the
    EER threshold (a score) and u the next lower distinct score: all of them make the same
    decisions here. :func:`eer` returns s, the edge, so a new face scoring a hair below the
    lowest accepted one is rejected. Few samples (5 per class) leave wide gaps between
    scores, and the middle ``(s + u) / 2`` is the threshold farthest from both neighbours
    with the same rates, the robust choice for them. When s is the lowest score, it is
    returned as it is (nothing lies below it).
    """
    roc = roc_curve(scores, labels)
    i = _eer_index(roc)
    s = roc.thresholds[i]
    return float(s if i + 1 == len(roc.thresholds) else (s + roc.thresholds[i + 1]) / 2)


def threshold_at_bpcer(scores: np.ndarray, labels: np.ndarray, target: float) -> float:
    """The highest threshold whose BPCER is <= ``target``: the fewest fakes accepted for that.

    APCER falls and BPCER rises as the threshold goes up, so the best APCER allowed by a
    BPCER budget is at the highest threshold that keeps within it.
    """
    roc = roc_curve(scores, labels)
    ok = np.flatnonzero(roc.bpcer[1:] <= target + 1e-12)  # never empty: the lowest score gives 0
    return float(roc.thresholds[1:][ok[0]])


def apcer_at_bpcer(scores: np.ndarray, labels: np.ndarray, target: float) -> float:
    """APCER at the operating point with BPCER <= ``target`` (e.g. 0.01, 0.05); ``nan``
    with one class."""
    scores, labels = check_inputs(scores, labels)
    if not 0 < labels.sum() < labels.size:  # one class only
        return math.nan
    return apcer(scores, labels, threshold_at_bpcer(scores, labels, target))


def parse_threshold_rule(rule: str) -> tuple[str, float | None]:
    """``"eer"`` -> ("eer", None); ``"bpcer=0.05"`` -> ("bpcer", 0.05); ``"0.5"`` -> ("fixed", 0.5).

    Raises a one-line ``ValueError`` for anything else.
    """
    if rule == "eer":
        return "eer", None
    name, eq, value = rule.partition("=")
    try:
        number = float(value if eq else name)
    except ValueError:
        number = math.nan
    if eq and name == "bpcer" and 0 <= number < 1:
        return "bpcer", number
    if not eq and math.isfinite(number):
        return "fixed", number
    raise ValueError(f"threshold rule must be 'eer', 'bpcer=<rate in [0, 1)>' or a number, "
                     f"got {rule!r}")


def select_threshold(scores: np.ndarray, labels: np.ndarray, rule: str = "eer",
                     midpoint: bool = False) -> float:
    """A decision threshold chosen on validation data by ``rule`` (see
    :func:`parse_threshold_rule`): the EER point, the highest threshold within a BPCER budget,
    or a fixed value. ``midpoint=True`` takes the EER point in the middle of its interval
    (:func:`eer_midpoint_threshold`, for few samples)."""
    kind, value = parse_threshold_rule(rule)
    if kind == "eer":
        return eer_midpoint_threshold(scores, labels) if midpoint else eer(scores, labels)[1]
    if kind == "bpcer":
        return threshold_at_bpcer(scores, labels, value)
    return value


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray,
                     n_classes: int = len(CLASSES)) -> np.ndarray:
    """``m[i, j]`` = number of samples of true class i predicted as class j."""
    labels = np.asarray(labels, dtype=np.int64).ravel()
    predictions = np.asarray(predictions, dtype=np.int64).ravel()
    if labels.shape != predictions.shape:
        raise ValueError(f"labels and predictions differ in length: "
                         f"{labels.size} vs {predictions.size}")
    return np.bincount(labels * n_classes + predictions,
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_report(labels: np.ndarray, predictions: np.ndarray,
                          class_names: tuple[str, ...] = CLASSES) -> dict:
    """Per-class precision, recall, F1 and support, accuracy, macro and weighted averages.

    From the confusion matrix m (rows: true class, columns: predicted)::

        precision_c = m[c, c] / sum_i m[i, c]     (of those called c, how many are c)
        recall_c    = m[c, c] / sum_j m[c, j]     (of the true c, how many were found)
        f1_c        = 2 p r / (p + r)
        macro avg   = plain mean over classes;  weighted avg = mean weighted by support

    A ratio with an empty denominator is reported as 0.0 (as scikit-learn does by default).
    Returns ``{class_name: {...}, "accuracy": a, "macro avg": {...}, "weighted avg": {...}}``.
    """
    m = confusion_matrix(labels, predictions, len(class_names)).astype(np.float64)
    tp, predicted, support = np.diag(m), m.sum(axis=0), m.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        pr = precision + recall
        f1 = np.where(pr > 0, 2 * precision * recall / pr, 0.0)
    table = np.stack([precision, recall, f1])
    n = support.sum()
    weights = support / n if n else np.zeros_like(support)

    def row(values: np.ndarray, count: float) -> dict:
        return {"precision": float(values[0]), "recall": float(values[1]),
                "f1": float(values[2]), "support": int(count)}

    report: dict = {name: row(table[:, c], support[c]) for c, name in enumerate(class_names)}
    report["accuracy"] = float(tp.sum() / n) if n else math.nan
    report["macro avg"] = row(table.mean(axis=1), n)
    report["weighted avg"] = row(table @ weights, n)
    return report
