"""Portable paths: what a file stores about other files so that its folder can be moved.

A manifest, protocol file or run config stores a path *relative to its own folder* when the
target lies in the same tree (inside the folder two levels above the file's folder, e.g. the
run or dataset folder a ``manifests/`` or ``runs/<model>/`` folder sits in), and absolute
otherwise (a corpus the user keeps elsewhere, e.g. ``/data/VCTK``). Readers resolve relative
values against the reading file's folder, so a moved or copied tree reads its own files.
"""
from __future__ import annotations

import os
from pathlib import Path


def _anchor(folder: Path) -> Path | None:
    """The tree that moves with ``folder``: its grandparent, never the filesystem root."""
    for cand in (folder.parent.parent, folder.parent):
        if cand != cand.parent:
            return cand
    return None


def portable_path(target: str | os.PathLike, folder: str | os.PathLike) -> str:
    """``target`` (absolute, or relative to the working directory) as ``folder`` should store it:
    relative to ``folder`` when in the same tree, else absolute."""
    folder = Path(os.path.abspath(folder))
    target_abs = os.path.abspath(target)
    anchor = _anchor(folder)
    if anchor is not None:
        try:
            Path(target_abs).relative_to(anchor)
        except ValueError:
            return target_abs
        return os.path.relpath(target_abs, folder)
    return target_abs


def resolve_path(value: str | os.PathLike, folder: str | os.PathLike) -> str:
    """A stored path made absolute: relative values are taken from ``folder``."""
    value = os.fspath(value)
    return os.path.normpath(value if os.path.isabs(value) else os.path.join(os.path.abspath(folder), value))
