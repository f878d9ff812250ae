"""SoundStream as re-implemented in AcademiCodec (``academicodec/models/encodec/net3.py``): EnCodec's
SEANet encoder/decoder with a residual VQ, 16 kHz, hop 320, 8 x 1024-entry codebooks = 4 kbps.

Official weights: none exist (AcademiCodec did not release SoundStream; ``soundstream_16k_4kbps``
runs with ``--weights random:<seed>`` or a checkpoint you trained). Checkpoint layouts accepted by
:func:`load_official_checkpoint` (``torch.load(weights_only=True)`` or safetensors):

- a plain state dict of the model (``encoder.*``, ``quantizer.vq.layers.<i>._codebook.*``,
  ``decoder.*``), optionally with the DDP prefix ``module.`` on every key (upstream's
  ``academicodec/models/encodec/test.py`` strips the first 7 characters);
- a training checkpoint of ``main3_ddp.py``: a dict whose ``'soundstream'`` entry is that state dict.

The mapped dict loads with ``strict=True``. Weight-normed convs keep the legacy ``weight_g`` /
``weight_v`` keys. Resynthesis (``SoundStream.encode(x, target_bw=4)`` then ``decode``): encoder
latent ``(B, 512, ceil(N/320))``, codes ``(n_q, B, T)`` layer-major, decoder output
``T*320`` samples, trimmed to the input length here. Upstream runs each file at its own length
(reflect padding and the LSTM see the real end), so items run at their exact length.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from codec_wrappers.base import BatchedCodec, ResolvedWeights, Variant
from codec_wrappers.layers.quantization import ResidualVectorQuantizer
from codec_wrappers.layers.seanet import SEANetDecoder, SEANetEncoder


@dataclass(frozen=True)
class SoundStreamConfig:
    """Constructor arguments of AcademiCodec's ``SoundStream`` (net3.py)."""

    sample_rate: int = 16000
    n_filters: int = 32
    D: int = 512
    ratios: tuple = (8, 5, 4, 2)
    target_bandwidths: tuple = (1, 1.5, 2, 4)
    bins: int = 1024

    def __post_init__(self):
        if self.bins < 2 or self.D < 1 or not self.ratios or not self.target_bandwidths:
            raise ValueError(f"invalid SoundStream config {self}")
        if self.n_q < 1:
            raise ValueError(f"target_bandwidths {self.target_bandwidths} give no quantizer at {self.frame_rate} Hz")

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)

    @property
    def frame_rate(self) -> int:
        return math.ceil(self.sample_rate / self.hop_length)

    @property
    def n_q(self) -> int:
        """Quantizer layers: ``1000 * max bandwidth // (frame_rate * 10)`` as upstream."""
        return int(1000 * self.target_bandwidths[-1] // (self.frame_rate * 10))

    def n_q_at(self, bandwidth_kbps: float) -> int:
        """Layers used at ``bandwidth_kbps`` (upstream ``get_num_quantizers_for_bandwidth``)."""
        per_q = math.log2(self.bins) * self.frame_rate / 1000
        return min(self.n_q, max(1, int(math.floor(bandwidth_kbps / per_q))))


class SoundStreamModel(nn.Module):
    """``encoder`` / ``quantizer`` / ``decoder`` with upstream key names."""

    def __init__(self, cfg: SoundStreamConfig = SoundStreamConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = SEANetEncoder(n_filters=cfg.n_filters, dimension=cfg.D, ratios=cfg.ratios)
        self.quantizer = ResidualVectorQuantizer(cfg.D, cfg.bins, cfg.n_q)
        self.decoder = SEANetDecoder(n_filters=cfg.n_filters, dimension=cfg.D, ratios=cfg.ratios)

    def encode(self, x: torch.Tensor, bandwidth_kbps: float | None = None) -> torch.Tensor:
        """Waveform ``(B, 1, N)`` -> codes ``(n_q, B, ceil(N/hop))`` int64."""
        bw = self.cfg.target_bandwidths[-1] if bandwidth_kbps is None else bandwidth_kbps
        return self.quantizer.encode(self.encoder(x), self.cfg.n_q_at(bw))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(n_q, B, T)`` -> waveform ``(B, 1, T*hop)``."""
        return self.decoder(self.quantizer.decode(codes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def config_from_options(variant: Variant | None = None, options: Mapping[str, Any] | None = None) -> SoundStreamConfig:
    """Config from a catalog variant's ``options`` (keys as the constructor: n_filters, D, ratios, ...)."""
    opts = dict(options if options is not None else (variant.options if variant else {}))
    kw: dict[str, Any] = {}
    if variant is not None:
        kw["sample_rate"] = variant.sample_rate
    for key in ("n_filters", "D", "bins", "sample_rate"):
        if key in opts:
            kw[key] = int(opts[key])
    for key in ("ratios", "target_bandwidths"):
        if key in opts:
            kw[key] = tuple(opts[key])
    cfg = SoundStreamConfig(**kw)
    if "hop_length" in opts and int(opts["hop_length"]) != cfg.hop_length:
        raise ValueError(f"options hop_length {opts['hop_length']} != prod(ratios) {cfg.hop_length}")
    return cfg


def official_state_dict(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Map an AcademiCodec SoundStream checkpoint dict onto :class:`SoundStreamModel` keys."""
    if "soundstream" in ckpt and isinstance(ckpt["soundstream"], Mapping):
        ckpt = ckpt["soundstream"]
    elif "state_dict" in ckpt and isinstance(ckpt["state_dict"], Mapping):
        ckpt = ckpt["state_dict"]
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in ckpt.items()}


def load_official_checkpoint(model: SoundStreamModel, path: str) -> SoundStreamModel:
    """Load a SoundStream checkpoint file into ``model`` with ``strict=True``; errors name the file."""
    from codec_wrappers.weights import load_strict

    return load_strict(model, path, official_state_dict, "SoundStream")


def build_model(cfg: SoundStreamConfig, weights: ResolvedWeights) -> SoundStreamModel:
    """A model in eval mode with seeded random weights or the checkpoint file of ``weights``."""
    from codec_wrappers.weights import init_from_weights

    return init_from_weights(SoundStreamModel(cfg), weights, load_official_checkpoint, "SoundStream")


class SoundStreamCodec(BatchedCodec):
    """``resynthesize((B, 1, T), lengths) -> (B, 1, T)``; items run at their exact length.

    ``hop_length`` is 1 for :class:`BatchedCodec` (no padding to the frame hop: upstream pads
    inside every conv by reflection); the frame hop is ``model.cfg.hop_length``.
    """

    hop_length = 1

    def __init__(self, variant: Variant, weights: ResolvedWeights, model: SoundStreamModel):
        super().__init__(variant, weights)
        self.model = model
        self.batch_mode = str(variant.options.get("batch_mode", "exact"))

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` -> one ``(b, ceil(t / frame hop))`` tensor per RVQ layer (as ``_forward`` encodes)."""
        with torch.inference_mode():
            return list(self.model.encode(audio.to(self.device)).unbind(0))

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio)


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> SoundStreamCodec:
    model = build_model(config_from_options(variant), weights).to(device)
    return SoundStreamCodec(variant, weights, model)
