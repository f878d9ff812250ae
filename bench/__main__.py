"""``python -m bench [NAME ...] [--quick] [--no-write]``: run benchmarks, print the ratio table."""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

# Benchmarks measure; they must not compete with themselves for the cores. Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")


def main(argv: list[str] | None = None) -> int:
    from bench import BENCHES, BenchOptions, run_bench
    from bench.common import RESULTS_DIR, print_results, write_result

    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("names", nargs="*", help=f"benchmarks to run (default: all): {', '.join(BENCHES)}")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness, numbers mean nothing")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the measuring process")
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--no-write", action="store_true", help="print only; write no result files")
    a = p.parse_args(argv)
    names = a.names or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; expected some of {list(BENCHES)}")
    opts = BenchOptions(quick=a.quick, workdir=a.workdir, threads=a.threads)
    results, failed = [], []
    for name in names:
        print(f"== {name}{' (quick)' if a.quick else ''}", flush=True)
        try:
            res = run_bench(name, opts)
        except Exception:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            failed.append(name)
            continue
        results.append(res)
        if not a.no_write:
            print(f"   wrote {write_result(res, a.results_dir)}", flush=True)
    print_results(results)
    if failed:
        print(f"benchmarks that crashed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
