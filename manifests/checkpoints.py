"""Why a checkpoint was refused, in words for people (used by train/ when ``torch.load`` refuses).

``torch.load(weights_only=True)`` refuses a pickle that names a Python global it does not allow
(``os.system``, a class of some package...) and its message advises retrying with
``weights_only=False``, which would run that code. :func:`checkpoint_refusal` says instead that the
file carries code, which global, and that nothing was run. codec_wrappers/weights.py holds its own
copy of the rule (codec_wrappers may import nothing of ours).
"""
from __future__ import annotations

import re

_GLOBAL = re.compile(r"GLOBAL\s+([A-Za-z_][\w.]*)")


def code_global(exc: BaseException) -> str | None:
    """The global a refused pickle names (``posix.system``), or None when ``exc`` is no such refusal."""
    text = str(exc)
    if "weights only load failed" not in text.lower() and type(exc).__name__ != "UnpicklingError":
        return None
    m = _GLOBAL.search(text)
    return m.group(1) if m else None


def checkpoint_refusal(path, exc: BaseException) -> str:
    """A one-line reason naming ``path``: 'contains code (global X) and was refused' for a pickle
    that carries code, else 'not a loadable checkpoint' with the first line of torch's message."""
    name = code_global(exc)
    if name is not None:
        return (f"{path}: refused: the file contains code (it calls for the Python global {name!r}, which plain "
                f"weights never need); nothing in it was run. Use a weights-only or safetensors checkpoint.")
    # torch's own lines advise weights_only=False (running the code): keep only the reason itself.
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    reason = [ln for ln in lines if "weights_only" not in ln and not ln.startswith("Check the documentation")]
    why = reason[0] if reason else type(exc).__name__
    return f"{path}: refused: not a loadable weights-only checkpoint ({type(exc).__name__}: {why}); nothing in it was run"
