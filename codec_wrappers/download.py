"""``ncst weights download``: fetch official checkpoints into the weights dir.

Layout under :func:`codec_wrappers.weights.weights_dir` (``$NCST_WEIGHTS_DIR`` or
``~/.cache/ncst/weights``)::

    hf/                       a Hugging Face hub cache (hf_hub_download's blobs + snapshots)
    url/<file name>           files of URL variants (one per URL)
    <variant_id>/<file>       symlinks into hf/ or url/, the place resolution looks first

Variants that share a checkpoint (the five EnCodec bandwidths, FunCodec's three ds640 rates) get
their own symlinks to one file on disk. Hugging Face downloads go through huggingface_hub, so
``HF_ENDPOINT``, ``HF_TOKEN`` and its retries apply; URL files are streamed with urllib to a
``.part`` file and renamed when complete.
"""
from __future__ import annotations

import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from codec_wrappers.base import Variant
from codec_wrappers.weights import _variant, checkpoint_files, weights_dir


class DownloadError(RuntimeError):
    """A variant whose weights cannot be fetched automatically; the message says why."""


@dataclass(frozen=True)
class Downloaded:
    variant: str
    files: tuple[tuple[str, str], ...]  # (catalog file name, shared file the link points at)


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.resolve() == target.resolve():
            return
        if link.is_dir() and not link.is_symlink():
            raise DownloadError(f"{link}: a folder is in the way of the weights link")
        link.unlink()
    link.symlink_to(target)


def _fetch_url(url: str, dest: Path) -> Path:
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as out:  # noqa: S310 - catalog URLs
        shutil.copyfileobj(resp, out, 1 << 20)
    os.replace(part, dest)
    return dest


def download_variant(variant: str | Variant, root: Path | None = None) -> Downloaded:
    """Download ``variant``'s catalog files (once per shared file) and link them under ``root/<id>/``."""
    variant = _variant(variant)
    root = Path(root) if root is not None else weights_dir()
    ck = variant.checkpoint
    names = checkpoint_files(variant)
    if ck.get("needs_weights") is False or not names:
        raise DownloadError(f"{variant.id}: needs no weights file")
    if ck.get("available") is False:
        raise DownloadError(f"{variant.id}: no official weights exist ({str(ck.get('notes', '')).strip()})")
    got: list[tuple[str, str]] = []
    if ck.get("hf_repo"):
        from huggingface_hub import hf_hub_download

        for name in names:
            path = Path(hf_hub_download(repo_id=str(ck["hf_repo"]), filename=name, cache_dir=str(root / "hf")))
            got.append((name, str(path.resolve())))
    elif ck.get("url"):
        url = str(ck["url"])
        if url.endswith(".zip") or len(names) != 1:
            raise DownloadError(f"{variant.id}: {url} is an archive; download it, unpack it and put "
                                f"{', '.join(names)} in {root / variant.id}/")
        got.append((names[0], str(_fetch_url(url, root / "url" / Path(names[0]).name))))
    else:
        raise DownloadError(f"{variant.id}: the catalog names no Hugging Face repo or URL")
    for name, target in got:
        _link(root / variant.id / name, Path(target))
    return Downloaded(variant.id, tuple(got))


def remote_sizes(variant: str | Variant) -> dict[str, int | None]:
    """Size in bytes of each catalog file from the hub's metadata (HEAD requests); None if unknown."""
    variant = _variant(variant)
    repo = variant.checkpoint.get("hf_repo")
    names = checkpoint_files(variant)
    if not repo:
        return {n: None for n in names}
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    return {n: get_hf_file_metadata(hf_hub_url(str(repo), n)).size for n in names}
