"""Progress of long loops: a tqdm bar on a terminal, a periodic one-line report in logs.

When stderr is not a terminal (a batch job, ``nohup``, CI) a bar would print nothing useful, so
:class:`Progress` writes one line every ``every_s`` seconds (``$NCST_PROGRESS_SECONDS``, default
30) and one at the end::

    ingest vctk: 1200/44242 files (2.7%), 85.3 files/s, ETA 8m24s

(Here in manifests/ because manifests/ imports nothing of ours: pipeline/ and train/ both use it.)
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, TextIO

PROGRESS_SECONDS_ENV = "NCST_PROGRESS_SECONDS"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def progress_line(label: str, done: int, total: int | None, elapsed_s: float, unit: str = "items") -> str:
    """``"<label>: done/total <unit> (pct), rate <unit>/s, ETA ..."`` (no total: no pct, no ETA)."""
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    if not total:
        return f"{label}: {done} {unit}, {rate:.1f} {unit}/s, elapsed {_duration(elapsed_s)}"
    pct = 100.0 * done / total
    if done >= total:
        tail = f"done in {_duration(elapsed_s)}"
    elif rate > 0:
        tail = f"ETA {_duration((total - done) / rate)}"
    else:
        tail = "ETA unknown"
    return f"{label}: {done}/{total} {unit} ({pct:.1f}%), {rate:.1f} {unit}/s, {tail}"


class Progress:
    """Count ``update(n)`` calls towards ``total``; ``close()`` (or leaving a ``with``) finishes.

    ``tty=None`` asks ``stream.isatty()``; ``stream`` defaults to stderr. ``enabled=False`` is silent.
    """

    def __init__(self, total: int | None, label: str, *, unit: str = "items", every_s: float | None = None,
                 stream: TextIO | None = None, tty: bool | None = None, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.label, self.unit, self.done = total, label, unit, 0
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = float(os.environ.get(PROGRESS_SECONDS_ENV, 30.0)) if every_s is None else float(every_s)
        self.clock, self.enabled, self._closed = clock, enabled, False
        self.start = self._last = clock()
        is_tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self._bar = None
        if enabled and is_tty:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit=unit.rstrip("s") or "it", file=self.stream, leave=False)

    def _line(self) -> None:
        self.stream.write(progress_line(self.label, self.done, self.total, self.clock() - self.start, self.unit) + "\n")
        self.stream.flush()

    def update(self, n: int = 1) -> None:
        self.done += int(n)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(int(n))
            return
        now = self.clock()
        if now - self._last >= self.every_s:
            self._last = now
            self._line()

    def close(self) -> None:
        if self._closed or not self.enabled:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        self._line()  # one summary line either way, so logs show the total time

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
