"""Toy codec: 8-bit mu-law scalar quantisation at 16 kHz (variant ``toy_mulaw_16k``).

A real, trivial codec for fast pipeline tests and the demo: it encodes every sample to one of
``2**bits`` mu-law levels and decodes it back. It is deterministic, needs no weights (weights_id
``none``) and accepts ``random:<seed>``, which it records but does not need. Not a neural codec:
never mix its rows into a study.

For tests of how generation survives items that kill their worker, a catalog entry may set
``crash_seconds`` (a forward whose padded batch is longer than this many seconds fails) and
``crash_mode``: ``exit`` (the process ends at once with ``os._exit(137)``, as the kernel's OOM
killer or a segfault would end it) or ``memory`` (``MemoryError``). Off by default.
"""
from __future__ import annotations

import math
import os

import torch

from codec_wrappers.base import BatchedCodec, ResolvedWeights, Variant


class ToyMuLawCodec(BatchedCodec):
    """mu-law companding + uniform quantisation; sample-wise, so padding can never leak."""

    hop_length = 1
    padding_invariant = True

    def __init__(self, variant: Variant, weights: ResolvedWeights, device: str = "cpu"):
        super().__init__(variant, weights)
        self.bits = int(variant.options.get("bits", 8))
        self.mu = float(variant.options.get("mu", 2**self.bits - 1))
        if not 1 <= self.bits <= 16 or self.mu <= 0:
            raise ValueError(f"{variant.id}: bits must be 1..16 and mu > 0 (got {self.bits}, {self.mu})")
        self._device = torch.device(device)
        crash = variant.options.get("crash_seconds")
        self.crash_samples = None if crash is None else int(float(crash) * variant.sample_rate)
        self.crash_mode = str(variant.options.get("crash_mode", "exit"))
        if self.crash_mode not in ("exit", "memory"):
            raise ValueError(f"{variant.id}: crash_mode must be exit or memory, got {self.crash_mode!r}")

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: str | torch.device) -> "ToyMuLawCodec":
        self._device = torch.device(device)
        return self

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """``(b, 1, t)`` float in [-1, 1] -> ``(b, 1, t)`` int64 codes in ``[0, 2**bits)``."""
        x = audio.clamp(-1.0, 1.0)
        y = torch.sign(x) * torch.log1p(self.mu * x.abs()) / math.log1p(self.mu)
        levels = 2**self.bits - 1
        return torch.round((y + 1.0) / 2.0 * levels).to(torch.int64)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``(b, 1, t)`` codes -> ``(b, 1, t)`` float waveform."""
        levels = 2**self.bits - 1
        y = codes.to(torch.float32) / levels * 2.0 - 1.0
        return torch.sign(y) * torch.expm1(y.abs() * math.log1p(self.mu)) / self.mu

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` -> ``[(b, t)]``: one stream of mu-law levels."""
        return [self.encode(audio.to(self.device))[:, 0]]

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        if self.crash_samples is not None and audio.shape[-1] > self.crash_samples:
            if self.crash_mode == "exit":
                os._exit(137)  # what an OOM kill looks like from outside: no exception, no cleanup
            raise MemoryError(f"toy codec: a batch of {audio.shape[-1]} samples is over crash_seconds")
        return self.decode(self.encode(audio))


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> ToyMuLawCodec:
    """Family loader for ``toy``: any weights spec is accepted (``none`` or ``random:<seed>``)."""
    if weights.kind == "files":
        raise ValueError(f"{variant.id}: the toy codec takes no checkpoint files (got {weights.files})")
    return ToyMuLawCodec(variant, weights, device)
