"""Hostile inputs (issue 22, items 1-8): every bad input is a failed row naming file and reason,
every good input stays ok, nothing crashes and no good row is lost.

The hostile corpus is made here, small: the "long" file is 3 s with ``max_item_seconds`` set to 2.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from manifests import read_manifest, real_row, write_manifest
from pipeline.corpora import prepare_labelled_folder
from pipeline.generate import run_generation
from pipeline.plan import make_plan
from pipeline.recipe import GenerateConfig, VariantSpec

SR = 16000


def tone(seconds: float = 0.5, sr: int = SR, channels: int = 1, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1)


# name -> what the row must say ("" = a good input that must stay ok)
GOOD = ("tone.wav", "stereo.wav", "ch8.wav", "sr8k.wav", "sr192k.wav", "clipped.wav", "silence.wav",
        "ünïcødé_日本語.wav", "long.wav", "moshi_out.wav")
BAD = {
    "empty.wav": "empty file",
    "header_only.wav": "no samples",
    "truncated.flac": "cannot decode",
    "text.wav": "not a readable audio file",
    "page.flac": "not a readable audio file",
    "nan.wav": "NaN sample at sample 4000",
    "inf.wav": "infinite sample at sample 123",
    "one_sample.wav": "too short",
    "broken_link.wav": "broken symbolic link",
    "folder.wav": "a directory",
    "conflict.wav": "conflicting labels",
    "typo.wav": "unknown label 'bonafied'",
    "alien.wav": "unknown label 'martian'",
    "outside.wav": "outside the corpus folder",  # listed as ../outside.wav
}


def make_hostile_folder(tmp_path):
    """A labelled folder holding every hostile input of issue 22, and its labels.csv."""
    root = tmp_path / "hostile"
    root.mkdir()
    sf.write(root / "tone.wav", tone(), SR)
    sf.write(root / "stereo.wav", tone(channels=2), SR)
    sf.write(root / "ch8.wav", tone(channels=8), SR)
    sf.write(root / "sr8k.wav", tone(sr=8000), 8000)
    sf.write(root / "sr192k.wav", tone(0.1, sr=192000), 192000)
    sf.write(root / "clipped.wav", np.clip(tone(amp=3.0), -1, 1), SR)
    sf.write(root / "silence.wav", np.zeros(SR // 2, np.float32), SR)
    sf.write(root / "ünïcødé_日本語.wav", tone(), SR)
    sf.write(root / "long.wav", tone(3.0), SR)
    sf.write(root / "moshi_out.wav", tone(), SR)
    (root / "empty.wav").write_bytes(b"")
    sf.write(root / "header_only.wav", np.zeros(0, np.float32), SR)
    sf.write(tmp_path / "full.flac", tone(2.0), SR)
    data = (tmp_path / "full.flac").read_bytes()
    (root / "truncated.flac").write_bytes(data[: len(data) // 2])
    (root / "text.wav").write_text("just some text, not audio\n" * 20)
    (root / "page.flac").write_text("<!doctype html><html><body>404 Not Found</body></html>\n")
    x = tone()
    x[4000] = np.nan
    sf.write(root / "nan.wav", x, SR, subtype="FLOAT")
    x = tone()
    x[123] = np.inf
    sf.write(root / "inf.wav", x, SR, subtype="FLOAT")
    sf.write(root / "one_sample.wav", np.array([0.1], np.float32), SR)
    os.symlink(root / "gone_target.wav", root / "broken_link.wav")
    (root / "folder.wav").mkdir()
    sf.write(root / "conflict.wav", tone(), SR)
    sf.write(root / "typo.wav", tone(), SR)
    sf.write(root / "alien.wav", tone(), SR)
    sf.write(tmp_path / "outside.wav", tone(), SR)  # real audio, outside the corpus folder
    sf.write(tmp_path / "abs.wav", tone(), SR)
    lines = ["file,label"]
    lines += [f"{n},{'moshi' if n == 'moshi_out.wav' else 'real'}" for n in GOOD]
    lines += [f"{n},real" for n in BAD if n not in ("conflict.wav", "typo.wav", "alien.wav", "outside.wav")]
    lines += ["../outside.wav,real", "conflict.wav,real", "conflict.wav,moshi", "typo.wav,bonafied", "alien.wav,martian",
              f"{tmp_path / 'abs.wav'},real"]
    (root / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def rows_by_file(df: pd.DataFrame) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for rec in df.to_dict("records"):
        out.setdefault(os.path.basename(rec["path"]), []).append(rec)
    return out


@pytest.fixture
def hostile(tmp_path):
    return make_hostile_folder(tmp_path)


# ----------------------------------------------------------------------------- ingest, one test per defect
def test_nan_inf_truncated_fail_at_ingest_with_position(hostile):
    rows = rows_by_file(prepare_labelled_folder(hostile, corpus="moshi"))
    for name in ("nan.wav", "inf.wav", "truncated.flac"):
        (row,) = rows[name]
        assert row["status"] == "failed" and name in row["error"] and BAD[name] in row["error"], row["error"]
    assert "(0.250 s)" in rows["nan.wav"][0]["error"]  # the position in seconds too


def test_header_only_trusts_headers(hostile):
    from pipeline.corpora.common import read_options

    with read_options(header_only=True):
        rows = rows_by_file(prepare_labelled_folder(hostile, declared_labels=("moshi",)))
    assert rows["nan.wav"][0]["status"] == "ok" and rows["inf.wav"][0]["status"] == "ok"  # not decoded
    assert rows["text.wav"][0]["status"] == "failed"  # the header is still read


def test_minimum_length_at_ingest(hostile):
    (row,) = rows_by_file(prepare_labelled_folder(hostile, corpus="moshi"))["one_sample.wav"]
    assert row["status"] == "failed" and "too short: 1 samples" in row["error"] and "one_sample.wav" in row["error"]


def test_paths_outside_root_refused_unless_allowed(hostile, tmp_path):
    df = prepare_labelled_folder(hostile, declared_labels=("moshi",))
    outside = df[df["path"].str.contains("outside.wav|abs.wav")]
    assert len(outside) == 2 and (outside["status"] == "failed").all()
    assert outside["error"].str.contains("outside the corpus folder").all()
    allowed = prepare_labelled_folder(hostile, declared_labels=("moshi",), allow_outside_root=True)
    ok = allowed[allowed["path"].str.contains("outside.wav|abs.wav")]
    assert (ok["status"] == "ok").all() and ok["path"].map(os.path.isabs).all()


def test_undeclared_labels_fail_and_counts_reported(hostile):
    df = prepare_labelled_folder(hostile)  # moshi undeclared too
    rows = rows_by_file(df)
    assert "unknown label 'bonafied'" in rows["typo.wav"][0]["error"]
    assert "unknown label 'martian'" in rows["alien.wav"][0]["error"]
    assert rows["moshi_out.wav"][0]["status"] == "failed"
    assert df.attrs["label_counts"]["martian"] == 1 and df.attrs["label_counts"]["bonafied"] == 1
    assert any(w.startswith("labels: ") and "martian 1" in w for w in df.attrs["warnings"])
    assert set(df.loc[df["status"] == "ok", "label_name"]) == {"real"}  # no new spoof class slipped in
    free = rows_by_file(prepare_labelled_folder(hostile, allow_new_labels=True))
    assert free["alien.wav"][0]["status"] == "ok" and free["alien.wav"][0]["label_name"] == "martian"
    named = rows_by_file(prepare_labelled_folder(hostile, corpus="moshi"))  # the corpus name declares its label
    assert named["moshi_out.wav"][0]["status"] == "ok"


def test_broken_symlink_and_directory_are_failed_rows(hostile):
    rows = rows_by_file(prepare_labelled_folder(hostile, corpus="moshi"))
    assert "broken symbolic link" in rows["broken_link.wav"][0]["error"] and "gone_target.wav" in rows["broken_link.wav"][0]["error"]
    assert "a directory" in rows["folder.wav"][0]["error"]
    # Unlisted ones are rows too (they used to vanish from the listing).
    (hostile / "labels.csv").write_text("file,label\ntone.wav,real\n")
    rows = rows_by_file(prepare_labelled_folder(hostile))
    assert rows["broken_link.wav"][0]["status"] == "failed" and rows["folder.wav"][0]["status"] == "failed"


def test_conflicting_labels_fail_every_line(hostile):
    rows = rows_by_file(prepare_labelled_folder(hostile, corpus="moshi"))["conflict.wav"]
    assert len(rows) == 2 and all(r["status"] == "failed" for r in rows)
    assert all("conflicting labels" in r["error"] and "'real'" in r["error"] and "'moshi'" in r["error"] for r in rows)


def test_cli_ingest_flags(hostile, tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    out = tmp_path / "h.parquet"
    r = CliRunner().invoke(app, ["ingest", "labelled_folder", str(hostile), "-o", str(out), "--label", "moshi",
                                 "--header-only"])
    assert r.exit_code == 0, r.output
    df = read_manifest(out)
    assert df.loc[df["path"] == "nan.wav", "status"].item() == "ok"
    r = CliRunner().invoke(app, ["ingest", "labelled_folder", str(hostile), "-o", str(out), "--force", "--allow-new-labels",
                                 "--allow-outside-root", "--min-seconds", "0"])
    assert r.exit_code == 0, r.output
    df = read_manifest(out)
    assert df.loc[df["path"] == "one_sample.wav", "status"].item() == "ok"
    assert df.loc[df["path"] == "nan.wav", "status"].item() == "failed"
    assert "labels:" in r.output and "martian 1" in r.output


# ----------------------------------------------------------------------------- generation
def source_manifest(tmp_path, items: dict[str, float], root=None) -> tuple:
    """A source manifest of tones ``name -> seconds`` under ``tmp_path/src``."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    rows = []
    for name, sec in items.items():
        sf.write(src / f"{name}.wav", tone(sec), SR)
        n = int(sec * SR)
        rows.append(real_row(utt_id=name, corpus="t", path=f"{name}.wav", speaker="s", sample_rate=SR,
                             num_samples=n, duration_s=n / SR))
    path = tmp_path / "t.parquet"
    write_manifest(rows, path, root=root or src)
    return path, src


def local_config(path, **kw) -> GenerateConfig:
    return GenerateConfig(sources=(path,), variants=(VariantSpec("toy_mulaw_16k"),), weights="random:0",
                          executor="local", shard_rows=4, **kw)


def test_too_long_is_a_failed_row_before_any_model_runs(tmp_path):
    path, _ = source_manifest(tmp_path, {"a": 0.3, "long": 3.0, "b": 0.4})
    s = run_generation(local_config(path, max_item_seconds=2.0), tmp_path / "out", quiet=True)
    df = read_manifest(s.manifest).set_index("utt_id")
    assert df.loc["toy_mulaw_16k__long", "status"] == "failed"
    assert "too long: 3 s > 2 s" in df.loc["toy_mulaw_16k__long", "error"] and "long.wav" in df.loc["toy_mulaw_16k__long", "error"]
    assert (df.drop("toy_mulaw_16k__long")["status"] == "ok").all()
    assert not (tmp_path / "out" / "dataset" / "audio" / "toy_mulaw_16k" / "s" / "long.flac").exists()
    # Default bound: 600 s.
    assert GenerateConfig(sources=(path,), variants=(VariantSpec("toy_mulaw_16k"),)).max_item_seconds == 600.0


def test_shorter_than_one_codec_frame_refused_at_plan(tmp_path):
    from codec_wrappers.catalog import load_catalog

    hop_variant = next(v for v in load_catalog().values() if int(v.options.get("hop_length", 1) or 1) >= 320)
    hop = int(hop_variant.options["hop_length"])
    frame_s = hop / hop_variant.sample_rate
    path, _ = source_manifest(tmp_path, {"tiny": frame_s / 2, "fine": 0.5})
    plan = make_plan([path], [hop_variant], tmp_path / "ds", min_item_seconds=0.0).set_index("source_utt_id")
    assert "less than one" in plan.loc["tiny", "plan_error"] and "frame" in plan.loc["tiny", "plan_error"]
    assert plan.loc["fine", "plan_error"] == ""


def test_edited_source_manifest_outside_root_refused(tmp_path):
    path, src = source_manifest(tmp_path, {"a": 0.3, "b": 0.3})
    sf.write(tmp_path / "x.wav", tone(0.3), SR)
    df = read_manifest(path)
    df.loc[df["utt_id"] == "b", "path"] = "../x.wav"  # an edited manifest
    write_manifest(df, path, root=src)
    s = run_generation(local_config(path), tmp_path / "out", quiet=True)
    out = read_manifest(s.manifest).set_index("source_utt_id")
    assert out.loc["a", "status"] == "ok" and out.loc["b", "status"] == "failed"
    assert "outside its corpus root" in out.loc["b", "error"] and "x.wav" in out.loc["b", "error"]
    s = run_generation(local_config(path, allow_outside_root=True), tmp_path / "out2", quiet=True)
    assert (read_manifest(s.manifest)["status"] == "ok").all()


def test_verify_sources_fails_changed_source(tmp_path):
    from manifests import sha256_file

    path, src = source_manifest(tmp_path, {"a": 0.3, "b": 0.3})
    df = read_manifest(path)
    df["sha256"] = [sha256_file(src / p) for p in df["path"]]
    write_manifest(df, path, root=src)
    sf.write(src / "b.wav", tone(0.3, amp=0.1), SR)  # changed after ingest
    s = run_generation(local_config(path, verify_sources=True), tmp_path / "out", quiet=True)
    out = read_manifest(s.manifest).set_index("source_utt_id")
    assert out.loc["a", "status"] == "ok" and "source changed since ingest" in out.loc["b", "error"]
    s = run_generation(local_config(path), tmp_path / "out3", quiet=True)  # off by default
    assert (read_manifest(s.manifest)["status"] == "ok").all()


def test_rows_record_executor_and_threads_and_resume_does_not_mix(tmp_path):
    path, _ = source_manifest(tmp_path, {"a": 0.3, "b": 0.4})
    s = run_generation(local_config(path, num_threads=1), tmp_path / "out", quiet=True)
    extra = [json.loads(e) for e in read_manifest(s.manifest)["extra"]]
    assert all(e["executor"] == "local" and e["num_threads"] == "1" for e in extra)
    again = run_generation(local_config(path, num_threads=1), tmp_path / "out", quiet=True)
    assert again.skipped == 2 and again.done == 0
    other = run_generation(local_config(path, num_threads=2), tmp_path / "out", quiet=True)
    assert other.skipped == 0 and other.done == 2  # made with another thread count: redone, not mixed
    extra = [json.loads(e) for e in read_manifest(other.manifest)["extra"]]
    assert {e["num_threads"] for e in extra} == {"2"}


# ----------------------------------------------------------------------------- the whole hostile run
def test_hostile_run_end_to_end(hostile, tmp_path):
    """Ingest + generate over every hostile input: each bad input a failed row naming file and
    reason, each good input ok, no crash, no good row lost."""
    df = prepare_labelled_folder(hostile, declared_labels=("moshi",), num_jobs=2)
    rows = rows_by_file(df)
    for name in GOOD:
        assert [r["status"] for r in rows[name]] == ["ok"], (name, rows[name][0]["error"])
    for name, reason in BAD.items():
        assert name in rows, name
        for r in rows[name]:
            assert r["status"] == "failed" and reason in r["error"], (name, r["error"])
            assert name in r["error"], (name, r["error"])
    (abs_row,) = [r for r in df.to_dict("records") if r["path"].endswith("abs.wav")]
    assert abs_row["status"] == "failed" and "outside the corpus folder" in abs_row["error"]
    manifest = tmp_path / "hostile.parquet"
    write_manifest(df, manifest, root=hostile)
    s = run_generation(local_config(manifest, max_item_seconds=2.0), tmp_path / "out", quiet=True)
    out = read_manifest(s.manifest)
    by_src = {u: rec for u, rec in zip(out["source_utt_id"], out.to_dict("records"))}
    real_ok = df[(df["status"] == "ok") & ~df["is_fake"]]
    assert set(by_src) == set(real_ok["utt_id"])  # every usable source has its row; none lost
    for uid, rec in by_src.items():
        if uid.endswith("-long"):
            assert rec["status"] == "failed" and "too long: 3 s > 2 s" in rec["error"] and "long.wav" in rec["error"]
        else:
            assert rec["status"] == "ok", (uid, rec["error"])


# ----------------------------------------------------------------------------- items that kill their worker
def crash_catalog(tmp_path, monkeypatch, mode: str) -> str:
    """A toy variant whose forward dies (``os._exit``) or raises MemoryError on batches over 1 s."""
    import yaml

    from codec_wrappers import catalog

    entry = {"id": f"toy_crash_{mode}", "family": "toy", "codec": "Toy crash", "sample_rate": SR, "bitrate_kbps": 128,
             "n_codebooks": 1, "taxonomy": {"vq": "SQ", "aux": "none", "decoder": "time"}, "st_label": None,
             "st_role": "extra", "options": {"crash_seconds": 1.0, "crash_mode": mode}}
    path = tmp_path / "crash_catalog.yaml"
    path.write_text(yaml.safe_dump({"variants": [entry]}))
    monkeypatch.setenv("NCST_CATALOG_PATH", str(path))
    catalog.clear_cache()
    return entry["id"]


def test_memory_error_fails_only_its_item(tmp_path, monkeypatch):
    vid = crash_catalog(tmp_path, monkeypatch, "memory")
    path, _ = source_manifest(tmp_path, {"a": 0.3, "b": 0.4, "big": 1.5, "c": 0.5})
    cfg = GenerateConfig(sources=(path,), variants=(VariantSpec(vid, batch_size=8),), weights="random:0",
                         executor="local", max_batch_seconds=10.0)
    s = run_generation(cfg, tmp_path / "out", quiet=True)
    out = read_manifest(s.manifest).set_index("source_utt_id")
    assert out.loc["big", "status"] == "failed" and "MemoryError" in out.loc["big", "error"]
    assert (out.drop("big")["status"] == "ok").all()  # the batch-mates were retried without it
    from codec_wrappers import catalog
    catalog.clear_cache()


def test_item_that_kills_the_process_spares_its_batch_mates_and_resume_does_not_loop(tmp_path, monkeypatch):
    import subprocess
    import sys

    vid = crash_catalog(tmp_path, monkeypatch, "exit")
    path, _ = source_manifest(tmp_path, {"a": 0.3, "b": 0.4, "big": 1.5, "c": 0.5})
    script = tmp_path / "gen.py"
    script.write_text(
        "import sys\n"
        "from pipeline.generate import run_generation\n"
        "from pipeline.recipe import GenerateConfig, VariantSpec\n"
        f"cfg = GenerateConfig(sources=({str(path)!r},), variants=(VariantSpec({vid!r}, batch_size=8),),\n"
        "                      weights='random:0', executor='local', max_batch_seconds=10.0, io_threads=0)\n"
        f"run_generation(cfg, {str(tmp_path / 'out')!r}, quiet=True)\n")
    runs = [subprocess.run([sys.executable, str(script)], cwd=os.getcwd(), capture_output=True, text=True, timeout=120)
            for _ in range(3)]
    # 1st: the padded batch holding "big" kills the process; 2nd: the four run alone, "big" dies alone
    # (the others' rows are kept at once); 3rd: "big" has died twice and fails without running.
    assert [r.returncode for r in runs] == [137, 137, 0], [r.stderr[-2000:] for r in runs]
    out = read_manifest(tmp_path / "out" / "dataset" / "manifests" / "fake.parquet").set_index("source_utt_id")
    assert sorted(out.index) == ["a", "b", "big", "c"]
    assert (out.drop("big")["status"] == "ok").all()
    assert out.loc["big", "status"] == "failed" and "killed the process that ran it in 2 attempts" in out.loc["big", "error"]
    assert "big.wav" in out.loc["big", "error"]
    again = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0  # a further resume does not loop on it
    from codec_wrappers import catalog
    catalog.clear_cache()


# ----------------------------------------------------------------------------- chunked mode
def test_crossfade_of_chunks_gives_the_signal_back():
    from pipeline.predictor import chunk_spans, crossfade

    x = np.random.default_rng(0).standard_normal(1001).astype(np.float32)
    spans = chunk_spans(len(x), 200, 50)
    assert spans[0] == (0, 200) and spans[1] == (150, 350) and spans[-1][1] == 1001
    np.testing.assert_allclose(crossfade([x[a:b] for a, b in spans], spans, len(x)), x, atol=1e-6)


def test_chunked_mode_runs_long_items_in_chunks_and_marks_them(tmp_path):
    from pipeline.audio_io import load_audio

    path, src = source_manifest(tmp_path, {"short": 0.5, "long": 3.0})
    cfg = local_config(path, max_item_seconds=10.0, chunk_seconds=1.0, chunk_overlap_seconds=0.25,
                       max_batch_seconds=10.0)
    s = run_generation(cfg, tmp_path / "out", quiet=True)
    out = read_manifest(s.manifest).set_index("source_utt_id")
    assert (out["status"] == "ok").all()
    assert json.loads(out.loc["long", "extra"])["chunked"] == "1 s chunks, 0.25 s overlap, linear cross-fade"
    assert "chunked" not in json.loads(out.loc["short", "extra"])
    assert out.loc["long", "num_samples"] == 3 * SR
    whole = run_generation(local_config(path, max_item_seconds=10.0), tmp_path / "whole", quiet=True)
    a, _ = load_audio(s.dataset_dir / out.loc["long", "path"])
    b, _ = load_audio(whole.dataset_dir / out.loc["long", "path"])
    assert np.abs(a - b).max() <= 2 / 32768  # the toy codec is sample-wise: chunks join without a seam
    # Changing the chunking redoes the chunked item only.
    again = run_generation(local_config(path, max_item_seconds=10.0, chunk_seconds=2.0, chunk_overlap_seconds=0.25),
                           tmp_path / "out", quiet=True)
    assert again.skipped == 1 and again.done == 1


def test_predictor_chunks_only_long_items():
    from pipeline.predictor import Predictor

    x = tone(3.0)
    whole = Predictor("toy_mulaw_16k", "random:0", device="cpu", max_batch_seconds=1.0)
    chunked = Predictor("toy_mulaw_16k", "random:0", device="cpu", max_batch_seconds=1.0, chunk_seconds=1.0,
                        chunk_overlap_seconds=0.25)
    (y1,), _ = whole.resynthesize([x], ["a.wav"])
    (y2,), _ = chunked.resynthesize([x], ["a.wav"])
    assert whole.forward_calls == 1 and chunked.forward_calls == 4  # spans 0-1, 0.75-1.75, 1.5-2.5, 2.25-3 s
    assert len(y2) == len(x) and np.abs(y1 - y2).max() < 1e-6
    (y3,), _ = chunked.resynthesize([tone(0.5)], ["b.wav"])
    assert chunked.forward_calls == 5 and len(y3) == SR // 2


def test_cli_generate_bounds_items(tmp_path):
    from typer.testing import CliRunner

    from gen_helpers import write_recipe
    from pipeline.cli import app

    path, _ = source_manifest(tmp_path, {"a": 0.3, "long": 3.0})
    recipe = write_recipe(tmp_path / "r.yaml", [path], executor="local")
    r = CliRunner().invoke(app, ["generate", str(recipe), "--max-item-seconds", "2"])
    assert r.exit_code == 0, r.output
    out = read_manifest(tmp_path / "out" / "dataset" / "manifests" / "fake.parquet").set_index("source_utt_id")
    assert out.loc["a", "status"] == "ok" and "too long: 3 s > 2 s" in out.loc["long", "error"]
    assert "too long" in r.output  # the summary's errors show it


def test_ray_item_that_kills_its_actor_spares_its_batch_mates(tmp_path, monkeypatch):
    """On Ray an actor killed by an item used to be restarted and the batch retried without end."""
    from gen_helpers import RAY_IP, ray_temp_dir

    vid = crash_catalog(tmp_path, monkeypatch, "exit")
    path, _ = source_manifest(tmp_path, {"a": 0.3, "b": 0.4, "big": 1.5, "c": 0.5})
    cfg = GenerateConfig(sources=(path,), variants=(VariantSpec(vid, batch_size=8),), weights="random:0",
                         executor="ray", max_batch_seconds=10.0, node_ip=RAY_IP, num_cpus=2, temp_dir=ray_temp_dir(),
                         split_io=False)
    s = run_generation(cfg, tmp_path / "out", quiet=True)
    out = read_manifest(s.manifest).set_index("source_utt_id")
    assert (out.drop("big")["status"] == "ok").all(), out["error"].to_dict()
    assert out.loc["big", "status"] == "failed" and "killed the process that ran it" in out.loc["big", "error"]
    assert all(json.loads(e)["executor"] == "ray" for e in out["extra"])
    from codec_wrappers import catalog
    catalog.clear_cache()
