"""SNAC, multi-scale neural audio codec (``snac`` package), 24/32/44.1 kHz.

Weights: HF repo ``config.json`` + ``pytorch_model.bin`` (read with ``weights_only=True``). For
random weights the architecture comes from the catalog's ``options.config`` (the repos' config.json).

Two departures from upstream, both for reproducible corpora:
- the decoder's noise blocks draw fresh Gaussian noise on every call upstream; here the noise is a
  fixed function of the sample position (seeded per block), identical for every item and run;
- SNAC is non-causal (and the 32/44 kHz models use windowed attention): items are padded the way
  SNAC pads (hop x lcm(vq stride, attention window)), so attention windows line up, and a
  :class:`ValidLengthMask` zeroes each conv's input past the item's valid frames; one padded
  forward per batch gives what each item gives alone.
"""
from __future__ import annotations

import json
import math

import torch

from codec_wrappers.base import BatchedCodec, ResolvedWeights, ValidLengthMask, Variant
from codec_wrappers.weights import load_checkpoint, scale_residual_branches, seeded_state_dict

_NOISE_CHUNK = 1 << 16


class PositionNoise:
    """Standard normal noise that depends only on (seed, sample position): ``get(T) -> (T,)``."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.table = torch.empty(0)

    def get(self, length: int) -> torch.Tensor:
        while self.table.numel() < length:
            k = self.table.numel() // _NOISE_CHUNK
            g = torch.Generator().manual_seed(self.seed * 7919 + k)
            self.table = torch.cat([self.table, torch.randn(_NOISE_CHUNK, generator=g)])
        return self.table[:length]


def _seeded_noise_forward(block, noise: PositionNoise, x: torch.Tensor) -> torch.Tensor:
    # Same computation as snac.layers.NoiseBlock, with position-seeded noise: x + noise * W x.
    n = noise.get(x.shape[-1]).to(x.device, x.dtype).view(1, 1, -1)
    return x + n * block.linear(x)


class SNACCodec(BatchedCodec):
    """SNAC; ``resynthesize((batch, 1, samples), lengths) -> (batch, 1, samples)``."""

    padding_invariant = False

    def __init__(self, variant: Variant, weights: ResolvedWeights, device: str = "cpu"):
        super().__init__(variant, weights)
        from snac import SNAC
        from snac.layers import NoiseBlock

        config = dict(variant.options["config"])
        if weights.is_random:
            model = SNAC(**config)
            state = scale_residual_branches(model, seeded_state_dict(model, weights.seed))
        else:
            cfg_files = [f for f in weights.files if f.endswith(".json")]
            if cfg_files:
                with open(cfg_files[0]) as f:
                    file_config = json.load(f)
                diff = {k: (file_config.get(k), v) for k, v in config.items() if file_config.get(k, v) != v}
                if diff:
                    raise ValueError(f"{cfg_files[0]}: config differs from {variant.id}'s catalog entry: {diff}")
            model = SNAC(**config)
            state = load_checkpoint([f for f in weights.files if not f.endswith(".json")][0])
        model.load_state_dict(state, strict=True)
        for i, block in enumerate(m for m in model.modules() if isinstance(m, NoiseBlock)):
            noise = PositionNoise(seed=1000 + i)
            block.forward = lambda x, _b=block, _n=noise: _seeded_noise_forward(_b, _n, x)
        if len(model.vq_strides) != variant.n_codebooks or model.sampling_rate != variant.sample_rate:
            raise ValueError(f"{variant.id}: model config does not match the catalog entry")
        self.hop_length = int(model.hop_length) * math.lcm(model.vq_strides[0], model.attn_window_size or 1)
        self.model = model.eval().to(device)
        self.length_mask = ValidLengthMask(self.model)

    def encode(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` -> one code tensor ``(b, frames_k)`` per scale (coarse to fine)."""
        with torch.inference_mode():
            return self.model.encode(audio.to(self.device))

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` -> one ``(b, frames_k)`` tensor per scale, coarse to fine."""
        return list(self.encode(audio))

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model.decode(self.model.encode(audio))


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> SNACCodec:
    return SNACCodec(variant, weights, device)
