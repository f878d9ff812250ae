"""Tables 4, 5 and 6 in the ST-Codecfake paper's own layout (pure functions, no I/O).

- Table 4: one row per model; the paper's 12 columns (``TABLE4_COLUMNS``: unseen real 19LA, ITW,
  NCSSD; different config C3-1..C3-4, C4-1..C4-3; different source NCSSD-Mimi, NCSSD-SNAC) of
  micro F1, then ``AVG`` = the mean over those 12 cells (the paper's 80.22 for W2V2-AASIST is that
  mean). Conditions of a protocol that are not among the paper's columns follow ``AVG`` as extra
  columns ``<subset>/<condition>`` and are not in it.
- Table 5: one row per detector (MSP, Energy, KNN, Mahalanobis, NSD); for each of the paper's 5
  conditions (``TABLE5_CONDITIONS``) the cells AUC, FPR95, EER; an ``AVG`` column group (mean
  over the 5 conditions, per metric) and an ``AVG`` row (mean over the detectors, per column).
- Table 6: one row per model; back-end tracing F1 on Moshi, Mini-omni, SpeechGPT-Gen, VALL-E,
  then ``AVG`` over those four; other ALM conditions follow as extra columns.

Columns are matched to a protocol's conditions by name (case-insensitive, ``_`` and spaces read
as ``-``), with the aliases listed in the constants (the protocol builder names unseen-real sets
by corpus, ``asvspoof2019_la``; the release folders say ``19LA``). Two conditions that map to one
column are pooled (micro F1 over their rows together).

Missing cells and AVG: a condition without data gives an ``NA`` cell. AVG is the mean over the
AVAILABLE numeric cells of its row (for the AVG row: of its column); it is ``NA`` only when no
cell is available. An AVG over fewer cells than the paper's is not comparable with the paper's
AVG, so :func:`missing_note` names the missing columns and the study prints that note under the
table.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import metrics as M
from .ood import DETECTOR_NAMES
from .tables import MULTI_LABELS, NA, ROBUSTNESS_SETS, OodCondition, SubsetPredictions, na_reason

__all__ = [
    "AVG",
    "DETECTOR_TITLES",
    "TABLE4_COLUMNS",
    "TABLE4_GROUPS",
    "TABLE5_CONDITIONS",
    "TABLE5_METRICS",
    "TABLE6_COLUMNS",
    "mean_of_cells",
    "missing_note",
    "paper_ood_conditions",
    "table4_columns",
    "table4_paper",
    "table5_columns",
    "table5_paper",
    "table6_columns",
    "table6_paper",
]

AVG = "AVG"

# Table 4: paper column -> (protocol subset, accepted condition names, normalised by _norm).
TABLE4_COLUMNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("19LA", "unseen_real", ("19la", "asvspoof2019-la", "asvspoof2019", "asvspoof19-la")),
    ("ITW", "unseen_real", ("itw", "in-the-wild")),
    ("NCSSD", "unseen_real", ("ncssd",)),
    ("C3-1", "diff_config", ("c3-1",)),
    ("C3-2", "diff_config", ("c3-2",)),
    ("C3-3", "diff_config", ("c3-3",)),
    ("C3-4", "diff_config", ("c3-4",)),
    ("C4-1", "diff_config", ("c4-1",)),
    ("C4-2", "diff_config", ("c4-2",)),
    ("C4-3", "diff_config", ("c4-3",)),
    ("NCSSD-Mimi", "diff_source", ("ncssd-mimi",)),
    ("NCSSD-SNAC", "diff_source", ("ncssd-snac",)),
)
TABLE4_GROUPS = {
    "unseen real": ("19LA", "ITW", "NCSSD"),
    "different config": ("C3-1", "C3-2", "C3-3", "C3-4", "C4-1", "C4-2", "C4-3"),
    "different source": ("NCSSD-Mimi", "NCSSD-SNAC"),
}

# Table 5: the paper's conditions, in its order; which OOD rows each one holds is in
# paper_ood_conditions.
TABLE5_CONDITIONS = ("OOD single codec", "OOD multi codec", "OOD other fake type", "different config", "different source")
TABLE5_METRICS = (("AUC", "auc"), ("FPR95", "fpr95"), ("EER", "eer"))
DETECTOR_TITLES = {"msp": "MSP", "energy": "Energy", "knn": "KNN", "mahalanobis": "Mahalanobis", "nsd": "NSD",
                   "fusion": "Fusion"}

# Table 6: paper column -> accepted ALM condition names (normalised by _norm).
TABLE6_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Moshi", ("moshi",)),
    ("Mini-omni", ("mini-omni", "miniomni")),
    ("SpeechGPT-Gen", ("speechgpt-gen", "speechgptgen")),
    ("VALL-E", ("vall-e", "valle")),
)


def _norm(name: Any) -> str:
    return str(name).strip().lower().replace("_", "-").replace(" ", "-")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(float(v))


def mean_of_cells(values: Iterable[Any]) -> float | str:
    """Mean of the numeric cells among ``values`` (NA and ``n/a (...)`` cells left out); ``NA``
    when there is none."""
    nums = [float(v) for v in values if _is_number(v)]
    return float(np.mean(nums)) if nums else NA


def _pooled(rows: Sequence[Mapping[str, Any]], key: str) -> Any:
    """One cell from the detail rows matched to it: their ``key`` value, pooled by row count
    when several match (micro F1 of the union = the n-weighted mean of the parts)."""
    if not rows:
        return NA
    if len(rows) == 1:
        return rows[0][key]
    nums = [(float(r[key]), int(r["n"])) for r in rows if _is_number(r[key]) and int(r["n"]) > 0]
    if not nums:
        return rows[0][key]
    return float(sum(v * n for v, n in nums) / sum(n for _, n in nums))


# ----------------------------------------------------------------------------- Table 4


def table4_columns(extra: Sequence[str] = ()) -> list[str]:
    """Header of the Table 4 layout: model, the paper's 12 columns, AVG, then ``extra``."""
    return ["model", *(c for c, _, _ in TABLE4_COLUMNS), AVG, *extra]


def table4_paper(model: str, detail: Sequence[Mapping[str, Any]]) -> dict:
    """The model's Table 4 row from its detail rows (:func:`train.tables.table4`).

    Extra keys ``<subset>/<condition>`` hold conditions the paper's columns do not name.
    """
    subset_of = {title: key for key, title in ROBUSTNESS_SETS}
    cells: dict[str, list] = {c: [] for c, _, _ in TABLE4_COLUMNS}
    extra: dict[str, list] = {}
    lookup = {(sub, alias): col for col, sub, aliases in TABLE4_COLUMNS for alias in aliases}
    for r in detail:
        sub = subset_of.get(r.get("set"))
        cond = r.get("condition")
        if sub is None or cond in (NA, "average", None):
            continue
        col = lookup.get((sub, _norm(cond)))
        if col is not None:
            cells[col].append(r)
        else:
            extra.setdefault(f"{sub}/{cond}", []).append(r)
    row: dict[str, Any] = {"model": model}
    row.update({col: _pooled(rs, "f1") for col, rs in cells.items()})
    row[AVG] = mean_of_cells(row[c] for c, _, _ in TABLE4_COLUMNS)
    row.update({name: _pooled(rs, "f1") for name, rs in sorted(extra.items())})
    return row


# ----------------------------------------------------------------------------- Table 5


def table5_columns() -> list[str]:
    """Header of the Table 5 layout: model, detector, then ``<condition> <metric>`` for the 5
    conditions and AVG."""
    return ["model", "detector", *(f"{c} {m}" for c in (*TABLE5_CONDITIONS, AVG) for m, _ in TABLE5_METRICS)]


def paper_ood_conditions(ood: Mapping[str, SubsetPredictions]) -> list[OodCondition]:
    """The paper's 5 OOD sets over the OOD rows of :func:`train.tables.ood_rows` (those present):
    OOD single codec = eval_ood label 7 (WavTokenizer); OOD multi codec = eval_ood labels 8-11
    mixed; OOD other fake type = every ood_other row (19LA eval + In-the-Wild fakes); different
    config = ood_config (WavTokenizer 40 tokens/s); different source = diff_source's OOD rows
    (NCSSD through WavTokenizer)."""
    out = []
    ev = ood.get("eval_ood")
    if ev is not None:
        for name, mask in (("OOD single codec", ev.labels == 7), ("OOD multi codec", np.isin(ev.labels, MULTI_LABELS))):
            if mask.any():
                out.append(OodCondition(name, "eval_ood", mask))
    for name, key in (("OOD other fake type", "ood_other"), ("different config", "ood_config"),
                      ("different source", "diff_source")):
        if key in ood:
            out.append(OodCondition(name, key, np.ones(len(ood[key].rows), dtype=bool)))
    return out


def table5_paper(
    model: str,
    detector_scores: Mapping[str, Mapping[str, np.ndarray]],
    detectors: Sequence[str],
    why_not: Mapping[str, str] | None = None,
    id_name: str = "eval_id",
    eer_convention: str = "interpolated",
) -> list[dict]:
    """Table 5 rows: one per detector in ``detectors`` order, then the AVG row.

    ``detector_scores[detector]`` maps ``id_name`` and condition names of ``TABLE5_CONDITIONS``
    to scores; a condition absent there is an ``NA`` cell. ``why_not[detector]``: the reason a
    detector has no scores at all (its every cell says it).
    """
    why_not = why_not or {}
    rows = []
    for det in detectors:
        row: dict[str, Any] = {"model": model, "detector": DETECTOR_TITLES.get(det, det)}
        scores = detector_scores.get(det) or {}
        id_scores = scores.get(id_name)
        for cond in TABLE5_CONDITIONS:
            cell: Mapping[str, Any]
            if det in why_not:
                cell = {k: why_not[det] for _, k in TABLE5_METRICS}
            elif id_scores is None or cond not in scores:
                cell = {k: NA for _, k in TABLE5_METRICS}
            else:
                try:
                    cell = M.ood_metrics(id_scores, scores[cond], eer_convention)
                except ValueError as exc:
                    cell = {k: na_reason(exc) for _, k in TABLE5_METRICS}
            row.update({f"{cond} {m}": cell[k] for m, k in TABLE5_METRICS})
        for m, _ in TABLE5_METRICS:
            row[f"{AVG} {m}"] = why_not[det] if det in why_not else mean_of_cells(row[f"{c} {m}"] for c in TABLE5_CONDITIONS)
        rows.append(row)
    # AVG over the paper's five detectors only, so an opt-in one (fusion) does not move it
    paper_rows = [r for det, r in zip(detectors, rows) if det in DETECTOR_NAMES] or rows
    avg: dict[str, Any] = {"model": model, "detector": AVG}
    for col in table5_columns()[2:]:
        avg[col] = mean_of_cells(r[col] for r in paper_rows)
    return rows + [avg]


# ----------------------------------------------------------------------------- Table 6


def table6_columns(extra: Sequence[str] = ()) -> list[str]:
    """Header of the Table 6 layout: model, the four ALMs, AVG, then ``extra``."""
    return ["model", *(c for c, _ in TABLE6_COLUMNS), AVG, *extra]


def table6_paper(model: str, detail: Sequence[Mapping[str, Any]], columns: Mapping[str, str] | None = None) -> dict:
    """The model's Table 6 row (back-end tracing F1) from its detail rows
    (:func:`train.tables.table6`); other ALM conditions as extra keys named by condition.

    ``columns`` maps further condition names to paper columns (the study's ``alm_columns``, e.g. a
    stand-in set ``moshi-standin`` -> ``Moshi``); the study notes every such mapping under the table.
    """
    lookup = {alias: col for col, aliases in TABLE6_COLUMNS for alias in aliases}
    known = {c for c, _ in TABLE6_COLUMNS}
    for cond, col in (columns or {}).items():
        if col not in known:
            raise ValueError(f"alm_columns: {cond!r} -> {col!r}: not a Table 6 column; expected one of {sorted(known)}")
        lookup[_norm(cond)] = col
    cells: dict[str, list] = {c: [] for c, _ in TABLE6_COLUMNS}
    extra: dict[str, list] = {}
    for r in detail:
        cond = r.get("condition")
        if cond in (NA, None) or "backend_f1" not in r:
            continue
        col = lookup.get(_norm(cond))
        (cells[col] if col is not None else extra.setdefault(str(cond), [])).append(r)
    row: dict[str, Any] = {"model": model}
    row.update({col: _pooled(rs, "backend_f1") for col, rs in cells.items()})
    row[AVG] = mean_of_cells(row[c] for c, _ in TABLE6_COLUMNS)
    row.update({name: _pooled(rs, "backend_f1") for name, rs in sorted(extra.items())})
    return row


# ----------------------------------------------------------------------------- notes


def missing_note(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str | None:
    """A note naming the ``columns`` (the cells AVG averages) that hold no number in some row of
    ``rows``; None when every cell is a number."""
    missing = [c for c in columns if any(not _is_number(r.get(c)) for r in rows)]
    if not missing:
        return None
    return ("AVG is the mean over the available cells only; no number in: " + ", ".join(missing)
            + ". Where a cell is missing, AVG is not comparable with the paper's.")
