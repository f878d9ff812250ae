"""Corpus readers on tiny trees in each corpus's real layout (a few 0.1 s files)."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from manifests import read_manifest, validate_manifest, write_manifest
from pipeline.corpora import (
    CorpusError,
    prepare_aishell3,
    prepare_asvspoof2019_la,
    prepare_in_the_wild,
    prepare_labelled_folder,
    prepare_ncssd,
    prepare_vctk,
    summarize,
)
from pipeline.corpora.common import Collected, finish
from manifests import real_row


def tone(path: Path, sr: int = 16000, seconds: float = 0.1, seed: int = 0) -> Path:
    """Write a short noisy tone (format from the suffix) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(len(t))
    sf.write(path, x.astype(np.float32), sr)
    return path


def by_id(df: pd.DataFrame) -> dict[str, dict]:
    return {r["utt_id"]: r for r in df.to_dict("records")}


def roundtrip(df: pd.DataFrame, root: Path, tmp_path: Path) -> pd.DataFrame:
    """Write, read back with pandas, validate; the read frame."""
    out = write_manifest(df, tmp_path / "m.parquet", root=root)
    back = read_manifest(out, validate=True)
    assert len(back) == len(df)
    assert list(back["utt_id"]) == list(df["utt_id"])
    assert back.attrs["root"] == str(root.resolve())
    assert pd.read_parquet(out).shape[0] == len(df)
    return back


# ----------------------------------------------------------------------------- VCTK

SPEAKER_INFO = (
    "ID  AGE  GENDER  ACCENTS  REGION COMMENTS \n"
    "p225  23  F    English    Southern  England\n"
    "p280  25  F    Unknown    France  (mic2 files unavailable)\n"
    "p315  18  M    American    New  England  (Text unavailable)\n"
)


def make_vctk(root: Path, corrupt: bool = False) -> Path:
    wav = root / "wav48_silence_trimmed"
    root.mkdir(parents=True)
    (root / "speaker-info.txt").write_text(SPEAKER_INFO)
    texts = {"p225_001": "Please call Stella.", "p225_002": "Ask her to bring these things.", "p280_001": "Six spoons."}
    for utt, text in texts.items():
        (root / "txt" / utt[:4]).mkdir(parents=True, exist_ok=True)
        (root / "txt" / utt[:4] / f"{utt}.txt").write_text(text + "\n")
    for utt in ("p225_001", "p225_002"):
        tone(wav / "p225" / f"{utt}_mic1.flac", 48000)
        tone(wav / "p225" / f"{utt}_mic2.flac", 48000, seed=1)
    tone(wav / "p280" / "p280_001_mic1.flac", 48000)  # p280: no mic2 at all
    for utt in ("p315_001", "p315_002"):  # p315: audio, no transcripts
        tone(wav / "p315" / f"{utt}_mic1.flac", 48000)
        tone(wav / "p315" / f"{utt}_mic2.flac", 48000)
    if corrupt:
        (root / "txt" / "p225" / "p225_003.txt").write_text("No audio for this one.\n")
        (wav / "p225" / "p225_004_mic1.flac").write_bytes(b"not a flac file at all" * 10)
        (wav / "p225" / "p225_005_mic1.flac").write_bytes(b"")
    return root


def test_vctk_rows_ids_text_and_extra(tmp_path):
    root = make_vctk(tmp_path / "VCTK-Corpus-0.92")
    df = prepare_vctk(root)  # mic1
    rows = by_id(df)
    assert sorted(rows) == ["p225_001_mic1", "p225_002_mic1", "p280_001_mic1", "p315_001_mic1", "p315_002_mic1"]
    assert (df["status"] == "ok").all()
    assert set(df["language"]) == {"en"} and set(df["corpus"]) == {"vctk"}
    r = rows["p225_001_mic1"]
    assert r["text"] == "Please call Stella."
    assert r["speaker"] == "p225"
    assert r["path"] == "wav48_silence_trimmed/p225/p225_001_mic1.flac"
    assert r["sample_rate"] == 48000 and r["num_samples"] == 4800
    assert r["duration_s"] == pytest.approx(0.1)
    assert r["sha256"] == hashlib.sha256((root / r["path"]).read_bytes()).hexdigest()
    assert json.loads(r["extra"]) == {"mic": "mic1", "age": 23, "gender": "F", "accent": "English", "region": "Southern England"}
    p315 = rows["p315_001_mic1"]
    assert pd.isna(p315["text"])  # kept, not dropped like lhotse does
    assert json.loads(p315["extra"])["comment"] == "Text unavailable"
    assert json.loads(p315["extra"])["region"] == "New England"
    assert any("p315" in w and "no transcripts" in w for w in df.attrs["warnings"])
    roundtrip(df, root, tmp_path)


def test_vctk_mic_option(tmp_path):
    root = make_vctk(tmp_path / "vctk")
    mic2 = prepare_vctk(root, mic="mic2")
    assert sorted(mic2["utt_id"]) == ["p225_001_mic2", "p225_002_mic2", "p315_001_mic2", "p315_002_mic2"]
    assert (mic2["status"] == "ok").all()  # p280's missing mic2 is one warning, not failed rows
    assert any("p280" in w and "mic2" in w for w in mic2.attrs["warnings"])
    both = prepare_vctk(root, mic="both")
    assert len(both) == 9 and both["utt_id"].is_unique
    assert {json.loads(e)["mic"] for e in both["extra"]} == {"mic1", "mic2"}
    with pytest.raises(ValueError, match="mic"):
        prepare_vctk(root, mic="mic3")


def test_vctk_problems_become_failed_rows(tmp_path):
    root = make_vctk(tmp_path / "vctk", corrupt=True)
    (root / "speaker-info.txt").write_text(SPEAKER_INFO.replace("p315  18  M    American    New  England  (Text unavailable)\n", ""))
    df = prepare_vctk(root, num_jobs=2)
    rows = by_id(df)
    failed = df[df["status"] == "failed"]
    assert sorted(failed["utt_id"]) == ["p225_003_mic1", "p225_004_mic1", "p225_005_mic1"]
    assert "p225_003_mic1.flac: audio file missing" in rows["p225_003_mic1"]["error"]
    assert rows["p225_003_mic1"]["text"] == "No audio for this one."
    assert "p225_004_mic1.flac: not a readable audio file" in rows["p225_004_mic1"]["error"]
    assert "p225_005_mic1.flac: empty file" in rows["p225_005_mic1"]["error"]
    assert (df["status"] == "ok").sum() == 5  # the run went on
    assert any("p315" in w and "speaker-info" in w for w in df.attrs["warnings"])
    assert json.loads(rows["p315_001_mic1"]["extra"]) == {"mic": "mic1"}
    back = roundtrip(df, root, tmp_path)
    assert (back["status"] == "failed").sum() == 3
    s = summarize(df)
    assert (s.ok, s.failed) == (5, 3) and len(s.errors) == 3


def test_vctk_missing_root_and_metadata(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        prepare_vctk(tmp_path / "nope")
    root = make_vctk(tmp_path / "vctk")
    (root / "speaker-info.txt").unlink()
    df = prepare_vctk(root)
    assert len(df) == 5 and (df["status"] == "ok").all()
    assert any("speaker-info.txt: missing" in w for w in df.attrs["warnings"])
    (root / "wav48_silence_trimmed").rename(root / "wav48")
    with pytest.raises(CorpusError, match="pre-0.92"):
        prepare_vctk(root)


def test_vctk_ids_match_lhotse(tmp_path, caplog):
    lhotse_vctk = pytest.importorskip("lhotse.recipes.vctk", reason="lhotse (test extra) not installed")
    root = make_vctk(tmp_path / "vctk")
    caplog.set_level(logging.ERROR)
    for mic in ("mic1", "mic2"):
        theirs = lhotse_vctk.prepare_vctk(root, use_edinburgh_vctk_url=True, mic_id=mic)["supervisions"]
        ours = prepare_vctk(root, mic=mic)
        with_text = ours[ours["text"].notna()]
        assert sorted(s.id for s in theirs) == sorted(with_text["utt_id"])
        assert {s.id: s.speaker for s in theirs} == dict(zip(with_text["utt_id"], with_text["speaker"]))
        assert {s.id: s.text for s in theirs} == dict(zip(with_text["utt_id"], with_text["text"]))
        # What lhotse drops silently we keep: p315's audio.
        assert {"p315_001_" + mic, "p315_002_" + mic} <= set(ours["utt_id"])


# ----------------------------------------------------------------------------- AISHELL-3

SPK_INFO = (
    "# AISHELL-3 speaker info\n"
    "# Speaker\tAgeGroup\tGender\tAccent\n"
    "SSB0005\tB\tfemale\tnorth\n"
    "SSB0009\tC\tmale\tsouth\n"
)


def make_aishell3(root: Path, problems: bool = False) -> Path:
    (root).mkdir(parents=True)
    (root / "spk-info.txt").write_text(SPK_INFO, encoding="utf-8")
    train = ["SSB00050001.wav\t广 guang3 州 zhou1 女 nv3", "SSB00050002.wav\t大 da4 学 xue2"]
    test = ["SSB00090001.wav\t登 deng1 山 shan1"]
    for part, lines in (("train", train), ("test", test)):
        for line in lines:
            name = line.split("\t")[0]
            tone(root / part / "wav" / name[:7] / name, 44100)
    if problems:
        train.append("SSB00050003.wav\t失 shi1 联 lian2")  # listed, no wav
        tone(root / "train" / "wav" / "SSB0006" / "SSB00060001.wav", 44100)  # wav, not listed, unknown speaker
    (root / "train" / "content.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (root / "test" / "content.txt").write_text("\n".join(test) + "\n", encoding="utf-8")
    (root / "train" / "label_train-set.txt").write_text(
        "# prosody labels\nSSB00050001|guang3 zhou1 nv3|广州女\n", encoding="utf-8"
    )
    return root


def test_aishell3_rows(tmp_path):
    root = make_aishell3(tmp_path / "data_aishell3")
    df = prepare_aishell3(root, num_jobs=2)
    rows = by_id(df)
    assert sorted(rows) == ["SSB00050001", "SSB00050002", "SSB00090001"]
    assert (df["status"] == "ok").all() and df.attrs["warnings"] == []
    r = rows["SSB00050001"]
    assert (r["speaker"], r["split"], r["language"], r["corpus"]) == ("SSB0005", "train", "zh", "aishell3")
    assert r["text"] == "广州女"
    assert r["path"] == "train/wav/SSB0005/SSB00050001.wav"
    assert r["sample_rate"] == 44100 and r["num_samples"] == 4410
    assert json.loads(r["extra"]) == {"pinyin": "guang3 zhou1 nv3", "age_group": "B", "gender": "female", "accent": "north"}
    assert rows["SSB00090001"]["split"] == "test"
    back = roundtrip(df, root, tmp_path)
    assert back.loc[back["utt_id"] == "SSB00050001", "text"].item() == "广州女"
    s = summarize(df)
    per = s.per_split.set_index("split")
    assert per.loc["train", "ok"] == 2 and per.loc["test", "speakers"] == 1


def test_aishell3_missing_and_unlisted(tmp_path):
    root = make_aishell3(tmp_path / "a3", problems=True)
    df = prepare_aishell3(root)
    rows = by_id(df)
    assert rows["SSB00050003"]["status"] == "failed"
    assert "SSB00050003.wav: audio file missing" in rows["SSB00050003"]["error"]
    assert rows["SSB00050003"]["text"] == "失联"
    extra = rows["SSB00060001"]
    assert extra["status"] == "ok" and pd.isna(extra["text"]) and extra["speaker"] == "SSB0006"
    warns = " | ".join(df.attrs["warnings"])
    assert "SSB00060001.wav: not listed" in warns and "speaker SSB0006: not in spk-info.txt" in warns
    roundtrip(df, root, tmp_path)
    with pytest.raises(CorpusError, match="split folders"):
        prepare_aishell3(root / "train")


def test_aishell3_ids_match_lhotse(tmp_path, caplog):
    lhotse_a3 = pytest.importorskip("lhotse.recipes.aishell3", reason="lhotse (test extra) not installed")
    root = make_aishell3(tmp_path / "a3")
    caplog.set_level(logging.ERROR)
    theirs = lhotse_a3.prepare_aishell3(root)
    ours = prepare_aishell3(root)
    for part in ("train", "test"):
        # lhotse 1.33 swaps the keys: its "recordings" entry holds the supervisions.
        sups = [s for s in theirs[part]["recordings"]]
        mine = ours[ours["split"] == part]
        assert sorted(s.id for s in sups) == sorted(mine["utt_id"])
        assert {s.id: (s.speaker, s.text) for s in sups} == dict(zip(mine["utt_id"], zip(mine["speaker"], mine["text"])))


# ----------------------------------------------------------------------------- NCSSD


def make_ncssd(root: Path) -> Path:
    d = root / "C-EN" / "12"
    meta = {"dialog": 12, "utterents": {
        "0": {"index": 0, "duration": 0.1, "speaker": 0, "text": "Hello there.", "sample_rate": 16000},
        "1": {"index": 1, "duration": 0.1, "speaker": 1, "text": "Hi, how are you?", "sample_rate": 16000},
        "2": {"index": 2, "duration": 0.1, "speaker": 0, "text": "Missing audio.", "sample_rate": 16000},
    }}
    d.mkdir(parents=True)
    (d / "metadata.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    tone(d / "0_0_d12.wav")
    (d / "0_0_d12.lab").write_text("Hello there!", encoding="utf-8")  # .lab wins over JSON text
    tone(d / "1_1_d12.wav")
    tone(d / "3_1_d12.wav")  # not in metadata.json
    (d / "3_1_d12.lab").write_text("Bye.", encoding="utf-8")
    z = root / "R-ZH" / "7"  # a dialogue without metadata.json
    tone(z / "0_1_d7.wav")
    (z / "0_1_d7.lab").write_text("你好", encoding="utf-8")
    return root


def test_ncssd_rows(tmp_path):
    root = make_ncssd(tmp_path / "NCSSD")
    df = prepare_ncssd(root)
    rows = by_id(df)
    assert sorted(rows) == ["ncssd-C-EN-0_0_d12", "ncssd-C-EN-1_1_d12", "ncssd-C-EN-2_0_d12", "ncssd-C-EN-3_1_d12", "ncssd-R-ZH-0_1_d7"]
    a = rows["ncssd-C-EN-0_0_d12"]
    assert (a["text"], a["language"], a["speaker"], a["split"]) == ("Hello there!", "en", "C-EN_d12_0", "")
    assert json.loads(a["extra"]) == {"subset": "C-EN", "dialog": "12", "dialog_speaker": "0", "turn": 0, "declared_sample_rate": 16000}
    assert rows["ncssd-C-EN-1_1_d12"]["text"] == "Hi, how are you?"
    missing = rows["ncssd-C-EN-2_0_d12"]
    assert missing["status"] == "failed" and "2_0_d12.wav: audio file missing" in missing["error"]
    assert rows["ncssd-C-EN-3_1_d12"]["status"] == "ok" and rows["ncssd-C-EN-3_1_d12"]["text"] == "Bye."
    zh = rows["ncssd-R-ZH-0_1_d7"]
    assert (zh["language"], zh["speaker"], zh["text"]) == ("zh", "R-ZH_d7_1", "你好")
    warns = " | ".join(df.attrs["warnings"])
    assert "3_1_d12.wav: not in" in warns and "no metadata.json" in warns
    roundtrip(df, root, tmp_path)


def test_ncssd_bad_json_and_language_override(tmp_path):
    root = make_ncssd(tmp_path / "NCSSD")
    (root / "C-EN" / "12" / "metadata.json").write_text("{not json", encoding="utf-8")
    df = prepare_ncssd(root, language="en")
    assert (df["status"] == "ok").all() and len(df) == 4  # read from files alone; no turn 2 row
    assert set(df["language"]) == {"en"}
    assert any("unreadable JSON" in w for w in df.attrs["warnings"])


# ----------------------------------------------------------------------------- ASVspoof 2019 LA


def make_asvspoof(root: Path) -> Path:
    la = root / "LA"
    proto = la / "ASVspoof2019_LA_cm_protocols"
    proto.mkdir(parents=True)
    (proto / "ASVspoof2019.LA.cm.train.trn.txt").write_text(
        "LA_0079 LA_T_1138215 - - bonafide\n"
        "LA_0079 LA_T_1004644 - A01 spoof\n"
        "LA_0080 LA_T_1000001 - A02 spoof\n"  # flac missing
        "garbage line\n"
    )
    (proto / "ASVspoof2019.LA.cm.dev.trl.txt").write_text("LA_0069 LA_D_1047731 - - bonafide\n")
    for utt in ("LA_T_1138215", "LA_T_1004644", "LA_T_9999999"):  # the last is unlisted
        tone(la / "ASVspoof2019_LA_train" / "flac" / f"{utt}.flac")
    tone(la / "ASVspoof2019_LA_dev" / "flac" / "LA_D_1047731.flac")
    return root


def test_asvspoof2019_la_rows(tmp_path):
    root = make_asvspoof(tmp_path / "asv")
    df = prepare_asvspoof2019_la(root)
    rows = by_id(df)
    assert sorted(rows) == ["LA_D_1047731", "LA_T_1000001", "LA_T_1004644", "LA_T_1138215", "LA_T_9999999"]
    bona = rows["LA_T_1138215"]
    assert (bona["is_fake"], bona["label"], bona["label_name"], bona["domain"], bona["speaker"], bona["split"]) == (
        False, 0, "real", "real", "LA_0079", "train")
    assert bona["path"] == "LA/ASVspoof2019_LA_train/flac/LA_T_1138215.flac"
    spoof = rows["LA_T_1004644"]
    assert (spoof["is_fake"], spoof["label"], spoof["label_name"], spoof["domain"], spoof["vq"]) == (
        True, -1, "A01", "external", "unknown")
    assert json.loads(spoof["extra"]) == {"attack": "A01", "key": "spoof"}
    assert rows["LA_T_1000001"]["status"] == "failed" and "audio file missing" in rows["LA_T_1000001"]["error"]
    assert rows["LA_T_9999999"]["status"] == "failed" and "label unknown" in rows["LA_T_9999999"]["error"]
    assert rows["LA_D_1047731"]["split"] == "dev"
    warns = " | ".join(df.attrs["warnings"])
    assert "garbage line" in warns and "eval.trl.txt: missing" in warns
    roundtrip(df, root, tmp_path)
    only = prepare_asvspoof2019_la(root / "LA", bonafide_only=True, splits=("train",))
    assert sorted(only.loc[only["status"] == "ok", "utt_id"]) == ["LA_T_1138215"]
    assert not only["is_fake"].any()


def test_asvspoof2019_la_without_protocols(tmp_path):
    (tmp_path / "LA").mkdir()
    with pytest.raises(CorpusError, match="no CM protocol"):
        prepare_asvspoof2019_la(tmp_path)
    with pytest.raises(ValueError, match="split"):
        prepare_asvspoof2019_la(tmp_path, splits=("test",))


# ----------------------------------------------------------------------------- In-the-Wild


def test_in_the_wild_rows(tmp_path):
    data = tmp_path / "itw" / "release_in_the_wild"
    data.mkdir(parents=True)
    (data / "meta.csv").write_text(
        "file,speaker,label\n0.wav,Alec Guinness,spoof\n1.wav,Alec Guinness,bona-fide\n2.wav,Ayn Rand,bona-fide\n3.wav,X,weird\n"
    )
    for n in (0, 1, 3, 5):  # 2 missing, 5 unlisted
        tone(data / f"{n}.wav")
    df = prepare_in_the_wild(tmp_path / "itw")
    rows = by_id(df)
    assert sorted(rows) == [f"in_the_wild-{n}" for n in (0, 1, 2, 3, 5)]
    assert rows["in_the_wild-0"]["is_fake"] and rows["in_the_wild-0"]["label_name"] == "unknown"
    real = rows["in_the_wild-1"]
    assert (real["is_fake"], real["speaker"], real["path"], real["status"]) == (
        False, "Alec Guinness", "release_in_the_wild/1.wav", "ok")
    assert "audio file missing" in rows["in_the_wild-2"]["error"]
    assert "unknown label 'weird'" in rows["in_the_wild-3"]["error"]
    assert "label unknown" in rows["in_the_wild-5"]["error"]
    roundtrip(df, tmp_path / "itw", tmp_path)
    bona = prepare_in_the_wild(data, bonafide_only=True)
    assert set(bona["utt_id"]) == {"in_the_wild-1", "in_the_wild-2", "in_the_wild-5"}
    (data / "meta.csv").unlink()
    with pytest.raises(CorpusError, match="meta.csv"):
        prepare_in_the_wild(data)


# ----------------------------------------------------------------------------- labelled folder


def test_labelled_folder_rows(tmp_path):
    root = tmp_path / "alm_outputs"
    tone(root / "moshi" / "a.wav")
    tone(root / "real" / "b.flac")
    tone(root / "c.wav")
    tone(root / "stray.wav")  # not listed
    (root / "labels.tsv").write_text(
        "file\tlabel\tspeaker\tsplit\tprompt_id\n"
        "moshi/a.wav\tmoshi\tspk1\teval\tq7\n"
        "real/b.flac\tBona-Fide\tspk2\teval\t\n"
        "c.wav\treal\t\t\t\n"
        "gone.wav\tvalle\t\t\t\n"
        "c.wav\treal\t\t\t\n"  # listed twice
    )
    df = prepare_labelled_folder(root, language="en", declared_labels=("moshi", "valle"))
    rows = by_id(df)
    a = rows["alm_outputs-moshi-a"]
    assert a["status"] == "ok"
    assert (a["is_fake"], a["label_name"], a["domain"], a["speaker"], a["split"], a["language"]) == (
        True, "moshi", "external", "spk1", "eval", "en")
    assert json.loads(a["extra"]) == {"prompt_id": "q7", "label": "moshi"}
    assert rows["alm_outputs-real-b"]["label_name"] == "real" and not rows["alm_outputs-real-b"]["is_fake"]
    assert rows["alm_outputs-c"]["status"] == "ok"
    assert rows["alm_outputs-c#dup2"]["status"] == "failed" and "duplicate" in rows["alm_outputs-c#dup2"]["error"]
    assert "audio file missing" in rows["alm_outputs-gone"]["error"]
    assert "label unknown" in rows["alm_outputs-stray"]["error"]
    roundtrip(df, root, tmp_path)
    named = prepare_labelled_folder(root, labels="labels.tsv", corpus="alm", allow_new_labels=True)
    assert set(named["corpus"]) == {"alm"}
    with pytest.raises(CorpusError, match="no labels file"):
        prepare_labelled_folder(tmp_path / "alm_outputs" / "moshi")


# ----------------------------------------------------------------------------- shared machinery


def test_parallel_equals_serial_and_summary(tmp_path):
    root = make_vctk(tmp_path / "vctk", corrupt=True)
    a, b = prepare_vctk(root, mic="both", num_jobs=1), prepare_vctk(root, mic="both", num_jobs=3)
    cols = [c for c in a.columns if c != "created_at"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    with pytest.raises(ValueError, match="num_jobs"):
        prepare_vctk(root, num_jobs=0)


def test_empty_collection_gives_a_valid_empty_manifest(tmp_path):
    df = finish(Collected(), corpus="x")
    assert len(df) == 0
    validate_manifest(df)
    assert summarize(df).rows == 0


def test_preset_error_keeps_hash_of_existing_file(tmp_path):
    f = tone(tmp_path / "x.wav")
    col = Collected()
    col.add(real_row(utt_id="x", corpus="c", path="x.wav"), f, "x.wav: metadata says no")
    row = finish(col).iloc[0]
    assert row["status"] == "failed" and row["error"] == "x.wav: metadata says no"
    assert row["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- partitions and seeded caps


def make_itw(root: Path, n: int = 10) -> Path:
    """An In-the-Wild tree of ``n`` listed files (even: bona fide, odd: spoof); file 1 is missing,
    file 2 is not audio, ``stray.wav`` is unlisted."""
    data = root / "release_in_the_wild"
    data.mkdir(parents=True)
    lines = ["file,speaker,label"]
    for k in range(n):
        lines.append(f"{k}.wav,S{k % 3},{'spoof' if k % 2 else 'bona-fide'}")
        if k == 2:
            (data / "2.wav").write_bytes(b"not audio at all\n" * 4)
        elif k != 1:
            tone(data / f"{k}.wav", seed=k)
    tone(data / "stray.wav")
    (data / "meta.csv").write_text("\n".join(lines) + "\n")
    return root


def test_seeded_cap_counts_ok_rows_and_keeps_failed_rows(tmp_path):
    root = make_itw(tmp_path / "itw")
    full = prepare_in_the_wild(root)
    assert (full["status"] == "ok").sum() == 8 and "sample" not in full.attrs
    capped = prepare_in_the_wild(root, max_rows=3, seed=5)
    ok = capped[capped["status"] == "ok"]
    assert len(ok) == 3 and set(ok["utt_id"]) <= set(full.loc[full["status"] == "ok", "utt_id"])
    # failures the metadata already shows (missing file, unlisted file) are always kept
    failed = capped.loc[capped["status"] == "failed", "utt_id"]
    assert {"in_the_wild-1", "in_the_wild-stray"} <= set(failed)
    info = capped.attrs["sample"]
    assert info["max_rows"] == 3 and info["seed"] == 5 and info["ok"] == 3 and info["listed"] == 11
    assert info["not_drawn"] == 9 - info["drawn"] and len(capped) == 2 + info["drawn"]
    assert any("max_rows 3 (seed 5)" in w and "not drawn" in w for w in capped.attrs["warnings"])
    # deterministic: same seed, same rows, whatever the thread count; another seed, another sample
    again = prepare_in_the_wild(root, max_rows=3, seed=5, num_jobs=3)
    assert list(again["utt_id"]) == list(capped["utt_id"])
    other = prepare_in_the_wild(root, max_rows=3, seed=6)
    assert set(other.loc[other["status"] == "ok", "utt_id"]) != set(ok["utt_id"])
    # a cap above the ok rows reads everything: the full manifest, plus a note that it fell short
    everything = prepare_in_the_wild(root, max_rows=50, seed=5)
    assert list(everything["utt_id"]) == list(full["utt_id"]) and list(everything["status"]) == list(full["status"])
    assert any("only 8 ok rows exist" in w for w in everything.attrs["warnings"])
    with pytest.raises(ValueError, match="max_rows"):
        prepare_in_the_wild(root, max_rows=0)


def test_cap_replaces_rows_that_fail_on_reading_and_ignores_listing_order(tmp_path):
    from pipeline.corpora.common import Pending, read_sample

    items = []
    for k in range(12):
        path = tmp_path / f"u{k:02d}.wav"
        if k % 2:  # every other file is broken: it only shows when read
            path.write_bytes(b"broken\n" * 8)
        else:
            tone(path, seed=k)
        items.append(Pending(real_row(utt_id=f"u{k:02d}", corpus="c", path=path.name), path))
    rows, info = read_sample(items, 4, seed=11)
    ok = [r["utt_id"] for r in rows if r["status"] == "ok"]
    bad = [r for r in rows if r["status"] == "failed"]
    assert len(ok) == 4 and len(rows) == info["drawn"] == 4 + len(bad)
    assert all("not a readable audio file" in r["error"] for r in bad)
    assert [r["utt_id"] for r in rows] == sorted(r["utt_id"] for r in rows)  # listing order kept
    shuffled = [items[i] for i in np.random.default_rng(0).permutation(len(items))]
    rows2, _ = read_sample(shuffled, 4, seed=11)
    assert sorted(r["utt_id"] for r in rows2) == sorted(r["utt_id"] for r in rows)


def test_partitions(tmp_path):
    root = make_asvspoof(tmp_path / "asv")
    proto = root / "LA" / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt"
    proto.write_text("LA_0039 LA_E_2834763 - - bonafide\nLA_0039 LA_E_1000002 - A07 spoof\nLA_0040 LA_E_1000003 - A19 spoof\n")
    for utt in ("LA_E_2834763", "LA_E_1000002", "LA_E_1000003"):
        tone(root / "LA" / "ASVspoof2019_LA_eval" / "flac" / f"{utt}.flac")
    ev = prepare_asvspoof2019_la(root, splits=("eval",))
    assert sorted(ev["utt_id"]) == ["LA_E_1000002", "LA_E_1000003", "LA_E_2834763"] and set(ev["split"]) == {"eval"}
    assert (ev["status"] == "ok").all()
    assert ev.groupby("label_name").size().to_dict() == {"A07": 1, "A19": 1, "real": 1}
    assert set(ev.loc[ev["is_fake"], "label"]) == {-1}
    assert len(prepare_asvspoof2019_la(root)) == len(ev) + 5  # all partitions: train 4 + dev 1 more

    nc = make_ncssd(tmp_path / "NCSSD")
    zh = prepare_ncssd(nc, subsets=("R-ZH",))
    assert list(zh["utt_id"]) == ["ncssd-R-ZH-0_1_d7"]
    assert len(prepare_ncssd(nc, subsets=("C-EN", "R-ZH"))) == len(prepare_ncssd(nc)) == 5
    with pytest.raises(ValueError, match=r"subset\(s\) \['R-EN'\] not found.*'C-EN', 'R-ZH'"):
        prepare_ncssd(nc, subsets=("R-EN",))

    ai = make_aishell3(tmp_path / "ai")
    assert set(prepare_aishell3(ai, splits=("test",))["split"]) == {"test"}
    with pytest.raises(ValueError, match="unknown AISHELL-3 split"):
        prepare_aishell3(ai, splits=("eval",))
