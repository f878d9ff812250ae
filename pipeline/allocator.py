"""glibc malloc settings for processes that run codecs.

bench/ measured (README, "allocator"): with glibc's defaults, a second codec instance in a process
made Mimi's forward 1.6x slower: large activation buffers are mmapped and unmapped on every forward,
and each fresh mapping page-faults as it is filled. Keeping buffers up to 32 MiB on the heap and
never trimming it removed the slowdown. Users who preload jemalloc or tcmalloc, or set these
variables themselves, keep their choice.
"""
from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_applied = False


def _user_chose() -> bool:
    preload = os.environ.get("LD_PRELOAD", "")
    return any(k in os.environ for k in MALLOC_ENV) or "jemalloc" in preload or "tcmalloc" in preload


def malloc_env() -> dict[str, str]:
    """Environment variables for worker processes (Ray actors): :data:`MALLOC_ENV` unless the user
    set their own or preloads another allocator."""
    return {} if _user_chose() or not sys.platform.startswith("linux") else dict(MALLOC_ENV)


def tune_malloc() -> bool:
    """Apply :data:`MALLOC_ENV`'s settings to this running process with ``mallopt`` (glibc only).

    Returns True when they are in effect (applied now or earlier); False when skipped (not glibc,
    or the user's own settings / allocator win).
    """
    global _applied
    if _applied:
        return True
    if _user_chose() or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, int(MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"])) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1 and ok  # mallopt takes an int: 2 GiB, not 4
    _applied = ok
    if not ok:
        log.warning("mallopt refused the allocator settings; running with glibc's defaults")
    return ok
