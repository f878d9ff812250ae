"""The seeded synthetic demo corpus: layout, determinism, speech-likeness, readable by the readers."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from manifests import read_manifest, to_frame, write_manifest
from pipeline.corpora import prepare_aishell3, prepare_asvspoof2019_la, prepare_vctk
from pipeline.demo_corpus import ingest_demo_corpus, make_demo_corpus, synth_spoof, synth_utterance

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

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


def test_robustness_trees_in_real_layouts(tmp_path):
    """LA and ITW trees hold bona fide and spoofed files the real readers read; the LA eval
    partition alone is ingested; adding the trees does not change the other corpora."""
    demo = make_demo_corpus(tmp_path / "demo", seed=2, ncssd_dialogues=1, asvspoof2019_la_utterances=2,
                            in_the_wild_utterances=3, **SMALL)
    la = demo.asvspoof2019_la_dir / "LA"
    assert len(list((la / "ASVspoof2019_LA_eval" / "flac").glob("LA_E_*.flac"))) == demo.n_asvspoof2019_la == 4
    assert len(list((la / "ASVspoof2019_LA_train" / "flac").glob("LA_T_*.flac"))) == 2
    assert len(list((la / "ASVspoof2019_LA_dev" / "flac").glob("LA_D_*.flac"))) == 2
    lines = (la / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt").read_text().splitlines()
    assert [ln.split()[3:] for ln in lines] == [["-", "bonafide"], ["A07", "spoof"], ["-", "bonafide"], ["A08", "spoof"]]
    full = prepare_asvspoof2019_la(demo.asvspoof2019_la_dir)
    assert len(full) == 8 and (full["status"] == "ok").all() and full.attrs["warnings"] == []
    meta = (demo.in_the_wild_dir / "release_in_the_wild" / "meta.csv").read_text().splitlines()
    assert meta[0] == "file,speaker,label" and len(meta) == 7 and demo.n_in_the_wild == 6

    sources = ingest_demo_corpus(demo, tmp_path / "sources")
    assert sorted(sources) == ["aishell3", "asvspoof2019_la", "in_the_wild", "ncssd", "vctk"]
    la_df = read_manifest(sources["asvspoof2019_la"][0], validate=True)
    assert set(la_df["split"]) == {"eval"} and len(la_df) == 4
    for name in ("asvspoof2019_la", "in_the_wild"):
        df = sources[name][1]
        assert (df["status"] == "ok").all() and set(df["sample_rate"]) == {16000}
        assert (~df["is_fake"]).sum() == df["is_fake"].sum() > 0 and set(df.loc[df["is_fake"], "label"]) == {-1}

    plain = make_demo_corpus(tmp_path / "plain", seed=2, ncssd_dialogues=1, **SMALL)
    for rel in ("vctk/wav48_silence_trimmed/p901/p901_002_mic1.flac", "aishell3/train/wav/SSB9001/SSB90010001.wav",
                "ncssd/R-EN/0001/0_0_d1.wav"):
        assert (plain.root / rel).read_bytes() == (demo.root / rel).read_bytes(), rel
    assert plain.asvspoof2019_la_dir is None and plain.n_in_the_wild == 0


def test_demo_spoof_is_another_kind_of_audio():
    """Same magnitudes over time as a bona fide rendition, different waveform (random phases)."""
    real = synth_utterance(np.random.default_rng(4), 16000, 1.5, 120.0)
    fake = synth_spoof(np.random.default_rng(4), 16000, 1.5, 120.0)
    assert fake.shape == real.shape and fake.dtype == np.float32 and np.max(np.abs(fake)) == pytest.approx(0.6, abs=1e-3)
    assert abs(np.corrcoef(real, fake)[0, 1]) < 0.3
    env = [np.sqrt((x[: 24000].reshape(-1, 400) ** 2).mean(axis=1)) for x in (real, fake)]
    assert np.corrcoef(*env)[0, 1] > 0.8


def test_demo_recipe_robustness_sets_come_from_the_demo_corpus(tmp_path):
    """The demo's corpus options and recipes/demo.yaml agree: every unseen_real / ood_other entry
    is a manifest the demo ingests, and each gets rows (the LA and ITW columns of Tables 4-5)."""
    from pipeline.commands.demo import DEMO_CORPUS_OPTIONS
    from pipeline.protocol import build_protocol

    demo = make_demo_corpus(tmp_path / "corpus", utterances_per_speaker=2, **DEMO_CORPUS_OPTIONS)
    ingest_demo_corpus(demo, tmp_path / "sources")
    doc = yaml.safe_load((RECIPES / "demo.yaml").read_text())
    section = {k: v for k, v in doc["protocol"].items() if k not in ("diff_source", "alm")}  # need generated fakes / ALM stand-in
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"name": "t", "output_dir": ".", "protocol": section}))
    write_manifest(to_frame([], "fake"), tmp_path / "dataset" / "manifests" / "fake.parquet", kind="fake", root=tmp_path)
    out = build_protocol(tmp_path / "recipe.yaml")
    ur, oo = out["unseen_real"], out["ood_other"]
    assert ur.groupby("condition").size().to_dict() == {"asvspoof2019_la": 3, "in_the_wild": 3, "ncssd": 6}
    assert oo.groupby("condition").size().to_dict() == {"asvspoof2019_la": 3, "in_the_wild": 3}
    assert (ur["label"] == 0).all() and oo["is_fake"].all() and (oo["label"] == -1).all()
    assert ur["path"].map(lambda p: Path(p).is_file()).all() and oo["path"].map(lambda p: Path(p).is_file()).all()
