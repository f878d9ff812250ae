"""Classification and OOD metrics of the study (ST-Codecfake conventions).

Every score-based metric takes ``scores`` where **higher means more in-distribution / positive**
and binary ``y_true`` with 1 = positive (ID), 0 = negative (OOD). The OOD tables treat ST labels
0..6 as positive and 7..11 as negative, as the paper does.

Conventions (documented because papers differ):

- ROC: :func:`sklearn.metrics.roc_curve` with ``drop_intermediate=False``; tied scores form one
  ROC point (a diagonal step), so ties count half, as in the AUC.
- FPR95: the ROC's FPR at TPR = 0.95, linearly interpolated along the curve (the anchor's
  ``interp1d(tpr, fpr)(0.95)``). Where the curve has a horizontal run at exactly TPR = 0.95 the
  smallest FPR on it is taken, so the value is well defined.
- EER, two conventions (``EER_CONVENTIONS``; the study's ``eer:`` setting picks one):

  - ``interpolated`` (default): the point of the ROC where FPR = FNR (= 1 - TPR), linearly
    interpolated between the two consecutive ROC points that bracket it. ``fpr - fnr`` never
    decreases along the curve, so the crossing is unique. Tied scores form one ROC point.
  - ``anchor``: what the ST-Codecfake / AASIST ``compute_eer`` reports. Scores are sorted
    ascending with a stable sort, positives (ID / bona fide) placed before negatives among equal
    scores; every prefix of that order is one operating point (the prefix rejected), and the EER
    is ``(FNR + FPR) / 2`` at the first point where ``|FNR - FPR|`` is smallest. No
    interpolation, and a prefix may cut through a group of tied scores, rejecting its positives
    before its negatives: pessimistic where scores tie. With heavy ties (e.g. float32 MSP
    saturated at 1.0) the two conventions can differ by several EER points; without ties they
    differ by at most the ROC's step between neighbouring points.

Degenerate inputs (empty, one class only, NaN scores, mismatched lengths) raise ``ValueError``;
no metric ever returns NaN.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import f1_score as _sk_f1
from sklearn.metrics import roc_auc_score, roc_curve

EER_CONVENTIONS = ("interpolated", "anchor")

__all__ = [
    "EER_CONVENTIONS",
    "auc",
    "binary_f1",
    "binary_scores",
    "eer",
    "eer_anchor",
    "eer_interpolated",
    "f1_scores",
    "fpr_at_tpr",
    "micro_f1",
    "ood_metrics",
    "roc",
]


def _check_binary(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D, got shapes {y.shape} and {s.shape}")
    if len(y) != len(s):
        raise ValueError(f"labels ({len(y)}) and scores ({len(s)}) differ in length")
    if len(y) == 0:
        raise ValueError("empty input: no scores to evaluate")
    if not np.isfinite(s).all():
        raise ValueError(f"{int((~np.isfinite(s)).sum())} scores are NaN or infinite")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1, True, False}:
        raise ValueError(f"binary labels must be 0/1, got values {sorted(values)}")
    y = y.astype(np.int64)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        which = "positive (ID)" if n_pos == len(y) else "negative (OOD)"
        raise ValueError(f"only one class in labels: all {len(y)} samples are {which}; ROC metrics need both")
    return y, s


def binary_scores(pos_scores, neg_scores) -> tuple[np.ndarray, np.ndarray]:
    """Stack positive (ID) and negative (OOD) scores into ``(y_true, scores)``, shapes ``(N,)``."""
    pos = np.asarray(pos_scores, dtype=np.float64).ravel()
    neg = np.asarray(neg_scores, dtype=np.float64).ravel()
    y = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
    return y, np.concatenate([pos, neg])


def roc(y_true, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` of the full ROC (every distinct score is a point)."""
    y, s = _check_binary(y_true, scores)
    return roc_curve(y, s, drop_intermediate=False)


def auc(y_true, scores) -> float:
    """Area under the ROC (ties count half)."""
    y, s = _check_binary(y_true, scores)
    return float(roc_auc_score(y, s))


def fpr_at_tpr(y_true, scores, tpr_level: float = 0.95) -> float:
    """FPR where the ROC reaches ``tpr_level`` (FPR95 for 0.95), interpolated along the curve."""
    if not 0.0 < tpr_level <= 1.0:
        raise ValueError(f"tpr_level must be in (0, 1], got {tpr_level}")
    fpr, tpr, _ = roc(y_true, scores)
    i = int(np.searchsorted(tpr, tpr_level, side="left"))  # first point with tpr >= level
    if tpr[i] == tpr_level or i == 0:
        return float(fpr[i])
    t0, t1, f0, f1 = tpr[i - 1], tpr[i], fpr[i - 1], fpr[i]
    return float(f0 + (tpr_level - t0) * (f1 - f0) / (t1 - t0))


def eer_interpolated(y_true, scores) -> float:
    """Equal error rate: the ROC point where FPR = FNR, interpolated between bracketing points."""
    fpr, tpr, _ = roc(y_true, scores)
    d = fpr - (1.0 - tpr)  # non-decreasing along the curve, from -1 at (0, 0) to +1 at (1, 1)
    i = int(np.argmax(d >= 0))
    if d[i] == 0 or i == 0:
        return float(fpr[i])
    alpha = -d[i - 1] / (d[i] - d[i - 1])
    return float(fpr[i - 1] + alpha * (fpr[i] - fpr[i - 1]))


def eer_anchor(y_true, scores) -> float:
    """Equal error rate as the ST-Codecfake / AASIST ``compute_eer`` computes it (see module doc).

    Ascending stable order with positives first among tied scores; operating point ``k`` rejects
    the first ``k`` items (``k = 0..N``): ``FNR_k`` = positives rejected / positives,
    ``FPR_k`` = negatives kept / negatives; EER = ``(FNR_k + FPR_k) / 2`` at the first ``k`` with
    the smallest ``|FNR_k - FPR_k|``. Independent of the input order (upstream always lists the
    positives first, which its stable sort turns into this tie order).
    """
    y, s = _check_binary(y_true, scores)
    order = np.lexsort((-y, s))  # by score, then label 1 before 0 among ties
    pos_rejected = np.concatenate([[0], np.cumsum(y[order])])
    neg_rejected = np.arange(len(y) + 1) - pos_rejected
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    fnr = pos_rejected / n_pos
    fpr = (n_neg - neg_rejected) / n_neg
    k = int(np.argmin(np.abs(fnr - fpr)))
    return float((fnr[k] + fpr[k]) / 2.0)


def eer(y_true, scores, convention: str = "interpolated") -> float:
    """Equal error rate under ``convention`` (``EER_CONVENTIONS``; see the module doc)."""
    if convention == "interpolated":
        return eer_interpolated(y_true, scores)
    if convention == "anchor":
        return eer_anchor(y_true, scores)
    raise ValueError(f"unknown EER convention {convention!r}; expected one of {EER_CONVENTIONS}")


def ood_metrics(id_scores, ood_scores, eer_convention: str = "interpolated") -> dict[str, float]:
    """``{"auc", "fpr95", "eer", "n_id", "n_ood"}`` with ID as positive; higher score = more ID.

    ``eer_convention`` picks the EER (``EER_CONVENTIONS``); AUC and FPR95 are the same either way.
    """
    y, s = binary_scores(id_scores, ood_scores)
    return {
        "auc": auc(y, s),
        "fpr95": fpr_at_tpr(y, s, 0.95),
        "eer": eer(y, s, eer_convention),
        "n_id": int(y.sum()),
        "n_ood": int(len(y) - y.sum()),
    }


def _check_pred(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    if len(y) != len(p):
        raise ValueError(f"labels ({len(y)}) and predictions ({len(p)}) differ in length")
    if len(y) == 0:
        raise ValueError("empty input: no predictions to evaluate")
    return y, p


def f1_scores(y_true, y_pred, labels: Sequence[int] | None = None) -> dict:
    """Macro, weighted and per-class F1 (scikit-learn; a class never predicted scores 0).

    ``labels``: classes to average over (default: those in ``y_true``). Returns
    ``{"macro": float, "weighted": float, "per_class": {label: float}, "n": int}``.
    """
    y, p = _check_pred(y_true, y_pred)
    labs = sorted(np.unique(y).tolist()) if labels is None else list(labels)
    if not labs:
        raise ValueError("no labels to average F1 over")
    per = _sk_f1(y, p, labels=labs, average=None, zero_division=0)
    present = np.isin(labs, y)
    if not present.any():
        raise ValueError(f"none of the labels {labs} occur in y_true")
    return {
        "macro": float(_sk_f1(y, p, labels=labs, average="macro", zero_division=0)),
        "weighted": float(_sk_f1(y, p, labels=labs, average="weighted", zero_division=0)),
        "per_class": {int(lab): float(v) for lab, v in zip(labs, per)},
        "n": int(len(y)),
    }


def micro_f1(y_true, y_pred) -> float:
    """Micro F1 over all classes (equals accuracy for single-label multi-class data).

    The anchor scores its robustness sets (one true label per set) this way.
    """
    y, p = _check_pred(y_true, y_pred)
    return float(_sk_f1(y, p, average="micro", zero_division=0))


def binary_f1(y_true, y_pred, pos_label: int = 1) -> float:
    """F1 of the ``pos_label`` class of a binary decision (0 when nothing is predicted positive)."""
    y, p = _check_pred(y_true, y_pred)
    return float(_sk_f1(y, p, labels=[pos_label], pos_label=pos_label, average="macro", zero_division=0))
