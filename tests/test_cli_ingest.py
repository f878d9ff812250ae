"""``ncst ingest`` and ``ncst demo-corpus`` through typer's CliRunner."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from manifests import read_manifest
from pipeline.cli import app

runner = CliRunner()
SMALL = ["--vctk-speakers", "2", "--aishell3-speakers", "2", "--utterances", "2"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    result = runner.invoke(app, ["demo-corpus", str(root), *SMALL, "--corrupt", "--ncssd-dialogues", "2",
                                 "--asvspoof2019-la", "2", "--in-the-wild", "2"])
    assert result.exit_code == 0, result.output
    assert "corrupt:" in result.output and "vctk:" in result.output
    assert "asvspoof2019_la: " in result.output and "(4 files)" in result.output and "ncssd: " in result.output
    return root


def test_ingest_vctk_prints_summary_and_errors(demo, tmp_path):
    out = tmp_path / "vctk.parquet"
    result = runner.invoke(app, ["ingest", "vctk", str(demo / "vctk"), "-o", str(out), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "vctk: 3 ok, 1 failed" in result.output
    assert "errors (first 1 of 1)" in result.output
    assert "p901_001_mic1: " in result.output and "not a readable audio file" in result.output
    df = read_manifest(out, validate=True)
    assert len(df) == 4 and (df["status"] == "failed").sum() == 1
    assert df.attrs["root"] == str((demo / "vctk").resolve())


def test_ingest_aishell3_per_split(demo, tmp_path):
    out = tmp_path / "a.parquet"
    result = runner.invoke(app, ["ingest", "aishell3", str(demo / "aishell3"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "aishell3: 4 ok, 0 failed" in result.output
    assert "train" in result.output and "test" in result.output
    df = read_manifest(out)
    assert set(df["split"]) == {"train", "test"} and set(df["language"]) == {"zh"}


def test_ingest_options_and_errors(demo, tmp_path):
    out = tmp_path / "x.parquet"
    r = runner.invoke(app, ["ingest", "vctk", str(demo / "vctk"), "-o", str(out), "--mic", "mic2"])
    assert r.exit_code == 0 and set(read_manifest(out)["utt_id"].str[-4:]) == {"mic2"}
    r = runner.invoke(app, ["ingest", "aishell3", str(demo / "aishell3"), "-o", str(out), "--force", "--mic", "mic2"])
    assert r.exit_code != 0 and "--mic does not apply to aishell3" in r.output
    r = runner.invoke(app, ["ingest", "timit", str(demo), "-o", str(out), "--force"])
    assert r.exit_code != 0 and "unknown corpus" in r.output
    r = runner.invoke(app, ["ingest", "vctk", str(tmp_path / "missing"), "-o", str(out), "--force"])
    assert r.exit_code == 2 and "corpus directory not found" in r.output
    r = runner.invoke(app, ["ingest", "vctk", str(demo / "vctk"), "-o", str(out), "--force", "--mic", "mic9"])
    assert r.exit_code == 2 and "mic must be" in r.output


def test_ingest_labelled_folder_with_options(tmp_path):
    root = tmp_path / "alm"
    root.mkdir()
    sf.write(root / "a.wav", np.zeros(1600, np.float32) + 0.1, 16000)
    sf.write(root / "b.wav", np.zeros(1600, np.float32) + 0.1, 16000)
    (root / "my_labels.csv").write_text("file,label\na.wav,moshi\nb.wav,bonafide\n")
    out = tmp_path / "alm.parquet"
    r = runner.invoke(app, ["ingest", "labelled_folder", str(root), "-o", str(out), "--labels", "my_labels.csv",
                            "--name", "alm", "--language", "en", "--label", "moshi"])
    assert r.exit_code == 0, r.output
    df = read_manifest(out, validate=True)
    assert set(df["corpus"]) == {"alm"} and sorted(df["label_name"]) == ["moshi", "real"]


def test_ingest_with_no_usable_audio_exits_1(tmp_path):
    root = tmp_path / "empty_vctk"
    (root / "wav48_silence_trimmed" / "p1").mkdir(parents=True)
    (root / "wav48_silence_trimmed" / "p1" / "p1_001_mic1.flac").write_bytes(b"")
    r = runner.invoke(app, ["ingest", "vctk", str(root), "-o", str(tmp_path / "e.parquet")])
    assert r.exit_code == 1 and "0 ok rows" in r.output and "empty file" in r.output
    assert (tmp_path / "e.parquet").exists()  # the failed rows are still written


def test_demo_corpus_with_ingest(tmp_path):
    r = runner.invoke(app, ["demo-corpus", str(tmp_path / "d"), *SMALL, "--ingest", "-j", "2"])
    assert r.exit_code == 0, r.output
    assert "vctk: 4 ok, 0 failed" in r.output and "aishell3: 4 ok, 0 failed" in r.output
    v = read_manifest(tmp_path / "d" / "manifests" / "vctk.parquet", validate=True)
    a = read_manifest(tmp_path / "d" / "manifests" / "aishell3.parquet", validate=True)
    assert len(v) == 4 and len(a) == 4
    assert v.attrs["root"] == str((tmp_path / "d" / "vctk").resolve())


def test_ingest_partition(demo, tmp_path):
    out = tmp_path / "la.parquet"
    r = runner.invoke(app, ["ingest", "asvspoof2019_la", str(demo / "asvspoof2019_la"), "-o", str(out), "--partition", "eval"])
    assert r.exit_code == 0, r.output
    df = read_manifest(out, validate=True)
    assert set(df["split"]) == {"eval"} and df["utt_id"].str.startswith("LA_E_").all()
    assert (df["status"] == "ok").all() and df["is_fake"].sum() == 2 and (~df["is_fake"]).sum() == 2
    r = runner.invoke(app, ["ingest", "asvspoof2019_la", str(demo / "asvspoof2019_la"), "-o", str(out), "--force"])
    assert r.exit_code == 0 and set(read_manifest(out)["split"]) == {"train", "dev", "eval"}
    r = runner.invoke(app, ["ingest", "asvspoof2019_la", str(demo / "asvspoof2019_la"), "-o", str(out), "--force", "--partition", "test"])
    assert r.exit_code == 2 and "unknown ASVspoof2019 LA split 'test'" in r.output
    r = runner.invoke(app, ["ingest", "ncssd", str(demo / "ncssd"), "-o", str(out), "--force", "--partition", "R-EN"])
    assert r.exit_code == 0, r.output
    assert read_manifest(out)["utt_id"].str.startswith("ncssd-R-EN-").all()
    r = runner.invoke(app, ["ingest", "in_the_wild", str(demo / "in_the_wild"), "-o", str(out), "--partition", "eval"])
    assert r.exit_code != 0 and "--partition does not apply to in_the_wild" in r.output


def test_ingest_seeded_cap(demo, tmp_path):
    outs = [tmp_path / f"n{i}.parquet" for i in range(3)]
    for out, seed in zip(outs, (688, 688, 1)):
        r = runner.invoke(app, ["ingest", "ncssd", str(demo / "ncssd"), "-o", str(out), "--max-rows", "4", "--seed", str(seed)])
        assert r.exit_code == 0, r.output
        assert f"max_rows 4 (seed {seed})" in r.output and "2 of 6 listed utterances not drawn" in r.output
    a, b, c = (read_manifest(o, validate=True) for o in outs)
    assert len(a) == 4 and (a["status"] == "ok").all()
    assert list(a["utt_id"]) == list(b["utt_id"]) and set(a["utt_id"]) != set(c["utt_id"])
    r = runner.invoke(app, ["ingest", "ncssd", str(demo / "ncssd"), "-o", str(outs[0]), "--seed", "3"])
    assert r.exit_code != 0 and "--seed needs --max-rows" in r.output
    r = runner.invoke(app, ["ingest", "ncssd", str(demo / "ncssd"), "-o", str(outs[0]), "--max-rows", "0"])
    assert r.exit_code != 0
