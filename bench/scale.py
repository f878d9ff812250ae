"""scale: the generation driver's memory and time at 1e5..1e7 planned items, and resume check rates.

Driver part. A synthetic source manifest of ``n`` rows (no audio: planning reads only the
manifest) x 10 variants (copies of the toy codec ``toy_mulaw_16k`` under other ids) gives
``10 n`` items. A setup process writes, for every item, a finished (``ok``) row into parquet
shards of 50,000 rows under ``.ncst/shards/``, as a run would have left them. Then a fresh
process (its peak RSS is ``VmHWM``) runs what the driver of ``run_generation`` does around the
model: plan (:func:`pipeline.plan.make_plan`), read the shards and build the skip-list
(:func:`pipeline.shards.completed`, fast mode: a ``stat`` per item; the files do not exist, so
every item is found not done), and merge (:func:`pipeline.shards.merge_shards`: ``fake.parquet``
+ the compacted shard). Resynthesis itself is not run (the memory bench covers the worker).

Goals (issue 22 item 9): driver peak RSS <= 1 GB at 10 million items, flat from 1 to 10 million
(ratio <= 1.2); planning 10 million items in minutes. Sizes: ``NCST_BENCH_SCALE_SOURCES``
(comma-separated source rows; default 10000,100000 = 1e5 and 1e6 items; --quick 200,2000).

Resume part: ``k`` finished FLAC-sized files (64 KiB of random bytes each) with their rows; items
checked per second by :func:`pipeline.shards.completed` in fast mode (size against the row) and in
``verify`` mode (sha256), alternated. The files sit in the page cache after being written, so the
verify rate is an upper bound (cold disks hash slower; the fast check reads no data at all).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.common import BenchOptions, BenchResult, alternate, start_result

VARIANTS = 10
SHARD_ROWS = 50_000
RSS_GOAL = ("<=", 1024.0)  # MiB at 10 million items
FLAT_GOAL = ("<=", 1.2)
REPO = Path(__file__).resolve().parent.parent

COMMON = r"""
import dataclasses, json, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
from codec_wrappers.catalog import get_variant
from manifests import write_manifest
from pipeline.plan import make_plan
base = get_variant("toy_mulaw_16k")
variants = [dataclasses.replace(base, id=f"toy{i}") for i in range(%d)]
options = {v.id: {"executor": "local", "num_threads": "1"} for v in variants}
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
src, ds = Path(sys.argv[1]), Path(sys.argv[2])
""" % VARIANTS

SETUP = COMMON + r"""
n = int(sys.argv[3])
ids = [f"spk{i %% 100:03d}_{i:08d}" for i in range(n)]
rng = np.random.default_rng(0)
dur = rng.uniform(1.0, 6.0, n)
df = pd.DataFrame({
    "utt_id": ids, "source_utt_id": ids, "corpus": "synthetic", "speaker": [u[:6] for u in ids], "language": "en",
    "split": "train", "text": "some words of text", "path": [f"wav/{u[:6]}/{u}.flac" for u in ids],
    "sample_rate": pd.array(np.full(n, 48000), dtype="Int32"), "num_samples": pd.array((dur * 48000).astype(np.int64), dtype="Int64"),
    "duration_s": dur, "sha256": "0" * 64, "is_fake": False, "label": 0, "label_name": "real", "domain": "real",
    "codec": "real", "variant": "real", "codec_sample_rate": pd.array([None] * n, dtype="Int32"), "bitrate_kbps": None,
    "n_codebooks": pd.array([None] * n, dtype="Int32"), "vq": "real", "aux": "real", "decoder": "real",
    "weights_id": "", "status": "ok", "error": "", "extra": '{"mic": "mic1"}', "ncst_version": "bench",
    "created_at": pd.Timestamp("2026-01-01", tz="UTC"),
})
from manifests import COLUMN_NAMES
write_manifest(df[[c for c in COLUMN_NAMES]], src, root=src.parent, validate=False)
del df
plan = make_plan([src], variants, ds, run_options=options)
plan["sample_rate"] = pd.array(plan["output_sample_rate"], dtype="Int32")
plan["num_samples"] = pd.array((plan["src_duration_s"] * 16000).astype(np.int64), dtype="Int64")
plan["duration_s"] = plan["src_duration_s"]
plan["sha256"] = "1" * 64
plan["weights_id"] = "random:0"
plan["status"] = "ok"
plan["error"] = ""
plan["created_at"] = pd.Timestamp("2026-01-01", tz="UTC")
plan["extra"] = [e[:-1] + ', "file_bytes": 65536}' for e in plan["extra"]]
shards = ds / ".ncst" / "shards"
for k, start in enumerate(range(0, len(plan), %d)):
    write_manifest(plan.iloc[start:start + %d][list(COLUMN_NAMES)], shards / f"{k:020d}-0-{k:06d}.parquet", kind="fake",
                   root=ds, validate=False)
print("RESULT " + json.dumps({"items": len(plan)}))
""" % (SHARD_ROWS, SHARD_ROWS)

DRIVER = COMMON + r"""
from pipeline.shards import RESUME_COLUMNS, completed, merge_shards, read_shards
out = {"base_mib": peak()}
t = time.perf_counter()
plan = make_plan([src], variants, ds, run_options=options)
out["plan_s"] = time.perf_counter() - t; out["plan_mib"] = peak()
t = time.perf_counter()
mask = completed(plan, read_shards(ds, RESUME_COLUMNS), {v.id: "random:0" for v in variants})
out["skip_s"] = time.perf_counter() - t; out["skip_mib"] = peak(); out["done"] = int(mask.sum())
t = time.perf_counter()
plan_ids = {v.id: plan.loc[plan["variant"] == v.id, "utt_id"] for v in variants}
m = merge_shards(ds, plan_ids, ds / "manifests" / "fake.parquet")
out["merge_s"] = time.perf_counter() - t; out["merge_mib"] = peak()
out["items"] = len(plan); out["merged_rows"] = m.rows
print("RESULT " + json.dumps(out))
"""


def _child(code: str, *args: str, timeout: float = 3000) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    p = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=timeout)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        raise RuntimeError(f"scale child failed (rc {p.returncode}): {p.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def driver_at(work: Path, n_sources: int) -> dict:
    import shutil

    folder = work / f"n{n_sources}"
    src, ds = folder / "src" / "sources.parquet", folder / "dataset"
    try:
        _child(SETUP, str(src), str(ds), str(n_sources))
        return _child(DRIVER, str(src), str(ds))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def resume_rates(work: Path, k: int, rounds: int) -> dict:
    import numpy as np
    import pandas as pd

    from manifests import sha256_bytes
    from pipeline.shards import completed

    rng = np.random.default_rng(0)
    ids, outs, shas, extras = [], [], [], []
    audio = work / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    for i in range(k):
        data = rng.integers(0, 256, 65536, dtype=np.uint8).tobytes()
        path = audio / f"{i:06d}.flac"
        path.write_bytes(data)
        ids.append(f"toy__{i:06d}")
        outs.append(str(path))
        shas.append(sha256_bytes(data))
        extras.append(json.dumps({"executor": "local", "num_threads": "1", "file_bytes": len(data)}))
    plain = [json.dumps({"executor": "local", "num_threads": "1"})] * k
    plan = pd.DataFrame({"utt_id": ids, "variant": "toy", "path": [f"audio/{i:06d}.flac" for i in range(k)],
                         "out_path": outs, "output_sample_rate": 16000, "extra": plain})
    rows = pd.DataFrame({"utt_id": ids, "path": plan["path"], "status": "ok", "sha256": shas,
                         "sample_rate": pd.array([16000] * k, dtype="Int32"), "weights_id": "random:0", "extra": extras})
    weights = {"toy": "random:0"}
    seen = {}

    def run(verify: bool):
        mask = completed(plan, rows, weights, verify=verify)
        seen[verify] = int(mask.sum())

    t = alternate({"fast": lambda: run(False), "verify": lambda: run(True)}, rounds=rounds)
    if seen != {False: k, True: k}:
        raise RuntimeError(f"resume check found {seen} of {k} items done")
    return {"fast_items_per_s": k / t.best("fast"), "verify_items_per_s": k / t.best("verify"), "timings": t.summary()}


def run(opts: BenchOptions) -> BenchResult:
    res = start_result("scale", opts)
    env = os.environ.get("NCST_BENCH_SCALE_SOURCES")
    sizes = [int(s) for s in env.split(",")] if env else ([200, 2000] if opts.quick else [10_000, 100_000])
    k = 200 if opts.quick else 5000
    res.params.update(variants=VARIANTS, source_rows=sizes, items=[n * VARIANTS for n in sizes], shard_rows=SHARD_ROWS,
                      resume_files=k, resume_file_bytes=65536)
    runs = {n * VARIANTS: driver_at(Path(opts.workdir), n) for n in sizes}
    for items, r in runs.items():
        if r["merged_rows"] != items or r["done"] != 0:
            raise RuntimeError(f"scale run at {items} items merged {r['merged_rows']} rows, found {r['done']} done")
        peak = max(r["plan_mib"], r["skip_mib"], r["merge_mib"])
        goal = RSS_GOAL if items >= 10_000_000 else None
        res.add(f"driver peak RSS, {items:,} items", peak, "MiB", goal, **r)
        res.add(f"driver bytes per item, {items:,} items", (peak - r["base_mib"]) * 2**20 / items, "B")
        res.add(f"plan time, {items:,} items", r["plan_s"], "s")
        res.add(f"skip-list time (fast check), {items:,} items", r["skip_s"], "s")
        res.add(f"merge time, {items:,} items", r["merge_s"], "s")
    lo, hi = min(runs), max(runs)
    peak = {n: max(r["plan_mib"], r["skip_mib"], r["merge_mib"]) for n, r in runs.items()}
    if hi > lo:  # flatness needs two sizes
        res.add(f"peak RSS {hi:,} / {lo:,} items", peak[hi] / peak[lo], "x", FLAT_GOAL)
    rates = resume_rates(Path(opts.workdir) / "resume", k, rounds=1 if opts.quick else 3)
    res.add("resume check, fast (size)", rates["fast_items_per_s"], "items/s", timings=rates["timings"])
    res.add("resume check, --verify (sha256, page cache)", rates["verify_items_per_s"], "items/s")
    res.add("resume check fast / verify", rates["fast_items_per_s"] / rates["verify_items_per_s"], "x")
    res.notes.append("driver phases only (plan, skip-list, merge) over pre-made shard rows; no resynthesis; "
                     "fresh process per size; 10 toy variants")
    return res
