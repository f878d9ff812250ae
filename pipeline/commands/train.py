"""``ncst train``: train a source-tracing model (a baseline or the codec-taxonomy model) on a protocol directory.

Parses arguments and calls :func:`train.trainer.train`; every flag maps to a
:class:`train.config.TrainConfig` field. Precedence: defaults < preset (``--preset``, else the
recipe's ``train.preset``) < recipe ``train:`` section < flags. ``--model taxonomy --variant M2``
picks one of the taxonomy model's nine variants (:data:`train.taxonomy.VARIANTS`);
``--preset codec_taxonomy`` is its authors' training setup (model taxonomy, M1 unless
``--variant`` says otherwise).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def train_cmd(
    model: Optional[str] = typer.Option(None, "--model", help="mel_lcnn | aasist | w2v2_aasist | taxonomy | refd (default aasist)"),
    backend: Optional[str] = typer.Option(None, "--backend", help="refd model: conformer | aasist (default conformer)"),
    variant: Optional[str] = typer.Option(None, "--variant", help="taxonomy model: S_BIN S_AUX S_DEC S_VQ D_AUX D_DEC D_VQ M1 M2 (default M1)"),
    preset: Optional[str] = typer.Option(None, "--preset", help="start from a named setup, e.g. codec_taxonomy (train.config.PRESETS)"),
    protocol_dir: Optional[Path] = typer.Option(None, "--protocol-dir", help="protocol folder (subsets/<subset>.parquet)"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory (checkpoints, metrics)"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="default 50"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="default 24"),
    lr: Optional[float] = typer.Option(None, "--lr", help="default 5e-4"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda | cuda:N (default cpu)"),
    num_workers: Optional[int] = typer.Option(None, "--num-workers", help="DataLoader workers (default 0)"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last.pt"),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="YAML recipe; its train: section sets defaults"),
    w2v2_model: Optional[str] = typer.Option(None, "--w2v2-model", help="local dir or HF repo id (offline cache)"),
    feature_cache_dir: Optional[Path] = typer.Option(None, "--feature-cache-dir", help="W2V2 feature cache (default <out>/feature_cache)"),
    max_steps_per_epoch: Optional[int] = typer.Option(None, "--max-steps-per-epoch", help="cap steps per epoch (demo runs)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="use at most N rows per subset (demo runs)"),
    random_crop: Optional[bool] = typer.Option(None, "--random-crop/--first-crop", help="training crop (default: first samples)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="default 688"),
    class_column: Optional[str] = typer.Option(None, "--class-column", help="label (ST labels, default) | class_id (a release's extra.class_id, e.g. MLAAD systems)"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
) -> None:
    """Train a source-tracing model; writes best.pt, last.pt, metrics.jsonl/csv and config.json to --out."""
    import logging

    from train.config import TrainConfig
    from train.trainer import train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = dict(
        model=model, variant=variant, refd_backend=backend, protocol_dir=str(protocol_dir) if protocol_dir else None, out_dir=str(out) if out else None,
        epochs=epochs, batch_size=batch_size, lr=lr, device=device, num_workers=num_workers, resume=resume or None,
        w2v2_model=w2v2_model, feature_cache_dir=str(feature_cache_dir) if feature_cache_dir else None,
        max_steps_per_epoch=max_steps_per_epoch, limit=limit, random_crop=random_crop, seed=seed,
        progress=False if no_progress else None, class_column=class_column,
    )
    try:
        config = _config(TrainConfig, recipe, preset, overrides)
        if not config.protocol_dir or not config.out_dir:
            raise ValueError("--protocol-dir and --out are required (or protocol_dir/out_dir in the recipe)")
        run_dir = train(config)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(f"run directory: {run_dir}")
    typer.echo(f"best checkpoint: {run_dir / 'best.pt'}")


def _config(TrainConfig, recipe: Optional[Path], preset: Optional[str], overrides: dict):
    """The run's config: ``preset`` < the recipe's ``train:`` section < ``overrides`` (None = unset)."""
    from train.config import PRESETS

    if preset is None:
        return TrainConfig.from_recipe(recipe, **overrides) if recipe else TrainConfig().replace(**overrides)
    if preset not in PRESETS:
        raise ValueError(f"--preset: unknown preset {preset!r}; known: {sorted(PRESETS)}")
    if recipe is None:
        return TrainConfig.from_preset(preset, **overrides)
    # The recipe's own keys (its section and its per_model entry, paths resolved) win over the
    # preset; what the recipe leaves unset comes from the preset, not from the defaults.
    import yaml

    picked = {k: PRESETS[preset].get(k) for k in ("model", "variant")}
    from_recipe = TrainConfig.from_recipe(recipe, **{**picked, **{k: v for k, v in overrides.items() if v is not None}})
    section = dict((yaml.safe_load(Path(recipe).read_text()) or {}).get("train") or {})
    own = set(section) | set((section.get("per_model") or {}).get(from_recipe.model) or {})
    own |= {"protocol_dir", "out_dir", "feature_cache_dir"} | {k for k, v in overrides.items() if v is not None}
    own -= {"preset", "per_model"}
    return TrainConfig.from_preset(preset, **{k: v for k, v in from_recipe.to_dict().items() if k in own})


COMMANDS = [("train", train_cmd)]
