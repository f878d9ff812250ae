"""``ncst study recipe.yaml``: the ST-Codecfake tables, plots and HTML report for trained runs."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def study(
    recipe: Path = typer.Argument(..., exists=True, dir_okay=False, help="recipe YAML with a 'study:' section"),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="run dir or name under <output_dir>/runs (repeatable); overrides study.models"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="output folder (default: study.output or <output_dir>/study)"),
    protocol_dir: Optional[Path] = typer.Option(None, "--protocol-dir", help="protocol folder (default: <output_dir>/protocol)"),
    device: Optional[str] = typer.Option(None, help="torch device for predictions, e.g. cpu, cuda"),
    batch_size: Optional[int] = typer.Option(None, help="prediction batch size"),
    no_plots: bool = typer.Option(False, "--no-plots", help="skip the plots"),
    class_column: Optional[str] = typer.Option(None, "--class-column", help="label (ST labels, default) | class_id (MLAAD systems); as the models were trained"),
) -> None:
    """Run the study of a recipe: Tables 3-6 (CSV + Markdown), plots, report.html, results.json."""
    import logging

    from train.study import load_study_config, run_study

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    overrides = dict(
        models=list(model) if model else None,
        output=str(output.resolve()) if output else None,
        protocol_dir=str(protocol_dir.resolve()) if protocol_dir else None,
        device=device,
        batch_size=batch_size,
        plots=False if no_plots else None,
        class_column=class_column,
    )
    try:  # recipe mistakes are one line, before any work starts
        config = load_study_config(recipe, **overrides)
    except (ValueError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    result = run_study(config)
    if result.results.get("random_weights"):
        typer.secho("WARNING: made with seeded random weights; the numbers say nothing about the real codecs.",
                    fg=typer.colors.RED, bold=True, err=True)
    failed = [m for m, v in result.results["models"].items() if v.get("status") != "ok"]
    typer.echo(f"report:  {result.report}")
    typer.echo(f"results: {result.results_json}")
    for name in sorted(result.tables):
        if name.endswith(".md"):
            typer.echo(f"table:   {result.tables[name]}")
    if failed:
        typer.secho(f"failed models: {', '.join(failed)} (see report)", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)


COMMANDS = [("study", study)]
