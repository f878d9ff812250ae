"""HiFi-Codec (AcademiCodec, ``academicodec/models/hificodec``): a HiFi-GAN-shaped encoder with
GroupNorm, group-residual VQ (2 groups x 2 residual layers of 1024 codes = 4 codebooks) and a
HiFi-GAN V1 generator. Hop 320: ``hificodec_24k_320d`` (75 frames/s) and ``hificodec_16k_320d``
(50 frames/s) share one architecture.

Official checkpoints (Hugging Face ``Dongchao/AcademiCodec``, files without extension; put the file
in ``$NCST_WEIGHTS_DIR/<variant>/``): ``HiFi-Codec-24k-320d``, ``HiFi-Codec-16k-320d`` (also
``HiFi-Codec-16k-320d-large-universal``, same layout). Each is a ``torch.save`` dict with three
plain state dicts ``'generator'``, ``'encoder'``, ``'quantizer'`` (no ``module.`` prefix, legacy
``weight_g``/``weight_v``). :func:`official_state_dict` maps key ``k`` of part ``p`` to ``p.k`` (a
flat dict already in that form is accepted too); the result loads with ``strict=True``.

Resynthesis (upstream ``VQVAE.encode`` then ``VQVAE.forward``, as ``vqvae_copy_syn.py`` runs one
file): encoder latent ``(B, 512, floor(N/320))``, codes ``(B, T, 4)`` (layer 0 group 0, layer 0
group 1, layer 1 group 0, layer 1 group 1), generator output ``T*320`` samples. Upstream feeds the
raw length and its strided convs drop the last partial frame; so does :class:`HiFiCodecCodec`:
every item runs alone at its raw length (no padding: padding would move the encoder's GroupNorm
statistics, which run over the whole item, and so every frame's latent), and the last
``N mod 320`` samples of its output are zeros. Items shorter than one hop, for which upstream
gives no frame (and fails), are zero-padded to one hop. Items of equal length share a forward
call, so batched output equals one-by-one output.

Encoder, as upstream: weight-normed conv k7; per stage (stride, kernel) in reversed
(rates, kernels): leaky-ReLU 0.1, strided weight-normed conv (padding ``(k-s)//2``), then
``xs = GN_0(R_0(x)); xs = GN_1(xs + R_1(x)); xs = GN_2(xs + R_2(x))`` with ResBlock1 kernels in
reversed order and ``GN = GroupNorm(C/16, C, eps=1e-6)``; ``x = xs / 3``; finally leaky-ReLU with
the *default* slope 0.01 and a plain (not weight-normed) conv k3.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from codec_wrappers.base import BatchedCodec, ResolvedWeights, Variant
from codec_wrappers.layers.conv import WNConv1d
from codec_wrappers.layers.hifigan import LRELU_SLOPE, HiFiGANGenerator, ResBlock1
from codec_wrappers.layers.quantization import GroupResidualVQ

PARTS = ("quantizer", "generator", "encoder")


@dataclass(frozen=True)
class HiFiCodecConfig:
    """Architecture keys of ``config_{16k,24k}_320d.json`` (latent 512 and base width 32 are fixed upstream)."""

    sample_rate: int = 24000
    upsample_rates: tuple = (8, 5, 4, 2)
    upsample_kernel_sizes: tuple = (16, 11, 8, 4)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple = (3, 7, 11)
    resblock_dilation_sizes: tuple = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    n_code_groups: int = 2
    n_codes: int = 1024
    latent_dim: int = 512
    encoder_channels: int = 32
    residual_layers: int = 2

    def __post_init__(self):
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes differ in length")
        if self.encoder_channels * 2 ** len(self.upsample_rates) != self.latent_dim:
            raise ValueError(f"encoder widths end at {self.encoder_channels * 2 ** len(self.upsample_rates)}, "
                             f"not the latent size {self.latent_dim}")
        if self.latent_dim % self.n_code_groups:
            raise ValueError(f"latent {self.latent_dim} not divisible by n_code_groups {self.n_code_groups}")

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_rates)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def n_codebooks(self) -> int:
        return self.n_code_groups * self.residual_layers


class HiFiCodecEncoder(nn.Module):
    """Waveform ``(B, 1, N)`` -> latent ``(B, 512, floor(N / hop))``; keys ``conv_pre``, ``normalize.<i>``,
    ``ups.<i>`` (strided convs), ``resblocks.<i>``, ``conv_post`` (plain conv)."""

    def __init__(self, cfg: HiFiCodecConfig):
        super().__init__()
        base = cfg.encoder_channels
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.conv_pre = WNConv1d(1, base, 7, 1, padding=3)
        self.normalize = nn.ModuleList()
        stages = list(reversed(list(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))))
        self.ups = nn.ModuleList(WNConv1d(base * 2**i, base * 2 ** (i + 1), k, u, padding=(k - u) // 2)
                                 for i, (u, k) in enumerate(stages))
        self.resblocks = nn.ModuleList()
        kernels = list(reversed(cfg.resblock_kernel_sizes))
        dilations = list(reversed([tuple(d) for d in cfg.resblock_dilation_sizes]))
        for i in range(len(self.ups)):
            ch = base * 2 ** (i + 1)
            for k, d in zip(kernels, dilations):
                self.resblocks.append(ResBlock1(ch, k, d))
                self.normalize.append(nn.GroupNorm(ch // 16, ch, eps=1e-6, affine=True))
        self.conv_post = nn.Conv1d(cfg.latent_dim, cfg.latent_dim, 3, 1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            xs = None
            for j in range(self.num_kernels):
                n = i * self.num_kernels + j
                y = self.resblocks[n](x)
                xs = self.normalize[n](y if xs is None else xs + y)
            x = xs / self.num_kernels
        return self.conv_post(F.leaky_relu(x))  # default slope 0.01 here, as upstream


class HiFiCodecModel(nn.Module):
    """``quantizer`` / ``generator`` / ``encoder`` (upstream ``VQVAE`` registration order)."""

    def __init__(self, cfg: HiFiCodecConfig = HiFiCodecConfig()):
        super().__init__()
        self.cfg = cfg
        self.quantizer = GroupResidualVQ(cfg.latent_dim, cfg.n_code_groups, cfg.n_codes, cfg.residual_layers)
        self.generator = HiFiGANGenerator(cfg.latent_dim, cfg.upsample_initial_channel, cfg.upsample_rates,
                                          cfg.upsample_kernel_sizes, cfg.resblock_kernel_sizes,
                                          cfg.resblock_dilation_sizes)
        self.encoder = HiFiCodecEncoder(cfg)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, 1, N)`` -> codes ``(B, floor(N/hop), 4)`` int64."""
        return self.quantizer.encode(self.encoder(x))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, T, 4)`` -> waveform ``(B, 1, T*hop)``."""
        return self.generator(self.quantizer.decode(codes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def config_from_options(variant: Variant | None = None, options: Mapping[str, Any] | None = None) -> HiFiCodecConfig:
    """Config from catalog ``options`` (keys of the upstream config json)."""
    opts = dict(options if options is not None else (variant.options if variant else {}))
    kw: dict[str, Any] = {}
    if variant is not None:
        kw["sample_rate"] = variant.sample_rate
    for key in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
        if key in opts:
            kw[key] = tuple(int(v) for v in opts[key])
    if "resblock_dilation_sizes" in opts:
        kw["resblock_dilation_sizes"] = tuple(tuple(int(v) for v in d) for d in opts["resblock_dilation_sizes"])
    for key in ("upsample_initial_channel", "n_code_groups", "n_codes", "sample_rate"):
        if key in opts:
            kw[key] = int(opts[key])
    if str(opts.get("resblock", "1")) != "1":
        raise ValueError("only HiFi-Codec configs with resblock '1' are implemented")
    cfg = HiFiCodecConfig(**kw)
    if "hop_length" in opts and int(opts["hop_length"]) != cfg.hop_length:
        raise ValueError(f"options hop_length {opts['hop_length']} != prod(upsample_rates) {cfg.hop_length}")
    return cfg


def official_state_dict(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``{'generator': sd, 'encoder': sd, 'quantizer': sd}`` -> ``{'<part>.<key>': tensor}``."""
    if all(isinstance(ckpt.get(p), Mapping) for p in PARTS):
        return {f"{p}.{k}": v for p in PARTS for k, v in ckpt[p].items()}
    if any(k.startswith(tuple(f"{p}." for p in PARTS)) for k in ckpt):
        return dict(ckpt)
    raise ValueError(f"expected a dict with 'generator', 'encoder', 'quantizer' state dicts, got keys {sorted(ckpt)[:5]}")


def load_official_checkpoint(model: HiFiCodecModel, path: str) -> HiFiCodecModel:
    """Load a HiFi-Codec checkpoint file into ``model`` with ``strict=True``; errors name the file."""
    from codec_wrappers.weights import load_strict

    return load_strict(model, path, official_state_dict, "HiFi-Codec")


def build_model(cfg: HiFiCodecConfig, weights: ResolvedWeights) -> HiFiCodecModel:
    """A model in eval mode with seeded random weights or the checkpoint file of ``weights``."""
    from codec_wrappers.weights import init_from_weights

    return init_from_weights(HiFiCodecModel(cfg), weights, load_official_checkpoint, "HiFi-Codec")


class HiFiCodecCodec(BatchedCodec):
    """``resynthesize((B, 1, T), lengths) -> (B, 1, T)``: each item runs at its raw length, as
    upstream (``floor(n / 320) * 320`` output samples, zero-filled to ``n``), in groups of equal
    length; an item shorter than one frame hop is zero-padded to one hop.

    ``hop_length`` is 1 for :class:`BatchedCodec` (no padding to the frame hop); the frame hop is
    ``model.cfg.hop_length``.
    """

    hop_length = 1

    def __init__(self, variant: Variant, weights: ResolvedWeights, model: HiFiCodecModel):
        super().__init__(variant, weights)
        self.model = model
        self.min_samples = model.cfg.hop_length
        self.batch_mode = str(variant.options.get("batch_mode", "exact"))

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` (t >= one frame hop) -> one ``(b, floor(t / hop))`` tensor per (group,
        residual layer) codebook, in the quantizer's order (4 for the 2 x 2 GRVQ)."""
        with torch.inference_mode():
            return list(self.model.encode(audio.to(self.device)).unbind(-1))

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio)


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> HiFiCodecCodec:
    model = build_model(config_from_options(variant), weights).to(device)
    return HiFiCodecCodec(variant, weights, model)
