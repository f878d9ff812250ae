"""Two Ray nodes on loopback; the worker node dies mid-run; every item still comes out exactly once.

Follows DESIGN.md "Ray on one machine": head on 127.0.0.2 with 3 logical CPUs, a worker node on
127.0.0.3 with 2, the driver attached to the head's raylet, an elastic actor pool (2, 3), and the
worker node's raylet SIGKILLed by pid once it runs a generation actor. The pool starts with two
actors (one lands on each node): grown from one, its second actor could come up only after the
first had made every file (seen on a machine where the toy codec ran 40 items/s). The cluster is ended by
the pids this test started (never ``ray stop``).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from manifests import read_manifest, sha256_file
from pipeline.generate import run_generation
from pipeline.recipe import GenerateConfig, VariantSpec

from gen_helpers import RAY_IP, RAY_IP_2, kill_pids, make_source, pids_using, ray_temp_dir

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port(ip: str = RAY_IP) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _ray_start(args: list[str], env: dict) -> None:
    out = subprocess.run([RAY, "start", "--disable-usage-stats", *args], env=env, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


@pytest.mark.ray
def test_worker_node_killed_mid_run_every_item_once(tmp_path):
    n = 240
    src = make_source(tmp_path, n=n, seconds=(0.8, 1.2))
    temp = ray_temp_dir()
    env = dict(os.environ, OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    port = _free_port()
    try:
        _ray_start(["--head", f"--node-ip-address={RAY_IP}", f"--port={port}", "--num-cpus=3", f"--temp-dir={temp}",
                    "--include-dashboard=false", f"--dashboard-port={_free_port()}",
                    f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}"], env)
        _ray_start([f"--address={RAY_IP}:{port}", f"--node-ip-address={RAY_IP_2}", "--num-cpus=2",
                    f"--dashboard-agent-listen-port={_free_port(RAY_IP_2)}"], env)
        raylets = [p for p in pids_using(temp) if "raylet/raylet" in _cmdline(p)]
        worker_raylet = [p for p in raylets if f"--node_ip_address={RAY_IP_2}" in _cmdline(p)]
        assert len(raylets) == 2 and len(worker_raylet) == 1, raylets

        config = GenerateConfig(
            sources=(src,), variants=(VariantSpec("toy_mulaw_16k", concurrency=(2, 3)),), weights="random:0",
            batch_size=2, shard_rows=4, address=f"{RAY_IP}:{port}", node_ip=RAY_IP,
        )
        audio = tmp_path / "out" / "dataset" / "audio"
        killed: dict = {}

        def killer():  # once an actor runs on the worker node and some files exist, kill its raylet
            deadline = time.time() + 150
            while time.time() < deadline and "stop" not in killed:
                actors = [c for c in _children(worker_raylet[0]) if "MapWorker" in _cmdline(c)]
                made = sum(1 for _ in audio.rglob("*.flac")) if audio.is_dir() else 0
                killed["seen"] = sorted({_cmdline(c)[:40] for c in _children(worker_raylet[0])})
                if actors and made >= 4:
                    killed["files_before"] = made
                    os.kill(worker_raylet[0], 9)
                    killed["at"] = time.time()
                    return
                time.sleep(0.02)

        t = threading.Thread(target=killer, daemon=True)
        t.start()
        summary = run_generation(config, tmp_path / "out", executor="ray", quiet=True)
        killed["stop"] = True
        t.join(timeout=5)
        assert "at" in killed, f"no generation actor ever ran on the worker node, so nothing was killed: {killed}"
        assert killed["files_before"] < n  # killed mid-run
        # every row exactly once: each item delivered once to the driver, none lost
        assert (summary.done, summary.failed, summary.missing) == (n, 0, 0)
        df = read_manifest(summary.manifest, validate=True)
        assert df["utt_id"].is_unique and len(df) == n and (df["status"] == "ok").all()
        for row in df.itertuples():
            assert sha256_file(summary.dataset_dir / row.path) == row.sha256
    finally:
        kill_pids(pids_using(temp))
        time.sleep(0.5)
        kill_pids(pids_using(temp))
        shutil.rmtree(temp, ignore_errors=True)
