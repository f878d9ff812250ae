"""Where a variant's weights come from, how checkpoint files are read, and seeded random weights.

Resolution order (:func:`resolve_weights`), first hit wins:

1. ``weights`` given: ``"random"`` / ``"random:<seed>"`` (seeded official architecture, recorded
   as ``weights_id = random:<seed>``), or a path to a checkpoint file or to a folder holding the
   files the catalog names;
2. ``<weights dir>/<variant_id>/<file>`` (or ``<weights dir>/<file>``) for every file the catalog
   names, where the weights dir is ``$NCST_WEIGHTS_DIR`` or else ``$XDG_CACHE_HOME/ncst/weights``
   (``~/.cache/ncst/weights``), the folder ``ncst weights download`` fills (codec_wrappers/download.py);
3. the Hugging Face cache, offline (``huggingface_hub.try_to_load_from_cache``), for ``hf_repo``
   variants; the torch hub cache (EnCodec) or ``~/.cache/descript/dac`` (DAC) for URL variants;
4. otherwise :class:`WeightsNotFound`, naming the repo/URL, the file names and where to put them.

Checkpoints are read with safetensors or ``torch.load(weights_only=True)``, never by unpickling
arbitrary objects. Every resolved file is hashed (sha256) and recorded.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from codec_wrappers.base import ResolvedWeights, Variant

WEIGHTS_DIR_ENV = "NCST_WEIGHTS_DIR"


def weights_dir() -> Path:
    """Where ncst keeps downloaded weights: ``$NCST_WEIGHTS_DIR``, else the user cache
    (``$XDG_CACHE_HOME/ncst/weights``, ``~/.cache/ncst/weights`` by default)."""
    root = os.environ.get(WEIGHTS_DIR_ENV)
    if root:
        return Path(root).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "ncst" / "weights"


class WeightsNotFound(FileNotFoundError):
    """No weights for a variant; the message says exactly what to download and where to put it."""


def _variant(variant: str | Variant) -> Variant:
    if isinstance(variant, Variant):
        return variant
    from codec_wrappers.catalog import get_variant

    return get_variant(variant)


def parse_random(weights: str | None) -> int | None:
    """The seed of ``"random"`` (0) or ``"random:<seed>"``; None for anything else."""
    if weights is None or not str(weights).startswith("random"):
        return None
    text = str(weights)
    if text == "random":
        return 0
    head, _, seed = text.partition(":")
    if head != "random" or not seed.lstrip("-").isdigit():
        raise ValueError(f"bad weights spec {text!r}: use 'random' or 'random:<integer seed>'")
    return int(seed)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def checkpoint_files(variant: Variant) -> list[str]:
    """File names (relative paths) the catalog lists for ``variant``."""
    files = variant.checkpoint.get("files") or []
    if isinstance(files, Mapping):
        files = list(files.values())
    return [str(f) for f in files]


@dataclass(frozen=True)
class Candidate:
    """One place a variant's weights may be (for ``ncst weights``)."""

    source: str  # "NCST_WEIGHTS_DIR" | "hf_cache" | "torch_hub" | "descript"
    location: str  # folder, repo id or cache folder
    files: tuple[tuple[str, str | None], ...]  # (file name, absolute path if present)

    @property
    def complete(self) -> bool:
        return bool(self.files) and all(p is not None for _, p in self.files)


def _package_cache_dir(kind: str) -> Path | None:
    if kind == "torch_hub":
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints"
    if kind == "descript":
        return Path.home() / ".cache" / "descript" / "dac"
    return None


def _hf_cached(repo: str, filename: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return None
    path = try_to_load_from_cache(repo_id=repo, filename=filename)
    return path if isinstance(path, str) and os.path.isfile(path) else None


def candidates(variant: str | Variant) -> list[Candidate]:
    """Every automatic location (steps 2-3 of the resolution order) and which files are there."""
    variant = _variant(variant)
    names = checkpoint_files(variant)
    if not names:
        return []
    out: list[Candidate] = []
    root = weights_dir()
    source = WEIGHTS_DIR_ENV if os.environ.get(WEIGHTS_DIR_ENV) else "weights_dir"
    for base in (root / variant.id, root):
        found = tuple((n, str(base / n) if (base / n).is_file() else None) for n in names)
        out.append(Candidate(source, str(base), found))
    repo = variant.checkpoint.get("hf_repo")
    if repo:
        out.append(Candidate("hf_cache", str(repo), tuple((n, _hf_cached(repo, n)) for n in names)))
    cache = variant.checkpoint.get("cache")
    cache_dir = _package_cache_dir(cache) if cache else None
    if cache_dir is not None:
        found = tuple((n, str(cache_dir / n) if (cache_dir / n).is_file() else None) for n in names)
        out.append(Candidate(str(cache), str(cache_dir), found))
    return out


def _files_in_dir(variant: Variant, folder: Path) -> list[Path] | None:
    names = checkpoint_files(variant)
    if not names:
        return None
    for base in (folder, folder / variant.id):
        paths = [base / n for n in names]
        if all(p.is_file() for p in paths):
            return paths
        # A folder holding the files flat (basenames) also works, e.g. an unpacked HF snapshot.
        flat = [base / Path(n).name for n in names]
        if len(set(flat)) == len(flat) and all(p.is_file() for p in flat):
            return flat
    return None


def _resolved(paths: list, source: str) -> ResolvedWeights:
    paths = [Path(p).resolve() for p in paths]
    return ResolvedWeights(
        kind="files",
        files=tuple(str(p) for p in paths),
        sha256=tuple(sha256_file(p) for p in paths),
        source=source,
    )


def how_to_get(variant: Variant) -> str:
    """A human instruction: what to download for ``variant`` and where to put it."""
    names = checkpoint_files(variant)
    ck = variant.checkpoint
    root = weights_dir()
    lines = [f"no weights found for codec variant {variant.id!r} ({variant.codec})."]
    if ck.get("available") is False:
        lines.append("No official weights exist for it. " + str(ck.get("notes", "")).strip())
    if ck.get("hf_repo"):
        lines.append(f"Download from Hugging Face repo {ck['hf_repo']}: {', '.join(names)}")
        lines.append(f"  e.g. ncst weights download {variant.id}")
        lines.append(f"  or   hf download {ck['hf_repo']} {' '.join(names)} --local-dir {root}/{variant.id}")
    if ck.get("url"):
        lines.append(f"Download {ck['url']}")
        if not str(ck["url"]).endswith(".zip"):
            lines.append(f"  e.g. ncst weights download {variant.id}")
    if names:
        lines.append(f"Put the file(s) at {root}/{variant.id}/ ({', '.join(names)}),")
        lines.append("or pass --weights PATH (a checkpoint file or a folder with those files),")
    lines.append("or use --weights random:<seed> for the official architecture with seeded random weights.")
    if ck.get("notes") and ck.get("available") is not False:
        lines.append(f"Note: {ck['notes']}")
    return "\n".join(lines)


def resolve_weights(variant: str | Variant, weights: str | os.PathLike | None = None) -> ResolvedWeights:
    """Find ``variant``'s weights by the resolution order in the module docstring.

    Raises :class:`WeightsNotFound` (with download instructions) or ``FileNotFoundError`` for an
    explicit path that does not exist.
    """
    variant = _variant(variant)
    if weights is not None:
        seed = parse_random(str(weights))
        if seed is not None:
            return ResolvedWeights(kind="random", seed=seed, source="random")
        path = Path(weights).expanduser()
        if path.is_file():
            return _resolved([path], "explicit")
        if path.is_dir():
            found = _files_in_dir(variant, path)
            if found is None:
                raise WeightsNotFound(
                    f"{path}: folder does not hold the files of {variant.id!r}: "
                    f"{', '.join(checkpoint_files(variant)) or '(catalog lists none)'}"
                )
            return _resolved(found, "explicit")
        raise FileNotFoundError(f"{path}: weights path does not exist (variant {variant.id!r})")
    if variant.checkpoint.get("needs_weights") is False:
        return ResolvedWeights(kind="none", source="none")
    for cand in candidates(variant):
        if cand.complete:
            return _resolved([p for _, p in cand.files], cand.source)
    raise WeightsNotFound(how_to_get(variant))


# --------------------------------------------------------------------------- reading checkpoints


def load_checkpoint(path: str | os.PathLike) -> Any:
    """Read a checkpoint without unpickling code: safetensors, else ``torch.load(weights_only=True)``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(refusal_message(path, exc)) from None


_CODE_GLOBAL = re.compile(r"GLOBAL\s+([A-Za-z_][\w.]*)")


def refusal_message(path: str | os.PathLike, exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``path``, without torch's advice to retry with
    ``weights_only=False`` (that would run the code): a pickle naming a Python global is reported as
    'contains code (global X) and was refused'; anything else as not a loadable checkpoint.
    (manifests/checkpoints.py holds the same rule for train/; codec_wrappers imports nothing of ours.)"""
    text = str(exc)
    m = _CODE_GLOBAL.search(text)
    if m and ("weights only load failed" in text.lower() or type(exc).__name__ == "UnpicklingError"):
        return (f"{path}: refused: the file contains code (it calls for the Python global {m.group(1)!r}, which plain "
                f"weights never need); nothing in it was run. Use a weights-only or safetensors checkpoint.")
    # torch's own lines advise weights_only=False (running the code): keep only the reason itself.
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    reason = [ln for ln in lines if "weights_only" not in ln and not ln.startswith("Check the documentation")]
    why = reason[0] if reason else type(exc).__name__
    return f"{path}: refused: not a loadable weights-only checkpoint ({type(exc).__name__}: {why}); nothing in it was run"


# --------------------------------------------------------------------------- seeded random weights


def _key_seed(seed: int, name: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


def seeded_state_dict(model: Any, seed: int) -> dict[str, Any]:
    """Deterministic random weights for ``model`` (an ``nn.Module``), with sensible scales.

    Every entry gets its own generator seeded from ``(seed, key name)``, so the values do not depend
    on the key order or the global RNG. Rules: conv/linear/LSTM weights ~ N(0, 1/fan_in); biases 0;
    weight-norm magnitudes 1; norm layers' weight 1 / bias 0; running_var 1, running_mean 0;
    codebooks (2-D entries named like embed/codebook) ~ N(0, 1) so nearest-codeword search is
    non-degenerate; codebook counters (cluster_*, inited, initialized) 1, embed_avg equal to the
    codebook; other 1-D parameters keep a constant constructor value (Snake alpha, layer scale) or
    else get 1 + N(0, 0.1); other buffers (windows, filters) keep their constructor values.
    Returns a state dict to pass to ``model.load_state_dict``.
    """
    import torch
    from torch import nn

    norm_types = (
        nn.LayerNorm,
        nn.GroupNorm,
        nn.modules.batchnorm._BatchNorm,
        nn.modules.instancenorm._InstanceNorm,
    )
    conv_like = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear)
    module_of: dict[str, nn.Module] = {}
    for mname, module in model.named_modules():
        owned = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
        for pname, _ in owned:
            module_of[f"{mname}.{pname}" if mname else pname] = module
    params = {name for name, _ in model.named_parameters()}
    state = model.state_dict()
    out: dict[str, Any] = {}

    def normal(name: str, shape, std: float) -> torch.Tensor:
        g = torch.Generator().manual_seed(_key_seed(seed, name))
        return torch.randn(tuple(shape), generator=g) * std

    for name in sorted(state):
        t = state[name]
        leaf = name.rsplit(".", 1)[-1]
        module = module_of.get(name)
        if not torch.is_floating_point(t):
            out[name] = t.clone()
            continue
        if leaf == "running_var":
            new = torch.ones_like(t)
        elif leaf == "running_mean":
            new = torch.zeros_like(t)
        elif leaf in ("inited", "initialized") or "cluster" in leaf:
            new = torch.ones_like(t)
        elif leaf in ("weight_g", "original0"):
            new = torch.ones_like(t)
        elif isinstance(module, norm_types):
            new = torch.ones_like(t) if leaf == "weight" else torch.zeros_like(t)
        elif leaf.startswith("bias") or leaf.endswith("_bias"):
            new = torch.zeros_like(t)
        elif t.dim() >= 2 and ("embed" in leaf or "codebook" in name.lower()) and not isinstance(module, conv_like):
            new = normal(name, t.shape, 1.0)
        elif isinstance(module, nn.modules.rnn.RNNBase) and leaf.startswith("weight"):
            new = normal(name, t.shape, 1.0 / math.sqrt(module.hidden_size))
        elif t.dim() >= 2 and ("weight" in leaf or leaf == "original1"):
            if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d)):
                stride = math.prod(module.stride)
                fan_in = t.shape[0] / module.groups * math.prod(t.shape[2:]) / max(stride, 1)
            else:
                fan_in = math.prod(t.shape[1:])
            new = normal(name, t.shape, 1.0 / math.sqrt(max(fan_in, 1.0)))
        elif name in params:
            flat = t.flatten()
            if flat.numel() and bool((flat == flat[0]).all()):
                new = t.clone()  # constant constructor value (Snake alpha, layer scale, ...)
            else:
                new = 1.0 + normal(name, t.shape, 0.1)
        else:
            new = t.clone()  # buffers computed by the constructor (windows, filters, positions)
        out[name] = new.to(t.dtype)
    # Codebook running sums must agree with the codebook (counters are 1, so sum == codebook).
    for name in list(out):
        leaf = name.rsplit(".", 1)[-1]
        embed = name[: -len(leaf)] + "embed"
        if leaf == "embed_avg" and embed in out:
            out[name] = out[embed].clone()
    return out


def scale_residual_branches(model: Any, state: dict[str, Any], class_name: str = "ResidualUnit", gain: float = 0.3) -> dict[str, Any]:
    """Shrink the last weight-norm magnitude inside every ``class_name`` block of ``model``.

    Seeded random weights make each residual unit ``x + f(x)`` add about as much variance as it
    receives, so deep residual decoders (DAC, SNAC) blow activations up ~2x per block and the
    final tanh saturates. Scaling each branch's last layer by ``gain`` keeps the signal in range
    (a trained model's branches are small too). Edits and returns ``state``.
    """
    for mname, module in model.named_modules():
        if type(module).__name__ != class_name:
            continue
        keys = [f"{mname}.{k}" for k, _ in module.named_parameters() if k.endswith(("weight_g", "original0"))]
        if keys:
            state[keys[-1]] = state[keys[-1]] * gain
    return state


def load_strict(model: Any, path: str | os.PathLike, to_state_dict, codec: str, read=None) -> Any:
    """Load checkpoint file ``path`` into ``model`` with ``strict=True``.

    ``to_state_dict(ckpt_dict) -> state_dict`` maps the upstream file's layout (prefixes, nested
    parts) onto the model's keys. Any mismatch is a ``ValueError`` naming the file and the codec.
    ``read(path)`` opens the file (default :func:`load_checkpoint`; e.g. a reader of a ``.nemo`` tar).
    """
    ckpt = (read or load_checkpoint)(path)
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    try:
        model.load_state_dict(to_state_dict(ckpt), strict=True)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{path}: not a {codec} checkpoint for this config ({exc})") from None
    return model


def init_from_weights(model: Any, weights: ResolvedWeights, load_file, codec: str) -> Any:
    """Put seeded random weights or the one checkpoint file of ``weights`` into ``model``; eval mode.

    ``load_file(model, path)`` loads an official file (usually :func:`load_strict` with the
    family's key mapping).
    """
    model.eval()
    if weights.kind == "random":
        model.load_state_dict(seeded_state_dict(model, weights.seed or 0))
    elif weights.kind == "files":
        if len(weights.files) != 1:
            raise ValueError(f"{codec} takes one checkpoint file, got {list(weights.files)}")
        load_file(model, weights.files[0])
    else:
        raise ValueError(f"{codec} needs weights ('random:<seed>' or a checkpoint file), got kind {weights.kind!r}")
    return model


def load_state_checked(model: Any, state: Mapping[str, Any], what: str) -> None:
    """``model.load_state_dict(state, strict=True)`` after a check whose error lists shape
    mismatches, missing and unexpected keys (the first few of each), prefixed by ``what``."""
    own = model.state_dict()
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
           if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if bad or missing or unexpected:
        raise ValueError(f"{what}: shape mismatches {bad[:5]}, missing {missing[:5]} ({len(missing)}), "
                         f"unexpected {unexpected[:5]} ({len(unexpected)})")
    model.load_state_dict(state, strict=True)
