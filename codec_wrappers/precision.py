"""Numeric precision of a codec forward pass: fp32 (default) or bf16 autocast.

bf16 is a speed lever on GPUs with bf16 tensor cores; it changes the output (and can flip codes),
so it is off by default, opt-in per recipe, and recorded in every row it produced.
"""
from __future__ import annotations

import contextlib

# No torch import at module level: recipes import PRECISIONS, and reading a recipe must stay light.
PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def autocast(device, precision: str):
    """Context for one forward pass: nothing for fp32, ``torch.autocast(bfloat16)`` for bf16.

    ``device`` is where the model runs (``cpu``, ``cuda``, ``cuda:1``...).
    """
    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
