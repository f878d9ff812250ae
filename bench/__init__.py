"""ncst benchmarks: side-by-side ratios with goals (``python -m bench`` / ``make bench``; never in CI).

Each module ``bench/<name>.py`` exposes ``run(opts: BenchOptions) -> BenchResult``. See
bench/README.md for what each measures, its goal, and the recorded results per machine.
"""
from __future__ import annotations

import importlib
import os
import tempfile
import time
from pathlib import Path

from bench.common import BenchOptions, BenchResult, machine_info

# Run order of `python -m bench` (cheapest first, so a failure shows early).
BENCHES: tuple[str, ...] = ("train_step", "feature_cache", "scale", "ray_overhead", "memory", "precision", "gen_vs_loop", "gen_vs_floor")


def run_bench(name: str, opts: BenchOptions | None = None) -> BenchResult:
    """Run one benchmark in a scratch folder; returns its :class:`BenchResult` (not yet written)."""
    if name not in BENCHES:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHES)}")
    opts = opts or BenchOptions()
    module = importlib.import_module(f"bench.{name}")
    t0 = time.perf_counter()
    if opts.workdir is None:
        with tempfile.TemporaryDirectory(prefix=f"ncst-bench-{name}-") as tmp:
            result = module.run(BenchOptions(opts.quick, Path(tmp), opts.threads, opts.seed))
    else:
        work = Path(opts.workdir) / name
        work.mkdir(parents=True, exist_ok=True)
        result = module.run(BenchOptions(opts.quick, work, opts.threads, opts.seed))
    result.wall_s = time.perf_counter() - t0
    result.machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


__all__ = ["BENCHES", "BenchOptions", "BenchResult", "machine_info", "run_bench"]
