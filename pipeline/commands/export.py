"""``ncst export {lhotse,hf} SOURCE -o OUT``: a dataset, protocol folder or manifest for other toolkits.

Only parses arguments and calls :func:`pipeline.export.export_lhotse` / :func:`pipeline.export.export_hf`.
"""
from __future__ import annotations

from pathlib import Path

import typer

APP = typer.Typer(help="Export a dataset, a protocol folder or a manifest to lhotse or Hugging Face datasets.",
                  no_args_is_help=True)

_SOURCE_HELP = "dataset folder (manifests/fake.parquet), protocol folder (one part per subset) or manifest file"


def _fail(exc: Exception, package: str = "") -> None:
    hint = f" (ncst export needs the '{package}' package: pip install {package})" if isinstance(exc, ImportError) else ""
    typer.secho(f"error: {exc}{hint}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@APP.command("lhotse")
def lhotse(
    source: Path = typer.Argument(..., help=_SOURCE_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="folder for ncst_{recordings,supervisions,cuts}_<part>.jsonl.gz"),
) -> None:
    """lhotse RecordingSet + SupervisionSet + CutSet per part; ncst labels are supervision custom fields."""
    from pipeline.export import ExportError, export_lhotse

    try:
        written = export_lhotse(source, out)
    except (ExportError, FileNotFoundError, ImportError) as exc:
        _fail(exc, "lhotse")
    for part, paths in written.items():
        typer.echo(f"{part}: {paths['cuts']}")


@APP.command("hf")
def hf(
    source: Path = typer.Argument(..., help=_SOURCE_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="folder that datasets.load_dataset(OUT) opens"),
    embed: bool = typer.Option(True, "--embed/--reference", help="store audio bytes (self-contained) or absolute paths"),
) -> None:
    """A Hugging Face datasets folder: Audio feature, ClassLabel names, one split per part."""
    from pipeline.export import ExportError, export_hf

    try:
        path = export_hf(source, out, embed=embed)
    except (ExportError, FileNotFoundError, ImportError) as exc:
        _fail(exc, "datasets")
    typer.echo(f"wrote {path} (load with datasets.load_dataset({str(path)!r}))")
