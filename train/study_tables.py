"""The study's output tables: per-model results -> one frame per table file, and the notes printed
under each table (EER convention, how AVG treated missing cells, what the columns are)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from manifests import ID_LABELS

from .paper_tables import (
    AVG,
    DETECTOR_TITLES,
    TABLE4_COLUMNS,
    TABLE4_GROUPS,
    TABLE5_CONDITIONS,
    TABLE5_METRICS,
    TABLE6_COLUMNS,
    missing_note,
    table4_columns,
    table5_columns,
    table6_columns,
)
from .tables import NA, label_name

__all__ = ["EER_NOTES", "EER_TABLES", "failed_rows", "study_tables"]

EER_NOTES = {
    "interpolated": ("EER convention: interpolated (the ROC point where FPR = FNR, linearly interpolated "
                     "between the two ROC points around it; tied scores form one ROC point)."),
    "anchor": ("EER convention: anchor (as ST-Codecfake / AASIST compute_eer: stable ascending sort, "
               "nearest grid point where |FNR - FPR| is smallest, pessimistic for tied scores; MSP scores "
               "computed in float32 as upstream)."),
}
# Tables that report an EER: each carries the convention's note.
EER_TABLES = ("table5_ood", "table5_ood_detail", "cors_detection")
TABLE4_NOTE = ("Micro F1 (= accuracy) on the ID-labelled rows of each condition. Columns: "
               + "; ".join(f"{group}: {', '.join(cols)}" for group, cols in TABLE4_GROUPS.items())
               + f". {AVG} = mean over those 12 columns; columns after {AVG} are conditions the paper's columns"
               " do not name (not in the AVG).")
TABLE5_NOTE = ("ID = eval_id (labels 0-6, positive) against: OOD single codec = eval_ood label 7 (WavTokenizer); "
               "OOD multi codec = eval_ood labels 8-11 mixed; OOD other fake type = ood_other (ASVspoof 2019 LA "
               "eval + In-the-Wild fakes); different config = ood_config (WavTokenizer 40 tokens/s); different "
               f"source = diff_source's OOD rows (NCSSD through WavTokenizer). {AVG} columns: mean over the 5 "
               f"conditions; {AVG} row: mean over the detectors. Per-codec rows: table5_ood_detail.")
TABLE6_NOTE = (f"F1 of tracing each ALM's clips to its codec back end. {AVG} = mean over "
               + ", ".join(c for c, _ in TABLE6_COLUMNS) + f"; columns after {AVG} are other ALM conditions"
               " (not in the AVG). Real-vs-fake detection per ALM: table6_alm_detail.")


def _frame(rows: Sequence[Mapping[str, Any]], order: Sequence[str], fill: Any = None) -> pd.DataFrame:
    """Rows as a frame with ``order`` first (then any other columns, e.g. extra classes or
    conditions); ``fill`` replaces the cells a row does not have (None: left empty)."""
    df = pd.DataFrame(list(rows))
    cols = [c for c in order if c in df.columns] + [c for c in df.columns if c not in order]
    df = df[cols] if len(df.columns) else df
    if fill is not None:
        for col in df.columns:
            if df[col].isna().any():
                df[col] = df[col].astype(object).where(df[col].notna(), fill)
    return df


def failed_rows(model: str, error: str, detectors: Sequence[str]) -> dict:
    """Every table's rows for a model that failed: each cell says why."""
    msg = f"failed: {error}"
    t5_cells = {c: msg for c in table5_columns()[2:]}
    return {
        "table3": {"model": model, "n": msg, "macro_f1": msg, "weighted_f1": msg},
        "table4": [{"model": model, "set": msg, "condition": "", "label": "", "n": 0, "f1": msg}],
        "table4_paper": {"model": model, **{c: msg for c in table4_columns()[1:]}},
        "table5": [{"model": model, "detector": d, "condition": msg, "n_id": 0, "n_ood": 0, "auc": msg, "fpr95": msg, "eer": msg}
                   for d in detectors],
        "table5_paper": [{"model": model, "detector": DETECTOR_TITLES.get(d, d), **t5_cells} for d in (*detectors, AVG)],
        "table6": [{"model": model, "condition": msg, "n": 0, "detect_f1": msg, "fake_rate": msg, "backend": "", "backend_f1": msg}],
        "table6_paper": {"model": model, **{c: msg for c in table6_columns()[1:]}},
        "cors": [{"model": model, "condition": msg, "n_real": 0, "n_fake": 0, "eer": msg, "fake_rate": msg}],
    }


def study_tables(per_model: Mapping[str, Mapping[str, Any]], eer_convention: str,
                 alm_columns: Mapping[str, str] | None = None) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]]]:
    """``(tables, notes)``: ``tables[stem]`` the frame written as ``<stem>.csv`` / ``.md``, in
    report order; ``notes[stem]`` the lines printed under its title. ``alm_columns``: the study's
    condition -> Table 6 column mappings, each named in Table 6's notes."""
    res = list(per_model.values())
    t4 = [r["table4_paper"] for r in res]
    t5 = [x for r in res for x in r["table5_paper"]]
    t6 = [r["table6_paper"] for r in res]
    tables = {
        "table3_id_f1": _frame([r["table3"] for r in res], ["model", "n", *[label_name(c) for c in ID_LABELS], "macro_f1", "weighted_f1"]),
        "table4_robustness": _frame(t4, table4_columns(), fill=NA),
        "table4_robustness_detail": _frame([x for r in res for x in r["table4"]], ["model", "set", "condition", "label", "n", "f1"]),
        "table5_ood": _frame(t5, table5_columns(), fill=NA),
        "table5_ood_detail": _frame([x for r in res for x in r["table5"]], ["model", "detector", "condition", "n_id", "n_ood", "auc", "fpr95", "eer"]),
        "table6_alm": _frame(t6, table6_columns(), fill=NA),
        "table6_alm_detail": _frame([x for r in res for x in r["table6"]], ["model", "condition", "n", "detect_f1", "fake_rate", "backend", "backend_f1"]),
        "cors_detection": _frame([x for r in res for x in r["cors"]], ["model", "condition", "n_real", "n_fake", "eer", "fake_rate"]),
    }
    t5_cells = [f"{c} {m}" for c in TABLE5_CONDITIONS for m, _ in TABLE5_METRICS]
    notes: dict[str, list[str]] = {
        "table4_robustness": [TABLE4_NOTE, missing_note(t4, [c for c, _, _ in TABLE4_COLUMNS])],
        "table5_ood": [TABLE5_NOTE, missing_note(t5, t5_cells)],
        "table6_alm": [TABLE6_NOTE, missing_note(t6, [c for c, _ in TABLE6_COLUMNS]),
                       ("Columns filled from other condition names (study.alm_columns): "
                        + ", ".join(f"{col} <- {cond}" for cond, col in sorted(alm_columns.items())) + ".")
                       if alm_columns else None],
    }
    for stem in EER_TABLES:
        notes.setdefault(stem, []).append(EER_NOTES[eer_convention])
    return tables, {k: [line for line in v if line] for k, v in notes.items()}
