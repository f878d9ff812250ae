"""TiCodec (Ren et al., ICASSP 2024, ``y-ren16/TiCodec`` ``academicodec/models/ticodec``): HiFi-Codec
with time-invariant codes. 24 kHz, hop 320 (75 frames/s); one channel group of residual VQ with
1, 2 or 4 layers of 1024 codes (``ticodec_24k_1g1r``, ``_1g2r``, ``_1g4r``), plus 8 time-invariant
codes per utterance.

What differs from :mod:`codec_wrappers.hificodec` (whose encoder, GRVQ and HiFi-GAN generator this
module reuses):

* Encoder: after stage ``len(rates) // 2 - 1`` (128 channels) a global-token encoder
  (3 x bias-free conv k3 + leaky-ReLU 0.1, 128->64->64->128, mean over time, linear + leaky-ReLU
  0.1, BatchNorm1d with running statistics) turns that stage's features into one 128-d vector per
  item. ``encoder.linear`` (linear + leaky-ReLU) is in the checkpoints but unused at inference.
* Quantizer: besides ``quantizer_modules[2..4]`` (1 group), ``quantizer_modules_globaltokens.<j>``
  quantise the 8 slices of 16 dims of that vector: codes ``(B, 1, 8)``.
* Generator: the decoded 128-d vector is added at every frame after each upsampling stage whose
  output has 128 channels (stage 1 of 512->256->128->64->32).

Official checkpoints: Hugging Face ``y-ren16/TiCodec`` (file names not verified here; put the file
in ``$NCST_WEIGHTS_DIR/<variant>/``), a ``torch.save`` dict with plain ``'generator'``,
``'encoder'``, ``'quantizer'`` state dicts as HiFi-Codec's (:func:`official_state_dict`, strict).

Resynthesis (upstream ``VQVAE.encode`` then ``VQVAE.forward``, as ``vqvae_copy_syn.py``): every item
runs alone at its raw length (the GroupNorms and the global vector's mean run over the whole item,
so padding would change every frame), groups of equal length share a call, output
``floor(n / 320) * 320`` samples zero-filled to ``n``; items shorter than one hop are zero-padded
to one hop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from codec_wrappers.base import BatchedCodec, ResolvedWeights, Variant
from codec_wrappers.hificodec import HiFiCodecConfig, HiFiCodecEncoder, official_state_dict
from codec_wrappers.layers.hifigan import LRELU_SLOPE, HiFiGANGenerator
from codec_wrappers.layers.quantization import GroupResidualVQ, _GroupCodebook

RESIDUAL_LAYERS = (1, 2, 4)  # the only counts upstream's Quantizer builds codebooks for


@dataclass(frozen=True)
class TiCodecConfig(HiFiCodecConfig):
    """``config_24k_320d_conv_1g<r>r_8g3k1s.json``: HiFi-Codec keys plus ``residul_layer``,
    ``global_code_num`` and ``global_feature_conv`` ``[in, hidden, out, kernel, stride]``."""

    sample_rate: int = 24000
    n_code_groups: int = 1
    residual_layers: int = 1
    global_code_num: int = 8
    global_feature_conv: tuple = (128, 64, 128, 3, 1)

    def __post_init__(self):
        super().__post_init__()
        if self.residual_layers not in RESIDUAL_LAYERS:
            raise ValueError(f"TiCodec has 1, 2 or 4 residual layers (residul_layer), got {self.residual_layers}")
        if len(self.global_feature_conv) != 5:
            raise ValueError("global_feature_conv needs [in, hidden, out, kernel, stride], "
                             f"got {self.global_feature_conv}")
        tap = self.encoder_channels * 2 ** (len(self.upsample_rates) // 2)
        if self.global_feature_conv[0] != tap:
            raise ValueError(f"global_feature_conv[0]={self.global_feature_conv[0]} != {tap} channels of the "
                             f"encoder stage it reads")
        if self.global_dim % self.global_code_num:
            raise ValueError(f"global feature size {self.global_dim} not divisible by global_code_num "
                             f"{self.global_code_num}")

    @property
    def global_dim(self) -> int:
        return int(self.global_feature_conv[2])


class GlobalTokenEncoder(nn.Module):
    """Features ``(B, C, F)`` -> one vector ``(B, out)`` per item; keys ``conv.{0,2,4}.weight``,
    ``fn.0.{weight,bias}`` (linear), ``fn.2.*`` (BatchNorm1d, eval statistics)."""

    def __init__(self, in_ch: int, hidden: int, out_ch: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        pad = (kernel - stride) // 2
        self.conv = nn.Sequential(
            nn.Conv1d(in_ch, hidden, kernel, stride, pad, bias=False), nn.LeakyReLU(LRELU_SLOPE),
            nn.Conv1d(hidden, hidden, kernel, stride, pad, bias=False), nn.LeakyReLU(LRELU_SLOPE),
            nn.Conv1d(hidden, out_ch, kernel, stride, pad, bias=False), nn.LeakyReLU(LRELU_SLOPE))
        self.fn = nn.Sequential(nn.Linear(out_ch, out_ch), nn.LeakyReLU(LRELU_SLOPE), nn.BatchNorm1d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.conv(x).mean(dim=2))


class TiCodecEncoder(HiFiCodecEncoder):
    """HiFi-Codec encoder plus ``linear`` (unused, kept for the keys) and ``GlobalTokenEncoder``
    (upstream names), registered after ``conv_post`` as upstream does."""

    def __init__(self, cfg: TiCodecConfig):
        super().__init__(cfg)
        g = cfg.global_feature_conv
        self.linear = nn.Sequential(nn.Linear(g[2], g[2]), nn.LeakyReLU(LRELU_SLOPE))
        self.GlobalTokenEncoder = GlobalTokenEncoder(*(int(v) for v in g))
        self.tap_stage = len(cfg.upsample_rates) // 2 - 1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveform ``(B, 1, N)`` -> (latent ``(B, 512, floor(N / hop))``, global vector ``(B, 128)``)."""
        x = self.conv_pre(x)
        glob = None
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            xs = None
            for j in range(self.num_kernels):
                n = i * self.num_kernels + j
                y = self.resblocks[n](x)
                xs = self.normalize[n](y if xs is None else xs + y)
            x = xs / self.num_kernels
            if i == self.tap_stage:
                glob = self.GlobalTokenEncoder(x)
        return self.conv_post(F.leaky_relu(x)), glob  # default slope 0.01 here, as upstream


class TiCodecGenerator(HiFiGANGenerator):
    """HiFi-GAN V1 (same keys) that adds the global vector after every stage with as many channels."""

    def forward(self, x: torch.Tensor, glob: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            xs = None
            for j in range(self.num_kernels):
                y = self.resblocks[i * self.num_kernels + j](x)
                xs = y if xs is None else xs + y
            x = xs / self.num_kernels
            if x.shape[-2] == glob.shape[-1]:  # upstream's test: channel count == global size
                x = x + glob.unsqueeze(-1)
        return torch.tanh(self.conv_post(F.leaky_relu(x, LRELU_SLOPE)))


class TiCodecQuantizer(GroupResidualVQ):
    """1-group residual VQ (``quantizer_modules``, ``quantizer_modules2..4``) plus
    ``quantizer_modules_globaltokens.<j>`` (``global_code_num`` codebooks of ``dim / num`` vectors)."""

    def __init__(self, cfg: TiCodecConfig):
        super().__init__(cfg.latent_dim, cfg.n_code_groups, cfg.n_codes, cfg.residual_layers)
        self.global_dim, self.global_code_num = cfg.global_dim, cfg.global_code_num
        self.quantizer_modules_globaltokens = nn.ModuleList(
            _GroupCodebook(cfg.n_codes, cfg.global_dim // cfg.global_code_num) for _ in range(cfg.global_code_num))

    def encode_global(self, glob: torch.Tensor) -> torch.Tensor:
        """``(B, 128)`` -> codes ``(B, 1, 8)`` int64 (slice ``j`` of 16 dims -> codebook ``j``)."""
        parts = torch.split(glob.reshape(-1, self.global_dim), self.global_dim // self.global_code_num, dim=-1)
        return torch.stack([book(p)[1] for p, book in zip(parts, self.quantizer_modules_globaltokens)], -1).unsqueeze(1)

    def decode_global(self, codes: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 8)`` -> ``(B, 128)``."""
        cols = [book.embedding(codes[..., j]) for j, book in enumerate(self.quantizer_modules_globaltokens)]
        return torch.cat(cols, -1).squeeze(1)


class TiCodecModel(nn.Module):
    """``quantizer`` / ``generator`` / ``encoder`` (upstream ``VQVAE`` registration order)."""

    def __init__(self, cfg: TiCodecConfig = TiCodecConfig()):
        super().__init__()
        self.cfg = cfg
        self.quantizer = TiCodecQuantizer(cfg)
        self.generator = TiCodecGenerator(cfg.latent_dim, cfg.upsample_initial_channel, cfg.upsample_rates,
                                          cfg.upsample_kernel_sizes, cfg.resblock_kernel_sizes,
                                          cfg.resblock_dilation_sizes)
        self.encoder = TiCodecEncoder(cfg)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveform ``(B, 1, N)`` -> (codes ``(B, floor(N/hop), layers)``, global codes ``(B, 1, 8)``)."""
        latent, glob = self.encoder(x)
        return self.quantizer.encode(latent), self.quantizer.encode_global(glob)

    def decode(self, codes: torch.Tensor, global_codes: torch.Tensor) -> torch.Tensor:
        """-> waveform ``(B, 1, T*hop)``."""
        return self.generator(self.quantizer.decode(codes), self.quantizer.decode_global(global_codes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.encode(x))


def config_from_options(variant: Variant | None = None, options: Mapping[str, Any] | None = None) -> TiCodecConfig:
    """Config from catalog ``options`` (keys of the upstream config json; ``residul_layer`` as spelt there)."""
    opts = dict(options if options is not None else (variant.options if variant else {}))
    kw: dict[str, Any] = {}
    if variant is not None:
        kw["sample_rate"] = variant.sample_rate
    for key in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes", "global_feature_conv"):
        if key in opts:
            kw[key] = tuple(int(v) for v in opts[key])
    if "resblock_dilation_sizes" in opts:
        kw["resblock_dilation_sizes"] = tuple(tuple(int(v) for v in d) for d in opts["resblock_dilation_sizes"])
    for key in ("upsample_initial_channel", "n_code_groups", "n_codes", "sample_rate", "global_code_num"):
        if key in opts:
            kw[key] = int(opts[key])
    if "residul_layer" in opts:
        kw["residual_layers"] = int(opts["residul_layer"])
    if str(opts.get("resblock", "1")) != "1":
        raise ValueError("only TiCodec configs with resblock '1' are implemented")
    if kw.get("n_code_groups", 1) != 1:
        raise ValueError("TiCodec's released configs have n_code_groups 1; other group counts are not implemented")
    cfg = TiCodecConfig(**kw)
    if "hop_length" in opts and int(opts["hop_length"]) != cfg.hop_length:
        raise ValueError(f"options hop_length {opts['hop_length']} != prod(upsample_rates) {cfg.hop_length}")
    return cfg


def load_official_checkpoint(model: TiCodecModel, path: str) -> TiCodecModel:
    """Load a TiCodec checkpoint file (HiFi-Codec's 3-part layout) into ``model`` with ``strict=True``."""
    from codec_wrappers.weights import load_strict

    return load_strict(model, path, official_state_dict, "TiCodec")


def build_model(cfg: TiCodecConfig, weights: ResolvedWeights) -> TiCodecModel:
    """A model in eval mode with seeded random weights or the checkpoint file of ``weights``."""
    from codec_wrappers.weights import init_from_weights

    return init_from_weights(TiCodecModel(cfg), weights, load_official_checkpoint, "TiCodec")


class TiCodecCodec(BatchedCodec):
    """``resynthesize((B, 1, T), lengths) -> (B, 1, T)``: each item at its raw length, as upstream,
    in groups of equal length; items shorter than one frame hop are zero-padded to one hop.
    ``hop_length`` is 1 for :class:`BatchedCodec` (no padding); the frame hop is ``model.cfg.hop_length``."""

    hop_length = 1

    def __init__(self, variant: Variant, weights: ResolvedWeights, model: TiCodecModel):
        super().__init__(variant, weights)
        self.model = model
        self.min_samples = model.cfg.hop_length
        self.batch_mode = str(variant.options.get("batch_mode", "exact"))

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` (t >= one hop) -> one ``(b, floor(t / hop))`` tensor per residual layer, then
        the time-invariant codes ``(b, 8)`` (one stream of 8 codes per item)."""
        with torch.inference_mode():
            codes, glob = self.model.encode(audio.to(self.device))
        return [*codes.unbind(-1), glob[:, 0, :]]

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio)


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> TiCodecCodec:
    model = build_model(config_from_options(variant), weights).to(device)
    return TiCodecCodec(variant, weights, model)
