"""The dataset card: a README.md beside a dataset's parquet files, made from its manifests.

It opens with the Hugging Face YAML header (config, splits, licence field, task), so
``datasets.load_dataset(dataset_dir)`` reads the manifest with no glue, then documents the
columns (from the schema), the source corpora and where each codec's weights came from.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from .atomic import write_text_atomic
from .layout import SUBSETS_DIR, hf_yaml_header
from .schema import COLUMNS, PROTOCOL_COLUMNS, SCHEMA_VERSION

# What the card's YAML points at, relative to the dataset folder: the fake manifest.
DATASET_SPLITS = (("fake", "manifests/fake.parquet"),)


def _table(df: pd.DataFrame) -> str:
    """A small Markdown table (pandas' ``to_markdown``; cells as text, numbers not re-parsed)."""
    cells = df.astype(str)
    cells.columns = [str(c) for c in df.columns]
    return cells.to_markdown(index=False, tablefmt="pipe", disable_numparse=True)


def column_docs(kind: str = "fake") -> str:
    """The schema's column documentation as a Markdown table."""
    cols = COLUMNS + (PROTOCOL_COLUMNS if kind == "protocol" else ())
    return _table(pd.DataFrame([(f"`{c.name}`", str(c.type), "yes" if c.nullable else "no", c.doc) for c in cols],
                               columns=["column", "type", "nullable", "meaning"]))


def _weights_table(df: pd.DataFrame) -> pd.DataFrame:
    fakes = df[df["variant"] != ""]
    if not len(fakes):
        return pd.DataFrame(columns=["variant", "codec", "weights_id", "rows"])
    return fakes.groupby(["variant", "codec", "weights_id"], dropna=False).size().reset_index(name="rows")


def card_text(df: pd.DataFrame, title: str = "ncst dataset", *, splits: Sequence[tuple[str, str]] = DATASET_SPLITS,
              kind: str = "fake", license: str = "other") -> str:
    """Markdown text (with the HF YAML header) of the dataset card for manifest ``df``.

    ``splits``: ``(split name, parquet file relative to the card)`` pairs for the header.
    """
    ok = df[df["status"] == "ok"]
    weights = sorted(w for w in df["weights_id"].unique() if w)
    random_weights = [w for w in weights if w.startswith("random")]
    corpora = sorted(c for c in df["corpus"].unique() if c)
    parts = [hf_yaml_header(splits, pretty_name=title, license=license), f"# {title}", ""]
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
        f"- source corpora: {', '.join(corpora) if corpora else 'n/a'}",
        f"- weights: {', '.join(weights) if weights else 'n/a (real audio only)'}",
        "",
        "## Licence",
        "",
        "`license: other`: the audio derives from the source corpora above and carries each one's "
        "licence (see each corpus's distribution); codec weights carry their authors' licences.",
        "",
        "## Reading it",
        "",
        "`datasets.load_dataset(folder)` reads the splits named in the YAML header; the parquet files "
        "open with pandas, pyarrow and Ray Data as they are. `path` is relative to the manifest's root "
        "(parquet metadata `ncst.root`, itself relative to the manifest's folder unless absolute). "
        "`split` is the **source corpus's own split** (e.g. VCTK has none, AISHELL-3 train/test); a "
        "protocol's subsets are in the `subset` column of protocol files. `ncst export hf` / "
        "`ncst export lhotse` write self-contained copies with decoded-audio features.",
        "",
        "## Rows per corpus and corpus split",
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
        "## Where each codec's weights came from",
        "",
        "`random:<seed>`: seeded random weights; `sha256:<...>`: the checkpoint files' hash.",
        "",
        _table(_weights_table(df)),
        "",
        "## Columns",
        "",
        column_docs(kind),
        "",
    ]
    if (df["status"] == "failed").any():
        failed = df[df["status"] == "failed"][["utt_id", "path", "error"]].head(50)
        parts += ["## Failed rows (first 50)", "", _table(failed), ""]
    return "\n".join(parts)


def write_card(df: pd.DataFrame, directory: str | os.PathLike, title: str = "ncst dataset", **kwargs) -> Path:
    """Write ``<directory>/README.md``; ``kwargs`` go to :func:`card_text`."""
    out = Path(directory) / "README.md"
    write_text_atomic(out, card_text(df, title, **kwargs))
    return out


def write_protocol_card(subsets: dict[str, pd.DataFrame], protocol_dir: str | os.PathLike,
                        title: str = "ncst protocol") -> Path:
    """``<protocol_dir>/README.md``: one HF split per subset (``subsets/<name>.parquet``)."""
    frames = [df for df in subsets.values() if len(df)]
    allrows = pd.concat(frames, ignore_index=True) if frames else None
    splits = [(name, f"{SUBSETS_DIR}/{name}.parquet") for name in subsets]
    if allrows is None:
        text = hf_yaml_header(splits, pretty_name=title) + f"# {title}\n\nNo rows.\n"
    else:
        text = card_text(allrows, title, splits=splits, kind="protocol")
        counts = _table(pd.DataFrame([(n, len(df)) for n, df in subsets.items()], columns=["subset", "rows"]))
        text += ("\n## Subsets\n\nEach subset is one split (`subset` column); in protocol files `path` is "
                 "relative to the file's folder when the audio is in the same tree, else absolute.\n\n" + counts + "\n")
    out = Path(protocol_dir) / "README.md"
    write_text_atomic(out, text)
    return out


def clear_stale_subsets(protocol_dir: str | os.PathLike, keep: Sequence[str]) -> None:
    """Remove subset files a rebuild no longer writes (and old-layout copies), so that readers of
    the folder see exactly the subsets of the card."""
    d = Path(protocol_dir)
    for p in (d / SUBSETS_DIR).glob("*.parquet"):
        if p.stem not in keep:
            p.unlink()
    for name in keep:  # an older build's <subset>.parquet beside the reports
        (d / f"{name}.parquet").unlink(missing_ok=True)
