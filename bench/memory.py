"""memory: peak resident memory of a generation worker over 200 and over 2000 utterances.

Each run is a fresh Python process (``subprocess``) that imports the engine, then runs
:func:`pipeline.generate.run_generation` with ``executor="local"``: the process is both the
driver (plan, manifest shards, merge) and the worker (the same Predictor a Ray actor holds), so
its peak RSS (``VmHWM``; ``ru_maxrss`` would carry the parent's peak over fork) bounds what a worker and the driver need. Codec ``toy_mulaw_16k``
(fast; model memory is not what grows with a corpus), utterances 0.3-0.6 s at 48 kHz FLAC.

Goal: flat, bounded by the batch and never by the corpus: peak(2000) / peak(200) <= 1.2. The
growth above the process's footprint after imports (``base``) is reported too.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.common import BenchOptions, BenchResult, make_sources, start_result, subset_sources

GOAL = ("<=", 1.2)
VARIANT = "toy_mulaw_16k"
REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys
from pathlib import Path
import torch  # noqa: F401  (what a worker holds anyway)
from bench.common import check_summary, gen_config, generate, set_threads
from codec_wrappers.registry import load_codec
from pipeline.generate import run_generation  # noqa: F401
set_threads(int(sys.argv[4]))
load_codec(sys.argv[3], "random:0")
from bench.common import peak_rss_mib
base = peak_rss_mib()
s = generate(gen_config(Path(sys.argv[1]), sys.argv[3]), Path(sys.argv[2]), "local")
check_summary(s, s.planned)
peak = peak_rss_mib()
print("RESULT " + json.dumps({"base_mib": base, "peak_mib": peak, "done": s.done, "elapsed_s": s.elapsed_s}))
"""


def measure(sources: Path, out: Path, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    p = subprocess.run([sys.executable, "-c", CHILD, str(sources), str(out), VARIANT, str(threads)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        raise RuntimeError(f"memory child failed (rc {p.returncode}): {p.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def run(opts: BenchOptions) -> BenchResult:
    from manifests import read_manifest

    res = start_result("memory", opts)
    small_n, big_n = (20, 200) if opts.quick else (200, 2000)
    res.params.update(variant=VARIANT, utterances=[small_n, big_n], seconds=[0.3, 0.6], executor="local", batch_size=16)
    big = make_sources(opts.workdir / "src", big_n, 0.3, 0.6, seed=opts.seed)
    small = subset_sources(big, list(read_manifest(big)["utt_id"])[:small_n], opts.workdir / "small.parquet")
    runs = {small_n: [], big_n: []}
    for r, (n, src) in enumerate([(small_n, small), (big_n, big), (big_n, big), (small_n, small)][: 2 if opts.quick else 4]):
        runs[n].append(measure(src, opts.workdir / f"out{r}", opts.threads))
    peak = {n: max(x["peak_mib"] for x in v) for n, v in runs.items()}
    base = {n: min(x["base_mib"] for x in v) for n, v in runs.items()}
    res.add(f"peak RSS {big_n} / {small_n} utterances", peak[big_n] / peak[small_n], "x", GOAL, runs=runs)
    res.add(f"peak RSS, {small_n} utterances", peak[small_n], "MiB", base_mib=round(base[small_n], 1))
    res.add(f"peak RSS, {big_n} utterances", peak[big_n], "MiB", base_mib=round(base[big_n], 1))
    res.add(f"growth above base, {big_n} vs {small_n} utterances", peak[big_n] - base[big_n] - (peak[small_n] - base[small_n]), "MiB")
    res.notes.append(f"fresh process per run; {VARIANT}; local executor (driver + worker in one process); "
                     "each size run twice, largest peak kept")
    return res
