"""Tiny source corpora and recipes for the generation tests (test_generate/test_resume/test_two_node)."""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from manifests import real_row, write_manifest

RAY_IP = "127.0.0.2"
RAY_IP_2 = "127.0.0.3"


def make_source(root: Path, n: int = 8, *, corrupt: int = 0, seconds: tuple[float, float] = (0.3, 0.9), seed: int = 0,
                corpus: str = "tiny") -> Path:
    """Write ``n`` short tones (FLAC at 48 kHz and WAV at 22.05 kHz, alternating) plus ``corrupt``
    undecodable files under ``root/src`` and their source manifest ``root/<corpus>.parquet``."""
    rng = np.random.default_rng(seed)
    src = root / "src"
    rows = []
    for i in range(n):
        sr = 48000 if i % 2 else 22050
        dur = float(rng.uniform(*seconds))
        t = np.arange(int(sr * dur)) / sr
        x = (0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)
        spk = f"spk{i % 3}"
        rel = f"{spk}/{corpus}_{i:03d}.{'flac' if i % 2 else 'wav'}"
        (src / spk).mkdir(parents=True, exist_ok=True)
        sf.write(src / rel, x, sr)
        rows.append(real_row(utt_id=f"{corpus}_{i:03d}", corpus=corpus, path=rel, speaker=spk, language="en",
                             split="train", text=f"utterance {i}", sample_rate=sr, num_samples=len(x), duration_s=len(x) / sr))
    for j in range(corrupt):
        rel = f"spk0/{corpus}_bad{j}.wav"
        (src / "spk0").mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"RIFF not really a wav file" * 3)
        rows.append(real_row(utt_id=f"{corpus}_bad{j}", corpus=corpus, path=rel, speaker="spk0", language="en",
                             split="train", sample_rate=16000, num_samples=8000, duration_s=0.5))
    path = root / f"{corpus}.parquet"
    write_manifest(rows, path, root=src)
    return path


def ray_temp_dir() -> str:
    """A short Ray temp dir (Unix socket paths under it must stay below ~107 characters).

    Removed when the test process exits (tests kill the Ray processes they started before that).
    """
    path = tempfile.mkdtemp(prefix="ncr", dir="/tmp")
    atexit.register(shutil.rmtree, path, True)
    return path


def write_recipe(path: Path, sources: list[Path], *, variants=("toy_mulaw_16k",), output_dir: str = "out", **generate) -> Path:
    section = {"sources": [str(s) for s in sources], "variants": list(variants), "weights": "random:0", **generate}
    path.write_text(yaml.safe_dump({"name": "test", "output_dir": output_dir, "generate": section}))
    return path


def pids_using(marker: str) -> list[int]:
    """Pids of this user's processes whose command line mentions ``marker`` (a unique temp dir)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if d.stat().st_uid != os.getuid():
                continue
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            out.append(int(d.name))
    return out


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
