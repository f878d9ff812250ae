"""Look at a report as a person would: a headless-browser screenshot of ``report.html``.

Uses Debian's ``chromium-headless-shell`` (``apt-get install chromium-headless-shell``), or
another Chromium found on PATH / in ``NCST_CHROMIUM``. The page is drawn at a fixed window size
(the browser shot covers the window, not the whole page: make it tall enough)::

    python -m train.screenshot demo_out/study/report.html /tmp/report.png --height 12000

then open the PNG. :func:`blank_share` is the crude machine check (used by the slow test): the
share of pixel rows that hold anything but the page background.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["blank_share", "find_browser", "screenshot"]

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "chrome")
EXTRA_PATHS = ("/usr/lib/chromium/chromium-headless-shell", "/usr/lib/chromium/chromium")


def find_browser() -> str | None:
    """Path of a headless-capable Chromium (``NCST_CHROMIUM`` first), or None."""
    env = os.environ.get("NCST_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return next((p for p in EXTRA_PATHS if Path(p).is_file()), None)


def screenshot(page: str | os.PathLike, png: str | os.PathLike, width: int = 1400, height: int = 3000,
               browser: str | None = None, timeout: float = 120.0) -> Path:
    """Draw ``page`` (an HTML file) in a ``width`` x ``height`` window and save ``png``."""
    page, png = Path(page).resolve(), Path(png).resolve()
    if not page.is_file():
        raise FileNotFoundError(f"{page}: no such HTML file")
    browser = browser or find_browser()
    if browser is None:
        raise RuntimeError("no headless Chromium found: apt-get install chromium-headless-shell, or set NCST_CHROMIUM")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ncst-chromium-") as profile:
        # --no-sandbox: containers and root shells have no user namespaces for Chromium's sandbox
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not png.is_file():
        raise RuntimeError(f"{browser} failed on {page} (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return png


def blank_share(png: str | os.PathLike) -> float:
    """Share of pixel rows of ``png`` that are all one colour (the background): 1.0 = blank."""
    from matplotlib.image import imread

    img = np.asarray(imread(str(png)))[..., :3]
    row_range = img.max(axis=1) - img.min(axis=1)  # (rows, 3): a plain row has 0 everywhere
    return float((row_range.max(axis=1) < 1e-3).mean())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page", help="report.html")
    ap.add_argument("png", help="where the screenshot goes")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=3000)
    args = ap.parse_args(argv)
    out = screenshot(args.page, args.png, args.width, args.height)
    print(f"{out} ({100 * (1 - blank_share(out)):.0f}% of rows hold something)")


if __name__ == "__main__":
    main()
