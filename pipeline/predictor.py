"""Generation stages: decode -> resynthesise -> write, as Ray Data batch functions.

A *batch* is a dict of numpy columns (Ray Data's ``batch_format="numpy"``); each stage takes one
and returns one. The plan columns a batch needs are ``utt_id``, ``src_path``, ``out_path`` and
``output_sample_rate`` (see :mod:`pipeline.plan`).

- :func:`decode_batch` (plain function, CPU): read each source file, mix to mono, soxr-resample to
  the codec rate; adds ``audio`` (float32 bytes) and ``error`` columns.
- :class:`Predictor` (callable class, holds the codec): ``__init__`` loads the codec once;
  ``__call__`` groups the decoded items into length-bucketed padded batches, resynthesises them
  under ``torch.inference_mode()`` and adds ``output`` (float32 bytes at the codec rate) and
  ``weights_id``. With ``stages="all"`` it also decodes and writes, so one call goes from source
  files to manifest columns (what runs in-process, in tests and GPU benchmarks, and on Ray when
  I/O need not run in its own stage).
- :func:`write_batch` (plain function, CPU): resample to the output rate, encode (FLAC/WAV),
  write atomically, hash; returns the :data:`RESULT_KEYS` columns.

Nothing raises for one bad item: a file that does not decode, a codec error or a failed write
becomes ``status="failed"`` with an ``error`` naming the file, and the rest of the batch goes on.
If a padded forward pass fails, its items are retried one by one so one bad item cannot fail its
neighbours.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Mapping, Sequence

import numpy as np

from manifests import sha256_bytes
from manifests.atomic import write_bytes_atomic
from pipeline.audio_io import encode_audio, load_audio, resample

log = logging.getLogger(__name__)

# Columns every finished batch has (one value per item); see :func:`write_batch`.
# ``file_bytes``: size of the written file (-1 when none), recorded in the row's extra so resume
# can check an item by its size without re-hashing it.
RESULT_KEYS = ("utt_id", "sample_rate", "num_samples", "duration_s", "sha256", "weights_id", "status", "error", "created_at",
               "file_bytes")
STAGES = ("all", "model")


def _floats_to_bytes(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype=np.float32).tobytes()


def _bytes_to_floats(b: Any) -> np.ndarray:
    return np.frombuffer(bytes(b), dtype=np.float32) if b is not None and len(b) else np.zeros(0, np.float32)


def _column(batch: Mapping[str, Any], key: str, n: int, default: Any = "") -> list:
    if key in batch:
        return list(batch[key])
    return [default] * n


def _n(batch: Mapping[str, Any]) -> int:
    return len(batch["utt_id"])


def _errors(batch: Mapping[str, Any]) -> list[str]:
    return [str(e) if e is not None else "" for e in _column(batch, "error", _n(batch), "")]


def _passthrough(batch: Mapping[str, Any], drop: Sequence[str] = ()) -> dict:
    return {k: np.asarray(v) if not isinstance(v, np.ndarray) else v for k, v in batch.items() if k not in drop}


def _object_array(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def decode_batch(batch: Mapping[str, Any], *, sample_rate: int) -> dict:
    """Decode every ``src_path`` to mono float32 at ``sample_rate``.

    Adds ``audio`` (float32 bytes, ``(samples,)`` once decoded) and ``error`` ('' or what went
    wrong, naming the file). Items that already carry an error are passed on untouched.
    """
    n = _n(batch)
    errors = _errors(batch)
    audio: list[bytes] = []
    for i, path in enumerate(_column(batch, "src_path", n)):
        if errors[i]:
            audio.append(b"")
            continue
        try:
            x, _ = load_audio(path, target_sr=int(sample_rate))
            if not np.isfinite(x).all():
                raise ValueError(f"{path}: audio holds NaN or infinite samples")
            audio.append(_floats_to_bytes(x))
        except Exception as exc:  # AudioError names the file; anything else gets the name here
            msg = str(exc)
            errors[i] = msg if str(path) in msg else f"{path}: {type(exc).__name__}: {msg}"
            audio.append(b"")
    out = _passthrough(batch)
    out["audio"] = _object_array(audio)
    out["error"] = np.asarray(errors, dtype=object)
    return out


def write_batch(batch: Mapping[str, Any], *, audio_format: str = "flac") -> dict:
    """Write every ``output`` (float32 bytes at ``codec_sample_rate``) to ``out_path``.

    Resamples to ``output_sample_rate`` with soxr when it differs, encodes 16-bit ``audio_format``,
    writes atomically and hashes the bytes. Returns :data:`RESULT_KEYS` columns (failed items:
    ``sample_rate``/``num_samples`` -1, ``duration_s`` NaN, ``sha256`` '').
    """
    n = _n(batch)
    errors = _errors(batch)
    outputs = _column(batch, "output", n, b"")
    codec_rates = _column(batch, "codec_sample_rate", n, 0)
    out_rates = _column(batch, "output_sample_rate", n, 0)
    weights = [str(w) for w in _column(batch, "weights_id", n, "")]
    res = {k: [] for k in RESULT_KEYS}
    for i, (uid, path) in enumerate(zip(_column(batch, "utt_id", n), _column(batch, "out_path", n))):
        sr, ns, dur, sha, size = -1, -1, float("nan"), "", -1
        if not errors[i]:
            try:
                y = _bytes_to_floats(outputs[i])
                rate = int(out_rates[i]) or int(codec_rates[i])
                y = resample(y, int(codec_rates[i]), rate)
                data = encode_audio(y, rate, audio_format)
                write_bytes_atomic(path, data)
                sr, ns, dur, sha, size = rate, int(len(y)), len(y) / rate, sha256_bytes(data), len(data)
            except Exception as exc:
                errors[i] = f"{path}: cannot write output ({type(exc).__name__}: {exc})"
        res["utt_id"].append(str(uid))
        res["sample_rate"].append(sr)
        res["num_samples"].append(ns)
        res["duration_s"].append(dur)
        res["sha256"].append(sha)
        res["weights_id"].append(weights[i])
        res["status"].append("failed" if errors[i] else "ok")
        res["error"].append(errors[i])
        res["created_at"].append(time.time())
        res["file_bytes"].append(size)
    return {
        "utt_id": np.asarray(res["utt_id"], dtype=object),
        "sample_rate": np.asarray(res["sample_rate"], dtype=np.int64),
        "num_samples": np.asarray(res["num_samples"], dtype=np.int64),
        "duration_s": np.asarray(res["duration_s"], dtype=np.float64),
        "sha256": np.asarray(res["sha256"], dtype=object),
        "weights_id": np.asarray(res["weights_id"], dtype=object),
        "status": np.asarray(res["status"], dtype=object),
        "error": np.asarray(res["error"], dtype=object),
        "created_at": np.asarray(res["created_at"], dtype=np.float64),
        "file_bytes": np.asarray(res["file_bytes"], dtype=np.int64),
    }


# Most padded audio per forward pass on a GPU (seconds at the codec rate); less when memory is short.
GPU_BATCH_SECONDS = 320.0
# Share of the GPU memory free after loading that a predictor's batches may take (activations are
# estimated from one probe forward; the rest is headroom for fragmentation and other actors).
GPU_MEMORY_SHARE = 0.5
PROBE_SECONDS = 4.0


def default_batch_seconds(device: str) -> float:
    """Padded audio per forward when a recipe does not say and nothing was probed:
    :data:`GPU_BATCH_SECONDS` on a GPU, 0 on CPU (one item per forward; ``length_buckets`` never
    puts two items in a 0-sample batch)."""
    return GPU_BATCH_SECONDS if str(device).startswith("cuda") else 0.0


def batch_seconds_for_memory(free_bytes: float, bytes_per_audio_s: float, *, cap: float = GPU_BATCH_SECONDS,
                             share: float = GPU_MEMORY_SHARE, least: float = 1.0) -> float:
    """Padded seconds per forward that fit ``share`` of ``free_bytes``, when one second of audio
    needs ``bytes_per_audio_s`` of activations; between ``least`` and ``cap``."""
    if bytes_per_audio_s <= 0:
        return cap
    return float(max(least, min(cap, share * free_bytes / bytes_per_audio_s)))


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def chunk_spans(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` of fixed chunks of ``chunk`` samples covering ``n``, each starting
    ``chunk - overlap`` after the previous one (the last one may be shorter, but is always longer
    than ``overlap``)."""
    if chunk <= overlap:
        raise ValueError(f"chunk ({chunk} samples) must be longer than its overlap ({overlap})")
    spans, start = [], 0
    while True:
        end = min(n, start + chunk)
        spans.append((start, end))
        if end >= n:
            return spans
        start += chunk - overlap


def crossfade(pieces: Sequence[np.ndarray], spans: Sequence[tuple[int, int]], n: int) -> np.ndarray:
    """Chunk outputs put back into one ``(n,)`` signal: where two chunks overlap, the earlier one
    fades out and the later one fades in along complementary linear ramps (weights sum to 1 at
    every sample, so a codec that returned its input would give the input back)."""
    y = np.zeros(n, dtype=np.float32)
    for k, (piece, (a, b)) in enumerate(zip(pieces, spans)):
        w = np.ones(b - a, dtype=np.float32)
        if k > 0:
            ov = spans[k - 1][1] - a
            w[:ov] = (np.arange(ov, dtype=np.float32) + 0.5) / ov
        if k + 1 < len(spans):
            ov = b - spans[k + 1][0]
            w[b - a - ov:] *= 1.0 - (np.arange(ov, dtype=np.float32) + 0.5) / ov
        y[a:b] += w * np.asarray(piece, dtype=np.float32)[: b - a]
    return y


def length_buckets(lengths: Sequence[int], max_samples: int) -> list[list[int]]:
    """Group item indices into padded batches of at most ``max_samples`` (= items x longest).

    Items are taken shortest first, so each batch holds similar lengths; an item longer than
    ``max_samples`` gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    buckets: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        new_longest = max(longest, int(lengths[i]))
        if cur and (len(cur) + 1) * new_longest > max_samples:
            buckets.append(cur)
            cur, new_longest = [], int(lengths[i])
        cur.append(i)
        longest = new_longest
    if cur:
        buckets.append(cur)
    return buckets


class Predictor:
    """Resynthesise batches through one codec variant (a Ray Data actor, or called in-process).

    Args:
        variant: catalog id (or :class:`codec_wrappers.base.Variant`).
        weights: weights spec for :func:`codec_wrappers.registry.load_codec` (None = official,
            ``"random:<seed>"`` = seeded random, or a path).
        device: ``"auto"`` (CUDA when visible, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        max_batch_seconds: padded audio per forward pass, in seconds at the codec rate. None
            (default): on a GPU, what fits in :data:`GPU_MEMORY_SHARE` of the free memory (one
            probe forward of :data:`PROBE_SECONDS` measures the activations), at most
            :data:`GPU_BATCH_SECONDS`; on CPU one item per forward, where bench/ measured padded
            batches slower than single items (no parallel lanes to fill). Either way a batch that
            runs out of memory halves the size for the rest of the run and is split and redone.
        stages: ``"all"``: decode + resynthesise + write (returns :data:`RESULT_KEYS`);
            ``"model"``: expects :func:`decode_batch` output and returns it with ``output`` and
            ``weights_id`` added (then run :func:`write_batch`).
        audio_format: ``flac`` or ``wav`` (``stages="all"`` only).
        seed: torch seed set once at load (codecs are deterministic; this pins anything that is not).
        precision: ``fp32``, ``bf16`` (autocast around each forward) or ``bf16_fp32vq`` (the same
            with the quantisers in fp32); see :mod:`codec_wrappers.precision`.
        num_threads: torch intra-op threads of this process (None: leave torch's setting; Ray
            actors start with ``OMP_NUM_THREADS`` = their ``num_cpus``).
        batch_mode: how the codec runs a padded batch (None: its own default); one of the
            codec's ``batch_modes`` (see :class:`codec_wrappers.base.BatchedCodec`).
        chunk_seconds: chunked mode for long sources (None: off): an item longer than this runs
            as chunks of this length overlapping by ``chunk_overlap_seconds``, cross-faded back
            together with complementary linear ramps (:func:`crossfade`); memory is bounded by
            the chunk, and the codec's context stops at chunk edges.
    """

    def __init__(
        self,
        variant: Any,
        weights: str | None = None,
        *,
        device: str = "auto",
        max_batch_seconds: float | None = None,
        stages: str = "all",
        audio_format: str = "flac",
        seed: int = 0,
        precision: str = "fp32",
        num_threads: int | None = None,
        batch_mode: str | None = None,
        chunk_seconds: float | None = None,
        chunk_overlap_seconds: float = 0.5,
    ):
        import torch

        from codec_wrappers.precision import check_precision, prepare_codec
        from codec_wrappers.registry import load_codec

        if stages not in STAGES:
            raise ValueError(f"stages must be one of {STAGES}, got {stages!r}")
        self.precision = check_precision(precision)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if num_threads:
            torch.set_num_threads(int(num_threads))
        torch.manual_seed(int(seed))
        self.codec = load_codec(variant, weights, device=device)
        prepare_codec(self.codec, self.precision)
        if batch_mode is not None:
            modes = tuple(getattr(self.codec, "batch_modes", ("exact",)))
            if batch_mode not in modes:
                raise ValueError(f"{self.codec.variant.id}: batch_mode {batch_mode!r} is not supported; this codec has {modes}")
            self.codec.batch_mode = batch_mode
        model = getattr(self.codec, "model", None)
        if isinstance(model, torch.nn.Module):
            model.eval()
        self.variant_id = self.codec.variant.id
        self.sample_rate = int(self.codec.sample_rate)
        self.weights_id = self.codec.weights.weights_id
        self.device = device
        if max_batch_seconds is None:
            max_batch_seconds = default_batch_seconds(device)
            if str(device).startswith("cuda"):
                max_batch_seconds = self._probe_batch_seconds()
        self.max_batch_seconds = float(max_batch_seconds)
        self.max_samples = max(1, int(max_batch_seconds * self.sample_rate))
        self.stages = stages
        self.audio_format = audio_format
        # Chunked mode (opt-in): items longer than chunk_seconds run as overlapping chunks.
        self.chunk_samples = int(chunk_seconds * self.sample_rate) if chunk_seconds else 0
        self.overlap_samples = int(chunk_overlap_seconds * self.sample_rate) if chunk_seconds else 0
        self.forward_calls = 0  # padded forward passes tried (for tests and benchmarks)

    def _probe_batch_seconds(self) -> float:
        """Padded seconds per forward that fit this GPU: one :data:`PROBE_SECONDS` forward measures
        the peak activations per audio second (falls back to :data:`GPU_BATCH_SECONDS`)."""
        import torch

        from codec_wrappers.precision import autocast

        dev = torch.device(self.device)
        try:
            torch.cuda.synchronize(dev)
            base = torch.cuda.memory_allocated(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            n = int(PROBE_SECONDS * self.sample_rate)
            g = torch.Generator().manual_seed(0)
            x = 0.1 * torch.randn(1, 1, n, generator=g)
            with torch.inference_mode(), autocast(self.device, self.precision):
                self.codec.resynthesize(x, torch.tensor([n]))
            torch.cuda.synchronize(dev)
            peak = torch.cuda.max_memory_allocated(dev) - base
            free, _ = torch.cuda.mem_get_info(dev)
            free += torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)  # cached, reusable
        except Exception as exc:  # a probe that fails must not stop the run: fall back to the cap
            log.warning("%s: GPU memory probe failed (%s); using %.0f s per batch", self.variant_id, exc, GPU_BATCH_SECONDS)
            return GPU_BATCH_SECONDS
        seconds = batch_seconds_for_memory(free, peak / PROBE_SECONDS)
        log.info("%s: %.0f MiB per audio second, %.0f MiB free: %.1f s of padded audio per forward",
                 self.variant_id, peak / PROBE_SECONDS / 2**20, free / 2**20, seconds)
        return seconds

    # ------------------------------------------------------------------ model stage
    def _forward(self, items: list[np.ndarray]) -> list[np.ndarray]:
        """Resynthesise ``items`` (each ``(samples,)``) as one padded ``(B, 1, T)`` batch."""
        import torch

        from codec_wrappers.precision import autocast

        lengths = [len(x) for x in items]
        total = max(lengths)
        audio = np.zeros((len(items), 1, total), dtype=np.float32)
        for j, x in enumerate(items):
            audio[j, 0, : len(x)] = x
        self.forward_calls += 1
        with torch.inference_mode(), autocast(self.device, self.precision):
            out = self.codec.resynthesize(torch.from_numpy(audio), torch.tensor(lengths, dtype=torch.int64))
        if tuple(out.shape) != (len(items), 1, total):
            raise RuntimeError(f"codec returned shape {tuple(out.shape)}, expected {(len(items), 1, total)}")
        out = out.detach().float().cpu().numpy()
        return [np.ascontiguousarray(out[j, 0, : lengths[j]]) for j in range(len(items))]

    def resynthesize(self, audio: list[np.ndarray | None], src_paths: Sequence[str]) -> tuple[list, list[str]]:
        """Resynthesise decoded items; ``None`` items are skipped.

        With ``chunk_seconds`` set, an item longer than that runs as overlapping chunks (see
        :func:`chunk_spans`) whose outputs are cross-faded back together (:func:`crossfade`).
        Returns ``(outputs, errors)``: an output ``(samples,)`` per item (None where it failed) and
        '' or an error naming the item's source file.
        """
        outputs: list[np.ndarray | None] = [None] * len(audio)
        errors = [""] * len(audio)
        idx = [i for i, x in enumerate(audio) if x is not None and len(x) > 0]
        for i, x in enumerate(audio):
            if x is not None and len(x) == 0:
                errors[i] = f"{src_paths[i]}: decoded audio is empty"
        # Pieces: whole items, or the chunks of a long item in chunked mode.
        pieces: list[tuple[int, int, int]] = []
        for i in idx:
            n = len(audio[i])
            if self.chunk_samples and n > self.chunk_samples:
                pieces += [(i, a, b) for a, b in chunk_spans(n, self.chunk_samples, self.overlap_samples)]
            else:
                pieces.append((i, 0, n))
        piece_audio = [audio[i][a:b] for i, a, b in pieces]
        piece_out: list[np.ndarray | None] = [None] * len(pieces)
        piece_err = [""] * len(pieces)
        pending = deque(length_buckets([len(x) for x in piece_audio], self.max_samples))
        while pending:
            members = pending.popleft()
            try:
                ys = self._forward([piece_audio[p] for p in members])
                results = list(zip(members, ys, [""] * len(members)))
            except Exception as exc:
                if len(members) > 1 and is_out_of_memory(exc):
                    # Too big for this device: halve the batch for the rest of the run, redo these.
                    self._free_memory()
                    self.max_samples = max(1, self.max_samples // 2)
                    self.max_batch_seconds = self.max_samples / self.sample_rate
                    log.warning("%s: out of memory on a batch of %d; now %.1f s of padded audio per forward",
                                self.variant_id, len(members), self.max_batch_seconds)
                    split = length_buckets([len(piece_audio[p]) for p in members], self.max_samples)
                    if len(split) == 1:  # one item longer than the limit would not split: go one by one
                        split = [[j] for j in range(len(members))]
                    pending.extendleft(reversed([[members[j] for j in b] for b in split]))
                    continue
                if len(members) == 1:
                    results = [(members[0], None, f"{type(exc).__name__}: {exc}")]
                else:
                    log.warning("%s: batch of %d failed (%s); retrying one by one", self.variant_id, len(members), exc)
                    self._free_memory()
                    results = []
                    for p in members:
                        try:
                            results.append((p, self._forward([piece_audio[p]])[0], ""))
                        except Exception as one:
                            results.append((p, None, f"{type(one).__name__}: {one}"))
            for p, y, err in results:
                piece_out[p], piece_err[p] = y, err
        by_item: dict[int, list[int]] = {}
        for p, (i, _, _) in enumerate(pieces):
            by_item.setdefault(i, []).append(p)
        for i, ps in by_item.items():
            err = next((piece_err[p] for p in ps if piece_err[p]), "")
            y = None
            if not err:
                if len(ps) == 1:
                    y = piece_out[ps[0]]
                else:
                    y = crossfade([piece_out[p] for p in ps], [pieces[p][1:] for p in ps], len(audio[i]))
                if not np.isfinite(y).all():
                    err = "output holds NaN or infinite samples"
            if err:
                errors[i] = f"{src_paths[i]}: codec {self.variant_id} failed: {err}"
            else:
                outputs[i] = y
        return outputs, errors

    def _free_memory(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def model_stage(self, batch: Mapping[str, Any]) -> dict:
        """:func:`decode_batch` output -> the same columns plus ``output`` and ``weights_id``."""
        n = _n(batch)
        errors = _errors(batch)
        src = [str(p) for p in _column(batch, "src_path", n)]
        audio = [None if errors[i] else _bytes_to_floats(a) for i, a in enumerate(_column(batch, "audio", n, b""))]
        outputs, model_errors = self.resynthesize(audio, src)
        for i, e in enumerate(model_errors):
            if e and not errors[i]:
                errors[i] = e
        out = _passthrough(batch, drop=("audio",))
        out["output"] = _object_array([b"" if (y is None or errors[i]) else _floats_to_bytes(y) for i, y in enumerate(outputs)])
        out["error"] = np.asarray(errors, dtype=object)
        out["weights_id"] = np.asarray([self.weights_id] * n, dtype=object)
        out["codec_sample_rate"] = np.full(n, self.sample_rate, dtype=np.int64)
        return out

    def __call__(self, batch: Mapping[str, Any]) -> dict:
        if self.stages == "model":
            return self.model_stage(batch)
        decoded = decode_batch(batch, sample_rate=self.sample_rate)
        return write_batch(self.model_stage(decoded), audio_format=self.audio_format)
