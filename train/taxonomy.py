"""Codec-taxonomy source tracing (Chen et al., Interspeech 2025): tasks, targets, losses, scores, metrics.

The model (:mod:`train.models.taxonomy`) has one classification head per task:

==== ======================================= ============================== =====================
task classes, in logit order                 manifest column                class weights (CE)
==== ======================================= ============================== =====================
bin  spoof, bonafide                         ``is_fake``                    0.1, 0.9
aux  REAL, none, semantic, disentangle       ``aux``                        0.1, 0.3, 0.3, 0.3
dec  REAL, time, frequency                   ``decoder``                    0.1, 0.45, 0.45
vq   REAL, MVQ, SVQ, SQ                      ``vq``                         0.1, 0.3, 0.3, 0.3
==== ======================================= ============================== =====================

BIN label order: the authors' data loader maps bona fide to 1 and spoof to 0, and their
criterion weights ``[0.1, 0.9]`` follow that order, so the 0.9 weight is on **bona fide**; we
keep both. Their binary score file holds ``softmax[:, 1]``, i.e. P(bona fide), and their EER
takes bona fide as the target class: the two agree. We report :func:`spoof_probability` (higher
= more likely fake) and compute the EER with an explicit polarity (:func:`binary_eer`).

Variants (:data:`VARIANT_TASKS`): single-task S_BIN / S_AUX / S_DEC / S_VQ, dual D_AUX / D_DEC /
D_VQ (BIN + one taxonomy task), M1 (all four), M2 (the three taxonomy tasks, no BIN head).

Targets of one protocol row (:func:`task_targets`): a real row (``is_fake`` False) is bona fide
and REAL on every taxonomy task; a fake row is spoof and takes the class its ``aux`` / ``decoder``
/ ``vq`` column names. A fake row whose column is ``unknown`` (externally labelled spoofs, e.g.
ASVspoof attacks or CoSG systems without labels) gets target -1 on that task: it is **masked out
of that task's loss** (and of its F1) but still trains every task where it is known, BIN always.
The ST ``label`` plays no part, so fakes of codecs outside the ST classes (label -1) train the
model like any other.

Loss (:class:`TaxonomyLoss`): class-weighted cross-entropy per task (targets -1 ignored), total
``sum_i softmax(w)_i * loss_i`` with ``w`` initialised equal (so every task weighs ``1/n``) and
learnable only when asked. A task with no known target in a batch adds nothing to that batch.

Scores (:func:`spoof_probability`): with a BIN head, P(spoof) = ``softmax(bin)[:, 0]``. Without
one (M2), the authors score P(bona fide) = ``1 - (a * d * q) ** (1/3)`` where a, d, q are the
AUX, DEC and VQ heads' summed non-REAL probabilities; P(spoof) is then ``(a * d * q) ** (1/3)``.
For S_AUX / S_DEC / S_VQ (no score upstream) the same geometric mean over the one head present
is used: that head's non-REAL probability.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

TASKS = ("bin", "aux", "dec", "vq")
TASK_CLASSES: dict[str, tuple[str, ...]] = {
    "bin": ("spoof", "bonafide"),
    "aux": ("REAL", "none", "semantic", "disentangle"),
    "dec": ("REAL", "time", "frequency"),
    "vq": ("REAL", "MVQ", "SVQ", "SQ"),
}
CLASS_WEIGHTS: dict[str, tuple[float, ...]] = {
    "bin": (0.1, 0.9),
    "aux": (0.1, 0.3, 0.3, 0.3),
    "dec": (0.1, 0.45, 0.45),
    "vq": (0.1, 0.3, 0.3, 0.3),
}
TASK_COLUMNS = {"aux": "aux", "dec": "decoder", "vq": "vq"}  # taxonomy task -> manifest column
BIN_SPOOF, BIN_BONAFIDE = 0, 1
REAL = 0  # the REAL class of every taxonomy head
TASK_NAMES = {"bin": "BIN", "aux": "AUX", "dec": "DEC", "vq": "VQ"}

VARIANT_TASKS: dict[str, tuple[str, ...]] = {
    "S_BIN": ("bin",),
    "S_AUX": ("aux",),
    "S_DEC": ("dec",),
    "S_VQ": ("vq",),
    "D_AUX": ("bin", "aux"),
    "D_DEC": ("bin", "dec"),
    "D_VQ": ("bin", "vq"),
    "M1": ("bin", "aux", "dec", "vq"),
    "M2": ("aux", "dec", "vq"),
}
VARIANTS = tuple(VARIANT_TASKS)
BALANCE_TASKS = ("aux", "dec", "vq")  # what the taxonomy-balanced sampler may split the spoof half over


def variant_tasks(variant: str) -> tuple[str, ...]:
    """The tasks (heads) of ``variant``, in logit order."""
    try:
        return VARIANT_TASKS[variant]
    except KeyError:
        raise ValueError(f"unknown taxonomy variant {variant!r}; expected one of {list(VARIANTS)}") from None


# ------------------------------------------------------------------ targets from protocol rows
def task_targets(df: pd.DataFrame, tasks: Sequence[str] = TASKS) -> dict[str, np.ndarray]:
    """Per-task class indices (int64, -1 = unknown, masked) of protocol rows.

    Needs ``is_fake`` and the taxonomy columns of the tasks asked for; a value outside the
    task's classes (other than ``real`` / ``unknown``) raises ``ValueError`` naming the column.
    """
    where = df.attrs.get("source_path", "protocol rows")
    if "is_fake" not in df.columns:
        raise ValueError(f"{where}: missing column 'is_fake' (needed for taxonomy targets)")
    fake = df["is_fake"].astype(bool).to_numpy()
    out: dict[str, np.ndarray] = {}
    for task in tasks:
        if task == "bin":
            out[task] = np.where(fake, BIN_SPOOF, BIN_BONAFIDE).astype(np.int64)
            continue
        if task not in TASK_COLUMNS:
            raise ValueError(f"unknown task {task!r}; expected one of {list(TASKS)}")
        col = TASK_COLUMNS[task]
        if col not in df.columns:
            raise ValueError(f"{where}: missing taxonomy column {col!r} (needed for the {TASK_NAMES[task]} task)")
        index_of = {name: i for i, name in enumerate(TASK_CLASSES[task]) if name != "REAL"}
        values = df[col].fillna("unknown").astype(str).to_numpy()
        bad = sorted({v for v in values[fake] if v not in index_of and v not in ("unknown", "real")})
        if bad:
            raise ValueError(f"{where}: column {col!r} has value(s) {bad}; expected {sorted(index_of)} or 'unknown'")
        tgt = np.array([index_of.get(v, -1) for v in values], dtype=np.int64)
        tgt[~fake] = REAL
        out[task] = tgt
    return out


# ------------------------------------------------------------------ loss
class TaxonomyLoss(nn.Module):
    """Softmax-weighted sum of class-weighted cross-entropies, one per task.

    ``forward(logits {task: (B, C)}, targets {task: (B,)})`` -> ``(total, parts)`` where
    ``parts[task] = (loss or None, number of known targets)``. ``total`` is None when no task
    has a known target in the batch (the caller skips the step).
    """

    def __init__(self, tasks: Sequence[str], learnable_weights: bool = False):
        super().__init__()
        self.tasks = tuple(tasks)
        if not self.tasks or any(t not in TASKS for t in self.tasks):
            raise ValueError(f"tasks must be a non-empty subset of {list(TASKS)}, got {list(tasks)}")
        # equal logits give every task 1/n after the softmax (the authors start from equal values too)
        self.weight_logits = nn.Parameter(torch.zeros(len(self.tasks)), requires_grad=bool(learnable_weights))
        for t in self.tasks:
            self.register_buffer(f"class_weight_{t}", torch.tensor(CLASS_WEIGHTS[t]), persistent=False)

    def class_weight(self, task: str) -> torch.Tensor:
        return getattr(self, f"class_weight_{task}")

    def task_weights(self) -> torch.Tensor:
        """``softmax(w)``: the weight of each task in :attr:`tasks` order."""
        return torch.softmax(self.weight_logits, dim=0)

    def forward(self, logits: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]):
        w = self.task_weights()
        total = None
        parts: dict[str, tuple[torch.Tensor | None, int]] = {}
        for i, task in enumerate(self.tasks):
            y = targets[task].to(logits[task].device)
            n = int((y >= 0).sum())
            if n == 0:
                parts[task] = (None, 0)
                continue
            loss = F.cross_entropy(logits[task], y, weight=self.class_weight(task).to(logits[task].dtype), ignore_index=-1)
            parts[task] = (loss, n)
            total = w[i] * loss if total is None else total + w[i] * loss
        return total, parts


# ------------------------------------------------------------------ scores
def task_probabilities(logits: Mapping[str, torch.Tensor | np.ndarray]) -> dict[str, np.ndarray]:
    """Softmax of each head's logits, as float64 numpy arrays."""
    out = {}
    for task, lg in logits.items():
        t = torch.as_tensor(np.asarray(lg) if not isinstance(lg, torch.Tensor) else lg).double()
        out[task] = torch.softmax(t, dim=1).cpu().numpy()
    return out


def spoof_probability(probs: Mapping[str, np.ndarray]) -> np.ndarray:
    """P(spoof) per row from head probabilities (see the module docstring for each variant).

    With a ``bin`` head: its spoof probability. Otherwise the geometric mean of the taxonomy
    heads' non-REAL probabilities (M2: ``(a * d * q) ** (1/3)``, so that P(bona fide) =
    ``1 - (a * d * q) ** (1/3)`` as the authors score it).
    """
    if "bin" in probs:
        return np.asarray(probs["bin"], dtype=np.float64)[:, BIN_SPOOF]
    heads = [t for t in ("aux", "dec", "vq") if t in probs]
    if not heads:
        raise ValueError(f"no head to score from: {sorted(probs)}")
    fake_mass = [1.0 - np.asarray(probs[t], dtype=np.float64)[:, REAL] for t in heads]
    return np.prod(np.clip(np.stack(fake_mass), 0.0, 1.0), axis=0) ** (1.0 / len(heads))


# ------------------------------------------------------------------ metrics
def weighted_f1(y_true, y_pred) -> float:
    """scikit-learn's support-weighted F1 (``average="weighted"``) over rows with a known target
    (``y_true >= 0``); REAL is a class like the others, as in the authors' tables."""
    from sklearn.metrics import f1_score

    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    known = y_true >= 0
    if not known.any():
        raise ValueError("no row with a known target")
    return float(f1_score(y_true[known], y_pred[known], average="weighted", zero_division=0))


def binary_eer(is_fake, p_spoof, convention: str = "interpolated") -> float:
    """EER of bona fide vs spoof. Polarity is explicit: bona fide is the positive (target) class
    scored by P(bona fide) = 1 - ``p_spoof``, as in the authors' evaluation; the EER is the same
    with spoof as the positive class scored by ``p_spoof``. ``convention``: see :mod:`train.metrics`."""
    from .metrics import eer

    bona = 1 - np.asarray(is_fake, dtype=np.int64)
    return float(eer(bona, 1.0 - np.asarray(p_spoof, dtype=np.float64), convention=convention))


def taxonomy_metrics(probs: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray],
                     eer_convention: str = "interpolated") -> dict[str, float]:
    """``f1_<task>`` (weighted F1 over known targets) and ``acc_<task>`` for every head, and
    ``eer`` (bona fide vs spoof, from :func:`spoof_probability`) when ``targets`` has ``bin`` and
    both classes occur. Tasks without a known target are left out."""
    out: dict[str, float] = {}
    for task, p in probs.items():
        y = np.asarray(targets[task])
        known = y >= 0
        if not known.any():
            continue
        pred = np.asarray(p).argmax(axis=1)
        out[f"f1_{task}"] = weighted_f1(y, pred)
        out[f"acc_{task}"] = float((pred[known] == y[known]).mean())
    if "bin" in targets:
        fake = np.asarray(targets["bin"]) == BIN_SPOOF
        if fake.any() and (~fake).any():
            out["eer"] = binary_eer(fake, spoof_probability(probs), convention=eer_convention)
    return out
