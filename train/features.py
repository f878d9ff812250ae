"""Frozen wav2vec 2.0 front end and the on-disk feature cache of W2V2-AASIST.

Front end (:class:`W2V2FrontEnd`): a ``transformers`` ``Wav2Vec2Model`` cut to its first ``layer``
transformer layers; ``forward(wave (B, S)) -> (B, frames, hidden)`` returns exactly the full
model's ``hidden_states[layer]`` (the output of transformer layer ``layer``, before any final
layer norm), read with a forward hook on that layer so that where a given ``transformers``
version puts the final layer norm does not matter. Weights load offline, from a local directory
(``save_pretrained`` layout) or the local Hugging Face cache; XLS-R 300m is
``facebook/wav2vec2-xls-r-300m``, layer 5 -> ``(B, 201, 1024)`` for 64600 samples.

Cache (:class:`FeatureCache`): features are computed once per utterance and kept on disk as
memory-mapped ``.npy`` shards (float16 by default; 201 x 1024 x 2 bytes = 0.4 MB per utterance):

    <cache_dir>/<fingerprint>/identity.json             what the features are (model, layer, ...)
    <cache_dir>/<fingerprint>/shard-<uuid>.npy          (n, frames, dim) array
    <cache_dir>/<fingerprint>/shard-<uuid>.keys.json    the n utterance keys, in row order

``fingerprint`` hashes the front end's identity (model directory + weights size/mtime, layer,
input normalisation, sample rate, number of samples); an utterance key hashes its path and its
content id (manifest sha256, else file size + mtime). A shard's ``.keys.json`` is written after
its ``.npy``, both atomically, so a crash never leaves a half-indexed shard; shard names are
unique, so two runs may share one cache directory.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset
from manifests.atomic import atomic_path

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


# ------------------------------------------------------------------ front end
def resolve_model_dir(name_or_path: str) -> Path:
    """A local directory holding ``config.json`` and weights: ``name_or_path`` itself, or its
    snapshot in the local Hugging Face cache. Never downloads; the error says how to get it."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists():
            raise FileNotFoundError(f"{p}: not a wav2vec 2.0 model directory (no config.json)")
        return p.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=name_or_path, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any failure means: not available offline
        raise FileNotFoundError(
            f"wav2vec 2.0 model {name_or_path!r} is not available offline (neither a local directory nor in the "
            f"Hugging Face cache: {type(exc).__name__}). On a machine with network run "
            f"`huggingface-cli download {name_or_path}` and copy the cache (~/.cache/huggingface) here, or pass "
            f"--w2v2-model /path/to/dir holding config.json and model.safetensors."
        ) from exc


def _weights_fingerprint(model_dir: Path) -> str:
    parts = []
    for name in WEIGHT_FILES:
        f = model_dir / name
        if f.exists():
            st = f.stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts) or "no-weights-file"


def conv_frames(w2v2_config, num_samples: int) -> int:
    """Output frames of a wav2vec 2.0 CNN feature encoder (no padding) for ``num_samples`` input samples."""
    n = int(num_samples)
    for k, s in zip(w2v2_config.conv_kernel, w2v2_config.conv_stride):
        n = (n - k) // s + 1
    return n


class W2V2FrontEnd(nn.Module):
    """Frozen wav2vec 2.0 up to transformer layer ``layer``.

    ``forward(wave (B, S) float32 at 16 kHz) -> (B, frames, hidden)`` == the full model's
    ``hidden_states[layer]``. ``calls`` counts forward calls (the tests use it to see cache hits).
    """

    def __init__(self, model: nn.Module, layer: int, *, normalize: bool = True, identity: str = ""):
        super().__init__()
        n_layers = len(model.encoder.layers)
        if not 1 <= layer <= n_layers:
            raise ValueError(f"layer must be in 1..{n_layers}, got {layer}")
        model.encoder.layers = model.encoder.layers[:layer]
        model.config.num_hidden_layers = layer
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        self.layer = layer
        self.normalize = bool(normalize)
        self.hidden_size = int(model.config.hidden_size)
        self.identity = identity or f"in-memory:{id(model)}"
        self.calls = 0
        self._captured: list[torch.Tensor] = []
        model.encoder.layers[layer - 1].register_forward_hook(self._capture)

    def _capture(self, module, args, output) -> None:
        self._captured.append(output[0] if isinstance(output, (tuple, list)) else output)

    @classmethod
    def from_pretrained(cls, name_or_path: str, layer: int = 5, *, normalize: bool | None = None) -> "W2V2FrontEnd":
        """Load offline from a directory or the HF cache (see :func:`resolve_model_dir`)."""
        from transformers import Wav2Vec2Model

        model_dir = resolve_model_dir(name_or_path)
        if normalize is None:
            normalize = True
            pre = model_dir / "preprocessor_config.json"
            if pre.exists():
                normalize = bool(json.loads(pre.read_text()).get("do_normalize", True))
        model = Wav2Vec2Model.from_pretrained(str(model_dir))
        identity = f"{model_dir}|{_weights_fingerprint(model_dir)}"  # the resolved snapshot, not the spelling
        return cls(model, layer, normalize=normalize, identity=identity)

    def train(self, mode: bool = True) -> "W2V2FrontEnd":  # frozen: always in eval mode
        return super().train(False)

    def num_frames(self, num_samples: int) -> int:
        """Frames the CNN feature encoder makes from ``num_samples`` samples (201 for 64600)."""
        return conv_frames(self.model.config, num_samples)

    @torch.inference_mode()
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.normalize:  # Wav2Vec2FeatureExtractor's per-utterance zero mean / unit variance
            wave = (wave - wave.mean(dim=-1, keepdim=True)) / torch.sqrt(wave.var(dim=-1, keepdim=True, unbiased=False) + 1e-7)
        self._captured.clear()
        self.model(wave)
        out = self._captured[-1]
        self._captured.clear()
        return out


@functools.lru_cache(maxsize=2)
def load_frontend(name_or_path: str, layer: int = 5, normalize: bool | None = None, device: str = "cpu") -> W2V2FrontEnd:
    """:meth:`W2V2FrontEnd.from_pretrained`, memoised (a 300m model loads once per process)."""
    return W2V2FrontEnd.from_pretrained(name_or_path, layer, normalize=normalize).to(device)


# ------------------------------------------------------------------ cache
def _atomic_write(path: Path, write) -> None:
    with atomic_path(path) as tmp:
        write(str(tmp))



class FeatureCache:
    """Write-once, memory-mapped store of per-utterance features ``(frames, dim)``.

    ``identity`` names what the features are (see :func:`cache_identity`); utterances are
    addressed by :func:`utterance_key` strings. ``hits`` / ``misses`` count :meth:`get` and
    :meth:`missing` look-ups.
    """

    def __init__(self, root: str | os.PathLike, identity: str, *, dtype: str = "float16", shard_size: int = 1024):
        self.identity = identity
        self.dir = Path(root) / hashlib.sha256(identity.encode()).hexdigest()[:20]
        self.dir.mkdir(parents=True, exist_ok=True)
        ident = self.dir / "identity.json"
        if not ident.exists():
            _atomic_write(ident, lambda t: Path(t).write_text(json.dumps({"identity": identity}, indent=1)))
        self.dtype = np.dtype(dtype)
        self.shard_size = int(shard_size)
        self._index: dict[str, tuple[str, int]] = {}
        self._maps: dict[str, np.ndarray] = {}
        self._pending_keys: list[str] = []
        self._pending: list[np.ndarray] = []
        self.hits = 0
        self.misses = 0
        self.refresh()

    def refresh(self) -> None:
        """Re-read the shard index (shards written by other processes become visible)."""
        for kf in sorted(self.dir.glob("shard-*.keys.json")):
            shard = kf.name[: -len(".keys.json")]
            for row, key in enumerate(json.loads(kf.read_text())):
                self._index.setdefault(key, (shard, row))

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __getstate__(self) -> dict:  # DataLoader workers re-open the memory maps themselves
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def missing(self, keys: Iterable[str]) -> list[str]:
        """Keys not in the cache (counted as misses; present ones as hits)."""
        out = [k for k in keys if k not in self._index]
        self.misses += len(out)
        return out

    def get(self, key: str) -> np.ndarray:
        """The stored ``(frames, dim)`` array (a read-only memory-mapped view)."""
        shard, row = self._index[key]
        arr = self._maps.get(shard)
        if arr is None:
            arr = self._maps[shard] = np.load(self.dir / f"{shard}.npy", mmap_mode="r")
        self.hits += 1
        return arr[row]

    def put(self, keys: Sequence[str], feats: np.ndarray) -> None:
        """Buffer ``feats (n, frames, dim)`` for ``keys``; a shard is written every ``shard_size``."""
        feats = np.asarray(feats)
        if feats.shape[0] != len(keys):
            raise ValueError(f"{len(keys)} keys for {feats.shape[0]} feature rows")
        pending = set(self._pending_keys)
        for k, f in zip(keys, feats):
            if k in self._index or k in pending:
                continue
            pending.add(k)
            self._pending_keys.append(k)
            self._pending.append(f.astype(self.dtype))
        if len(self._pending_keys) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write buffered features as one new shard (``.npy`` first, then its ``.keys.json``)."""
        if not self._pending_keys:
            return
        shard = f"shard-{uuid.uuid4().hex[:16]}"
        arr = np.stack(self._pending)
        def write_npy(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)

        _atomic_write(self.dir / f"{shard}.npy", write_npy)
        keys = list(self._pending_keys)
        _atomic_write(self.dir / f"{shard}.keys.json", lambda t: Path(t).write_text(json.dumps(keys)))
        for row, k in enumerate(keys):
            self._index[k] = (shard, row)
        self._pending_keys, self._pending = [], []


def cache_identity(frontend: W2V2FrontEnd, *, sample_rate: int, num_samples: int) -> str:
    return json.dumps(
        {"model": frontend.identity, "layer": frontend.layer, "normalize": frontend.normalize,
         "sample_rate": sample_rate, "num_samples": num_samples, "cut": "first"},
        sort_keys=True,
    )


def utterance_key(content_key: str) -> str:
    """Fixed-length key of one utterance from ``path|content id`` (see ``AudioDataset.content_key``)."""
    return hashlib.sha256(content_key.encode()).hexdigest()


def ensure_features(frontend: W2V2FrontEnd, cache: FeatureCache, dataset, *, batch_size: int = 16,
                    device: str = "cpu", num_workers: int = 0, progress: bool = False) -> dict:
    """Compute and store the features of every item of ``dataset`` (an ``AudioDataset``) missing
    from ``cache``. Items that fail to decode are skipped (not cached). Returns counts:
    ``{"cached": already there, "computed": n, "failed": n, "frontend_calls": n}``."""
    from .data import make_loader

    keys = [utterance_key(dataset.content_key(i)) for i in range(len(dataset))]
    todo_keys = set(cache.missing(keys))
    todo = [i for i, k in enumerate(keys) if k in todo_keys]
    stats = {"cached": len(keys) - len(todo), "computed": 0, "failed": 0, "frontend_calls": 0}
    if not todo:
        return stats
    loader = make_loader(Subset(dataset, todo), batch_size=batch_size, shuffle=False, num_workers=num_workers)
    it = loader
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(loader, desc=f"W2V2 features ({len(todo)} utt)", leave=False)
    frontend.to(device)
    for batch in it:
        ok = batch["ok"]
        if not ok.any():
            stats["failed"] += len(ok)
            continue
        feats = frontend(batch["wav"][ok].to(device)).float().cpu().numpy()
        stats["frontend_calls"] += 1
        idx = batch["index"][ok].tolist()  # positions in ``dataset`` (Subset passes them through)
        cache.put([keys[j] for j in idx], feats)
        stats["computed"] += len(idx)
        stats["failed"] += int((~ok).sum())
    cache.flush()
    return stats


class CachedFeatureDataset(Dataset):
    """Items of an ``AudioDataset`` with ``feat (frames, dim)`` float32 from ``cache`` instead of
    ``wav``. Items whose features are absent (their audio failed to decode) come back as zeros
    with ``ok = False``."""

    def __init__(self, audio_dataset, cache: FeatureCache, frames: int, dim: int):
        self.base = audio_dataset
        self.cache = cache
        self.keys = [utterance_key(audio_dataset.content_key(i)) for i in range(len(audio_dataset))]
        self.shape = (int(frames), int(dim))

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> dict:
        key = self.keys[i]
        ok = key in self.cache
        feat = np.asarray(self.cache.get(key), dtype=np.float32) if ok else np.zeros(self.shape, np.float32)
        return {"feat": torch.from_numpy(feat), "label": self.base.labels[i], "target": self.base.targets[i],
                "index": i, "ok": ok}


# A model directory holding this file was made with seeded random weights (the demo's stand-in for
# XLS-R, which cannot be downloaded here); the study flags any run whose front end has it.
RANDOM_WEIGHTS_MARKER = "ncst_random_weights.json"


def is_marked_random(name_or_path: str) -> bool:
    """True when ``name_or_path`` is a local model directory marked as seeded random weights."""
    try:
        return (Path(str(name_or_path)).expanduser() / RANDOM_WEIGHTS_MARKER).is_file()
    except OSError:
        return False


def make_random_wav2vec2(out_dir: str | Path, seed: int = 0, *, hidden_size: int = 64, num_layers: int = 6) -> Path:
    """Save a small wav2vec 2.0 with seeded random weights (XLS-R's layout, scaled down) to ``out_dir``.

    The directory gets :data:`RANDOM_WEIGHTS_MARKER` so that every report built on it says the
    front end is random. Returns ``out_dir``.
    """
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    out = Path(out_dir)
    torch.manual_seed(seed)
    cfg = Wav2Vec2Config(
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=4,
        intermediate_size=hidden_size * 4, conv_dim=(64,) * 7, do_stable_layer_norm=True,
        feat_extract_norm="layer", num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=4,
    )
    Wav2Vec2Model(cfg).save_pretrained(str(out))
    (out / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "sampling_rate": 16000}))
    (out / RANDOM_WEIGHTS_MARKER).write_text(json.dumps({"seed": seed, "note": "seeded random weights, not XLS-R"}))
    return out
