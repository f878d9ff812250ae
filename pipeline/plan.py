"""The work plan: one item per (source utterance x codec variant), with ids and paths fixed up front.

The plan is a pandas frame with one row per item. Its columns are the fake manifest's columns
that are known before any audio is made (ids, source fields, codec fields from the catalog) plus
the work columns of :data:`WORK_COLUMNS`. Generation fills in the rest (``sample_rate``,
``num_samples``, ``duration_s``, ``sha256``, ``weights_id``, ``status``, ``error``, ``created_at``).

Ids and paths depend only on the variant and the source row, so a re-run of the same recipe
plans exactly the same items, and resume can match them:

    utt_id = "<variant>__<source_utt_id>"
    path   = "audio/<variant>/<speaker>/<source_utt_id>.<ext>"   (relative to the dataset root)

Items that must not run are refused here, before any model loads: ``plan_error`` names the source
file and the reason (too long for ``max_item_seconds``, shorter than ``min_item_seconds`` or one
codec frame, a path outside its manifest's root, a source changed since ingest), and generation
writes them as failed rows.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from codec_wrappers.base import Variant
from codec_wrappers.catalog import get_variant
from manifests import ID_LABELS, NO_LABEL, OOD_LABELS, ST_LABELS, absolute_paths, read_manifest
from manifests.rows import NCST_VERSION

# Columns of a plan that are not manifest columns (dropped when rows are written).
WORK_COLUMNS = ("src_path", "out_path", "src_duration_s", "output_sample_rate", "plan_error")
# Manifest columns generation fills in; the plan holds placeholders for them.
RESULT_COLUMNS = ("sample_rate", "num_samples", "duration_s", "sha256", "weights_id", "status", "error", "created_at")
ID_SEP = "__"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]")


class PlanError(ValueError):
    """The sources or variants cannot be planned; the message names the file or the ids."""


def safe_component(text: str) -> str:
    """A string usable as one path component: unsafe characters become ``_``; never empty or hidden."""
    out = _UNSAFE.sub("_", str(text))
    if not out or out.startswith("."):
        out = "_" + out
    return out


def item_id(variant_id: str, source_utt_id: str) -> str:
    """Id of the fake utterance made from ``source_utt_id`` by ``variant_id``."""
    return f"{variant_id}{ID_SEP}{source_utt_id}"


def item_path(variant_id: str, speaker: str, source_utt_id: str, audio_format: str = "flac") -> str:
    """Path of the fake file, relative to the dataset root."""
    return "/".join(
        ("audio", safe_component(variant_id), safe_component(speaker or "_"), f"{safe_component(source_utt_id)}.{audio_format}")
    )


def domain_of(variant: Variant) -> str:
    """Manifest ``domain`` of a variant: ``id`` / ``ood`` by its ST label, ``external`` without one."""
    if variant.st_label in ID_LABELS:
        return "id"
    if variant.st_label in OOD_LABELS:
        return "ood"
    return "external"


def codec_fields(variant: Variant) -> dict:
    """The manifest fields a fake row takes from its codec variant (labels, taxonomy, rates)."""
    label = NO_LABEL if variant.st_label is None else int(variant.st_label)
    return dict(
        is_fake=True,
        label=label,
        label_name=ST_LABELS[label] if label != NO_LABEL else variant.codec,
        domain=domain_of(variant),
        codec=variant.codec,
        variant=variant.id,
        codec_sample_rate=int(variant.sample_rate),
        bitrate_kbps=float(variant.bitrate_kbps),
        n_codebooks=int(variant.n_codebooks),
        vq=variant.taxonomy.vq,
        aux=variant.taxonomy.aux,
        decoder=variant.taxonomy.decoder,
    )


# How a variant's forward runs, beyond the catalog; a row records each option that is not the default.
# ``executor`` and ``num_threads`` have no default: every row records them (local and Ray runs, or
# different thread counts, differ in the last bit), so resume never mixes rows made differently.
# ``chunked`` (chunked mode, long items only) says how the item was cut and joined.
RUN_OPTION_DEFAULTS = {"precision": "fp32", "batch_mode": "exact", "executor": "", "num_threads": "", "chunked": ""}


def extra_dict(extra: Any) -> dict:
    """A row's ``extra`` JSON as a dict; text that is not a JSON object is kept under ``source_extra``."""
    try:
        data = json.loads(extra) if extra else {}
    except (TypeError, ValueError):
        data = {"source_extra": extra}
    return data if isinstance(data, dict) else {"source_extra": data}


def _extra_with_condition(extra: str | None, variant: Variant, options: Mapping[str, str] | None = None) -> str:
    """The source row's ``extra`` JSON, plus the variant's robustness condition when it has one and
    every run option that is not its default (e.g. ``"precision": "bf16"``, ``"batch_mode": "masked"``)."""
    data = extra_dict(extra)
    if variant.condition:
        data["codec_condition"] = variant.condition
    for key, value in (options or {}).items():
        if value is not None and str(value) != RUN_OPTION_DEFAULTS.get(key):
            data[key] = str(value)
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def load_sources(sources: Iterable[str | os.PathLike | pd.DataFrame], limit: int | None = None) -> pd.DataFrame:
    """Usable source rows of every source manifest, with an absolute ``src_path`` column.

    Keeps rows with ``status == "ok"`` that are real audio (``is_fake`` False); ``limit`` keeps the
    first ``limit`` of them (over all sources, in order). ``attrs['skipped']`` counts the rest.
    A ``source_utt_id`` found in two sources is a :class:`PlanError` naming both.
    """
    frames, skipped = [], {"not_ok": 0, "fake": 0}
    seen: dict[str, str] = {}
    for src in sources:
        if isinstance(src, pd.DataFrame):
            df, where = src, src.attrs.get("path", "<frame>")
        else:
            where = str(src)
            try:
                df = read_manifest(src)
            except FileNotFoundError:
                raise PlanError(f"source manifest not found: {src}") from None
            except Exception as exc:
                raise PlanError(f"{src}: cannot read source manifest ({exc})") from None
        if "utt_id" not in df.columns or "status" not in df.columns:
            raise PlanError(f"{where}: not a manifest (no utt_id/status columns)")
        ok = df["status"] == "ok"
        real = ~df["is_fake"].astype(bool)
        skipped["not_ok"] += int((~ok).sum())
        skipped["fake"] += int((ok & ~real).sum())
        keep = df[ok & real].copy()
        keep["src_path"] = absolute_paths(keep, df.attrs.get("root")) if len(keep) else pd.Series([], dtype=object)
        keep["_root"] = str(df.attrs.get("root") or "")
        for uid in keep["utt_id"]:
            if uid in seen:
                raise PlanError(f"source utterance {uid!r} appears in {seen[uid]} and in {where}")
            seen[uid] = where
        frames.append(keep)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if limit is not None:
        out = out.head(int(limit)).reset_index(drop=True)
    out.attrs["skipped"] = skipped
    return out


def _durations(df: pd.DataFrame) -> np.ndarray:
    dur = pd.to_numeric(df.get("duration_s"), errors="coerce") if "duration_s" in df else None
    if dur is None:
        dur = pd.Series(np.nan, index=df.index)
    if "num_samples" in df and "sample_rate" in df:
        ns = pd.to_numeric(df["num_samples"], errors="coerce").astype(float)
        sr = pd.to_numeric(df["sample_rate"], errors="coerce").astype(float)
        dur = dur.fillna(ns / sr)
    return dur.fillna(0.0).to_numpy(dtype=float)


def outside_root(path: str, root: str) -> bool:
    """A manifest ``path`` that leaves ``root`` (``../x.wav``, ``/abs/x.wav`` elsewhere); False without a root."""
    if not root:
        return False
    base = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(path if os.path.isabs(path) else os.path.join(base, path))
    return os.path.commonpath([base, full]) != base


def source_problems(src: pd.DataFrame, durations: np.ndarray, *, max_item_seconds: float | None,
                    min_item_seconds: float, allow_outside_root: bool, verify_sources: bool, jobs: int = 8) -> list[str]:
    """Per source row: '' or why no variant may run it (every message names the source file)."""
    from concurrent.futures import ThreadPoolExecutor

    from manifests import sha256_file

    out = [""] * len(src)
    paths = src["src_path"].astype(str).tolist()
    roots = src["_root"].tolist() if "_root" in src else [""] * len(src)
    rels = src["path"].astype(str).tolist()
    for i, (p, rel, root, d) in enumerate(zip(paths, rels, roots, durations)):
        if not allow_outside_root and outside_root(rel, root):
            out[i] = f"{p}: source path {rel!r} lies outside its corpus root {root} (refused; allow_outside_root: true accepts it)"
        elif max_item_seconds is not None and d > max_item_seconds:
            out[i] = f"{p}: too long: {d:.0f} s > {max_item_seconds:g} s (max_item_seconds)"
        elif d < min_item_seconds:
            out[i] = f"{p}: too short: {d:.4f} s < {min_item_seconds:g} s (min_item_seconds)"
    if verify_sources:
        recorded = src["sha256"].fillna("").astype(str).tolist() if "sha256" in src else [""] * len(src)

        def check(i: int) -> str:
            try:
                now = sha256_file(paths[i])
            except OSError as exc:
                return f"{paths[i]}: source changed since ingest (cannot read it now: {exc})"
            if recorded[i] and now != recorded[i]:
                return f"{paths[i]}: source changed since ingest (sha256 {recorded[i][:16]}... recorded, {now[:16]}... now)"
            return ""

        todo = [i for i in range(len(src)) if not out[i]]
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for i, msg in zip(todo, pool.map(check, todo)):
                out[i] = msg
    return out


def frame_problem(src_path: str, seconds: float, variant: Variant) -> str:
    """'' or why a source is shorter than one frame of ``variant`` (its ``hop_length`` at its rate)."""
    hop = int(variant.options.get("hop_length", 1) or 1)
    if seconds * variant.sample_rate < hop:
        return (f"{src_path}: too short: {seconds:.4f} s is less than one {variant.id} frame "
                f"({hop} samples at {variant.sample_rate} Hz)")
    return ""


def chunk_note(seconds: float, chunk_seconds: float | None, overlap_seconds: float) -> str | None:
    """What a chunked item's ``extra`` says about it (None when the item runs whole)."""
    if not chunk_seconds or seconds <= chunk_seconds:
        return None
    return f"{chunk_seconds:g} s chunks, {overlap_seconds:g} s overlap, linear cross-fade"


def make_plan(
    sources: Iterable[str | os.PathLike | pd.DataFrame],
    variants: Sequence[str | Variant],
    dataset_dir: str | os.PathLike,
    *,
    audio_format: str = "flac",
    sample_rate: str | int = "native",
    limit: int | None = None,
    run_options: Mapping[str, Mapping[str, str]] | None = None,
    max_item_seconds: float | None = 600.0,
    min_item_seconds: float = 0.02,
    allow_outside_root: bool = False,
    verify_sources: bool = False,
    chunk_seconds: float | None = None,
    chunk_overlap_seconds: float = 0.5,
) -> pd.DataFrame:
    """Plan every (usable source utterance x variant) item.

    Args:
        sources: source manifest paths (or frames read with :func:`manifests.read_manifest`).
        variants: catalog ids or :class:`Variant` objects.
        dataset_dir: the dataset root; ``out_path`` = ``dataset_dir / path``.
        audio_format: ``flac`` or ``wav`` (file extension and encoding).
        sample_rate: ``"native"`` (write at the codec's rate) or an output rate in Hz.
        limit: plan only the first ``limit`` usable source utterances (every variant gets them).
        run_options: per variant id, how its forward runs (``precision``, ``batch_mode``; see
            :data:`RUN_OPTION_DEFAULTS`); values other than the defaults are written into each
            row's ``extra``, so the rows say how they were made (``executor`` and ``num_threads``
            always are).
        max_item_seconds, min_item_seconds, allow_outside_root, verify_sources: which sources
            are refused (``plan_error``; see the module notes and :func:`source_problems`).
        chunk_seconds, chunk_overlap_seconds: chunked mode (None: off); items longer than
            ``chunk_seconds`` get ``"chunked"`` in their ``extra`` (see :class:`pipeline.predictor.Predictor`).
    Returns:
        One row per item, sorted by variant (in the order given), then source duration, then id.
        ``attrs``: ``dataset_dir``, ``skipped`` (source rows not planned, by reason).
    """
    dataset_dir = Path(dataset_dir).resolve()
    resolved = [v if isinstance(v, Variant) else get_variant(v) for v in variants]
    ids = [v.id for v in resolved]
    if len(set(ids)) != len(ids):
        raise PlanError(f"variants listed more than once: {ids}")
    if ID_SEP in "".join(ids):
        raise PlanError(f"variant ids must not contain {ID_SEP!r}: {ids}")
    options_of = dict(run_options or {})
    src = load_sources(sources, limit=limit)
    if len(src) == 0:
        plan = pd.DataFrame(columns=[*_plan_columns()])
        plan.attrs.update(dataset_dir=str(dataset_dir), skipped=src.attrs.get("skipped", {}))
        return plan
    durations = _durations(src)
    problems = source_problems(src, durations, max_item_seconds=max_item_seconds, min_item_seconds=min_item_seconds,
                               allow_outside_root=allow_outside_root, verify_sources=verify_sources)
    parts = []
    for v in resolved:
        out_rate = int(v.sample_rate) if sample_rate == "native" else int(sample_rate)
        f = codec_fields(v)
        part = pd.DataFrame(
            {
                "utt_id": [item_id(v.id, u) for u in src["utt_id"]],
                "source_utt_id": src["utt_id"].to_numpy(),
                "corpus": src["corpus"].to_numpy(),
                "speaker": src["speaker"].fillna("").to_numpy(),
                "language": src["language"].fillna("").to_numpy(),
                "split": src["split"].fillna("").to_numpy(),
                "text": src["text"].to_numpy() if "text" in src else None,
                "path": [item_path(v.id, s, u, audio_format) for s, u in zip(src["speaker"].fillna(""), src["utt_id"])],
                **{k: [val] * len(src) for k, val in f.items()},
                "extra": [_extra_with_condition(e, v, {**options_of.get(v.id, {}), "chunked": chunk_note(d, chunk_seconds, chunk_overlap_seconds)})
                          for e, d in zip(src.get("extra", pd.Series([None] * len(src))), durations)],
                "ncst_version": NCST_VERSION,
                "src_path": src["src_path"].to_numpy(),
                "src_duration_s": durations,
                "output_sample_rate": out_rate,
                "plan_error": [e or frame_problem(p, d, v) for e, p, d in zip(problems, src["src_path"], durations)],
            }
        )
        part["_order"] = len(parts)
        parts.append(part)
    plan = pd.concat(parts, ignore_index=True)
    dup = plan["path"].duplicated(keep=False)
    if dup.any():
        raise PlanError(
            "two items would write the same file (source ids that differ only in unsafe characters?): "
            + ", ".join(plan.loc[dup, "utt_id"].head(5))
        )
    plan["out_path"] = [str(dataset_dir / p) for p in plan["path"]]
    plan = plan.sort_values(["_order", "src_duration_s", "utt_id"], kind="stable").drop(columns="_order")
    plan = plan.reset_index(drop=True)
    for col in RESULT_COLUMNS:  # placeholders, filled by generation
        plan[col] = None
    plan = plan[list(_plan_columns())]
    plan.attrs.update(dataset_dir=str(dataset_dir), skipped=src.attrs.get("skipped", {}))
    return plan


def _plan_columns() -> tuple[str, ...]:
    from manifests import COLUMN_NAMES

    return (*COLUMN_NAMES, *WORK_COLUMNS)
