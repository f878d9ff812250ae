"""Benchmark harness smoke test: tiny sizes (--quick), result structure only (never timings)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a top-level tool folder, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import BENCHES, BenchOptions, run_bench  # noqa: E402
from bench.common import Row, Timings, alternate, print_results, result_path, write_result  # noqa: E402


def test_row_verdicts_and_alternation():
    assert Row("a", 1.5, goal=(">=", 1.0)).status == "PASS"
    assert Row("a", 0.5, goal=(">=", 1.0)).status == "MISS"
    assert Row("a", 5.0, "%", goal=("<=", 10.0)).status == "PASS"
    assert Row("a", 11.0, "%", goal=("<=", 10.0)).status == "MISS"
    assert Row("a", float("nan"), goal=(">=", 1.0)).status == "MISS"  # a crashed measurement never passes
    assert Row("a", 3.0).status == "INFO"
    order = []
    t = alternate({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rounds=3, warmup=1)
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then A B, B A, A B
    assert len(t.runs["a"]) == len(t.runs["b"]) == 3
    assert Timings({"s": [2.0, 4.0], "f": [1.0, 3.0]}).ratio("s", "f") == 2.0


@pytest.mark.parametrize("name", ["train_step", "gen_vs_floor", "memory", "scale"])
def test_quick_bench_result_structure(name, tmp_path, capsys):
    res = run_bench(name, BenchOptions(quick=True, workdir=tmp_path))
    assert res.name == name and res.quick and res.rows
    assert res.machine["cpu_count"] >= 1 and "loadavg_end" in res.machine
    for row in res.rows:
        assert row.status in ("PASS", "MISS", "INFO")
        assert isinstance(row.value, float) and not math.isnan(row.value), row
    if name != "train_step":
        assert any(r.goal is not None for r in res.rows)  # every ratio bench states its goal
    path = write_result(res, tmp_path / "results")
    assert path == result_path(res, tmp_path / "results") and path.name.startswith(f"{name}-cpu")
    data = json.loads(path.read_text())
    assert data["bench"] == name and len(data["rows"]) == len(res.rows)
    assert {"metric", "value", "unit", "goal", "status", "details"} <= set(data["rows"][0])
    print_results([res])
    out = capsys.readouterr().out
    assert name in out and ("PASS" in out or "MISS" in out or "INFO" in out)


def test_cli_rejects_unknown_bench():
    from bench.__main__ import main

    with pytest.raises(SystemExit):
        main(["no_such_bench", "--no-write"])
    assert set(BENCHES) == {"train_step", "feature_cache", "scale", "ray_overhead", "memory", "precision", "gen_vs_loop",
                           "gen_vs_floor"}
