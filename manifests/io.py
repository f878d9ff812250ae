"""Read, write and validate parquet manifests.

A manifest file carries its kind, its root (the folder its relative ``path`` values are under)
and the schema version in the parquet key-value metadata. Writes are atomic: a temporary file in
the same folder, then ``os.replace``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path
from .paths import portable_path, resolve_path
from .schema import COLUMNS_BY_NAME, KIND_VALUES, SCHEMA_VERSION, arrow_schema

META_KEY = b"ncst"


class ManifestError(ValueError):
    """A manifest does not match the schema; the message names file, row and column."""


def to_frame(rows: Iterable[Mapping] | pd.DataFrame, kind: str = "source") -> pd.DataFrame:
    """Rows (dicts) or a frame -> a frame with exactly the schema's columns, in order."""
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    names = arrow_schema(kind).names
    missing = [n for n in names if n not in df.columns]
    if missing and len(df):
        raise ManifestError(f"missing columns: {missing}")
    for n in missing:  # empty frame: add typed empty columns
        df[n] = pd.Series([], dtype=object)
    return df[names]


def write_manifest(
    rows: Iterable[Mapping] | pd.DataFrame,
    path: str | os.PathLike,
    *,
    kind: str = "source",
    root: str | os.PathLike | None = None,
    validate: bool = True,
) -> Path:
    """Validate and write a manifest atomically. ``root`` defaults to the manifest's folder.

    Stored portably (:mod:`manifests.paths`): ``root`` relative to the manifest's folder when it
    is in the same tree, else absolute; a protocol manifest's absolute ``path`` values likewise.
    """
    path = Path(path)
    df = to_frame(rows, kind)
    if validate:
        validate_manifest(df, kind=kind, where=str(path))
    schema = arrow_schema(kind)
    folder = path.parent.resolve()
    if kind == "protocol" and len(df):
        df = df.copy()
        df["path"] = [portable_path(p, folder) if os.path.isabs(p) else p for p in df["path"]]
    meta = {
        "kind": kind,
        "root": portable_path(Path(root).resolve(), folder) if root is not None else None,
        "schema_version": SCHEMA_VERSION,
    }
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def manifest_meta(path: str | os.PathLike) -> dict:
    raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def read_manifest(path: str | os.PathLike, *, validate: bool = False) -> pd.DataFrame:
    """Read a manifest; ``df.attrs`` gets ``kind``, ``root`` (absolute) and ``schema_version``.

    A relative ``root`` is taken from the manifest's folder; a protocol manifest's ``path``
    values come back absolute (they are stored relative to its folder when in the same tree).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"manifest not found: {path}")
    df = pq.read_table(path).to_pandas()
    _restore_nullable_ints(df)
    meta = manifest_meta(path)
    folder = path.parent.resolve()
    root = resolve_path(meta["root"], folder) if meta.get("root") else str(folder)
    if meta.get("kind") == "protocol" and len(df):
        df["path"] = [resolve_path(p, folder) for p in df["path"]]
    df.attrs.update(kind=meta.get("kind", "source"), root=root, schema_version=meta.get("schema_version", "?"))
    if validate:
        validate_manifest(df, kind=df.attrs["kind"], where=str(path))
    return df


def _restore_nullable_ints(df: pd.DataFrame) -> None:
    """Nullable integer columns come back from parquet as float64 when they hold nulls: undo that."""
    for name, col in COLUMNS_BY_NAME.items():
        if name in df.columns and col.nullable and pa.types.is_integer(col.type):
            df[name] = df[name].astype(f"Int{col.type.bit_width}")


def absolute_paths(df: pd.DataFrame, root: str | os.PathLike | None = None) -> pd.Series:
    """Absolute audio paths of a manifest's rows (relative paths are taken under its root)."""
    base = Path(root or df.attrs.get("root") or ".")
    return df["path"].map(lambda p: p if os.path.isabs(p) else str(base / p))


def validate_manifest(df: pd.DataFrame, *, kind: str = "source", where: str = "<manifest>") -> None:
    """Raise :class:`ManifestError` listing every problem (up to 20) as ``where: row i, column c: ...``."""
    if kind not in KIND_VALUES:
        raise ManifestError(f"{where}: unknown kind {kind!r}")
    problems: list[str] = []
    names = arrow_schema(kind).names
    for n in names:
        if n not in df.columns:
            problems.append(f"{where}: missing column {n!r}")
    if problems:
        raise ManifestError("\n".join(problems))
    for n in names:
        col = COLUMNS_BY_NAME[n]
        s = df[n]
        if not col.nullable:
            bad = s.isna()
            for i in df.index[bad][:5]:
                problems.append(f"{where}: row {i}, column {n!r}: null in a non-null column")
        if col.allowed is not None:
            bad = ~s.isin(col.allowed) & s.notna()
            for i in df.index[bad][:5]:
                problems.append(f"{where}: row {i}, column {n!r}: {s[i]!r} not in {col.allowed}")
    dup = df["utt_id"].duplicated(keep=False)
    for i in df.index[dup][:5]:
        problems.append(f"{where}: row {i}, column 'utt_id': duplicate id {df.at[i, 'utt_id']!r}")
    # Cross-column rules: the label must agree with is_fake and the taxonomy.
    real = df["label"] == 0
    for i in df.index[real & df["is_fake"].astype(bool)][:5]:
        problems.append(f"{where}: row {i}, column 'is_fake': label 0 (real) but is_fake is True")
    for i in df.index[~real & ~df["is_fake"].astype(bool)][:5]:
        problems.append(f"{where}: row {i}, column 'label': label {df.at[i, 'label']} but is_fake is False")
    for tax in ("vq", "aux", "decoder"):
        mismatch = real != (df[tax] == "real")
        for i in df.index[mismatch][:5]:
            problems.append(f"{where}: row {i}, column {tax!r}: {df.at[i, tax]!r} disagrees with label {df.at[i, 'label']}")
    failed_no_error = (df["status"] == "failed") & (df["error"].fillna("") == "")
    for i in df.index[failed_no_error][:5]:
        problems.append(f"{where}: row {i}, column 'error': status is failed but error is empty")
    if problems:
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ManifestError("\n".join(problems[:20]) + more)


def concat_manifests(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate manifests (e.g. parquet shards) keeping the first frame's attrs."""
    if not frames:
        return to_frame([])
    out = pd.concat(frames, ignore_index=True)
    out.attrs = dict(frames[0].attrs)
    return out
