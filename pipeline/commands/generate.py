"""``ncst generate recipe.yaml``: resynthesise the recipe's sources through its codec variants.

Only parses arguments and calls :func:`pipeline.generate.generate_from_recipe`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def generate(
    recipe: Path = typer.Argument(..., help="recipe YAML with a 'generate:' section"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="skip items already made (ok row, file of the recorded size; --verify: matching sha256)"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: recipe's, else a local Ray)"),
    executor: Optional[str] = typer.Option(None, "--executor", help="ray | local (default: the recipe's, else ray)"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="only the first N usable source utterances"),
    weights: Optional[str] = typer.Option(None, "--weights", help="override weights for every variant, e.g. random:0"),
    node_ip: Optional[str] = typer.Option(None, "--node-ip", help="Ray node IP of this driver (e.g. 127.0.0.2)"),
    temp_dir: Optional[str] = typer.Option(None, "--temp-dir", help="Ray temp dir when Ray is started here"),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", min=1, help="logical CPUs of a Ray started here"),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp32 | bf16 | bf16_fp32vq for every variant (bf16 "
                                            "flips codes: see `python -m bench precision`)"),
    io_threads: Optional[int] = typer.Option(None, "--io-threads", min=0, help="local executor: decode/write threads "
                                             "around the model (0 = in turn)"),
    max_item_seconds: Optional[float] = typer.Option(None, "--max-item-seconds", min=0.0, help="longer sources fail "
                                                     "at plan time, before any model runs (default: the recipe's, else 600)"),
    verify_sources: bool = typer.Option(False, "--verify-sources", help="hash each source; a mismatch with its "
                                        "manifest's sha256 fails the item ('source changed since ingest')"),
    verify: bool = typer.Option(False, "--verify", help="resume re-hashes every finished file (default: a fast "
                                "check that each file exists with the size its row records)"),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help="accept source paths outside their "
                                            "manifest's root (../x.wav, /abs/x.wav); refused by default"),
) -> None:
    """Make the fake audio and manifests of a recipe (resumable; prints a summary)."""
    from pipeline.generate import GenerateError, generate_from_recipe
    from pipeline.plan import PlanError
    from pipeline.recipe import RecipeError

    if executor is not None and executor not in ("ray", "local"):
        raise typer.BadParameter("--executor must be ray or local", param_hint="--executor")
    from codec_wrappers.precision import PRECISIONS

    if precision is not None and precision not in PRECISIONS:
        raise typer.BadParameter(f"--precision must be one of {', '.join(PRECISIONS)}", param_hint="--precision")
    try:
        summary = generate_from_recipe(recipe, resume=resume, executor=executor, address=address, limit=limit,
                                       weights=weights, node_ip=node_ip, temp_dir=temp_dir, num_cpus=num_cpus,
                                       precision=precision, io_threads=io_threads, max_item_seconds=max_item_seconds,
                                       verify_sources=verify_sources or None, allow_outside_root=allow_outside_root or None,
                                       verify=verify or None)
    except (RecipeError, PlanError, GenerateError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    if summary.done + summary.skipped == 0 and summary.planned:
        typer.secho("error: no item succeeded", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)


COMMANDS = [("generate", generate)]
