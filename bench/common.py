"""Shared machinery of the benchmarks: side-by-side timing, goals, the result table, JSON files.

Every benchmark compares two ways of doing the same work *in the same run*, alternating them
(A B B A A B ...) so that drifting load on a shared machine hits both alike, and reports the
ratio of their best (minimum) times; the median is recorded too. A ratio is judged against its
goal (PASS / MISS); a measurement without a goal on this machine is reported as INFO.

A benchmark module exposes ``run(opts: BenchOptions) -> BenchResult``; :func:`write_result` keeps
it as ``bench/results/<name>-<machine>-<date>.json``.
"""
from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import platform
import resource
import socket
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class BenchOptions:
    """How big a run is. ``quick``: tiny sizes for the smoke test (numbers mean nothing)."""

    quick: bool = False
    workdir: Path | None = None  # scratch folder; None: a fresh temporary folder per benchmark
    threads: int = 1  # torch intra-op threads of the measuring process (both sides alike)
    seed: int = 0


@dataclass
class Row:
    """One measured quantity. ``goal`` is ``(op, target)`` with op ``">="`` or ``"<="``; None: INFO."""

    metric: str
    value: float
    unit: str = "x"
    goal: tuple[str, float] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.goal is None or self.value is None or self.value != self.value:  # NaN: no verdict
            return "INFO" if self.goal is None else "MISS"
        op, target = self.goal
        ok = self.value >= target if op == ">=" else self.value <= target
        return "PASS" if ok else "MISS"

    @property
    def goal_text(self) -> str:
        return "-" if self.goal is None else f"{self.goal[0]} {self.goal[1]:g}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["goal"] = None if self.goal is None else {"op": self.goal[0], "target": self.goal[1]}
        d["status"] = self.status
        return d


@dataclass
class BenchResult:
    name: str
    rows: list[Row] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    started: str = ""
    wall_s: float = 0.0
    quick: bool = False

    def add(self, metric: str, value: float, unit: str = "x", goal: tuple[str, float] | None = None, **details) -> Row:
        row = Row(metric, float(value), unit, goal, details)
        self.rows.append(row)
        return row

    @property
    def statuses(self) -> list[str]:
        return [r.status for r in self.rows]

    def to_dict(self) -> dict:
        return {
            "bench": self.name, "started": self.started, "wall_s": round(self.wall_s, 2), "quick": self.quick,
            "machine": self.machine, "params": self.params, "notes": self.notes,
            "rows": [r.to_dict() for r in self.rows],
        }


# ------------------------------------------------------------------ machine
def machine_info() -> dict[str, Any]:
    """What the numbers were taken on: CPU model and vector extensions, cores, load, memory, torch, GPU if any."""
    info: dict[str, Any] = {
        "hostname": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
        "cpu_count": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                # Two machines with the same model name differed here (AVX512-BF16 or AVX2 only), and
                # with it bf16 speed and float32 rounding.
                flags = set(line.split(":", 1)[1].split())
                info["cpu_bf16"] = sorted(flags & {"avx512_bf16", "amx_bf16"})
                break
        mem = Path("/proc/meminfo").read_text().split()
        info["mem_total_gib"] = round(int(mem[mem.index("MemTotal:") + 1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def machine_tag(info: dict[str, Any] | None = None) -> str:
    """Short machine name for result files: ``cpu<cores>`` or the GPU's name, e.g. ``cpu2``, ``h100``."""
    info = info or machine_info()
    gpu = info.get("gpu")
    if gpu:
        for key in ("H200", "H100", "A100", "L40S", "L4", "A10G", "V100", "T4"):
            if key in gpu:
                return key.lower()
        return "gpu"
    return f"cpu{info.get('cpu_count', 0)}"


# ------------------------------------------------------------------ timing
def set_threads(n: int) -> None:
    """Torch intra-op threads of this process (the environment's OMP setting is left as is)."""
    import torch

    torch.set_num_threads(max(1, int(n)))


def bench_device() -> str:
    """``cuda`` when a GPU is visible (the generation benches then run their codecs there), else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so that a timing ends when the work does."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(seconds, result)`` of one call, after a garbage collection so neither side pays for the other."""
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


@dataclass
class Timings:
    """Seconds per run of each contender, in the order they ran."""

    runs: dict[str, list[float]]

    def best(self, name: str) -> float:
        return min(self.runs[name])

    def median(self, name: str) -> float:
        return statistics.median(self.runs[name])

    def ratio(self, slow: str, fast: str) -> float:
        """``best(slow) / best(fast)``: how many times faster ``fast`` is (> 1) on its best run."""
        return self.best(slow) / self.best(fast)

    def median_ratio(self, slow: str, fast: str) -> float:
        return self.median(slow) / self.median(fast)

    def summary(self) -> dict[str, dict[str, Any]]:
        return {k: {"best_s": round(min(v), 4), "median_s": round(statistics.median(v), 4),
                    "runs_s": [round(x, 4) for x in v]} for k, v in self.runs.items()}


def alternate(contenders: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1,
              after: Callable[[str, Any], None] | None = None) -> Timings:
    """Run every contender ``warmup`` times untimed, then ``rounds`` timed rounds, alternating the
    order each round (A B, B A, A B, ...) so that slow drifts in background load fall on both.
    ``after(name, result)`` is called after each timed run (checks, clean-up; not timed)."""
    names = list(contenders)
    for _ in range(warmup):
        for n in names:
            contenders[n]()
    runs: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            dt, out = timed(contenders[n])
            runs[n].append(dt)
            if after is not None:
                after(n, out)
    return Timings(runs)


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (``VmHWM``; unlike ``ru_maxrss`` it is not
    inherited from the parent across fork + exec, so a fresh child reports its own peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------ output
def result_path(result: BenchResult, results_dir: Path = RESULTS_DIR) -> Path:
    tag = machine_tag(result.machine)
    day = (result.started or _dt.datetime.now(_dt.timezone.utc).isoformat())[:10]
    suffix = "-quick" if result.quick else ""
    return Path(results_dir) / f"{result.name}-{tag}-{day}{suffix}.json"


def write_result(result: BenchResult, results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``<results_dir>/<name>-<machine>-<date>.json`` (a later run that day replaces it)."""
    path = result_path(result, results_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=1, default=str) + "\n")
    os.replace(tmp, path)
    return path


def _fmt(value: float) -> str:
    if value != value:
        return "nan"
    a = abs(value)
    if a >= 100:
        return f"{value:,.0f}"
    if a >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if a < 1 else f"{value:.2f}"


def print_results(results: list[BenchResult], console=None) -> None:
    """One table: bench, metric, value, goal, PASS / MISS / INFO; notes under it."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=max(120, Console().width))
    table = Table(title="ncst benchmarks", show_lines=False)
    for col in ("bench", "metric", "value", "goal", "status"):
        table.add_column(col, justify="right" if col in ("value",) else "left")
    style = {"PASS": "green", "MISS": "red", "INFO": "cyan"}
    for res in results:
        for row in res.rows:
            table.add_row(res.name, row.metric, f"{_fmt(row.value)} {row.unit}", row.goal_text,
                          f"[{style[row.status]}]{row.status}[/]")
    console.print(table)
    for res in results:
        m = res.machine
        console.print(f"[bold]{res.name}[/] ({res.wall_s:.0f} s, {m.get('cpu_count')} cores {m.get('cpu_model', '')}, "
                      f"load {m.get('loadavg')}{', GPU ' + m['gpu'] if m.get('gpu') else ''}"
                      f"{', QUICK sizes' if res.quick else ''})")
        for note in res.notes:
            console.print(f"  - {note}")


def start_result(name: str, opts: BenchOptions) -> BenchResult:
    return BenchResult(name=name, machine=machine_info(), quick=opts.quick,
                       started=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       params={"threads": opts.threads, "seed": opts.seed})


# ------------------------------------------------------------------ generation helpers
RAY_IP = "127.0.0.2"  # loopback: Ray swaps 127.0.0.1 for the machine's address (DESIGN.md)


def make_sources(folder: Path, n: int, min_s: float, max_s: float, seed: int = 0, speakers: int = 4) -> Path:
    """A synthetic VCTK tree (48 kHz FLAC, speech-like audio from :mod:`pipeline.demo_corpus`) with
    about ``n`` utterances of ``min_s``..``max_s`` seconds, and its source manifest; returns the manifest."""
    from manifests import write_manifest
    from pipeline.corpora import prepare_vctk
    from pipeline.demo_corpus import make_demo_corpus

    per = max(1, -(-int(n) // speakers))
    demo = make_demo_corpus(Path(folder) / "corpus", seed=seed, vctk_speakers=speakers, aishell3_speakers=0,
                            utterances_per_speaker=per, min_duration_s=min_s, max_duration_s=max_s, vctk_mics=("mic1",))
    df = prepare_vctk(demo.vctk_dir)
    df = df.sort_values("utt_id").head(int(n)).reset_index(drop=True)
    return write_manifest(df, Path(folder) / "sources" / "vctk.parquet", root=demo.vctk_dir)


def subset_sources(manifest: Path, utt_ids: list[str], out: Path) -> Path:
    """A source manifest holding only ``utt_ids`` (same root)."""
    from manifests import read_manifest, write_manifest

    df = read_manifest(manifest)
    sub = df[df["utt_id"].isin(set(utt_ids))].reset_index(drop=True)
    return write_manifest(sub, out, root=df.attrs.get("root"))


def gen_config(sources: Path, variant: str, *, batch_size: int = 16, **kw):
    """The generate section a benchmark runs: one variant, seeded random weights, FLAC at the
    codec's rate, Ray (when used) on loopback with this machine's CPUs."""
    from pipeline.recipe import GenerateConfig, VariantSpec

    base = dict(sources=(Path(sources),), variants=(VariantSpec(variant),), weights="random:0", batch_size=batch_size,
                node_ip=RAY_IP, num_cpus=os.cpu_count())
    base.update(kw)
    return GenerateConfig(**base)


def generate(config, out_dir: Path, executor: str):
    """``ncst generate``'s library call (fresh dataset folder, no resume, quiet); returns its summary."""
    from pipeline.generate import run_generation

    return run_generation(config, out_dir, resume=False, executor=executor, quiet=True)


def check_summary(summary, expected: int) -> None:
    """A timed run must have made every item: a benchmark of failures is no benchmark."""
    if summary.done != expected or summary.failed or summary.missing:
        raise RuntimeError(f"generation made {summary.done}/{expected} items ({summary.failed} failed, "
                           f"{summary.missing} missing): {summary.errors[:3]}")


def start_local_ray(num_cpus: int | None = None) -> str | None:
    """Start Ray on loopback; returns its temp dir (None if Ray was already running).
    End it with :func:`stop_local_ray` (never ``ray stop``: that kills every Ray on the machine)."""
    import tempfile

    import ray
    import ray.data

    if ray.is_initialized():
        return None
    tmp = tempfile.mkdtemp(prefix="ncb", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, _node_ip_address=RAY_IP,
             _temp_dir=tmp, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False  # keep the benchmark's output readable
    return tmp


def stop_local_ray(temp_dir: str | None) -> None:
    """Shut down the Ray this process started (its own processes only) and remove its temp dir."""
    import shutil

    import ray

    if temp_dir is None:
        return
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)
