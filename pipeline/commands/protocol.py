"""``ncst protocol recipe.yaml``: build the study's protocol subsets from source and fake manifests.

Only parses arguments and calls :func:`pipeline.protocol.build_protocol` (or, with
``--splits-only``, :func:`pipeline.protocol.write_split_sources`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def protocol(
    recipe: Path = typer.Argument(..., help="recipe YAML with a protocol: section"),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="run folder (default: the recipe's output_dir)"),
    splits_only: bool = typer.Option(False, "--splits-only", help="only write protocol/sources/{train,dev,eval}.parquet (no fakes needed)"),
) -> None:
    """Split the real sources, attach every fake to its source's split, write protocol/subsets/<subset>.parquet, README.md and summary.csv."""
    from rich.console import Console
    from rich.table import Table

    from pipeline.protocol import ProtocolError, build_protocol, summarize_protocol, write_split_sources

    console = Console(soft_wrap=True)
    try:
        if splits_only:
            for split, path in write_split_sources(recipe, output_dir).items():
                console.print(f"{split}: {path}", markup=False, highlight=False)
            return
        subsets = build_protocol(recipe, output_dir)
    except (ProtocolError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    summary = summarize_protocol(subsets)
    table = Table(title="protocol: rows per subset x label x condition")
    for col in summary.columns:
        table.add_column(str(col), justify="right" if col in ("label", "rows") else "left")
    for rec in summary.itertuples(index=False):
        table.add_row(*(str(v) for v in rec))
    console.print(table)
    for name, df in subsets.items():
        console.print(f"{name}: {len(df)} rows", markup=False, highlight=False)
    if output_dir is None:
        from pipeline.protocol import load_protocol_config

        output_dir = load_protocol_config(recipe)[1]
    pdir = Path(output_dir).resolve() / "protocol"
    info = json.loads((pdir / "protocol.json").read_text(encoding="utf-8"))
    dropped = {k: v for k, v in info.get("failed_rows_dropped", {}).items() if v}
    for what, n in {**info.get("left_out", {}), **{f"failed rows of {k}": v for k, v in dropped.items()}}.items():
        console.print(f"left out: {n} {what}", markup=False, highlight=False)
    console.print(f"written: {pdir} (subsets/<subset>.parquet, README.md, summary.csv, protocol.json)", markup=False, highlight=False)


COMMANDS = [("protocol", protocol)]
