"""Resume state of a generation run: shard rows, the attempts ledger, the merged manifest.

Everything a run writes while it works lives in the dataset's hidden work folder ``.ncst/``, so
that ``manifests/`` holds only the merged ``fake.parquet`` (pandas, pyarrow and Ray Data read that
folder as exactly the rows, once)::

    .ncst/shards/<time_ns>-<pid>-<n>.parquet   rows as they finish (resume state)
    .ncst/attempts.jsonl                       which items the model was handed (AttemptLog)

Datasets made before this layout kept both under ``manifests/``; :func:`migrate_old_layout` moves
them into ``.ncst/`` when a run starts.

The merge streams: rows are read, deduplicated (newest per item) and written one variant at a
time through a ``pyarrow.parquet.ParquetWriter``, so the driver holds one variant's rows, never
the whole dataset's.
"""
from __future__ import annotations

import json
import logging
import math
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from manifests import atomic_path, read_manifest, sha256_file, to_frame, write_manifest
from manifests.schema import COLUMN_NAMES
from pipeline.plan import RUN_OPTION_DEFAULTS, extra_dict

log = logging.getLogger(__name__)

WORK_DIR = ".ncst"


@dataclass
class VariantCounts:
    planned: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    audio_s: float = 0.0  # ok audio written by this run, seconds


# ----------------------------------------------------------------------------- shards
def work_dir(dataset_dir: Path) -> Path:
    """The dataset's hidden work folder (shards, attempts ledger)."""
    return Path(dataset_dir) / WORK_DIR


def shards_dir(dataset_dir: Path) -> Path:
    return work_dir(dataset_dir) / "shards"


def migrate_old_layout(dataset_dir: Path) -> list[str]:
    """Move the work state of a dataset made before ``.ncst/`` (``manifests/shards/*.parquet``,
    ``manifests/attempts.jsonl``) into ``.ncst/``, so it resumes; returns what was moved."""
    dataset_dir = Path(dataset_dir)
    old_shards, old_attempts = dataset_dir / "manifests" / "shards", dataset_dir / "manifests" / "attempts.jsonl"
    moved: list[str] = []
    if old_shards.is_dir():
        shards_dir(dataset_dir).mkdir(parents=True, exist_ok=True)
        for path in sorted(old_shards.iterdir()):
            if path.suffix == ".parquet" and path.is_file():
                os.replace(path, shards_dir(dataset_dir) / path.name)
                moved.append(str(path))
            elif path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink()  # a half-written shard of a killed run
        try:
            old_shards.rmdir()
        except OSError as exc:
            raise RuntimeError(f"{old_shards}: old-layout shard folder still holds other files after moving its "
                               f"shards to {shards_dir(dataset_dir)}; remove them ({exc})") from None
    if old_attempts.is_file():
        new = work_dir(dataset_dir) / "attempts.jsonl"
        if new.is_file():  # both: keep the lines of both (the ledger is append-only)
            with open(new, "a", encoding="utf-8") as f:
                f.write(old_attempts.read_text(encoding="utf-8"))
            old_attempts.unlink()
        else:
            work_dir(dataset_dir).mkdir(parents=True, exist_ok=True)
            os.replace(old_attempts, new)
        moved.append(str(old_attempts))
    return moved


# The shard columns resume needs (:func:`completed`): what the skip-list reads, not whole rows.
RESUME_COLUMNS = ("utt_id", "path", "status", "sha256", "sample_rate", "weights_id", "extra")


def read_shards(dataset_dir: Path, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Every shard row (only ``columns``, when given), oldest shard first; unreadable shards (a run
    killed mid-write) are skipped."""
    frames = []
    for path in sorted(shards_dir(dataset_dir).glob("*.parquet")):
        try:
            frames.append(read_manifest(path) if columns is None else
                          pq.read_table(path, columns=list(columns)).to_pandas())
        except Exception as exc:
            log.warning("skipping unreadable shard %s (%s)", path, exc)
    if not frames:
        return pd.DataFrame(columns=list(COLUMN_NAMES if columns is None else columns))
    return pd.concat(frames, ignore_index=True)


def newest_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The last row of each ``utt_id`` (shards are read oldest first, rows in write order)."""
    return rows.drop_duplicates("utt_id", keep="last").reset_index(drop=True)


class ShardWriter:
    """Turn result batches into manifest rows and append them as parquet shards of ``shard_rows``."""

    def __init__(self, plan: pd.DataFrame, dataset_dir: Path, shard_rows: int):
        self.plan = plan.set_index("utt_id", drop=False)
        self.dataset_dir = Path(dataset_dir)
        self.dir = shards_dir(dataset_dir)
        self.shard_rows = int(shard_rows)
        self.buffer: list[pd.DataFrame] = []
        self.buffered = 0
        self.written: list[Path] = []
        self.seen: set[str] = set()
        self.counts: dict[str, VariantCounts] = {}
        self.errors: list[str] = []
        self._seq = 0

    def rows(self, result: Mapping[str, Any]) -> pd.DataFrame:
        """Manifest rows for one result batch (:data:`pipeline.predictor.RESULT_KEYS` columns)."""
        ids = [str(u) for u in result["utt_id"]]
        base = self.plan.loc[ids, list(COLUMN_NAMES)].reset_index(drop=True).copy()
        sr = np.asarray(result["sample_rate"], dtype=np.int64)
        ns = np.asarray(result["num_samples"], dtype=np.int64)
        base["sample_rate"] = pd.array([None if s < 0 else int(s) for s in sr], dtype="Int32")
        base["num_samples"] = pd.array([None if s < 0 else int(s) for s in ns], dtype="Int64")
        dur = np.asarray(result["duration_s"], dtype=np.float64)
        base["duration_s"] = [None if math.isnan(d) else float(d) for d in dur]
        base["sha256"] = [str(s) or None for s in result["sha256"]]
        base["weights_id"] = [str(w) for w in result["weights_id"]]
        base["status"] = [str(s) for s in result["status"]]
        base["error"] = [str(e) for e in result["error"]]
        base["created_at"] = pd.to_datetime(np.floor(np.asarray(result["created_at"], dtype=np.float64)), unit="s", utc=True)
        if "file_bytes" in result:  # the written file's size, so resume can check it without hashing
            base["extra"] = [_with_file_bytes(e, int(b)) for e, b in zip(base["extra"], result["file_bytes"])]
        return base

    def add(self, result: Mapping[str, Any]) -> pd.DataFrame:
        rows = self.rows(result)
        for vid, status, dur, err in zip(rows["variant"], rows["status"], rows["duration_s"], rows["error"]):
            c = self.counts.setdefault(vid, VariantCounts())
            if status == "ok":
                c.done += 1
                c.audio_s += float(dur or 0.0)
            else:
                c.failed += 1
                if len(self.errors) < 10:
                    self.errors.append(err)
        self.seen.update(rows["utt_id"])
        self.buffer.append(rows)
        self.buffered += len(rows)
        if self.buffered >= self.shard_rows:
            self.flush()
        return rows

    def flush(self) -> Path | None:
        if not self.buffer:
            return None
        df = pd.concat(self.buffer, ignore_index=True)
        self._seq += 1
        path = self.dir / f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}.parquet"
        write_manifest(df, path, kind="fake", root=self.dataset_dir)
        self.buffer, self.buffered = [], 0
        self.written.append(path)
        return path


def _with_file_bytes(extra: Any, size: int) -> Any:
    """``extra`` JSON plus ``"file_bytes": size`` (unchanged when no file was written)."""
    if size < 0:
        return extra
    data = extra_dict(extra)
    data["file_bytes"] = size
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def file_bytes_of(extra: Any) -> int | None:
    """The output size a row's ``extra`` records (None for rows written before sizes were recorded)."""
    size = extra_dict(extra).get("file_bytes")
    try:
        return int(size) if size is not None else None
    except (TypeError, ValueError):
        return None


def manifest_schema(folder: Path, root: Path, kind: str = "fake") -> pa.Schema:
    """The arrow schema, metadata included, that :func:`manifests.write_manifest` gives a manifest
    in ``folder`` with ``root``: taken from an empty manifest it writes, so how manifests/ stores
    its metadata (kind, root, schema version) stays manifests/' business."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".schema-{os.getpid()}-{time.time_ns()}.parquet.tmp"
    try:
        write_manifest(to_frame([], kind), probe, kind=kind, root=root, validate=False)
        return pq.read_schema(probe)
    finally:
        probe.unlink(missing_ok=True)


def _read_variant(paths: list[Path], variant: str) -> pa.Table | None:
    """Every shard row of one variant (oldest shard first), with a ``_seq`` write-order column."""
    tables = []
    for path in paths:
        try:
            t = pq.read_table(path, filters=[("variant", "==", variant)])
        except Exception as exc:
            log.warning("skipping unreadable shard %s (%s)", path, exc)
            continue
        if t.num_rows:
            tables.append(t.replace_schema_metadata(None))
    if not tables:
        return None
    t = pa.concat_tables(tables, promote_options="permissive")
    return t.append_column("_seq", pa.array(np.arange(t.num_rows, dtype=np.int64)))


def _newest(t: pa.Table) -> pa.Table:
    """The last row of each ``utt_id`` (``_seq`` order), in write order."""
    last = t.group_by("utt_id", use_threads=False).aggregate([("_seq", "max")])
    keep = np.sort(last.column("_seq_max").to_numpy())
    return t.take(pa.array(keep))


def shard_variants(paths: list[Path]) -> list[str]:
    """The variants the shards hold rows of (first seen first)."""
    seen: dict[str, None] = {}
    for path in paths:
        try:
            col = pq.read_table(path, columns=["variant"]).column("variant")
        except Exception:
            continue
        for v in pc_unique(col):
            seen.setdefault(v, None)
    return list(seen)


def pc_unique(col: pa.ChunkedArray) -> list[str]:
    import pyarrow.compute as pc

    return [str(v) for v in pc.unique(col).to_pylist() if v is not None]


# The columns the dataset card reads; of utt_id/path/error only the first failed rows are kept.
CARD_COLUMNS = ("status", "variant", "codec", "weights_id", "duration_s", "corpus", "split", "label", "label_name",
                "domain", "vq", "aux", "decoder")
CARD_FAILED_ROWS = 50


@dataclass
class MergeResult:
    manifest: Path
    rows: int  # rows in the merged manifest
    ok: int
    ok_audio_s: float
    card_frame: pd.DataFrame  # what the dataset card needs (see CARD_COLUMNS)


def merge_shards(dataset_dir: Path, plan_ids: Mapping[str, Iterable[str]], manifest: Path) -> MergeResult:
    """Write the merged manifest and compact the shards, one variant at a time.

    ``plan_ids``: per variant (in manifest order), its planned item ids in plan order. The
    manifest gets, per variant, the newest row of each planned item, in plan order; the compacted
    shard keeps the newest row of every item the shards hold (other variants' included), and
    replaces the old shards. Both are written through ``ParquetWriter`` (atomically), so memory
    is one variant's rows. Rows were validated when their shards were written."""
    dataset_dir = Path(dataset_dir)
    old = sorted(shards_dir(dataset_dir).glob("*.parquet"))
    variants = list(plan_ids) + [v for v in shard_variants(old) if v not in plan_ids]
    schema = manifest_schema(manifest.parent, dataset_dir)
    shard_schema = manifest_schema(shards_dir(dataset_dir), dataset_dir)
    compact = shards_dir(dataset_dir) / f"{time.time_ns():020d}-{os.getpid()}-compact.parquet"
    rows = ok = 0
    audio = 0.0
    card_parts: list[pd.DataFrame] = []
    failed_kept = 0
    with atomic_path(manifest) as tmp, atomic_path(compact) as ctmp:
        with pq.ParquetWriter(tmp, schema) as out, pq.ParquetWriter(ctmp, shard_schema) as cout:
            for vid in variants:
                t = _read_variant(old, vid)
                if t is None:
                    continue
                t = _newest(t)
                cout.write_table(t.select(shard_schema.names).cast(shard_schema))
                if vid not in plan_ids:
                    continue
                ids = list(plan_ids[vid])
                order = pa.table({"utt_id": pa.array(ids, type=pa.string()),
                                  "_o": pa.array(np.arange(len(ids), dtype=np.int64))})
                m = t.join(order, "utt_id", join_type="inner", use_threads=False).sort_by("_o")
                del order, ids, t
                if not m.num_rows:
                    continue
                out.write_table(m.select(schema.names).cast(schema))
                card, n_failed = _card_part(m, CARD_FAILED_ROWS - failed_kept)
                failed_kept += n_failed
                card_parts.append(card)
                rows += m.num_rows
                is_ok = (card["status"] == "ok").to_numpy()
                ok += int(is_ok.sum())
                audio += float(card["duration_s"].to_numpy(dtype=float, na_value=0.0)[is_ok].sum())
    for p in old:
        p.unlink(missing_ok=True)
    return MergeResult(manifest, rows, ok, audio, _concat_card(card_parts))


def _objects(col: pa.ChunkedArray) -> np.ndarray:
    """A column as an object array whose cells share one Python object per distinct value (8 bytes
    a cell; the card's columns hold a handful of values)."""
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(col.combine_chunks())
    values = np.array(enc.dictionary.to_pylist() + [None], dtype=object)
    idx = enc.indices.fill_null(len(values) - 1).to_numpy(zero_copy_only=False)
    return values[idx]


def _card_part(m: pa.Table, failed_left: int) -> tuple[pd.DataFrame, int]:
    """The card's columns of merged rows ``m`` (shared objects: small at any size); utt_id, path
    and error only for the first ``failed_left`` failed rows."""
    df = pd.DataFrame({c: _objects(m.column(c)) if c != "duration_s" else
                       m.column(c).to_numpy(zero_copy_only=False).astype(float) for c in CARD_COLUMNS})
    df["label"] = df["label"].astype("int64")
    failed = np.flatnonzero((df["status"] == "failed").to_numpy())[: max(0, failed_left)]
    for c in ("utt_id", "path", "error"):
        values = np.full(len(df), None, dtype=object)
        if len(failed):
            values[failed] = m.column(c).take(pa.array(failed)).to_pylist()
        df[c] = values
    return df, len(failed)


def _concat_card(parts: list[pd.DataFrame]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in (*CARD_COLUMNS, "utt_id", "path", "error")})
    return pd.concat(parts, ignore_index=True)


# ----------------------------------------------------------------------------- resume
def _weights_compatible(row_weights: str, spec: str | None, expected: str | None = None) -> bool:
    """A row made with ``row_weights`` can stand for a run asking for weights ``spec``.

    ``expected`` is the run's own weights id when it could be resolved here (checkpoint sha256):
    then only rows made with the very same files count. Without it (weights that live on remote
    Ray workers), any official-weights row counts.
    """
    if spec is not None and spec.startswith("random"):
        return row_weights == spec
    if expected is not None:
        return row_weights == expected
    return not str(row_weights).startswith("random")


def run_options_of(extra: Any) -> dict[str, str]:
    """The run options (precision, batch mode) a row's ``extra`` JSON records; absent = default."""
    data = extra_dict(extra)
    return {k: str(data.get(k, default)) for k, default in RUN_OPTION_DEFAULTS.items()}


def precision_of(extra: Any) -> str:
    """The forward precision a row's ``extra`` JSON records (rows without one were fp32)."""
    return run_options_of(extra)["precision"]


def completed(plan: pd.DataFrame, existing: pd.DataFrame, weights: Mapping[str, str | None], jobs: int = 8,
              expected_ids: Mapping[str, str] | None = None, verify: bool = False) -> np.ndarray:
    """Boolean mask over ``plan``: items already done (ok row, file present, planned sample rate,
    compatible weights, same run options, and the file unchanged). ``expected_ids``: the weights
    id each variant will run with, where known (see :func:`_weights_compatible`).

    "Unchanged" is checked fast by default: the file's size equals the ``file_bytes`` its row
    records (a stat, no read; a truncated or rewritten-at-another-size file is redone). With
    ``verify`` (and for rows that record no size) the file is re-hashed against the row's sha256,
    which also catches a same-size corruption. Files are checked in ``jobs`` threads."""
    expected_ids = expected_ids or {}
    if len(existing) == 0 or len(plan) == 0:
        return np.zeros(len(plan), dtype=bool)
    last = newest_rows(existing)[["utt_id", "path", "status", "sha256", "sample_rate", "weights_id", "extra"]]
    items = plan[["utt_id", "variant", "path", "out_path", "output_sample_rate", "extra"]].reset_index(drop=True)
    items["_i"] = np.arange(len(items))
    m = items.merge(last, on="utt_id", how="inner", suffixes=("", "_row"))
    rate = pd.to_numeric(m["sample_rate"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    keep = (
        (m["status"] == "ok").to_numpy(dtype=bool)
        & (m["sha256"].fillna("").astype(str) != "").to_numpy(dtype=bool)
        & (rate == m["output_sample_rate"].to_numpy(dtype=float))
        & (m["path_row"] == m["path"]).to_numpy(dtype=bool)
        & np.array([_weights_compatible(str(w), weights.get(v), expected_ids.get(v)) for w, v in zip(m["weights_id"], m["variant"])], dtype=bool)
        & np.array([run_options_of(a) == run_options_of(b) for a, b in zip(m["extra"], m["extra_row"])], dtype=bool)
    )
    m = m[keep]
    sizes = [None] * len(m) if verify else [file_bytes_of(e) for e in m["extra_row"]]
    cand = list(zip(m["_i"], m["out_path"], m["sha256"], sizes))

    def same_size(path: str, size: int) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == size

    def same_hash(item) -> bool:
        _, path, sha, _ = item
        try:
            return os.path.isfile(path) and sha256_file(path) == sha
        except OSError:
            return False

    mask = np.zeros(len(plan), dtype=bool)
    to_hash = []
    for item in cand:  # a stat is cheaper than handing it to a thread
        if item[3] is None:
            to_hash.append(item)
        else:
            mask[item[0]] = same_size(item[1], item[3])
    if to_hash:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for (i, *_), ok in zip(to_hash, pool.map(same_hash, to_hash)):
                mask[i] = ok
    return mask


def remove_stale_temp_files(dataset_dir: Path) -> int:
    """Delete ``.*.tmp`` files an interrupted atomic write left under ``audio/``; returns how many."""
    n = 0
    audio = Path(dataset_dir) / "audio"
    if audio.is_dir():
        for p in audio.rglob(".*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
    return n


# ----------------------------------------------------------------------------- attempts
# Model passes an item may die in (with the process that ran it) before it is failed for good.
MAX_ATTEMPTS = 2


class AttemptLog:
    """``.ncst/attempts.jsonl``: which items the in-process model was handed, and which came back.

    Before a batch goes into the model the driver appends ``{"start": [ids]}``, after it returns
    ``{"done": [ids]}`` (each line flushed to disk). An item whose starts since its last ``done``
    are unanswered was in the model when the process died (out of memory, a segfault): a resume
    runs such items one at a time, so a culprit dies alone and its batch-mates finish, and fails an
    item once it has died :data:`MAX_ATTEMPTS` times, so resume never loops on it. Delete the file
    (or run without resume) to try such items again, e.g. on a machine with more memory.
    """

    def __init__(self, dataset_dir: Path):
        self.path = work_dir(dataset_dir) / "attempts.jsonl"

    def _append(self, key: str, ids) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({key: [str(u) for u in ids]}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def start(self, ids) -> None:
        self._append("start", ids)

    def done(self, ids) -> None:
        self._append("done", ids)

    def unanswered(self) -> dict[str, int]:
        """Per item, the model passes it started since it last came back (0 for items not listed)."""
        count: dict[str, int] = {}
        if not self.path.is_file():
            return count
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:  # the last line of a process killed mid-write
                continue
            for u in rec.get("start", ()):
                count[u] = count.get(u, 0) + 1
            for u in rec.get("done", ()):
                count.pop(u, None)
        return count

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


