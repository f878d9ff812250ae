"""The ST-Codecfake study: Tables 3-6, plots and one HTML report for trained source tracers
(settings: :mod:`train.study_config`).

Reads the ``study:`` section of a recipe, the protocol parquet files
(``<protocol_dir>/subsets/<subset>.parquet``, subsets train, eval_id, eval_unseen, eval_ood, unseen_real,
diff_config, diff_source, ood_config, ood_other, alm, cors) and one or more trained runs; writes under
``output``::

    table3_id_f1.{csv,md}              ID source tracing on eval_id: F1 per class + macro/weighted
    table4_robustness.{csv,md}         the paper's Table 4: per model the 12 columns 19LA .. NCSSD-SNAC
                                       (micro F1) + AVG, extra conditions after AVG
    table4_robustness_detail.{csv,md}  micro F1 per robustness set x condition, labels and row counts
    table5_ood.{csv,md}                the paper's Table 5: per detector AUC / FPR95 / EER on its 5
                                       conditions + AVG column group, AVG row; ID (eval_id) = positive
    table5_ood_detail.{csv,md}         the same metrics per OOD codec / condition and aggregates
    table6_alm.{csv,md}                the paper's Table 6: back-end tracing F1 per ALM + AVG
    table6_alm_detail.{csv,md}         per ALM: real-vs-fake F1 from P(real), back end, tracing F1
    cors_detection.{csv,md}            CodecFake+ CoRS (subset ``cors``): real-vs-fake EER per codec
    taxonomy_*.{csv,md}                codec-taxonomy runs (:mod:`train.taxonomy_tables`): weighted F1
                                       per task and binary EER per eval subset (eval_unseen: the
                                       protocol's held-out codecs), per class, CoRS per codec, CoSG
                                       (subset alm) per system with its seen / unseen groups
    refd_*.{csv,md}                    REFD runs (:mod:`train.refd_tables`): per-class Fréchet distance
                                       (train vs each eval set), the fusion's in-domain F1 vs OOD AUC over
                                       its weight w (table and plot), REFD's open-set decision per subset
    plots/*.png, report.html, results.json, cache/ (predictions and fitted OOD statistics)

Taxonomy runs are listed in ``study.models`` like the baselines (one list, so ``ncst study -m``
and run discovery treat every run alike); the study tells them apart by their predictions (per-head
probabilities, :func:`train.taxonomy_tables.is_taxonomy_prediction`). They get the taxonomy
tables and per-task confusion matrices only: Tables 3-6 trace ST labels, which they do not
predict, so those tables keep their baseline rows alone.

The paper layouts and how their AVG treats missing cells: :mod:`train.paper_tables`. The EER
convention (``eer: interpolated | anchor``, :mod:`train.metrics`) is written under every table
with an EER, in results.json (``eer_convention``) and in the report; ``anchor`` also computes the
MSP score in float32, as the anchor does. results.json keeps the long (detail) rows under
``table4`` / ``table5`` / ``table6`` and the paper layouts under ``table4_paper`` /
``table5_paper`` / ``table6_paper``.

A subset that is absent or empty gives ``n/a (no data)`` cells, never a crash; a model that fails
to load or predict is reported as failed and the study goes on with the others.

Python entry points: :func:`run_study_from_recipe` (what ``ncst study recipe.yaml`` calls) and
:func:`run_study` with a :class:`StudyConfig`.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pandas as pd

from manifests import protocol_subset_path, read_manifest
from manifests.atomic import atomic_path, write_text_atomic

from .data import apply_class_column
from .features import is_marked_random
from .ood import DETECTOR_NAMES, fit_detectors, make_detector  # noqa: F401 - DETECTOR_NAMES re-exported
from .paper_tables import paper_ood_conditions, table4_paper, table5_paper, table6_paper
from .study_tables import EER_NOTES, failed_rows, study_tables
from .tables import (
    DEFAULT_ALM_BACKENDS,
    NA,
    SubsetPredictions,
    na_reason,
    ood_detail_conditions,
    ood_rows,
    table3,
    table4,
    table5,
    table6,
    table_cors,
)
from .refd_tables import NOTES as REFD_NOTES
from .taxonomy_tables import TAXONOMY_SUBSETS, align_taxonomy, is_taxonomy_prediction, taxonomy_results, taxonomy_tables
from .study_config import STUDY_KEYS, SUBSETS, ModelRef, StudyConfig, load_study_config  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

EVAL_SUBSETS = ("eval_id", "eval_ood", "unseen_real", "diff_config", "diff_source", "ood_config", "ood_other", "alm", "cors")
NEEDED_COLUMNS = ("utt_id", "path", "label", "label_name", "is_fake", "status", "codec", "variant", "weights_id")
# Per-model entries of results.json: long (detail) rows under the old names, paper layouts beside.
RESULT_TABLES = ("table3", "table4", "table4_paper", "table5", "table5_paper", "table6", "table6_paper", "cors")
# Per-model entries of a taxonomy run (kind "taxonomy"): its head setup and tables.
TAXONOMY_JSON = ("variant", "tasks", "frontend", "taxonomy_f1", "taxonomy_f1_detail", "taxonomy_cors", "taxonomy_cosg")
# ----------------------------------------------------------------------------- protocol


@dataclass
class Protocol:
    """Protocol subsets (``status == ok`` rows only); a missing or empty subset is absent."""

    directory: Path
    subsets: dict[str, pd.DataFrame]
    files: dict[str, Path]
    dropped: dict[str, int]  # failed rows left out, per subset
    errors: dict[str, str] = field(default_factory=dict)  # subset files that could not be read

    def get(self, name: str) -> pd.DataFrame | None:
        return self.subsets.get(name)

    def weights(self) -> pd.DataFrame:
        """``codec, variant, weights_id, rows`` over every subset (real rows left out)."""
        frames = [df[["codec", "variant", "weights_id"]] for df in self.subsets.values()]
        if not frames:
            return pd.DataFrame(columns=["codec", "variant", "weights_id", "rows"])
        allrows = pd.concat(frames, ignore_index=True)
        allrows = allrows[(allrows["codec"].fillna("") != "") | (allrows["weights_id"].fillna("") != "")]
        return allrows.groupby(["codec", "variant", "weights_id"], dropna=False).size().reset_index(name="rows")


def load_protocol(directory: str | os.PathLike, class_column: str = "label") -> Protocol:
    """Read ``<directory>/subsets/<subset>.parquet`` (older folders: ``<subset>.parquet``) for every known subset that exists.

    A file that cannot be read, or lacks a needed column, is left out with its error in
    ``Protocol.errors`` (shown in the report); the other subsets are still studied.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"protocol dir not found: {directory}")
    subsets, files, dropped, errors = {}, {}, {}, {}
    for name in SUBSETS:
        path = protocol_subset_path(directory, name)
        if not path.exists():
            continue
        try:
            df = read_manifest(path)
            missing = [c for c in NEEDED_COLUMNS if c not in df.columns]
            if missing:
                raise ValueError(f"missing columns {missing}")
        except Exception as exc:  # noqa: BLE001 - reported, the study goes on
            errors[name] = f"{path}: {type(exc).__name__}: {exc}"
            log.error("protocol subset %s left out: %s", name, errors[name])
            continue
        ok = df[df["status"] == "ok"].reset_index(drop=True)
        ok.attrs = dict(df.attrs)
        dropped[name] = int(len(df) - len(ok))
        files[name] = path
        if len(ok):
            if "condition" not in ok.columns:
                ok["condition"] = ok["label_name"]
            ok["condition"] = ok["condition"].fillna("").astype(str)
            ok.loc[ok["condition"] == "", "condition"] = ok["label_name"]
            subsets[name] = apply_class_column(ok, class_column)
    return Protocol(directory, subsets, files, dropped, errors)


# ----------------------------------------------------------------------------- predictions


def _align(rows: pd.DataFrame, preds: Any) -> SubsetPredictions:
    """Order ``preds`` (fields utt_ids, logits, embeddings, classes; a taxonomy model's: probs per
    head, see :func:`train.taxonomy_tables.align_taxonomy`) like ``rows``.

    Rows the predictor left out (unreadable audio) are dropped; their ids are kept in
    ``result.rows.attrs["missing"]`` and reported.
    """
    if is_taxonomy_prediction(preds):
        return align_taxonomy(rows, preds)
    ids = list(preds.utt_ids)
    pos = {u: i for i, u in enumerate(ids)}
    have = rows["utt_id"].isin(pos).to_numpy()
    missing = rows.loc[~have, "utt_id"].tolist()
    if missing:
        log.warning("predictions lack %d of %d rows (unreadable audio?), e.g. %s", len(missing), len(rows), missing[:3])
    kept = rows[have].reset_index(drop=True)
    idx = np.array([pos[u] for u in kept["utt_id"]], dtype=np.int64)
    classes = [int(c) for c in preds.classes]
    logits = np.asarray(preds.logits, dtype=np.float32).reshape(len(ids), -1)[idx]
    emb = np.asarray(preds.embeddings, dtype=np.float32).reshape(len(ids), -1)[idx]
    if logits.shape[1] != len(classes):
        raise ValueError(f"logits have {logits.shape[1]} columns for {len(classes)} classes")
    kept.attrs["missing"] = missing
    return SubsetPredictions(kept, logits, emb, classes)


PredictFn = Callable[[ModelRef, pd.DataFrame], Any]


class TrainedPredictor:
    """Default predictor: loads each run once with :func:`train.predict.load_trained`."""

    def __init__(self, config: StudyConfig):
        self.config = config
        self._loaded: dict[str, tuple] = {}

    def checkpoint(self, ref: ModelRef) -> Path:
        return ref.path if ref.path.is_file() else ref.path / self.config.checkpoint

    def __call__(self, ref: ModelRef, rows: pd.DataFrame):
        from .predict import load_trained, predict, predict_taxonomy

        if ref.name not in self._loaded:
            ckpt = self.checkpoint(ref)
            self._loaded[ref.name] = load_trained(ckpt if ckpt.exists() else ref.path, device=self.config.device)
        model, cfg, _classes = self._loaded[ref.name]
        trained_on = getattr(cfg, "class_column", "label")
        if trained_on != self.config.class_column:
            raise ValueError(f"{ref.name} was trained with class_column {trained_on!r}, the study reads "
                             f"{self.config.class_column!r} (set study.class_column: {trained_on})")
        fn = predict_taxonomy if cfg.model == "taxonomy" else predict
        return fn(model, cfg, rows, batch_size=self.config.batch_size, device=self.config.device,
                  num_workers=self.config.num_workers)

    def model_info(self, ref: ModelRef) -> dict:
        if ref.name not in self._loaded:
            return {}
        _model, cfg, classes = self._loaded[ref.name]
        if hasattr(cfg, "to_dict"):
            cfg_d = cfg.to_dict()
        else:
            try:
                from dataclasses import asdict

                cfg_d = asdict(cfg)
            except TypeError:
                cfg_d = dict(getattr(cfg, "__dict__", {}))
        return {"classes": list(classes), "train_config": json.loads(json.dumps(cfg_d, default=str))}


def _file_key(path: Path) -> str:
    try:
        st = path.stat()
        return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return str(path)


def _frame_key(rows: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(rows[["utt_id", "path", "label"]], index=False).to_numpy().tobytes())
    return h.hexdigest()


def _cached_predict(predict_fn: PredictFn, ref: ModelRef, rows: pd.DataFrame, cache: Path | None, ckpt_key: str) -> SubsetPredictions:
    """Predictions for ``rows``, reusing ``cache/<hash>.npz`` when the checkpoint and rows match."""
    path = None
    if cache is not None:
        key = hashlib.sha256(f"{ckpt_key}|{_frame_key(rows)}".encode()).hexdigest()[:24]
        path = cache / f"pred-{key}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                common = dict(utt_ids=[str(u) for u in z["utt_ids"]], embeddings=z["embeddings"])
                if "tasks" in z.files:  # a taxonomy model's: one probability matrix per head
                    tasks = [str(t) for t in z["tasks"]]
                    cached = SimpleNamespace(**common, tasks=tasks, probs={t: z[f"probs_{t}"] for t in tasks},
                                             variant=str(z["variant"]), frontend=str(z["frontend"]))
                else:
                    cached = SimpleNamespace(**common, logits=z["logits"], classes=z["classes"].tolist())
            return _align(rows, cached)
    log.info("predicting %d rows with %s", len(rows), ref.name)
    preds = predict_fn(ref, rows)
    out = _align(rows, preds)
    if path is not None:
        ids = np.asarray(out.rows["utt_id"].astype(str).tolist())
        if is_taxonomy_prediction(out):
            fields = dict(tasks=np.asarray(out.tasks), variant=out.variant, frontend=out.frontend,
                          **{f"probs_{t}": p for t, p in out.probs.items()})
        else:
            fields = dict(logits=out.logits, classes=np.asarray(out.classes))
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, utt_ids=ids, embeddings=out.embeddings, **fields)
    return out


# ----------------------------------------------------------------------------- runner


@dataclass
class StudyResult:
    """What a study wrote: ``output`` dir, ``report`` (HTML), ``results`` (dict as in results.json)."""

    output: Path
    report: Path
    results_json: Path
    tables: dict[str, Path]
    results: dict


def _fit_rows(rows: pd.DataFrame, config: StudyConfig) -> pd.DataFrame:
    if config.max_fit_rows is None or len(rows) <= config.max_fit_rows:
        return rows
    return rows.sample(n=config.max_fit_rows, random_state=config.seed).sort_index().reset_index(drop=True)


def study_model(
    ref: ModelRef,
    protocol: Protocol,
    config: StudyConfig,
    predict_fn: PredictFn,
    ckpt_key: str,
) -> dict:
    """All numbers (and plot inputs) for one model; raises on a model that cannot predict."""
    cache = config.output / "cache" / _safe(ref.name)
    preds: dict[str, SubsetPredictions | None] = {}
    unreadable: dict[str, int] = {}
    for name in EVAL_SUBSETS:
        rows = protocol.get(name)
        sp = None if rows is None else _cached_predict(predict_fn, ref, rows, cache, ckpt_key)
        if sp is not None and sp.rows.attrs.get("missing"):
            unreadable[name] = len(sp.rows.attrs["missing"])
        preds[name] = sp if sp is not None and len(sp.rows) else None
    if any(is_taxonomy_prediction(p) for p in preds.values()):
        return _study_taxonomy_model(ref, protocol, config, predict_fn, ckpt_key, preds, unreadable)

    ood = ood_rows(preds)
    detail_conds, paper_conds = ood_detail_conditions(ood), paper_ood_conditions(ood)
    have_eval = preds["eval_id"] is not None and bool(ood)
    fit = None
    fit_rows = protocol.get(config.fit_subset)
    if have_eval and fit_rows is not None and any(make_detector(d).needs_fit for d in config.detectors):
        fit = _cached_predict(predict_fn, ref, _fit_rows(fit_rows, config), cache, ckpt_key)
        fit = fit if len(fit.rows) else None
    scores: dict[str, dict[str, np.ndarray]] = {}  # detail conditions (plots read these)
    paper_scores: dict[str, dict[str, np.ndarray]] = {}  # the paper's 5 Table 5 conditions
    why_not: dict[str, str] = {}
    for dname in config.detectors if have_eval else ():
        if make_detector(dname).needs_fit and fit is None:
            why_not[dname] = f"n/a (no '{config.fit_subset}' rows to fit on)"
            continue
        try:
            det = fit_detectors(
                [dname],
                *((fit.logits, fit.embeddings, fit.labels) if fit is not None else (None, None, None)),
                cache_dir=cache / "ood",
                run_key=ckpt_key,
                k=config.knn_k,
                chunk_size=config.chunk_size,
                msp_precision="float32" if config.eer == "anchor" else "float64",
                classes=fit.classes if fit is not None else None,
                fusion_w=config.fusion_w,
            )[dname]
        except ValueError as exc:  # e.g. fewer training rows than k
            why_not[dname] = na_reason(exc)
            continue
        id_scores = det.score(preds["eval_id"].logits, preds["eval_id"].embeddings)
        per_subset = {key: det.score(sp.logits, sp.embeddings) for key, sp in ood.items()}  # each row once
        scores[dname] = {"eval_id": id_scores, **{c.name: per_subset[c.subset][c.mask] for c in detail_conds}}
        paper_scores[dname] = {"eval_id": id_scores, **{c.name: per_subset[c.subset][c.mask] for c in paper_conds}}
    t5 = table5(ref.name, {d: scores.get(d, {}) for d in config.detectors}, eer_convention=config.eer)
    for r in t5:
        if r["detector"] in why_not:
            r.update(condition=why_not[r["detector"]])
    t4 = table4(ref.name, preds)
    t6 = table6(ref.name, preds["alm"], config.alm_backends)
    return {
        "preds": preds,
        "scores": scores,
        "table3": table3(ref.name, preds["eval_id"]),
        "table4": t4,
        "table4_paper": table4_paper(ref.name, t4),
        "table5": t5,
        "table5_paper": table5_paper(ref.name, paper_scores, config.detectors, why_not, eer_convention=config.eer),
        "table6": t6,
        "table6_paper": table6_paper(ref.name, t6, config.alm_columns),
        "cors": table_cors(ref.name, preds["cors"], config.eer),
        "classes": next((p.classes for p in preds.values() if p is not None), []),
        "rows_without_prediction": unreadable,
    }


def _study_taxonomy_model(ref: ModelRef, protocol: Protocol, config: StudyConfig, predict_fn: PredictFn, ckpt_key: str,
                          preds: dict, unreadable: dict) -> dict:
    """A taxonomy run's numbers: its predictions on every taxonomy eval subset, then its tables."""
    for name in TAXONOMY_SUBSETS:
        rows = protocol.get(name)
        if name not in preds and rows is not None:
            sp = _cached_predict(predict_fn, ref, rows, config.output / "cache" / _safe(ref.name), ckpt_key)
            if sp.rows.attrs.get("missing"):
                unreadable[name] = len(sp.rows.attrs["missing"])
            preds[name] = sp if len(sp.rows) else None
    preds = {k: preds[k] for k in TAXONOMY_SUBSETS if k in preds}  # table and plot order
    return {"kind": "taxonomy", "preds": preds, "rows_without_prediction": unreadable,
            **taxonomy_results(ref.name, preds, config.eer)}


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def run_study(config: StudyConfig, predict_fn: PredictFn | None = None) -> StudyResult:
    """Run the study for every model in ``config`` and write tables, plots, report and results.

    ``predict_fn(model_ref, rows) -> predictions`` (fields utt_ids, logits, embeddings, classes)
    defaults to :class:`TrainedPredictor` (``train.predict``); tests pass their own.
    """
    from . import report

    if not config.models:
        raise ValueError(f"no models to study: give study.models, or put run dirs under {config.protocol_dir.parent / 'runs'}")
    protocol = load_protocol(config.protocol_dir, config.class_column)
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    predictor = predict_fn or TrainedPredictor(config)
    weights = protocol.weights()
    random_ids = sorted({w for w in weights["weights_id"].astype(str) if w.startswith("random")})

    per_model: dict[str, dict] = {}
    model_json: dict[str, dict] = {}
    for ref in config.models:
        ckpt = predictor.checkpoint(ref) if hasattr(predictor, "checkpoint") else ref.path
        ckpt_key = _file_key(ckpt if Path(ckpt).exists() else ref.path)
        log.info("study of model %s (%s)", ref.name, ref.path)
        try:
            res = study_model(ref, protocol, config, predictor, ckpt_key)
            info = predictor.model_info(ref) if hasattr(predictor, "model_info") else {}
            res["info"] = info
            per_model[ref.name] = res
            keys = TAXONOMY_JSON if res.get("kind") == "taxonomy" else ("classes", *RESULT_TABLES)
            model_json[ref.name] = {"path": str(ref.path), "status": "ok", "kind": res.get("kind", "source tracer"),
                                    "rows_without_prediction": res["rows_without_prediction"], **info,
                                    **{k: res[k] for k in keys}}
        except Exception as exc:  # the study goes on with the other models
            log.exception("model %s failed", ref.name)
            err = f"{type(exc).__name__}: {exc}"
            res = failed_rows(ref.name, err, config.detectors)
            per_model[ref.name] = {**res, "error": err}
            model_json[ref.name] = {"path": str(ref.path), "status": "failed", "error": err, **res}

    for info in model_json.values():
        for k, v in (info.get("train_config") or {}).items():
            if isinstance(v, str) and (v.lower().startswith("random") or is_marked_random(v)):
                random_ids.append(f"model {k}={v}")

    tracers = {k: v for k, v in per_model.items() if v.get("kind") != "taxonomy"}
    tables, notes = study_tables(tracers, config.eer, config.alm_columns) if tracers else ({}, {})
    taxonomy = {k: v for k, v in per_model.items() if v.get("kind") == "taxonomy"}
    if taxonomy:
        tt, tn = taxonomy_tables(taxonomy, EER_NOTES[config.eer])
        tables, notes = {**tables, **tt}, {**notes, **tn}
    refd_tables, refd_images = _refd_extras(predictor, per_model, protocol, config)
    for stem, df in refd_tables.items():
        tables[stem], notes[stem] = df, REFD_NOTES[stem]
    banner = report.random_banner(random_ids)
    table_paths = {}
    for stem, df in tables.items():
        table_paths[stem + ".csv"], table_paths[stem + ".md"] = report.write_table(
            df, out, stem, banner=banner, notes=notes.get(stem, ()))

    images: dict[str, list[tuple[str, Path]]] = {}
    if config.plots:
        from . import plots

        for name, res in per_model.items():
            if "preds" in res:
                images[name] = plots.model_plots(name, res, out / "plots" / _safe(name), config)
        for name, imgs in refd_images.items():
            images[name] = [*images.get(name, []), *imgs]

    results = {
        "title": config.title,
        "created_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "random_weights": bool(random_ids),
        "random_weights_ids": random_ids,
        "protocol_dir": str(protocol.directory),
        "protocol": {s: int(len(df)) for s, df in protocol.subsets.items()},
        "protocol_failed_rows_dropped": protocol.dropped,
        "protocol_errors": protocol.errors,
        "codec_weights": weights.to_dict(orient="records"),
        "detectors": list(config.detectors),
        "eer_convention": config.eer,
        "table_notes": notes,
        "models": model_json,
        "refd": {stem: df.to_dict(orient="records") for stem, df in refd_tables.items()},
    }
    results_json = out / "results.json"
    write_text_atomic(results_json, json.dumps(_jsonable(results), indent=2, allow_nan=False))

    html = report.render_html(
        title=config.title,
        random_ids=random_ids,
        tables=tables,
        notes=notes,
        images=images,
        weights=weights,
        protocol=protocol,
        cards=report.find_dataset_cards(protocol, config.dataset_card),
        results=results,
        base_dir=out,
    )
    report_path = out / "report.html"
    write_text_atomic(report_path, html)
    return StudyResult(out, report_path, results_json, table_paths, results)


def _refd_extras(predictor, per_model: dict, protocol: Protocol, config: StudyConfig) -> tuple[dict, dict]:
    """REFD runs' extra tables and plots (:mod:`train.refd_tables`), for the runs the default
    predictor loaded (a test's own predict_fn has no model to run stage by stage)."""
    loaded = getattr(predictor, "_loaded", {})
    runs = {name: loaded[name] for name, res in per_model.items()
            if "error" not in res and name in loaded and getattr(loaded[name][1], "model", "") == "refd"}
    if not runs:
        return {}, {}
    from .refd_tables import refd_study

    try:
        tables, _notes, images = refd_study(runs, protocol, config.output, fit_subset=config.fit_subset,
                                            batch_size=config.batch_size, device=config.device,
                                            eer_convention=config.eer, plots=config.plots, safe=_safe)
    except Exception:  # noqa: BLE001 - the extra tables are lost, the study and its Tables 3-6 go on
        log.exception("REFD tables of %s failed", sorted(runs))
        return {}, {}
    return tables, images


def run_study_from_recipe(recipe: str | os.PathLike, predict_fn: PredictFn | None = None, **overrides: Any) -> StudyResult:
    """``ncst study recipe.yaml``: load the recipe's ``study:`` section (+ ``overrides``) and run it."""
    return run_study(load_study_config(recipe, **overrides), predict_fn=predict_fn)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, (pd.Timestamp, _dt.datetime)):
        return x.isoformat()
    return x


__all__ = ["DEFAULT_ALM_BACKENDS", "NA", "ModelRef", "Protocol", "StudyConfig", "StudyResult", "SubsetPredictions",
           "TrainedPredictor", "load_protocol", "load_study_config", "run_study", "run_study_from_recipe", "table3",
           "table4", "table5", "table6"]
