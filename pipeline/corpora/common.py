"""Machinery shared by the corpus readers: list files, read one file into a row, summarise.

Every reader follows the same steps: check the root, parse the corpus metadata into a list of
:class:`Pending` utterances (the manifest row without audio facts, the absolute audio path, and
an error when the metadata already says the row cannot be used), then map :func:`read_pending`
over that list (optionally with a thread pool) and hand the rows to :func:`finish`.

Problems never stop a run:
- a problem with one audio file (missing, empty, not audio, listed twice, a broken symbolic link,
  a directory with an audio name, NaN or infinite samples, truncated, shorter than
  :data:`MIN_SECONDS`) becomes a *failed* row (``status="failed"``, ``error`` names the file, the
  problem and, for decoding problems, the sample and second where it is). Every file is decoded in
  full, block by block, in the ``num_jobs`` threads; ``read_options(header_only=True)`` (``ncst
  ingest --header-only``) trusts the headers instead;
- a problem with metadata only (a speaker missing from speaker-info, an utterance without a
  transcript) becomes a *warning*: the row stays ``ok`` and the warning is kept in
  ``df.attrs["warnings"]`` (a list of strings) and shown by :func:`summarize`.

Seeded caps (``max_rows``, every reader's option): a study often uses a fixed-size subset of a
large corpus (ST-Codecfake: 10,000 NCSSD turns), and the SAME subset must feed generation and
the protocol, so the subset is chosen once, at ingest, and the manifest holds only it. The cap
counts ``ok`` rows: utterances are drawn in a seeded order (a permutation of the listed
utterances sorted by utt_id, so file-system order does not matter) and read until ``max_rows``
of them are ok. Nothing failed is lost: rows the metadata already marks failed are always kept,
and a drawn row that fails on reading is kept (failed) and another is drawn in its place. Rows
never drawn are not read and not in the manifest; a warning and ``df.attrs["sample"]`` say how
many. Same listing, ``max_rows`` and seed -> the same rows, whatever ``num_jobs``.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from manifests import failed, sha256_file, to_frame
from pipeline.audio_io import AudioError, probe, scan_audio

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif")


# Shortest usable utterance at ingest: one frame of the catalog's common codecs (hop 320 at 16 kHz).
MIN_SECONDS = 0.02


@dataclass(frozen=True)
class ReadOptions:
    """How every reader checks each audio file (set for a block of reads with :func:`read_options`).

    ``header_only``: trust the header (fast); by default the whole file is decoded block by block
    (:func:`pipeline.audio_io.scan_audio`), so NaN, infinite and truncated audio fail at ingest
    with the position. ``min_seconds``: rows shorter than this fail ("too short").
    """

    header_only: bool = False
    min_seconds: float = MIN_SECONDS


_OPTIONS: contextvars.ContextVar[ReadOptions] = contextvars.ContextVar("ncst_read_options", default=ReadOptions())


@contextlib.contextmanager
def read_options(**changes):
    """``with read_options(header_only=True): prepare_vctk(...)``: what ``ncst ingest`` flags set.

    Options are read once in :func:`finish` (the calling thread) and handed to the worker threads.
    """
    token = _OPTIONS.set(replace(_OPTIONS.get(), **changes))
    try:
        yield _OPTIONS.get()
    finally:
        _OPTIONS.reset(token)


class CorpusError(FileNotFoundError):
    """The corpus cannot be read at all (root or a required metadata file missing)."""


@dataclass
class Pending:
    """One utterance the metadata (or the file listing) announced, before its audio is read.

    ``row`` is a complete manifest row (from ``real_row`` / ``external_spoof_row``) whose audio
    facts are still empty; ``audio`` is the absolute path to probe; ``error`` (when set) makes
    the row failed without reading anything beyond hashing the file if it exists.
    """

    row: dict
    audio: Path
    error: str = ""


@dataclass
class Collected:
    """What a reader's metadata pass found: utterances to read and metadata-only warnings."""

    pending: list[Pending] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, row: dict, audio: Path, error: str = "") -> None:
        self.pending.append(Pending(row, audio, error))

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def check_root(corpus_dir: str | os.PathLike, name: str) -> Path:
    """``corpus_dir`` as a resolved Path; :class:`CorpusError` when it is not a directory."""
    root = Path(corpus_dir).expanduser().resolve()
    if not root.is_dir():
        raise CorpusError(f"{name}: corpus directory not found: {root}")
    return root


def rel_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (as manifests store it)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def list_audio(directory: Path, extensions: Sequence[str] = AUDIO_EXTENSIONS, *, include_broken: bool = False) -> list[Path]:
    """All files under ``directory`` with one of ``extensions`` (case-insensitive), sorted.

    ``include_broken``: also list what has an audio name but is no file (a broken symbolic
    link, a directory named ``x.wav``), so that a reader can make a failed row saying so
    instead of losing it silently."""
    if not directory.is_dir():
        return []
    exts = tuple(e.lower() for e in extensions)

    def wanted(p: Path) -> bool:
        return p.is_file() or (include_broken and (p.is_symlink() or p.is_dir()))

    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in exts and wanted(p))


def read_text_file(path: Path) -> str:
    """Text of a small metadata file; utf-8 with a BOM tolerated, undecodable bytes replaced."""
    return path.read_bytes().decode("utf-8-sig", errors="replace")


def read_pending(item: Pending, options: ReadOptions | None = None) -> dict:
    """Check and hash one audio file: the finished row, or a failed row naming file and problem.

    The file is decoded in full unless ``options.header_only`` (see :class:`ReadOptions`); the row
    fails when shorter than ``options.min_seconds``. Pure apart from reading the file: the same
    input gives the same row (except ``created_at``).
    """
    options = options or _OPTIONS.get()
    row = dict(item.row)
    path = item.audio
    if path.is_file() and path.stat().st_size > 0:
        try:
            row["sha256"] = sha256_file(path)
        except OSError as exc:
            return failed(row, f"{path}: cannot read file ({exc})")
    if item.error:
        return failed(row, item.error)
    try:
        info = probe(path) if options.header_only else scan_audio(path)
    except AudioError as exc:
        return failed(row, str(exc))
    except OSError as exc:
        return failed(row, f"{path}: cannot read file ({exc})")
    row.update(
        sample_rate=info.sample_rate,
        num_samples=info.num_samples,
        duration_s=info.duration_s,
    )
    if info.duration_s < options.min_seconds:
        return failed(row, f"{path}: too short: {info.num_samples} samples ({info.duration_s:.4f} s) < "
                           f"{options.min_seconds} s, less than one codec frame")
    return row


def map_rows(fn: Callable[[Pending], dict], items: Sequence[Pending], num_jobs: int = 1) -> list[dict]:
    """``[fn(i) for i in items]``, on a thread pool of ``num_jobs`` when ``num_jobs > 1``.

    Threads suffice: hashing and decoding release the GIL, and a pool of threads needs no
    pickling of rows. Order is kept.
    """
    from manifests.progress import Progress

    if num_jobs < 1:
        raise ValueError(f"num_jobs must be >= 1, got {num_jobs}")
    out: list[dict] = []
    # A bar on a terminal, a line every 30 s in logs; tiny listings (tests, the demo) stay quiet.
    with Progress(len(items), "ingest: read audio", unit="files", enabled=len(items) >= 20) as bar:
        if num_jobs == 1 or len(items) < 2:
            for item in items:
                out.append(fn(item))
                bar.update()
            return out
        with ThreadPoolExecutor(max_workers=num_jobs) as pool:
            for row in pool.map(fn, items, chunksize=16):
                out.append(row)
                bar.update()
    return out


def dedupe_ids(rows: list[dict]) -> list[dict]:
    """Rows whose ``utt_id`` was already seen become failed rows with a suffixed, unique id."""
    seen: dict[str, int] = {}
    out = []
    for row in rows:
        uid = row["utt_id"]
        if uid in seen:
            seen[uid] += 1
            new_id = f"{uid}#dup{seen[uid]}"
            renamed = dict(row, utt_id=new_id, source_utt_id=new_id)
            # A row that already failed keeps its own reason (e.g. conflicting labels), which says more.
            row = renamed if row["status"] == "failed" else failed(
                renamed, f"{row['path']}: duplicate utterance id {uid!r} (listed more than once)")
        else:
            seen[uid] = 1
        out.append(row)
    return out


def check_max_rows(max_rows: int | None) -> None:
    """``max_rows`` must be None or a positive integer (a reader's cap option)."""
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1):
        raise ValueError(f"max_rows must be a positive integer or None, got {max_rows!r}")


def read_sample(pending: Sequence[Pending], max_rows: int, seed: int = 0, num_jobs: int = 1) -> tuple[list[dict], dict]:
    """Rows of a seeded sample of ``pending`` holding ``max_rows`` ok rows (fewer if there are not as many).

    Rows with a preset error are always kept (they are known failures, nothing to draw). The others
    are drawn in a seeded order and read in rounds, each round drawing as many as ok rows are still
    missing, so about ``max_rows`` files are read, not the whole corpus. Rows come back in listing
    order, with duplicate ids already made failed (:func:`dedupe_ids`). Returns ``(rows, info)``,
    ``info`` = {max_rows, seed, listed, drawn, ok, not_drawn}.
    """
    check_max_rows(max_rows)
    preset = [i for i, p in enumerate(pending) if p.error]
    pool = sorted((i for i, p in enumerate(pending) if not p.error),
                  key=lambda i: (str(pending[i].row["utt_id"]), str(pending[i].audio)))
    order = [pool[j] for j in np.random.default_rng(int(seed)).permutation(len(pool))]
    read = functools.partial(read_pending, options=_OPTIONS.get())  # worker threads do not see context vars
    done = dict(zip(preset, map_rows(read, [pending[i] for i in preset], num_jobs)))
    drawn = 0
    while True:
        rows = dedupe_ids([done[i] for i in sorted(done)])
        n_ok = sum(r["status"] == "ok" for r in rows)
        need = int(max_rows) - n_ok
        if need <= 0 or drawn >= len(order):
            break
        batch = order[drawn: drawn + need]
        drawn += len(batch)
        done.update(zip(batch, map_rows(read, [pending[i] for i in batch], num_jobs)))
    info = {"max_rows": int(max_rows), "seed": int(seed), "listed": len(pending), "drawn": drawn, "ok": n_ok,
            "not_drawn": len(pool) - drawn}
    return rows, info


def finish(collected: Collected, num_jobs: int = 1, corpus: str = "", max_rows: int | None = None,
           seed: int = 0) -> pd.DataFrame:
    """Read the pending utterances and return the source manifest frame (schema column order).

    Every utterance is read unless ``max_rows`` is given: then a seeded sample holding
    ``max_rows`` ok rows is (see the module notes; ``df.attrs["sample"]`` records it).
    ``df.attrs["warnings"]`` holds the metadata-only warnings, ``df.attrs["corpus"]`` the name.
    """
    warnings = list(collected.warnings)
    sample = None
    if max_rows is None:
        read = functools.partial(read_pending, options=_OPTIONS.get())  # worker threads do not see context vars
        rows = dedupe_ids(map_rows(read, collected.pending, num_jobs))
    else:
        rows, sample = read_sample(collected.pending, max_rows, seed, num_jobs)
        short = f"; only {sample['ok']} ok rows exist" if sample["ok"] < sample["max_rows"] else ""
        warnings.append(f"max_rows {sample['max_rows']} (seed {sample['seed']}): kept a seeded sample of {sample['ok']} ok "
                        f"rows{short}; {sample['not_drawn']} of {sample['listed']} listed utterances not drawn (left out)")
    df = to_frame(rows, "source")
    if len(df):
        for col in ("sample_rate", "num_samples"):
            df[col] = df[col].astype("Int64")
        df["duration_s"] = df["duration_s"].astype("float64")
    df.attrs["warnings"] = warnings
    df.attrs["corpus"] = corpus
    if sample is not None:
        df.attrs["sample"] = sample
    return df


@dataclass
class Summary:
    """Counts of a source manifest for people: per split, ok/failed/speakers, plus problems."""

    corpus: str
    rows: int
    ok: int
    failed: int
    duration_s: float
    per_split: pd.DataFrame  # columns: split, ok, failed, speakers, duration_s
    errors: list[str]
    warnings: list[str]


def summarize(df: pd.DataFrame, max_errors: int = 20) -> Summary:
    """Summary of a reader's output (errors: the first ``max_errors`` failed rows' messages)."""
    ok = df["status"] == "ok"
    if len(df):
        g = df.assign(_ok=ok, _failed=~ok, _dur=df["duration_s"].where(ok, 0.0).fillna(0.0))
        per_split = (
            g.groupby("split", dropna=False)
            .agg(ok=("_ok", "sum"), failed=("_failed", "sum"), speakers=("speaker", "nunique"), duration_s=("_dur", "sum"))
            .reset_index()
        )
    else:
        per_split = pd.DataFrame(columns=["split", "ok", "failed", "speakers", "duration_s"])
    errors = [f"{u}: {e}" for u, e in zip(df.loc[~ok, "utt_id"], df.loc[~ok, "error"])][:max_errors]
    corpus = df.attrs.get("corpus") or (str(df["corpus"].iloc[0]) if len(df) else "")
    return Summary(
        corpus=corpus,
        rows=len(df),
        ok=int(ok.sum()),
        failed=int((~ok).sum()),
        duration_s=float(df.loc[ok, "duration_s"].fillna(0.0).sum()) if len(df) else 0.0,
        per_split=per_split,
        errors=errors,
        warnings=list(df.attrs.get("warnings", [])),
    )


def unlisted(found: Iterable[Path], listed: set[Path]) -> list[Path]:
    """Audio files found on disk that the metadata does not mention, sorted."""
    return sorted(p for p in found if p not in listed)
