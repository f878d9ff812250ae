"""The study's tables in long form, computed from a model's predictions (pure functions, no I/O).

- Table 3: ID source tracing on eval_id (F1 per class, macro, weighted);
- Table 4 detail: robustness, micro F1 (= accuracy; the anchor's measure on one-label sets) per
  condition of unseen real / different config / different source (ID-labelled rows);
- Table 5 detail: OOD detection per detector x condition (AUC, FPR95, EER; ID labels 0..6
  positive), per OOD codec / condition plus aggregates;
- Table 6 detail: ALM sets, real-vs-fake detection from P(real) and tracing to the ALM's codec
  back end;
- CoRS (CodecFake+ re-synthesis set, subset ``cors``): real-vs-fake EER per codec from P(real).

The paper's own layouts of Tables 4-6 are built from these in :mod:`train.paper_tables`.
A missing subset gives ``NA`` cells; a metric that cannot be computed gives ``n/a (<reason>)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy.special import softmax

from manifests import ID_LABELS, OOD_LABELS, ST_LABELS

from . import metrics as M

__all__ = [
    "DEFAULT_ALM_BACKENDS",
    "NA",
    "OOD_SUBSETS",
    "OodCondition",
    "SubsetPredictions",
    "ood_detail_conditions",
    "ood_rows",
    "table3",
    "table4",
    "table5",
    "table6",
    "table_cors",
]

NA = "n/a (no data)"
# ALM back ends (codec inside each audio language model), as the anchor's evaluate_alm.py assumes:
# Moshi -> Mimi, SpeechGPT-Gen -> SpeechTokenizer, VALL-E -> EnCodec, Mini-omni -> SNAC.
DEFAULT_ALM_BACKENDS = {"moshi": 1, "speechgpt-gen": 2, "valle": 4, "mini-omni": 6}
ROBUSTNESS_SETS = (("unseen_real", "unseen real"), ("diff_config", "different config"), ("diff_source", "different source"))
# Subsets holding OOD rows: OOD-labelled (7..11) rows of the first three; every spoofed row of
# ood_other (ASVspoof 2019 LA eval fakes, In-the-Wild fakes: label -1, condition = corpus).
OOD_SUBSETS = ("eval_ood", "ood_config", "diff_source", "ood_other")
OTHER_FAKES = "ood_other"
ALL_CONDITION = "eval_ood/all"
MULTI_CONDITION = "eval_ood/labels 8-11"
OTHER_ALL_CONDITION = "ood_other/all"
AGGREGATE_CONDITIONS = (ALL_CONDITION, MULTI_CONDITION, OTHER_ALL_CONDITION)
MULTI_LABELS = tuple(lab for lab in OOD_LABELS if lab != 7)  # the anchor's "multi codec" set, 8-11


@dataclass
class SubsetPredictions:
    """A model's outputs on one subset, aligned row by row with ``rows``.

    ``logits (N, C)`` with columns ``classes``; ``embeddings (N, D)``; ``labels (N,)`` ST labels.
    """

    rows: pd.DataFrame
    logits: np.ndarray
    embeddings: np.ndarray
    classes: list[int]

    @property
    def labels(self) -> np.ndarray:
        return self.rows["label"].to_numpy(dtype=np.int64)

    @property
    def predicted(self) -> np.ndarray:
        """Predicted ST label per row ``(N,)``."""
        return np.asarray(self.classes, dtype=np.int64)[self.logits.argmax(axis=1)]

    @property
    def probs(self) -> np.ndarray:
        return softmax(self.logits.astype(np.float64), axis=1)

    def select(self, mask) -> "SubsetPredictions":
        mask = np.asarray(mask, dtype=bool)
        return SubsetPredictions(self.rows[mask].reset_index(drop=True), self.logits[mask], self.embeddings[mask], self.classes)


def label_name(label: int, names: Mapping[int, str] | None = None) -> str:
    """ST name of an ST label; for other labels (``class_column: class_id`` classes) the rows'
    ``label_name`` from ``names`` (see :func:`row_label_names`), else the number."""
    label = int(label)
    if label in ST_LABELS:
        return ST_LABELS[label]
    return str((names or {}).get(label, label))


def row_label_names(rows: pd.DataFrame) -> dict[int, str]:
    """``label -> label_name`` of the rows whose label is not an ST label (e.g. MLAAD systems)."""
    if "label_name" not in rows.columns:
        return {}
    pairs = rows.loc[~rows["label"].isin(list(ST_LABELS)), ["label", "label_name"]].drop_duplicates("label")
    return {int(a): str(b) for a, b in zip(pairs["label"], pairs["label_name"])}


def na_reason(exc: Exception) -> str:
    return f"n/a ({exc})"


def table3(model: str, ev: SubsetPredictions | None) -> dict:
    """Table 3 row: F1 per ID class on eval_id, macro and weighted F1."""
    row: dict[str, Any] = {"model": model}
    if ev is None:
        row.update({"n": NA, **{label_name(c): NA for c in ID_LABELS}, "macro_f1": NA, "weighted_f1": NA})
        return row
    # ST classes: the paper's ID columns; other classes (class_column: class_id) are all scored
    st = all(int(c) in ST_LABELS for c in ev.classes)
    id_classes = ([c for c in ev.classes if c in ID_LABELS] if st else list(ev.classes)) or list(ev.classes)
    f1 = M.f1_scores(ev.labels, ev.predicted, labels=id_classes)
    row["n"] = f1["n"]
    names = row_label_names(ev.rows)
    row.update({label_name(c, names): v for c, v in f1["per_class"].items()})
    row.update(macro_f1=f1["macro"], weighted_f1=f1["weighted"])
    return row


def table4(model: str, subsets: Mapping[str, SubsetPredictions | None]) -> list[dict]:
    """Table 4 detail rows: micro F1 (= accuracy) per condition of each robustness set (ID labels
    only), then the set's ``average``; ``set`` is the title in ``ROBUSTNESS_SETS``."""
    rows: list[dict] = []
    for key, title in ROBUSTNESS_SETS:
        sp = subsets.get(key)
        if sp is not None:
            sp = sp.select(np.isin(sp.labels, ID_LABELS))
        if sp is None or len(sp.rows) == 0:
            rows.append({"model": model, "set": title, "condition": NA, "label": NA, "n": 0, "f1": NA})
            continue
        vals = []
        for cond, idx in sp.rows.groupby("condition", sort=True).indices.items():
            part = sp.select(np.isin(np.arange(len(sp.rows)), idx))
            f1 = M.micro_f1(part.labels, part.predicted)
            vals.append(f1)
            labs = sorted(set(part.labels.tolist()))
            rows.append({"model": model, "set": title, "condition": cond,
                         "label": "/".join(f"{lab} {label_name(lab)}" for lab in labs), "n": len(part.rows), "f1": f1})
        rows.append({"model": model, "set": title, "condition": "average", "label": "", "n": len(sp.rows),
                     "f1": float(np.mean(vals))})
    return rows


@dataclass(frozen=True)
class OodCondition:
    """One OOD evaluation set: ``mask`` over the OOD rows of ``subset`` (see :func:`ood_rows`)."""

    name: str
    subset: str
    mask: np.ndarray


def ood_rows(subsets: Mapping[str, SubsetPredictions | None]) -> dict[str, SubsetPredictions]:
    """The OOD rows of each subset in ``OOD_SUBSETS`` that has any: OOD-labelled rows (7..11) of
    eval_ood, ood_config and diff_source; the spoofed rows of ood_other (label -1, so not
    filtered by label)."""
    out = {}
    for key in OOD_SUBSETS:
        sp = subsets.get(key)
        if sp is None:
            continue
        if key == OTHER_FAKES:
            sp = sp.select(sp.rows["is_fake"].to_numpy(dtype=bool))
        else:
            sp = sp.select(np.isin(sp.labels, OOD_LABELS))
        if len(sp.rows):
            out[key] = sp
    return out


def ood_detail_conditions(ood: Mapping[str, SubsetPredictions]) -> list[OodCondition]:
    """Detail OOD sets over :func:`ood_rows`: each ``<subset>/<condition>``, then the aggregates
    ``eval_ood/labels 8-11`` (the anchor's "multi" set), ``eval_ood/all`` and, when ood_other
    holds several corpora, ``ood_other/all``."""
    out = []
    for key, sp in ood.items():
        conds = sp.rows["condition"].astype(str).to_numpy()
        for cond in sorted(set(conds)):
            out.append(OodCondition(f"{key}/{cond}", key, conds == cond))
        if key == "eval_ood":
            multi = np.isin(sp.labels, MULTI_LABELS)
            if multi.any() and not multi.all():
                out.append(OodCondition(MULTI_CONDITION, key, multi))
            out.append(OodCondition(ALL_CONDITION, key, np.ones(len(sp.rows), dtype=bool)))
        if key == OTHER_FAKES and len(set(conds)) > 1:
            out.append(OodCondition(OTHER_ALL_CONDITION, key, np.ones(len(sp.rows), dtype=bool)))
    return out


def table5(model: str, detector_scores: Mapping[str, Mapping[str, np.ndarray]], id_name: str = "eval_id",
           eer_convention: str = "interpolated") -> list[dict]:
    """Table 5 detail rows from ``{detector: {"eval_id": scores, "<set>/<cond>": scores, ...}}``.

    The per-detector ``average`` is the mean over conditions, the aggregates
    (``AGGREGATE_CONDITIONS``) left out (their rows are already in the per-condition rows).
    ``eer_convention``: see :mod:`train.metrics`.
    """
    rows = []
    for det, scores in detector_scores.items():
        id_scores = scores.get(id_name)
        conds = [c for c in scores if c != id_name]
        if id_scores is None or not conds:
            rows.append({"model": model, "detector": det, "condition": NA, "n_id": 0, "n_ood": 0,
                         "auc": NA, "fpr95": NA, "eer": NA})
            continue
        got = []
        for cond in conds:
            try:
                m = M.ood_metrics(id_scores, scores[cond], eer_convention)
            except ValueError as exc:
                rows.append({"model": model, "detector": det, "condition": cond, "n_id": len(id_scores),
                             "n_ood": len(scores[cond]), "auc": na_reason(exc), "fpr95": na_reason(exc), "eer": na_reason(exc)})
                continue
            rows.append({"model": model, "detector": det, "condition": cond, **m})
            if cond not in AGGREGATE_CONDITIONS:
                got.append(m)
        if got:
            rows.append({"model": model, "detector": det, "condition": "average", "n_id": len(id_scores),
                         "n_ood": int(sum(m["n_ood"] for m in got)),
                         **{k: float(np.mean([m[k] for m in got])) for k in ("auc", "fpr95", "eer")}})
    return rows


def table6(model: str, alm: SubsetPredictions | None, backends: Mapping[str, int]) -> list[dict]:
    """Table 6 detail rows per ALM condition.

    ``detect_f1``: binary F1 of the fake class where a clip is called fake when P(real) < 0.5 (the
    model's real-class probability against all codec classes together); ``fake_rate``: share of
    clips called fake. ``backend_f1``: micro F1 of tracing the clip to the ALM's codec back end
    (``backends``; the anchor's Table 6 reading), n/a when the back end is unknown or not a class.
    """
    if alm is None:
        return [{"model": model, "condition": NA, "n": 0, "detect_f1": NA, "fake_rate": NA, "backend": NA, "backend_f1": NA}]
    rows = []
    has_real = 0 in alm.classes
    for cond, idx in alm.rows.groupby("condition", sort=True).indices.items():
        part = alm.select(np.isin(np.arange(len(alm.rows)), idx))
        is_fake = part.rows["is_fake"].to_numpy(dtype=bool).astype(int)
        row: dict[str, Any] = {"model": model, "condition": cond, "n": len(part.rows)}
        if has_real:
            called_fake = (part.probs[:, alm.classes.index(0)] < 0.5).astype(int)
            row["detect_f1"] = M.binary_f1(is_fake, called_fake, pos_label=1)
            row["fake_rate"] = float(called_fake.mean())
        else:
            row["detect_f1"] = row["fake_rate"] = "n/a (model has no real class)"
        backend = backends.get(str(cond).lower())
        if backend is None or backend not in alm.classes:
            row["backend"], row["backend_f1"] = "n/a", "n/a (back end unknown or not a model class)"
        else:
            row["backend"] = f"{backend} {label_name(backend)}"
            row["backend_f1"] = M.micro_f1(np.full(len(part.rows), backend), part.predicted)
        rows.append(row)
    return rows


def table_cors(model: str, cors: SubsetPredictions | None, eer_convention: str = "interpolated") -> list[dict]:
    """CodecFake+ CoRS rows: for each codec (``condition`` of the fake rows), the EER of telling its
    clips from the set's real clips with the score P(fake) = 1 - P(real), and the share of its
    clips called fake (P(real) < 0.5); then one row ``all`` (every codec against the reals).
    ``eer_convention``: see :mod:`train.metrics`.
    """
    cols = {"n_real": 0, "n_fake": 0}
    if cors is None:
        return [{"model": model, "condition": NA, **cols, "eer": NA, "fake_rate": NA}]
    if 0 not in cors.classes:
        why = "n/a (model has no real class)"
        return [{"model": model, "condition": "all", **cols, "eer": why, "fake_rate": why}]
    p_fake = 1.0 - cors.probs[:, cors.classes.index(0)]
    is_fake = cors.rows["is_fake"].to_numpy(dtype=bool)
    real_scores = p_fake[~is_fake]
    conditions = cors.rows["condition"].astype(str).to_numpy()
    groups = [(c, is_fake & (conditions == c)) for c in sorted(set(conditions[is_fake]))]
    groups.append(("all", is_fake))
    rows = []
    for cond, mask in groups:
        fake_scores = p_fake[mask]
        row: dict[str, Any] = {"model": model, "condition": cond, "n_real": int(len(real_scores)), "n_fake": int(mask.sum())}
        try:
            y = np.r_[np.ones(len(fake_scores), dtype=int), np.zeros(len(real_scores), dtype=int)]
            row["eer"] = M.eer(y, np.r_[fake_scores, real_scores], eer_convention)
        except ValueError as exc:  # e.g. no real rows in the set
            row["eer"] = na_reason(exc)
        row["fake_rate"] = float((fake_scores >= 0.5).mean()) if len(fake_scores) else NA
        rows.append(row)
    return rows
