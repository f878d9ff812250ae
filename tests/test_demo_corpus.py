"""The seeded synthetic demo corpus: layout, determinism, speech-likeness, readable by the readers."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from manifests import read_manifest, write_manifest
from pipeline.corpora import prepare_aishell3, prepare_vctk
from pipeline.demo_corpus import make_demo_corpus, synth_utterance

SMALL = dict(vctk_speakers=2, aishell3_speakers=2, utterances_per_speaker=2)


def test_layout_counts_and_rates(tmp_path):
    demo = make_demo_corpus(tmp_path / "demo", seed=3, **SMALL)
    flacs = sorted((demo.vctk_dir / "wav48_silence_trimmed").rglob("*.flac"))
    assert [p.name for p in flacs[:4]] == ["p900_001_mic1.flac", "p900_001_mic2.flac", "p900_002_mic1.flac", "p900_002_mic2.flac"]
    assert len(flacs) == 8
    assert len(list((demo.vctk_dir / "txt").rglob("*.txt"))) == 4
    assert (demo.vctk_dir / "speaker-info.txt").read_text().startswith("ID  AGE  GENDER  ACCENTS  REGION")
    wavs = sorted(demo.aishell3_dir.rglob("*.wav"))
    assert [p.relative_to(demo.aishell3_dir).as_posix() for p in wavs] == [
        "test/wav/SSB9002/SSB90020001.wav", "test/wav/SSB9002/SSB90020002.wav",
        "train/wav/SSB9001/SSB90010001.wav", "train/wav/SSB9001/SSB90010002.wav",
    ]
    assert {sf.info(str(p)).samplerate for p in flacs} == {48000}
    assert {sf.info(str(p)).samplerate for p in wavs} == {44100}
    durations = [sf.info(str(p)).duration for p in flacs + wavs]
    assert min(durations) >= 1.5 - 1e-3 and max(durations) <= 2.5 + 1e-3
    assert demo.n_vctk == 4 and demo.n_aishell3 == 4
    assert demo.duration_s == pytest.approx(sum(sf.info(str(p)).duration for p in flacs if "mic1" in p.name)
                                            + sum(sf.info(str(p)).duration for p in wavs), abs=1e-3)


def test_default_size_fits_the_demo_budget(tmp_path):
    demo = make_demo_corpus(tmp_path / "demo")
    assert (demo.n_vctk, demo.n_aishell3) == (24, 18)
    assert 45 <= demo.duration_s <= 120  # about 1-2 minutes of real audio
    assert demo.corrupt_files == ()


def test_same_seed_same_bytes(tmp_path):
    a = make_demo_corpus(tmp_path / "a", seed=7, **SMALL)
    b = make_demo_corpus(tmp_path / "b", seed=7, **SMALL)
    c = make_demo_corpus(tmp_path / "c", seed=8, **SMALL)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file())
    for rel in files:
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    flac = next(p for p in files if p.suffix == ".flac")
    assert (a.root / flac).read_bytes() != (c.root / flac).read_bytes()


def test_audio_is_speech_like():
    """Voiced frames have a pitch in the speaker's range and formant-shaped spectra; there are pauses."""
    sr, f0 = 16000, 120.0
    x = synth_utterance(np.random.default_rng(0), sr, 2.0, f0, 1.0)
    assert x.shape == (32000,) and x.dtype == np.float32
    assert 0.5 < np.max(np.abs(x)) <= 0.6 + 1e-6
    frame = int(0.025 * sr)
    frames = x[: len(x) // frame * frame].reshape(-1, frame)
    rms_db = 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) + 1e-9)
    assert rms_db.max() - rms_db.min() > 30  # loud syllables and near-silent pauses
    # Pitch of the loudest 100 ms: autocorrelation peak between 60 and 400 Hz.
    i = int(np.argmax(rms_db)) * frame
    seg = x[max(0, i - 800): i + 800].astype(np.float64)
    seg -= seg.mean()
    ac = np.correlate(seg, seg, "full")[len(seg) - 1:]
    lo, hi = sr // 400, sr // 60
    lag = lo + int(np.argmax(ac[lo:hi]))
    assert 0.85 * f0 < sr / lag < 1.2 * f0
    # Most energy below 4 kHz, as in speech.
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    assert spec[freqs < 4000].sum() / spec.sum() > 0.9


def test_readers_ingest_the_demo_and_ids_match_lhotse(tmp_path, caplog):
    demo = make_demo_corpus(tmp_path / "demo", seed=1, **SMALL)
    v = prepare_vctk(demo.vctk_dir)
    a = prepare_aishell3(demo.aishell3_dir)
    assert len(v) == 4 and (v["status"] == "ok").all() and v["text"].notna().all()
    assert len(a) == 4 and (a["status"] == "ok").all() and set(a["split"]) == {"train", "test"}
    assert v.attrs["warnings"] == [] and a.attrs["warnings"] == []
    out = write_manifest(v, tmp_path / "v.parquet", root=demo.vctk_dir)
    assert len(read_manifest(out, validate=True)) == 4
    lhotse_vctk = pytest.importorskip("lhotse.recipes.vctk", reason="lhotse (test extra) not installed")
    caplog.set_level(logging.ERROR)
    sups = lhotse_vctk.prepare_vctk(demo.vctk_dir, use_edinburgh_vctk_url=True, mic_id="mic1")["supervisions"]
    assert sorted(s.id for s in sups) == sorted(v["utt_id"])


def test_corrupt_option_writes_one_bad_file(tmp_path):
    demo = make_demo_corpus(tmp_path / "demo", seed=0, corrupt=True, **SMALL)
    assert len(demo.corrupt_files) == 1
    df = prepare_vctk(demo.vctk_dir)
    bad = df[df["status"] == "failed"]
    assert len(bad) == 1 and bad["utt_id"].item() == "p901_001_mic1"
    assert "not a readable audio file" in bad["error"].item()


def test_bad_durations_rejected(tmp_path):
    with pytest.raises(ValueError, match="duration"):
        make_demo_corpus(tmp_path, min_duration_s=3.0, max_duration_s=2.0)
