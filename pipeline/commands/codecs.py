"""``ncst codecs``, ``ncst weights`` and ``ncst resynth``: the codec catalog from the command line."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer


def _weights_found(variant) -> str:
    from codec_wrappers.weights import WeightsNotFound, candidates

    if variant.checkpoint.get("needs_weights") is False:
        return "not needed"
    try:
        for cand in candidates(variant):
            if cand.complete:
                return cand.source
    except WeightsNotFound:
        pass
    return "no official" if variant.checkpoint.get("available") is False else "missing"


def codecs(
    role: Optional[str] = typer.Option(None, "--role", help="only this ST role: id, ood, diff_config, ood_config, extra"),
    family: Optional[str] = typer.Option(None, "--family", help="only this codec family"),
) -> None:
    """List the codec variants: rate, bitrate, codebooks, taxonomy, ST label, implemented?, weights found?"""
    import difflib

    from rich.console import Console
    from rich.table import Table

    from codec_wrappers.catalog import ST_ROLES, load_catalog, variants_by
    from codec_wrappers.registry import family_status

    families = sorted({v.family for v in load_catalog().values()})
    for flag, value, allowed in (("--role", role, ST_ROLES), ("--family", family, families)):
        if value is not None and value not in allowed:
            close = difflib.get_close_matches(value, allowed, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            _user_error(f"ncst codecs: {flag} {value!r} is not one of {', '.join(allowed)}{hint}")
    # Fit the terminal (rich reads COLUMNS / the tty). Below 130 columns: no borders, short taxonomy
    # names, and the codec / condition / implemented columns dropped (`--family` and `ncst weights` say those);
    # weights: found / missing / none (no official weights exist) / - (needs none).
    from rich import box

    console = Console()
    wide = console.width >= 130
    short = {"semantic": "sem", "disentangle": "dis", "frequency": "freq"}
    cols = ("id", "codec", "sr", "kbps", "q", "VQ/AUX/DEC", "ST", "role", "condition", "implemented", "weights")
    if not wide:
        cols = ("id", "sr", "kbps", "q", "VQ/AUX/DEC", "ST", "role", "weights")
    table = Table(title="ncst codec variants", box=box.SQUARE if wide else None, pad_edge=wide,
                  collapse_padding=not wide, padding=(0, 1) if wide else (0, 1, 0, 0))
    for col in cols:
        table.add_column(col, no_wrap=True)
    for v in variants_by(st_role=role, family=family):
        status = family_status(v)
        impl = "yes" if status in ("built-in", "plugin", "registered") else status.split(" (")[0].split(":")[0]
        tax = (v.taxonomy.vq, v.taxonomy.aux, v.taxonomy.decoder)
        cells = {
            "id": v.id, "codec": v.codec, "sr": f"{v.sample_rate / 1000:g}k", "kbps": f"{v.bitrate_kbps:g}",
            "q": str(v.n_codebooks), "VQ/AUX/DEC": "/".join(t if wide else short.get(t, t) for t in tax),
            "ST": "-" if v.st_label is None else str(v.st_label), "role": v.st_role,
            "condition": v.condition or "", "implemented": impl, "weights": _weights_found(v),
        }
        if not wide:  # short words: a found source's name (NCST_WEIGHTS_DIR, hf_cache) is long
            cells["weights"] = {"missing": "missing", "not needed": "-", "no official": "none"}.get(cells["weights"], "found")
        table.add_row(*(cells[c] for c in cols))
    console.print(table)


def _size(n: int | None) -> str:
    if n is None:
        return "size unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # pragma: no cover


def _user_error(msg: str) -> None:
    typer.secho(msg, fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _download(ids: list[str]) -> None:
    from codec_wrappers.catalog import get_variant
    from codec_wrappers.download import DownloadError, download_variant
    from codec_wrappers.weights import weights_dir

    if not ids:
        _user_error("ncst weights download: name at least one variant id (`ncst codecs` lists them)")
    try:
        chosen = [get_variant(i) for i in ids]
    except KeyError as exc:
        _user_error(str(exc.args[0]))
    root = weights_dir()
    for v in chosen:
        try:
            got = download_variant(v, root)
        except DownloadError as exc:
            _user_error(str(exc))
        except Exception as exc:  # network / hub errors: one line, not a traceback
            _user_error(f"{v.id}: download failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        for name, target in got.files:
            typer.echo(f"{v.id}: {name} -> {target} ({_size(os.path.getsize(target))})")
    typer.echo(f"weights dir: {root}")


def weights(
    variants: Optional[list[str]] = typer.Argument(
        None, help="variant ids (default: all); `download VARIANT...` fetches their official files"),
    hash_files: bool = typer.Option(True, "--sha256/--no-sha256", help="hash the files found"),
    remote: bool = typer.Option(False, "--remote", help="ask the Hugging Face hub for the file sizes"),
) -> None:
    """Where each variant's weights are expected and which are present; `ncst weights download VARIANT...`
    downloads them into the weights dir ($NCST_WEIGHTS_DIR, default ~/.cache/ncst/weights)."""
    from codec_wrappers.catalog import get_variant, load_catalog
    from codec_wrappers.weights import candidates, checkpoint_files, sha256_file, weights_dir

    variants = list(variants or [])
    if variants and variants[0] == "download":
        _download(variants[1:])
        return
    try:
        chosen = [get_variant(i) for i in variants] if variants else list(load_catalog().values())
    except KeyError as exc:
        _user_error(str(exc.args[0]))
    root = weights_dir()
    for v in chosen:
        ck = v.checkpoint
        typer.secho(f"{v.id}  ({v.codec}, family {v.family})", bold=True)
        if ck.get("needs_weights") is False:
            typer.echo("  needs no weights")
            continue
        if ck.get("available") is False:
            typer.echo("  no official weights exist")
        if ck.get("hf_repo"):
            typer.echo(f"  hf repo:  {ck['hf_repo']}")
        if ck.get("url"):
            typer.echo(f"  url:      {ck['url']}")
        names = checkpoint_files(v)
        typer.echo(f"  files:    {', '.join(names) if names else '(none listed)'}")
        if remote and ck.get("hf_repo"):
            from codec_wrappers.download import remote_sizes

            try:
                sizes = remote_sizes(v)
                typer.echo("  sizes:    " + ", ".join(f"{n} {_size(s)}" for n, s in sizes.items()))
            except Exception as exc:  # offline: say so, keep listing
                typer.echo(f"  sizes:    unknown ({type(exc).__name__})")
        typer.echo(f"  put in:   {root / v.id}/  (or `ncst weights download {v.id}`)")
        if ck.get("notes"):
            typer.echo(f"  notes:    {ck['notes']}")
        for cand in candidates(v):
            for name, path in cand.files:
                if path is None:
                    typer.echo(f"  [missing] {cand.source}: {cand.location} / {name}")
                else:
                    digest = sha256_file(path) if hash_files else "-"
                    typer.echo(f"  [found]   {cand.source}: {path}  {_size(os.path.getsize(path))}  sha256 {digest}")


def resynth_file(
    variant: str, in_path: Path, out_path: Path, weights: str | None = None,
    device: str = "cpu", out_sr: int | None = None,
) -> dict:
    """Resynthesise one audio file through ``variant``: any input rate, soxr to the codec rate.

    Returns a small record (variant, weights_id, sample_rate, num_samples).
    """
    import torch

    from codec_wrappers.registry import load_codec
    from pipeline.audio_io import load_audio, resample, write_audio

    codec = load_codec(variant, weights=weights, device=device)
    audio, sr = load_audio(in_path, target_sr=codec.sample_rate)
    x = torch.from_numpy(audio).view(1, 1, -1)
    y = codec.resynthesize(x, torch.tensor([x.shape[-1]]))[0, 0].cpu().numpy()
    rate = codec.sample_rate
    if out_sr is not None and out_sr != rate:
        y, rate = resample(y, rate, out_sr), out_sr
    fmt = "FLAC" if Path(out_path).suffix.lower() == ".flac" else "WAV"
    write_audio(out_path, y, rate, fmt=fmt)
    return {"variant": codec.variant.id, "weights_id": codec.weights.weights_id,
            "sample_rate": rate, "num_samples": int(y.shape[-1])}


def resynth(
    variant: str = typer.Argument(..., help="variant id (see `ncst codecs`)"),
    in_wav: Path = typer.Argument(..., exists=True, dir_okay=False, help="input audio (any rate)"),
    out_wav: Path = typer.Argument(..., help="output .wav or .flac"),
    weights: Optional[str] = typer.Option(None, "--weights", help="random[:SEED] or a checkpoint file/folder (default: official files)"),
    device: str = typer.Option("cpu", "--device", help="torch device"),
    out_sr: Optional[int] = typer.Option(None, "--out-sr", help="output rate (default: the codec's native rate)"),
) -> None:
    """Resynthesise one file through a codec variant (written at the codec's native rate)."""
    from codec_wrappers.registry import FamilyNotImplemented
    from codec_wrappers.weights import WeightsNotFound

    try:
        info = resynth_file(variant, in_wav, out_wav, weights=weights, device=device, out_sr=out_sr)
    except (KeyError, WeightsNotFound, FamilyNotImplemented, FileNotFoundError, ValueError) as exc:
        typer.secho(str(exc.args[0] if isinstance(exc, KeyError) else exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    if info["weights_id"].startswith("random"):
        typer.secho(f"WARNING: seeded random weights ({info['weights_id']}): not the real codec.",
                    fg=typer.colors.YELLOW, err=True)
    typer.echo(f"{out_wav}: {info['variant']} {info['sample_rate']} Hz, {info['num_samples']} samples, weights {info['weights_id']}")


COMMANDS = [("codecs", codecs), ("weights", weights), ("resynth", resynth)]
