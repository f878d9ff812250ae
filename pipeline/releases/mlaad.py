"""MLAAD source-tracing protocol as published (Interspeech 2025 special session "Source tracing";
protocol zip ``mlaad4sourcetracing.zip`` from deepfake-total.com/sourcetracing, audio MLAAD v5).

Layout (the MLAAD v5 root with the protocol CSVs unzipped into it, or into ``lists_dir``)::

    fake/<lang>/<system dir>/<M-AILABS utterance>.wav    MLAAD v5 audio (system dir: the model name
                                                          with / replaced by _)
    train.csv dev.csv eval.csv                            header ``path,model_name`` (comma-separated):
        fake/ar/tts_models_multilingual_multi-dataset_xtts_v2/northandsouth_01_f000130.wav,tts_models/multilingual/multi-dataset/xtts_v2

``path`` is relative to the MLAAD root; ``model_name`` is the generating system (the class). This is
the format the special session's baseline (piotrkawa/audio-deepfake-source-tracing) reads with
``pandas.read_csv``; further columns, if a copy has them (e.g. MLAAD's ``language``,
``architecture``), are kept in ``extra``. A ``|``-separated copy (MLAAD's own ``meta.csv`` style)
is read too.

Classes follow the baseline: the *known* systems are those of ``train.csv``; their ids are their
sorted order (``extra["class_id"]``, like the baseline's label encoder). Dev and eval rows of a
known system go to ``dev`` / ``eval_id``, rows of a system absent from training to ``dev_ood`` /
``eval_ood`` (the baseline sets its OOD threshold on dev's unseen systems, so ``dev_ood`` is kept
apart). MLAAD systems are not ST classes: every fake row has label -1, ``label_name`` = condition =
``model_name``.

Our reading, not published as such: the protocol lists fakes only; the M-AILABS bona fide audio
the fakes were made from is not part of it. Rows whose ``model_name`` is ``bonafide``/``bona-fide``/
``real``/``human`` (a copy extended with reals) become real rows (label 0), and bona fide
manifests passed as ``unseen_real`` (e.g. an M-AILABS reader's) join ``unseen_real`` as for
ST-Codecfake. Speaker is left empty (MLAAD names the M-AILABS book chapter, not the reader);
language is the ``fake/<lang>/`` folder unless a ``language`` column says otherwise.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from manifests import external_spoof_row, real_row

from pipeline.corpora.common import check_root, read_text_file

from .common import ReleaseError, Rows, finish_release, strip_audio_suffix
from .st_codecfake import add_unseen_real

RELEASE = "mlaad"
LISTS = ("train", "dev", "eval")
REQUIRED_COLUMNS = ("path", "model_name")
REAL_NAMES = {"bonafide", "bona-fide", "bona fide", "real", "human"}
SUBSETS = {"train": ("train", "train"), "dev": ("dev", "dev_ood"), "eval": ("eval_id", "eval_ood")}
UNPACK = ("Unzip MLAAD v5 (`7za x mlaad_v5.zip`) and the source-tracing protocol "
          "(`unzip mlaad4sourcetracing.zip`) so that fake/ and train.csv, dev.csv, eval.csv are found.")


def read_protocol_list(path: Path) -> list[tuple[int, dict[str, str], int]]:
    """``(line number, row, fields beyond the header)`` of a protocol CSV; :class:`ReleaseError`
    naming the file when its header lacks ``path``/``model_name``."""
    text = read_text_file(path)
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = "|" if first.count("|") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ReleaseError(f"{RELEASE}: {path}: header {header} lacks column(s) {', '.join(missing)} "
                           f"(expected a CSV with header {','.join(REQUIRED_COLUMNS)})")
    out = []
    for n, fields in enumerate(reader, start=2):
        if not any(f.strip() for f in fields):
            continue
        row = {k: (fields[i].strip() if i < len(fields) else "") for i, k in enumerate(header)}
        out.append((n, row, max(0, len(fields) - len(header))))
    return out


def _is_fake(system: str) -> bool:
    return bool(system) and system.lower() not in REAL_NAMES


def _language(rel: str, row: dict[str, str]) -> str:
    if row.get("language"):
        return row["language"]
    parts = rel.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "fake" else ""


def prepare_mlaad(root: str | os.PathLike, lists_dir: str | os.PathLike | None = None,
                  unseen_real: Sequence[str | os.PathLike | pd.DataFrame] = (), num_jobs: int = 1) -> pd.DataFrame:
    """Protocol frame of the MLAAD source-tracing protocol (every listed file a row; failed rows included).

    Args:
        root: the MLAAD v5 root (the folder holding ``fake/``); CSV paths are relative to it.
        lists_dir: where ``train.csv``, ``dev.csv``, ``eval.csv`` are (default: ``root``).
        unseen_real: bona fide source manifests (paths or frames) joining ``unseen_real``.
        num_jobs: threads probing and hashing files.
    """
    root = check_root(root, RELEASE)
    pdir = Path(lists_dir).expanduser().resolve() if lists_dir is not None else root
    files = {name: pdir / f"{name}.csv" for name in LISTS}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        raise ReleaseError(f"{RELEASE}: protocol list(s) not found: {', '.join(missing)}. {UNPACK}")
    lists = {name: read_protocol_list(f) for name, f in files.items()}
    known = sorted({r["model_name"] for _, r, _ in lists["train"] if _is_fake(r["model_name"])})
    class_id = {name: i for i, name in enumerate(known)}
    rows = Rows()
    for name, entries in lists.items():
        known_subset, unseen_subset = SUBSETS[name]
        seen_paths: dict[str, int] = {}
        for n, r, surplus in entries:
            where = f"{files[name]} line {n}"
            rel, system = (r.get("path") or "").replace("\\", "/"), r.get("model_name") or ""
            # normpath, not resolve: a symlinked fake/ folder stays inside the root
            wav = Path(os.path.normpath(root / rel)) if rel else root / f"missing-path-{name}-{n}"
            stem = strip_audio_suffix(Path(rel).name) if rel else f"line{n}"
            is_known = system in class_id
            extra = {"list": files[name].name, "line": n, "model_name": system, "source": stem,
                     **{k: v for k, v in r.items() if k not in REQUIRED_COLUMNS and v not in (None, "")}}
            if _is_fake(system):
                extra.update(known=is_known, **({"class_id": class_id[system]} if is_known else {}))
            uid = strip_audio_suffix(rel).replace("/", "-") if rel else f"line{n}"
            base = dict(utt_id=f"mlaad-{name}-{uid}",
                        corpus=RELEASE, path=str(wav), language=_language(rel, r), split=name, extra=extra)
            error = ""
            if system and not _is_fake(system):
                row, subset = real_row(**base), known_subset
            else:
                row = external_spoof_row(attack=system or "unknown", **base)
                subset = known_subset if is_known else unseen_subset
            if not rel or not system:
                error = f"{where}: empty {'path' if not rel else 'model_name'}"
            elif surplus:
                error = f"{where}: {surplus} field(s) more than the header has"
            elif not wav.is_relative_to(root):
                error = f"{where}: path {rel!r} points outside the MLAAD root {root}"
            elif rel in seen_paths:
                error = f"{where}: {rel} listed twice (first on line {seen_paths[rel]})"
            elif not wav.is_file():
                error = f"{wav}: audio file missing (listed in {where})"
            seen_paths.setdefault(rel, n)
            rows.add(row, wav, subset, row["label_name"] if system else "unknown", error)
        if not entries:
            rows.warn(f"{files[name]} lists no files: {known_subset} has no rows")
    unseen = sorted({r["model_name"] for name in ("dev", "eval") for _, r, _ in lists[name] if _is_fake(r["model_name"])}
                    - set(known))
    rows.warn(f"{len(known)} known systems (train.csv); {len(unseen)} systems only in dev/eval (OOD): {', '.join(unseen)}")
    df = finish_release(rows, RELEASE, num_jobs)
    if unseen_real:
        df = add_unseen_real(df, unseen_real)
    return df
