"""The dataset card: a README.md beside a dataset's parquet files, made from its manifests."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .atomic import write_text_atomic
from .schema import SCHEMA_VERSION


def _table(df: pd.DataFrame) -> str:
    """A small Markdown table (pandas' ``to_markdown``; cells as text, numbers not re-parsed)."""
    cells = df.astype(str)
    cells.columns = [str(c) for c in df.columns]
    return cells.to_markdown(index=False, tablefmt="pipe", disable_numparse=True)


def card_text(df: pd.DataFrame, title: str = "ncst dataset") -> str:
    """Markdown text of the dataset card for manifest ``df``."""
    ok = df[df["status"] == "ok"]
    weights = sorted(w for w in df["weights_id"].unique() if w)
    random_weights = [w for w in weights if w.startswith("random")]
    parts = [f"# {title}", ""]
    if random_weights:
        parts += [
            "> **Made with seeded random codec weights** "
            f"({', '.join(random_weights)}): the fake audio is not what the official codecs produce.",
            "",
        ]
    hours = ok["duration_s"].fillna(0).sum() / 3600
    parts += [
        f"- schema version: {SCHEMA_VERSION}",
        f"- rows: {len(df)} ({len(ok)} ok, {len(df) - len(ok)} failed)",
        f"- audio: {hours:.3f} h",
        f"- weights: {', '.join(weights) if weights else 'n/a (real audio only)'}",
        "",
        "## Rows per corpus and split",
        "",
        _table(df.groupby(["corpus", "split"], dropna=False).size().reset_index(name="rows")),
        "",
        "## Rows per label",
        "",
        _table(
            df.groupby(["label", "label_name", "domain", "vq", "aux", "decoder"], dropna=False)
            .size()
            .reset_index(name="rows")
        ),
        "",
    ]
    if (df["status"] == "failed").any():
        failed = df[df["status"] == "failed"][["utt_id", "path", "error"]].head(50)
        parts += ["## Failed rows (first 50)", "", _table(failed), ""]
    return "\n".join(parts)


def write_card(df: pd.DataFrame, directory: str | os.PathLike, title: str = "ncst dataset") -> Path:
    out = Path(directory) / "README.md"
    write_text_atomic(out, card_text(df, title))
    return out
