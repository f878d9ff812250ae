"""Resume: a re-run skips what is done (ok row + file + sha256), redoes the rest, never duplicates."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from manifests import read_manifest
from pipeline.generate import read_shards, run_generation
from pipeline.recipe import GenerateConfig, VariantSpec

from gen_helpers import RAY_IP, kill_pids, make_source, pids_using, ray_temp_dir, write_recipe


def _config(src, **kw):
    kw = {"weights": "random:0", "batch_size": 3, "shard_rows": 4, **kw}
    return GenerateConfig(sources=(src,), variants=(VariantSpec("toy_mulaw_16k"),), **kw)


def test_resume_skips_done_and_redoes_the_rest(tmp_path):
    src = make_source(tmp_path, n=9, corrupt=1)
    first = run_generation(_config(src), tmp_path / "o", executor="local", quiet=True)
    assert (first.done, first.failed) == (9, 1)
    ref = read_manifest(first.manifest).set_index("utt_id")
    ds = first.dataset_dir
    tampered, deleted = ref.index[ref["status"] == "ok"][:2]
    (ds / ref.loc[tampered, "path"]).write_bytes(b"not the bytes we wrote")
    (ds / ref.loc[deleted, "path"]).unlink()
    (ds / "audio" / ".leftover.flac.tmp").write_bytes(b"x")  # what a killed atomic write leaves

    again = run_generation(_config(src), tmp_path / "o", executor="local", quiet=True)
    assert (again.skipped, again.done, again.failed, again.missing) == (7, 2, 1, 0)  # failed rows are retried
    df = read_manifest(again.manifest, validate=True)
    assert df["utt_id"].is_unique and len(df) == 10
    assert dict(zip(df["utt_id"], df["sha256"])) == ref["sha256"].to_dict()  # same bytes as the first run
    assert not (ds / "audio" / ".leftover.flac.tmp").exists()
    assert len(list((ds / ".ncst" / "shards").glob("*.parquet"))) == 1  # compacted

    # Another output rate is another file: nothing is skipped. --no-resume redoes everything.
    assert run_generation(_config(src, sample_rate=8000), tmp_path / "o", executor="local", quiet=True).skipped == 0
    redo = run_generation(_config(src, sample_rate=8000), tmp_path / "o", executor="local", quiet=True, resume=False)
    assert (redo.skipped, redo.done) == (0, 9)
    # Other weights: not skipped either.
    other = run_generation(_config(src, sample_rate=8000, weights="random:1"), tmp_path / "o", executor="local", quiet=True)
    assert other.skipped == 0 and set(read_manifest(other.manifest)["weights_id"]) == {"random:1"}


def test_unreadable_shard_is_ignored(tmp_path):
    src = make_source(tmp_path, n=3)
    s = run_generation(_config(src), tmp_path / "o", executor="local", quiet=True)
    (s.dataset_dir / ".ncst" / "shards" / "99999999999999999999-1-000001.parquet").write_bytes(b"PAR1 half written")
    assert len(read_shards(s.dataset_dir)) == 3
    assert run_generation(_config(src), tmp_path / "o", executor="local", quiet=True).skipped == 3


def _ids_sha(path):
    df = read_manifest(path)
    return dict(zip(df["utt_id"], df["sha256"])), df


@pytest.mark.ray
def test_killed_driver_then_resume(tmp_path):
    """SIGKILL ``ncst generate`` (on Ray) mid-run, re-run with --resume: 0 lost, 0 duplicated, same bytes."""
    n = 100
    src = make_source(tmp_path, n=n, corrupt=1, seconds=(0.8, 1.2))
    ref = run_generation(_config(src), tmp_path / "ref", executor="local", quiet=True)
    ref_sha, _ = _ids_sha(ref.manifest)

    temp = ray_temp_dir()
    recipe = write_recipe(tmp_path / "recipe.yaml", [src], batch_size=2, shard_rows=2, node_ip=RAY_IP, temp_dir=temp,
                          num_cpus=2)
    dataset = tmp_path / "out" / "dataset"
    shards = dataset / ".ncst" / "shards"
    cmd = [sys.executable, "-m", "pipeline.cli", "generate", str(recipe)]
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if shards.is_dir() and len(list(shards.glob("*.parquet"))) >= 2:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"the run ended before it could be killed:\n{(tmp_path / 'first.log').read_text()[-3000:]}"
        proc.kill()  # SIGKILL the driver
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        time.sleep(1.0)
        kill_pids(pids_using(temp))  # Ray processes of that driver, if any outlived it
    assert not (dataset / "manifests" / "fake.parquet").exists()  # it really was interrupted
    partial = read_shards(dataset)
    assert 0 < len(partial) < n + 1

    temp2 = ray_temp_dir()
    try:
        out = subprocess.run([*cmd, "--resume", "--temp-dir", temp2], capture_output=True, text=True, timeout=240)
    finally:
        kill_pids(pids_using(temp2))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    got, df = _ids_sha(dataset / "manifests" / "fake.parquet")
    assert df["utt_id"].is_unique and len(df) == n + 1  # 0 duplicated, 0 lost
    assert got == ref_sha  # identical outputs to an uninterrupted run (the corrupt item: failed in both)
    assert (df["status"] == "ok").sum() == n
    skipped = int(re.search(r"done \d+, skipped (\d+),", out.stdout).group(1))
    assert skipped == partial.loc[partial["status"] == "ok", "utt_id"].nunique() > 0
    for row in df[df["status"] == "ok"].itertuples():
        assert (dataset / row.path).is_file()
    assert not list((dataset / "audio").rglob(".*.tmp"))


def test_fast_check_redoes_truncated_and_verify_redoes_same_size_corruption(tmp_path):
    """Default resume checks each file's recorded size; --verify re-hashes (issue 22 item 11)."""
    import json

    src = make_source(tmp_path, n=4)
    first = run_generation(_config(src), tmp_path / "o", executor="local", quiet=True)
    ref = read_manifest(first.manifest).set_index("utt_id")
    ds = first.dataset_dir
    sizes = {u: json.loads(e)["file_bytes"] for u, e in ref["extra"].items()}
    assert all(sizes[u] == (ds / p).stat().st_size for u, p in ref["path"].items())
    truncated, flipped = ref.index[:2]
    data = (ds / ref.loc[truncated, "path"]).read_bytes()
    (ds / ref.loc[truncated, "path"]).write_bytes(data[: len(data) // 2])
    path = ds / ref.loc[flipped, "path"]
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))

    fast = run_generation(_config(src), tmp_path / "o", executor="local", quiet=True)
    assert (fast.skipped, fast.done) == (3, 1)  # the truncated file only: the flipped one keeps its size
    assert (ds / ref.loc[truncated, "path"]).stat().st_size == sizes[truncated]  # rewritten whole
    assert read_manifest(fast.manifest).set_index("utt_id").loc[truncated, "sha256"] == ref.loc[truncated, "sha256"]
    data[-10] ^= 0xFF
    assert path.read_bytes() != bytes(data)  # still corrupted

    (ds / ref.loc[truncated, "path"]).write_bytes(b"short")
    slow = run_generation(_config(src, verify=True), tmp_path / "o", executor="local", quiet=True)
    assert (slow.skipped, slow.done) == (2, 2)  # truncated and same-size corrupted: both redone
    assert path.read_bytes() == bytes(data)
    df = read_manifest(slow.manifest, validate=True)
    assert dict(zip(df["utt_id"], df["sha256"])) == ref["sha256"].to_dict()


def test_rows_without_recorded_size_are_hashed(tmp_path):
    """Rows written before sizes were recorded fall back to the sha256 check."""
    import json

    from pipeline.generate import completed, plan_generation

    src = make_source(tmp_path, n=3)
    first = run_generation(_config(src), tmp_path / "o", executor="local", quiet=True)
    rows = read_shards(first.dataset_dir)
    rows["extra"] = [json.dumps({k: v for k, v in json.loads(e).items() if k != "file_bytes"}) for e in rows["extra"]]
    cfg = _config(src)
    from codec_wrappers.catalog import get_variant

    plan = plan_generation(cfg, [get_variant("toy_mulaw_16k")], first.dataset_dir, executor="local")
    weights = {"toy_mulaw_16k": "random:0"}
    assert completed(plan, rows, weights).all()
    out = plan["out_path"].iat[0]
    data = bytearray(open(out, "rb").read())
    data[-5] ^= 0xFF
    open(out, "wb").write(bytes(data))
    mask = completed(plan, rows, weights)
    assert not mask[0] and mask[1:].all()


def test_manifests_folder_holds_only_the_merged_manifest_and_old_layout_resumes(tmp_path):
    """Work state lives in .ncst/; a dataset with the old layout (manifests/shards) still resumes."""
    import os

    import pandas as pd
    import pyarrow.dataset as pads

    from manifests import card_text

    src = make_source(tmp_path, n=5, corrupt=1)
    first = run_generation(_config(src), tmp_path / "o", executor="local", quiet=True)
    ds = first.dataset_dir
    assert sorted(os.listdir(ds / "manifests")) == ["fake.parquet"]
    assert (ds / ".ncst" / "attempts.jsonl").is_file()
    ref = read_manifest(first.manifest, validate=True)
    assert len(pd.read_parquet(ds / "manifests")) == len(ref) == 6
    assert pads.dataset(ds / "manifests").count_rows() == 6
    assert (ds / "README.md").read_text() == card_text(ref, "ncst dataset")  # the card of the whole manifest

    # The old layout: shards and the attempts ledger under manifests/.
    (ds / "manifests" / "shards").mkdir()
    for p in (ds / ".ncst" / "shards").glob("*.parquet"):
        p.rename(ds / "manifests" / "shards" / p.name)
    (ds / ".ncst" / "attempts.jsonl").rename(ds / "manifests" / "attempts.jsonl")
    again = run_generation(_config(src), tmp_path / "o", executor="local", quiet=True)
    assert (again.skipped, again.done, again.failed) == (5, 0, 1)
    assert sorted(os.listdir(ds / "manifests")) == ["fake.parquet"]
    assert len(list((ds / ".ncst" / "shards").glob("*.parquet"))) == 1
    assert _ids_sha(again.manifest)[0] == dict(zip(ref["utt_id"], ref["sha256"]))
