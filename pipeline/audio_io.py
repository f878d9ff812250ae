"""Audio file I/O shared by the corpus readers and generation: probe, load, resample, write.

soundfile does the decoding and encoding, soxr the resampling. Writes are atomic (temporary name
in the same folder, then rename) so an interrupted run never leaves a half-written file under a
final name.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from manifests.atomic import write_bytes_atomic


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    num_samples: int
    channels: int

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate


def probe(path: str | os.PathLike) -> AudioInfo:
    """Header facts of an audio file; raises :class:`AudioError` for unreadable or empty files."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise AudioError(f"{path}: broken symbolic link (its target {os.readlink(path)} does not exist)")
    if not path.exists():
        raise AudioError(f"{path}: file does not exist")
    if path.is_dir():
        raise AudioError(f"{path}: a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError for non-audio
        raise AudioError(f"{path}: not a readable audio file ({exc})") from None
    if info.frames <= 0:
        raise AudioError(f"{path}: audio has no samples")
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))


# Frames decoded per block by :func:`scan_audio` (bounded memory whatever the file's length).
SCAN_BLOCK_FRAMES = 1 << 16


def scan_audio(path: str | os.PathLike, block_frames: int = SCAN_BLOCK_FRAMES) -> AudioInfo:
    """Decode the whole file block by block: header facts, checked against the samples themselves.

    Raises :class:`AudioError` naming the file, the problem and where it is: a decoder error part
    way (``at sample N (t s)``), fewer samples than the header announces (truncated), NaN or
    infinite samples (the first one's position). Memory stays at one block.
    """
    info = probe(path)
    done = 0
    try:
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=int(block_frames), dtype="float32", always_2d=True):
                finite = np.isfinite(block)
                if not finite.all():
                    row = int(np.argmin(finite.all(axis=1)))
                    bad = block[row][~finite[row]][0]
                    what = "NaN" if np.isnan(bad) else "infinite"
                    at = done + row
                    raise AudioError(f"{path}: {what} sample at sample {at} ({at / info.sample_rate:.3f} s)")
                done += len(block)
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(f"{path}: cannot decode at sample {done} ({done / info.sample_rate:.3f} s): "
                         f"{type(exc).__name__}: {exc}") from None
    if done < info.num_samples:
        raise AudioError(f"{path}: truncated: the header announces {info.num_samples} samples "
                         f"({info.duration_s:.3f} s), only {done} decode ({done / info.sample_rate:.3f} s)")
    if done == 0:
        raise AudioError(f"{path}: audio has no samples")
    return AudioInfo(info.sample_rate, done, info.channels)


def load_audio(path: str | os.PathLike, target_sr: int | None = None) -> tuple[np.ndarray, int]:
    """Decode to mono float32 ``(samples,)``; resample with soxr when ``target_sr`` differs.

    Returns ``(audio, sample_rate)``. Raises :class:`AudioError` naming the file on failure.
    """
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: cannot decode audio ({exc})") from None
    if audio.shape[0] == 0:
        raise AudioError(f"{path}: audio has no samples")
    audio = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if target_sr is not None and target_sr != sr:
        audio = resample(audio, sr, target_sr)
        sr = target_sr
    return np.ascontiguousarray(audio, dtype=np.float32), int(sr)


def resample(audio: np.ndarray, from_sr: int, to_sr: int) -> np.ndarray:
    """soxr resampling of a mono float32 signal (``HQ`` quality)."""
    if from_sr == to_sr:
        return audio
    return soxr.resample(audio, from_sr, to_sr, quality="HQ").astype(np.float32, copy=False)


def encode_audio(audio: np.ndarray, sample_rate: int, fmt: str = "FLAC") -> bytes:
    """Encode mono float audio to bytes (FLAC: 16-bit PCM; WAV: 16-bit PCM)."""
    buf = io.BytesIO()
    clipped = np.clip(audio, -1.0, 1.0)
    sf.write(buf, clipped, sample_rate, format=fmt.upper(), subtype="PCM_16")
    return buf.getvalue()


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, fmt: str = "FLAC") -> bytes:
    """Encode and atomically write audio; returns the bytes written (hash them for the manifest)."""
    data = encode_audio(audio, sample_rate, fmt)
    write_bytes_atomic(path, data)
    return data
