"""Progress off a terminal: periodic one-line done/total, rate and ETA; ingest's default jobs."""
from __future__ import annotations

import io
import re

from manifests.progress import Progress, progress_line

LINE = re.compile(r"^(?P<label>.+): (?P<done>\d+)/(?P<total>\d+) files \((?P<pct>[\d.]+)%\), "
                  r"(?P<rate>[\d.]+) files/s, (ETA \S+|done in \S+)$")


def test_progress_line_format():
    assert progress_line("ingest", 25, 100, 5.0, "files") == "ingest: 25/100 files (25.0%), 5.0 files/s, ETA 15s"
    assert progress_line("x", 600, 1000, 60.0, "clips") == "x: 600/1000 clips (60.0%), 10.0 clips/s, ETA 40s"
    assert progress_line("x", 10, 10, 130.0) == "x: 10/10 items (100.0%), 0.1 items/s, done in 2m10s"


def test_progress_not_a_terminal_writes_periodic_lines():
    now = [0.0]
    out = io.StringIO()
    with Progress(40, "ingest demo", unit="files", every_s=10, stream=out, clock=lambda: now[0]) as bar:
        for _ in range(40):
            now[0] += 1.0
            bar.update()
    lines = out.getvalue().splitlines()
    # one line per 10 s of work (t = 10, 20, 30, 40) and a final one.
    assert len(lines) == 5, lines
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [int(m["done"]) for m in parsed] == [10, 20, 30, 40, 40]
    assert parsed[0]["rate"] == "1.0" and lines[0].endswith("ETA 30s") and lines[-1].endswith("done in 40s")


def test_ingest_run_logs_progress_off_a_terminal(tmp_path, capfd, monkeypatch):
    """A small real ingest (CliRunner is not a terminal): the progress line reaches stderr."""
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.commands.ingest import DEFAULT_JOBS
    from pipeline.demo_corpus import make_demo_corpus

    monkeypatch.setenv("NCST_PROGRESS_SECONDS", "0")
    demo = make_demo_corpus(tmp_path / "c", vctk_speakers=4, aishell3_speakers=0, utterances_per_speaker=6,
                            min_duration_s=0.5, max_duration_s=0.6)
    r = CliRunner().invoke(app, ["ingest", "vctk", str(demo.vctk_dir), "-o", str(tmp_path / "v.parquet")])
    assert r.exit_code == 0, r.output
    err = capfd.readouterr().err + r.output
    found = [line for line in err.splitlines() if line.startswith("ingest: read audio: ")]
    assert found and LINE.match(found[-1]) and "24/24 files (100.0%)" in found[-1]
    assert DEFAULT_JOBS >= 1
