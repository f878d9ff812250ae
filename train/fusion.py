"""Score-embedding fusion and REFD's decision rule for the two-stage source tracer.

- :func:`class_prototypes`: mean L2-normalised training embedding of each class (re-normalised).
- :func:`fused_class_scores`: ``(1 - w) * softmax(logits)_k + w * cos(embedding, prototype_k)``;
  its argmax is the fused class and :func:`fused_score` (its maximum) the OOD score, higher = more
  in-distribution. ``w = 0`` is the classifier alone (MSP), ``w = 1`` the embedding
  similarity alone (NSD-style, to prototypes instead of every training embedding); sweeping ``w``
  trades in-domain accuracy against OOD detection (:func:`fusion_sweep`).
- :func:`refd_decide`: REFD's fusion of the two stages (its ``generate_f1_e2e.py``): the FD class,
  replaced by ``UNKNOWN`` where the OOD score is below the dev-chosen threshold, and by real (0)
  where the RE stage's real score reaches its threshold; the real decision wins over unknown
  (``real_first=True``, REFD's order: an FD model trained on fakes only sees every real utterance
  as out of distribution). ``real_first=False`` lets unknown win instead. REFD itself hand-sets the
  thresholds (OOD score 0, a tight real cosine 0.98); here both are arguments, chosen on dev.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

UNKNOWN = -1


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_prototypes(embeddings, labels) -> tuple[np.ndarray, np.ndarray]:
    """``(classes (K,), prototypes (K, D))`` from training embeddings and their labels."""
    emb = _l2(np.asarray(embeddings, dtype=np.float64))
    labels = np.asarray(labels)
    if emb.ndim != 2 or len(emb) != len(labels) or not len(emb):
        raise ValueError(f"class_prototypes needs embeddings (N, D) and N labels, got {emb.shape} and {labels.shape}")
    classes = np.unique(labels)
    protos = np.stack([emb[labels == c].mean(axis=0) for c in classes])
    return classes, _l2(protos)


def fused_class_scores(logits, embeddings, prototypes, w: float) -> np.ndarray:
    """``(1 - w) * softmax(logits)_k + w * cos(embedding, prototype_k)``, shape ``(N, K)``; prototype
    row k must be the class of logit column k."""
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"fusion weight w must be in [0, 1], got {w}")
    logits = np.asarray(logits, dtype=np.float64)
    emb = _l2(np.asarray(embeddings, dtype=np.float64))
    protos = _l2(np.asarray(prototypes, dtype=np.float64))
    if logits.ndim != 2 or len(logits) != len(emb) or emb.shape[1] != protos.shape[1] or logits.shape[1] != len(protos):
        raise ValueError(f"fusion: logits {logits.shape}, embeddings {emb.shape}, prototypes {protos.shape} disagree "
                         "(need N rows each, K logit columns = K prototypes, same embedding width)")
    return (1.0 - w) * _softmax(logits) + w * (emb @ protos.T)


def fused_score(logits, embeddings, prototypes, w: float) -> np.ndarray:
    """OOD score per row: the largest fused class score (higher = more in-distribution)."""
    return fused_class_scores(logits, embeddings, prototypes, w).max(axis=1)


def refd_decide(ood_score, ood_threshold: float, real_score, real_threshold: float, fd_pred,
                fd_labels: Sequence[int] | None = None, real_first: bool = True) -> np.ndarray:
    """Final label per row: ``UNKNOWN`` (-1), 0 (real) or ``fd_labels[fd_pred]`` (fd_pred itself if None)."""
    ood = np.asarray(ood_score, dtype=np.float64)
    real = np.asarray(real_score, dtype=np.float64)
    pred = np.asarray(fd_pred, dtype=np.int64)
    if not (ood.shape == real.shape == pred.shape) or ood.ndim != 1:
        raise ValueError(f"refd_decide: ood {ood.shape}, real {real.shape}, fd_pred {pred.shape} must be equal 1-d shapes")
    fake_label = np.asarray(fd_labels, dtype=np.int64)[pred] if fd_labels is not None else pred
    unknown = ood < ood_threshold
    is_real = real >= real_threshold
    out = fake_label.copy()
    if real_first:
        out[unknown] = UNKNOWN
        out[is_real] = 0
    else:
        out[is_real] = 0
        out[unknown] = UNKNOWN
    return out


def fusion_sweep(weights: Sequence[float], logits_id, emb_id, labels_id, logits_ood, emb_ood, prototypes,
                 classes, ood_metric: Callable[[np.ndarray, np.ndarray], float]) -> list[dict]:
    """Per weight ``w``: in-domain accuracy of the fused prediction (``classes[argmax]`` of
    :func:`fused_class_scores`) and ``ood_metric(scores_id, scores_ood)`` of :func:`fused_score`
    (e.g. AUROC with ID as positive): the trade-off curve over ``w``."""
    classes = np.asarray(classes)
    rows = []
    for w in weights:
        fused_id = fused_class_scores(logits_id, emb_id, prototypes, w)
        s_ood = fused_score(logits_ood, emb_ood, prototypes, w)
        acc = float(np.mean(classes[fused_id.argmax(axis=1)] == np.asarray(labels_id)))
        rows.append({"w": float(w), "id_accuracy": acc, "ood": float(ood_metric(fused_id.max(axis=1), s_ood))})
    return rows
