"""The codec-taxonomy model's study tables (pure functions, no I/O).

A taxonomy run (``model="taxonomy"``, :mod:`train.taxonomy`) predicts no ST label, so the
baselines' Tables 3-6 do not apply to it; the study gives it these tables instead, one row set
per model, every subset the protocol has (adding a protocol subset or a model adds rows, not
code paths):

- ``taxonomy_f1``: per eval subset, the weighted F1 of every head (REAL counted as a class, rows
  whose class is unknown left out, :func:`train.taxonomy.weighted_f1`) and the binary EER of
  bona fide vs spoof from P(spoof) (:func:`train.taxonomy.binary_eer`: bona fide is the target
  class, scored by 1 - P(spoof)). A subset of one class only borrows the other class for its EER:
  spoofs-only sets (eval_ood, eval_unseen, ...) the bona fide rows of ``eval_id``, bona-fide-only
  sets (unseen_real) its spoofs; column ``EER with`` names what was borrowed. A subset whose rows
  carry CodecFake+'s CoSG seen mark (``extra["cosg_seen"]``) adds one row for its seen and one
  for its unseen rows (a half of one class borrows from its whole subset first).
- ``taxonomy_f1_detail``: per subset x task x class, support and F1.
- ``taxonomy_cors`` / ``taxonomy_cosg``: per codec (CoRS, subset ``cors``) or per
  speech-generation system (CoSG, subset ``alm``, condition = system): the true class of its
  fakes per task, the class predicted most, the share traced right (accuracy), the share called
  spoof (P(spoof) >= 0.5) and the EER against the subset's bona fide rows; then group rows
  (CoSG: ``seen``, ``unseen``; both: ``all``).

Every row says the model's variant and front end (``fine-tuned`` or ``frozen``).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .tables import NA, na_reason
from .taxonomy import TASK_CLASSES, TASK_NAMES, TASKS, binary_eer, spoof_probability, task_targets, weighted_f1

__all__ = [
    "CONDITION_TABLES",
    "RESULT_TABLES",
    "TAXONOMY_SUBSETS",
    "TaxonomySubset",
    "align_taxonomy",
    "class_f1_rows",
    "condition_rows",
    "cosg_seen",
    "f1_rows",
    "is_taxonomy_prediction",
    "taxonomy_results",
    "taxonomy_tables",
]

# Eval subsets a taxonomy model is scored on, in table order (absent subsets give no row).
TAXONOMY_SUBSETS = ("eval_id", "eval_unseen", "eval_ood", "diff_config", "ood_config", "diff_source", "unseen_real",
                    "ood_other", "cors", "alm")
REFERENCE = "eval_id"  # where one-class subsets borrow the other class for their EER
# table stem -> the subset whose conditions it lists
CONDITION_TABLES = {"taxonomy_cors": "cors", "taxonomy_cosg": "alm"}
RESULT_TABLES = ("taxonomy_f1", "taxonomy_f1_detail", *CONDITION_TABLES)
HEADS = ("aux", "dec", "vq")  # the taxonomy heads (per-condition columns)

F1_NOTE = ("Weighted F1 per task (scikit-learn average='weighted'): REAL is a class like the others; rows whose class "
           "is unknown for a task (e.g. external spoofs without a published taxonomy) are left out of that task. "
           "EER: bona fide vs spoof, bona fide the target class scored by P(bona fide) = 1 - P(spoof) (P(spoof): the BIN "
           "head, or (a*d*q)^(1/3) without one); a subset of one class borrows the other class's rows ('EER with': "
           "eval_id's bona fide rows for spoofs-only sets, eval_id's spoofs for bona-fide-only sets; a CoSG half, its "
           "whole subset's first). Rows '<subset> (CoSG seen|unseen)' split a subset by CodecFake+'s CoSG_SEEN mark.")
DETAIL_NOTE = "F1 of each class of each head per subset; support = rows of that true class."
CONDITION_NOTE = ("Per {what}: the true class of its spoofed rows per task ('mixed' / 'unknown' when not one known "
                  "class), the class predicted most ('pred'), the share traced to the true class ('acc'), the share "
                  "called spoof (P(spoof) >= 0.5) and the EER of its spoofs against the subset's bona fide rows. Group "
                  "rows pool the spoofs of their {what}s{groups}.")


@dataclass
class TaxonomySubset:
    """A taxonomy model's outputs on one subset, aligned row by row with ``rows``.

    ``probs[task] (N, C_task)`` softmax per head (columns ``TASK_CLASSES[task]``), ``embeddings``
    ``(N, D)``; ``tasks`` the model's heads; ``variant`` and ``frontend`` (fine-tuned | frozen).
    Targets come from the rows' manifest columns (:func:`train.taxonomy.task_targets`).
    """

    rows: pd.DataFrame
    probs: dict[str, np.ndarray]
    embeddings: np.ndarray
    tasks: tuple[str, ...]
    variant: str = ""
    frontend: str = ""

    def __post_init__(self) -> None:
        self.targets = task_targets(self.rows, TASKS) if len(self.rows) else {t: np.zeros(0, np.int64) for t in TASKS}

    @property
    def p_spoof(self) -> np.ndarray:
        return spoof_probability(self.probs) if len(self.rows) else np.zeros(0)

    @property
    def is_fake(self) -> np.ndarray:
        return self.rows["is_fake"].to_numpy(dtype=bool)

    def predicted(self, task: str) -> np.ndarray:
        return np.asarray(self.probs[task]).argmax(axis=1)

    def select(self, mask) -> "TaxonomySubset":
        mask = np.asarray(mask, dtype=bool)
        return TaxonomySubset(self.rows[mask].reset_index(drop=True), {t: p[mask] for t, p in self.probs.items()},
                              self.embeddings[mask], self.tasks, self.variant, self.frontend)


def is_taxonomy_prediction(preds: Any) -> bool:
    """True for a taxonomy model's predictions (per-head ``probs`` mapping), not logits."""
    return isinstance(getattr(preds, "probs", None), Mapping)


def align_taxonomy(rows: pd.DataFrame, preds: Any) -> TaxonomySubset:
    """Order ``preds`` (fields utt_ids, probs {task: (N, C)}, embeddings, tasks, variant, frontend)
    like ``rows``; rows without a prediction are dropped, their ids in ``rows.attrs["missing"]``."""
    ids = [str(u) for u in preds.utt_ids]
    pos = {u: i for i, u in enumerate(ids)}
    have = rows["utt_id"].astype(str).isin(pos).to_numpy()
    kept = rows[have].reset_index(drop=True)
    idx = np.array([pos[str(u)] for u in kept["utt_id"]], dtype=np.int64)
    tasks = tuple(str(t) for t in preds.tasks)
    probs = {}
    for t in tasks:
        p = np.asarray(preds.probs[t], dtype=np.float64).reshape(len(ids), -1)
        if p.shape[1] != len(TASK_CLASSES[t]):
            raise ValueError(f"{t} head has {p.shape[1]} columns for {len(TASK_CLASSES[t])} classes {TASK_CLASSES[t]}")
        probs[t] = p[idx]
    emb = np.asarray(preds.embeddings, dtype=np.float32).reshape(len(ids), -1)[idx]
    kept.attrs["missing"] = rows.loc[~have, "utt_id"].tolist()
    return TaxonomySubset(kept, probs, emb, tasks, str(getattr(preds, "variant", "")), str(getattr(preds, "frontend", "")))


def cosg_seen(rows: pd.DataFrame) -> np.ndarray | None:
    """CodecFake+'s CoSG_SEEN mark per row (``extra["cosg_seen"]``), or None when no row has one."""
    if "extra" not in rows.columns or not len(rows):
        return None
    marks = []
    for raw in rows["extra"]:
        try:
            extra = json.loads(raw) if isinstance(raw, str) and raw else (raw if isinstance(raw, Mapping) else {})
        except ValueError:
            extra = {}
        marks.append(extra.get("cosg_seen") if isinstance(extra, Mapping) else None)
    if all(m is None for m in marks):
        return None
    return np.array([bool(m) for m in marks])


# ----------------------------------------------------------------------------- metrics of one set


def _eer(is_fake: np.ndarray, p_spoof: np.ndarray, convention: str) -> Any:
    try:
        return binary_eer(is_fake, p_spoof, convention=convention)
    except ValueError as exc:
        return na_reason(exc)


def _set_eer(part: TaxonomySubset, pools: Sequence[tuple[str, TaxonomySubset | None]], convention: str) -> tuple[Any, str]:
    """``(EER, what was borrowed)`` of ``part``; a part of one class takes the rows of the other
    class from the first of ``pools`` that has any ('' when nothing was borrowed)."""
    fake, p = part.is_fake, part.p_spoof
    if len(fake) and (fake.all() or not fake.any()):
        want_fake = not fake.any()
        for name, pool in pools:
            take = pool.is_fake == want_fake if pool is not None else np.zeros(0, bool)
            if take.any():
                borrowed = f"{name} {'spoofs' if want_fake else 'bona fide'}"
                return _eer(np.r_[fake, pool.is_fake[take]], np.r_[p, pool.p_spoof[take]], convention), borrowed
    return _eer(fake, p, convention), ""


def _task_f1(sp: TaxonomySubset, task: str) -> Any:
    if task not in sp.tasks:
        return f"n/a (no {TASK_NAMES[task]} head)"
    try:
        return weighted_f1(sp.targets[task], sp.predicted(task))
    except ValueError as exc:  # no row with a known class
        return na_reason(exc)


def _head(model: str, sp: TaxonomySubset) -> dict:
    return {"model": model, "variant": sp.variant, "frontend": sp.frontend}


def f1_rows(model: str, preds: Mapping[str, TaxonomySubset | None], eer_convention: str = "interpolated") -> list[dict]:
    """``taxonomy_f1`` rows: per present subset (and its CoSG seen / unseen halves) n, bona fide
    and spoof counts, ``<TASK> F1`` per head, the binary ``EER`` and ``EER with``."""
    ref = preds.get(REFERENCE)
    rows: list[dict] = []
    for name in [s for s in TAXONOMY_SUBSETS if s in preds] + [s for s in preds if s not in TAXONOMY_SUBSETS]:
        sp = preds[name]
        if sp is None or not len(sp.rows):
            continue
        parts = [(name, sp, [(REFERENCE, ref)])]
        seen = cosg_seen(sp.rows)
        if seen is not None:
            halves = [(f"{name} (CoSG seen)", sp.select(seen)), (f"{name} (CoSG unseen)", sp.select(~seen))]
            parts += [(label, half, [(name, sp), (REFERENCE, ref)]) for label, half in halves]
        for label, part, pools in parts:
            if not len(part.rows):
                continue
            row = {**_head(model, part), "subset": label, "n": len(part.rows), "n_bonafide": int((~part.is_fake).sum()),
                   "n_spoof": int(part.is_fake.sum())}
            row.update({f"{TASK_NAMES[t]} F1": _task_f1(part, t) for t in TASKS})
            row["EER"], row["EER with"] = _set_eer(part, pools, eer_convention)
            rows.append(row)
    return rows or [{"model": model, "subset": NA, "n": 0}]


def class_f1_rows(model: str, preds: Mapping[str, TaxonomySubset | None]) -> list[dict]:
    """``taxonomy_f1_detail`` rows: per subset x head x class (classes with support or predictions)."""
    from sklearn.metrics import f1_score

    out = []
    for name, sp in preds.items():
        if sp is None or not len(sp.rows):
            continue
        for task in sp.tasks:
            y = sp.targets[task]
            known = y >= 0
            if not known.any():
                continue
            yt, yp = y[known], sp.predicted(task)[known]
            labels = sorted(set(yt.tolist()) | set(yp.tolist()))
            f1 = f1_score(yt, yp, labels=labels, average=None, zero_division=0)
            for k, v in zip(labels, f1):
                out.append({**_head(model, sp), "subset": name, "task": TASK_NAMES[task], "class": TASK_CLASSES[task][k],
                            "support": int((yt == k).sum()), "predicted": int((yp == k).sum()), "f1": float(v)})
    return out or [{"model": model, "subset": NA, "task": "", "class": "", "support": 0, "predicted": 0, "f1": NA}]


def _one_class(task: str, y: np.ndarray) -> str:
    known = sorted(set(int(v) for v in y if v >= 0))
    if not known:
        return "unknown"
    return TASK_CLASSES[task][known[0]] if len(known) == 1 else "mixed"


def _condition_row(model: str, sp: TaxonomySubset, fakes: np.ndarray, reals: TaxonomySubset, convention: str) -> dict:
    part = sp.select(fakes)
    row: dict[str, Any] = {**_head(model, sp), "n_spoof": len(part.rows), "n_bonafide": len(reals.rows)}
    for task in HEADS:
        name = TASK_NAMES[task]
        y = part.targets[task]
        row[name] = _one_class(task, y)
        if task not in sp.tasks:
            row[f"{name} pred"] = row[f"{name} acc"] = f"n/a (no {name} head)"
            continue
        pred = part.predicted(task)
        row[f"{name} pred"] = TASK_CLASSES[task][Counter(pred.tolist()).most_common(1)[0][0]] if len(pred) else NA
        known = y >= 0
        row[f"{name} acc"] = float((pred[known] == y[known]).mean()) if known.any() else "n/a (class unknown)"
    p = part.p_spoof
    row["spoof rate"] = float((p >= 0.5).mean()) if len(p) else NA
    row["EER"] = _eer(np.r_[np.ones(len(p), bool), np.zeros(len(reals.rows), bool)], np.r_[p, reals.p_spoof], convention)
    return row


def condition_rows(model: str, sp: TaxonomySubset | None, eer_convention: str = "interpolated") -> list[dict]:
    """Per condition (codec / system) of a subset's spoofed rows, then the group rows: ``seen``
    and ``unseen`` when the rows carry the CoSG mark, and ``all``."""
    if sp is None or not len(sp.rows):
        return [{"model": model, "condition": NA, "n_spoof": 0, "n_bonafide": 0}]
    fake = sp.is_fake
    reals = sp.select(~fake)
    conds = sp.rows["condition"].astype(str).to_numpy()
    seen = cosg_seen(sp.rows)
    groups = [(c, fake & (conds == c)) for c in sorted(set(conds[fake]))]
    if seen is not None:
        groups += [("seen", fake & seen), ("unseen", fake & ~seen)]
    groups.append(("all", fake))
    out = []
    for cond, mask in groups:
        if not mask.any() and cond in ("seen", "unseen"):
            continue
        row = {"model": model, "condition": cond}
        if seen is not None:
            marks = set(seen[mask].tolist())
            row["seen"] = "yes" if marks == {True} else ("no" if marks == {False} else "mixed")
        row.update(_condition_row(model, sp, mask, reals, eer_convention))
        out.append(row)
    return out


# ----------------------------------------------------------------------------- per model, per study


def taxonomy_results(model: str, preds: Mapping[str, TaxonomySubset | None], eer_convention: str = "interpolated") -> dict:
    """Every taxonomy table's rows for one model (keys :data:`RESULT_TABLES`) and its
    ``variant``, ``tasks`` and ``frontend``."""
    first = next((p for p in preds.values() if p is not None), None)
    return {
        "variant": first.variant if first else "",
        "tasks": list(first.tasks) if first else [],
        "frontend": first.frontend if first else "",
        "taxonomy_f1": f1_rows(model, preds, eer_convention),
        "taxonomy_f1_detail": class_f1_rows(model, preds),
        **{stem: condition_rows(model, preds.get(subset), eer_convention) for stem, subset in CONDITION_TABLES.items()},
    }


def _frame(rows: Sequence[Mapping[str, Any]], order: Sequence[str]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    cols = [c for c in order if c in df.columns] + [c for c in df.columns if c not in order]
    df = df[cols] if len(df.columns) else df
    for col in df.columns:  # a cell a row lacks (e.g. a head the model has not): NA, not NaN
        if df[col].isna().any():
            df[col] = df[col].astype(object).where(df[col].notna(), NA)
    return df


def taxonomy_tables(per_model: Mapping[str, Mapping[str, Any]],
                    eer_note: str) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]]]:
    """``(tables, notes)`` of the taxonomy models in ``per_model`` (their :func:`taxonomy_results`),
    in report order; ``eer_note`` (the study's EER convention) goes under every table with an EER."""
    res = list(per_model.values())
    head = ["model", "variant", "frontend"]
    tables = {
        "taxonomy_f1": _frame([x for r in res for x in r["taxonomy_f1"]],
                              [*head, "subset", "n", "n_bonafide", "n_spoof", *(f"{TASK_NAMES[t]} F1" for t in TASKS),
                               "EER", "EER with"]),
        "taxonomy_f1_detail": _frame([x for r in res for x in r["taxonomy_f1_detail"]],
                                     [*head, "subset", "task", "class", "support", "predicted", "f1"]),
    }
    per_task = [c for t in HEADS for c in (TASK_NAMES[t], f"{TASK_NAMES[t]} pred", f"{TASK_NAMES[t]} acc")]
    for stem in CONDITION_TABLES:
        tables[stem] = _frame([x for r in res for x in r[stem]],
                              [*head, "condition", "seen", "n_spoof", "n_bonafide", *per_task, "spoof rate", "EER"])
    notes = {
        "taxonomy_f1": [F1_NOTE, eer_note],
        "taxonomy_f1_detail": [DETAIL_NOTE],
        "taxonomy_cors": [CONDITION_NOTE.format(what="codec", groups=" ('all')"), eer_note],
        "taxonomy_cosg": [CONDITION_NOTE.format(what="system", groups=" ('seen' / 'unseen': CoSG_SEEN's mark; 'all')"),
                          eer_note],
    }
    return tables, notes

