"""train.data: protocol reading, first-N cut / repeat-pad / random crop, bad files, workers."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from manifests import real_row, to_frame, write_manifest
from train.data import AudioDataset, collate, default_classes, fit_length, load_audio, make_loader, read_protocol

TONES = {0: 220.0, 1: 660.0, 2: 1320.0, 3: 2500.0, 4: 3500.0, 5: 4500.0, 6: 5500.0, 7: 7000.0}


def toy_wave(label: int, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A label-dependent tone (random phase/amplitude) plus a little noise: separable classes."""
    t = np.arange(n) / sr
    amp = rng.uniform(0.3, 0.6)
    wav = amp * np.sin(2 * np.pi * TONES[label] * t + rng.uniform(0, 2 * np.pi)) + 0.02 * rng.standard_normal(n)
    return wav.astype(np.float32)


def make_protocol(root: Path, subsets: dict[str, dict[int, int]], *, seconds: float = 0.5, seed: int = 0,
                  rates=(16000, 24000)) -> Path:
    """Write ``<root>/protocol/<subset>.parquet`` with ``{label: count}`` rows per subset and
    short wav files at 16/24 kHz under ``<root>/audio``. Returns the protocol directory."""
    rng = np.random.default_rng(seed)
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    pdir = root / "protocol"
    for subset, counts in subsets.items():
        rows = []
        for label, count in counts.items():
            for k in range(count):
                sr = rates[(label + k) % len(rates)]
                n = int(seconds * sr * rng.uniform(0.8, 1.2))
                uid = f"{subset}_{label}_{k}"
                path = audio / f"{uid}.wav"
                sf.write(path, toy_wave(label, n, sr, rng), sr)
                row = real_row(utt_id=uid, corpus="toy", path=str(path.resolve()), split=subset, sample_rate=sr,
                               num_samples=n, duration_s=n / sr)
                if label != 0:
                    row.update(is_fake=True, label=label, label_name=f"codec{label}", domain="id" if label < 7 else "ood",
                               codec=f"codec{label}", variant=f"v{label}", vq="MVQ", aux="none", decoder="time")
                row.update(subset=subset, condition="")
                rows.append(row)
        write_manifest(to_frame(rows, kind="protocol"), pdir / f"{subset}.parquet", kind="protocol")
    return pdir


def test_fit_length_first_cut_and_repeat_pad():
    x = np.arange(10, dtype=np.float32)
    assert np.array_equal(fit_length(x, 4), x[:4])  # first samples, not a random window
    padded = fit_length(x[:3], 8)
    assert np.array_equal(padded, np.array([0, 1, 2, 0, 1, 2, 0, 1], dtype=np.float32))
    assert np.array_equal(fit_length(x, 10), x)
    assert fit_length(np.zeros(0, np.float32), 5).shape == (5,)
    assert fit_length(x, 64600).shape == (64600,)  # default-length path: tiled 6460 times


def test_random_crop_range_and_determinism():
    x = np.arange(100, dtype=np.float32)
    starts = set()
    for s in range(200):
        out = fit_length(x, 30, random_crop=True, rng=np.random.default_rng(s))
        start = int(out[0])
        assert np.array_equal(out, x[start : start + 30])  # a contiguous window inside the signal
        starts.add(start)
    assert min(starts) >= 0 and max(starts) <= 70
    assert len(starts) > 40  # really random, covering the range
    assert 0 in starts or 70 in starts or len(starts) > 50
    # shorter than the target: random crop does not apply, repeat-pad as usual
    assert np.array_equal(fit_length(x[:5], 7, random_crop=True), np.array([0, 1, 2, 3, 4, 0, 1], np.float32))


def test_dataset_reads_resamples_and_cuts(tmp_path):
    pdir = make_protocol(tmp_path, {"train": {0: 2, 3: 2}}, seconds=0.5)
    df = read_protocol(pdir, "train")
    assert default_classes(df) == [0, 3]
    ds = AudioDataset(df, [0, 3], num_samples=16000)
    assert len(ds) == 4
    for i in range(len(ds)):
        item = ds[i]
        assert item["wav"].shape == (16000,) and item["wav"].dtype == torch.float32
        assert item["ok"] and item["target"] == [0, 3].index(item["label"])
        # resampled to 16 kHz then repeat-padded: the first samples equal the decoded file's
        ref = load_audio(ds.paths[i], 16000)
        n = min(len(ref), 16000)
        np.testing.assert_array_equal(item["wav"].numpy()[:n], ref[:n])
        if len(ref) < 16000:
            np.testing.assert_array_equal(item["wav"].numpy()[len(ref) : 2 * len(ref)][: 16000 - len(ref)], ref[: 16000 - len(ref)])
    # 24 kHz files come back at 16 kHz: about 0.5 s -> about 8000 samples
    ref24 = [load_audio(p) for p, sr in zip(ds.paths, df["sample_rate"]) if sr == 24000]
    assert ref24 and all(6000 < len(r) < 10000 for r in ref24)
    # default length is the paper's 64600
    assert AudioDataset(df, [0, 3])[0]["wav"].shape == (64600,)


def test_bad_files_dropped_with_warning_and_decode_failure_flagged(tmp_path, caplog):
    pdir = make_protocol(tmp_path, {"train": {0: 2, 1: 2}})
    df = read_protocol(pdir, "train")
    df.loc[0, "path"] = str(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    df.loc[1, "path"] = str(junk)
    with caplog.at_level(logging.WARNING):
        ds = AudioDataset(df, [0, 1], num_samples=4000)
    assert len(ds) == 2 and len(ds.dropped) == 2
    assert "missing.wav" in caplog.text and "junk.wav" in caplog.text
    # a file that passes the header check but cannot be decoded: zeros, ok=False, file named
    good = Path(ds.paths[0])
    good.write_bytes(b"garbage!" * 20)  # broken after the dataset was built
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        item = ds[0]
    assert not item["ok"] and str(good) in caplog.text
    assert item["wav"].shape == (4000,) and float(item["wav"].abs().sum()) == 0.0
    assert ds[1]["ok"]  # the rest goes on


def test_status_filter_and_limit(tmp_path):
    pdir = make_protocol(tmp_path, {"dev": {0: 3, 2: 3}})
    df = read_protocol(pdir, "dev")
    assert len(df) == 6
    df.loc[0, ["status", "error"]] = ["failed", "boom"]
    df2 = df.copy()
    from manifests import write_manifest as wm

    wm(df2, pdir / "dev.parquet", kind="protocol")
    assert len(read_protocol(pdir, "dev")) == 5
    assert len(read_protocol(pdir, "dev", limit=2)) == 2
    with pytest.raises(FileNotFoundError, match="eval_id.parquet"):
        read_protocol(pdir, "eval_id")


def test_multiworker_loader_matches_single_process(tmp_path):
    pdir = make_protocol(tmp_path, {"train": {0: 3, 1: 3}})
    ds = AudioDataset(read_protocol(pdir, "train"), [0, 1], num_samples=4000, random_crop=True, seed=3)
    ds.set_epoch(2)
    single = [b for b in make_loader(ds, batch_size=4, shuffle=True, seed=5, epoch=1)]
    multi = [b for b in make_loader(ds, batch_size=4, shuffle=True, seed=5, epoch=1, num_workers=2)]
    assert len(single) == len(multi) == 2
    for a, b in zip(single, multi):
        assert torch.equal(a["index"], b["index"])
        assert torch.equal(a["wav"], b["wav"])  # crops seeded by (seed, epoch, index), not by worker
    other = [b for b in make_loader(ds, batch_size=4, shuffle=True, seed=5, epoch=2)]
    assert not all(torch.equal(a["index"], b["index"]) for a, b in zip(single, other))


def test_collate_shapes():
    items = [{"wav": torch.zeros(5), "label": 3, "target": 1, "index": i, "ok": True} for i in range(3)]
    b = collate(items)
    assert b["wav"].shape == (3, 5) and b["label"].tolist() == [3, 3, 3] and b["ok"].all()
