"""SQ-Codec (SimpleSpeech, Yang et al. 2024): a convolutional autoencoder whose latent is scalar-quantised.

Upstream: ``ldm/models/scalar16k.py`` of yangdongchao/SimpleSpeech (``ScalarModel``); checkpoints
``16k_50dim_9.zip`` (CodecFake+'s ``sqcodec50dim9``) and ``16k_32dim_5.zip`` on Hugging Face
``Dongchao/UniAudio``, each a ``config.yaml`` (``generator.config`` = the constructor arguments) and a
``torch.save`` dict whose ``'codec_model'`` entry is the model's state dict (no prefix, legacy
``weight_g``/``weight_v`` weight norm). :func:`build_model` reads that ``config.yaml`` when it lies
beside the checkpoint (or is one of the resolved files), as upstream builds the model from it; the
catalog options are the architecture for random weights and for a checkpoint without one.

Architecture (``encoder`` / ``decoder`` are ``nn.ModuleList``\\ s, their indices are the state-dict keys):

* encoder: ``0`` weight-normed conv (bands -> C, k ``default_kernel_size``); ``1`` pre-processor
  (plain conv C -> C, PReLU, average pooling by ``num_samples``) when ``num_samples > 1``; one
  block per ``downsample_factors[i]`` (five residual units at width ``C*2**i`` with dilations
  1, 3, 5, 7, 9, then a weight-normed conv to ``C*2**(i+1)`` with stride ``s`` and kernel
  ``downsample_kernel_sizes[i]``, then PReLU); last a weight-normed conv to ``latent_hidden_dim``,
  then ``tanh``.
* quantiser: ``round(L * z) / L`` per latent dimension (L = ``levels``: 9 for ``16k_50dim_9``,
  so ``2L + 1 = 19`` values in [-1, 1]); no parameters. Codes here are ``round(L * z) + L`` in
  ``0 .. 2L``, one stream per latent dimension, ``(B, latent_hidden_dim, frames)``.
* decoder: ``0`` weight-normed conv (latent -> ``C*2**n``, k ``delay_kernel_size``, always
  *non-causal*: it looks ``(k-1)/2`` frames ahead); one block per ``upsample_factors[i]`` (a
  weight-normed transposed conv with kernel ``upsample_kernel_sizes[i]``, no activation, then five
  residual units); a post-processor (each frame repeated ``num_samples`` times, plain conv, PReLU);
  last a weight-normed conv to the bands. No output non-linearity.
* residual unit: ``x + PReLU(conv_1x1(PReLU(conv_k(x, dilation))))``.

Causal convs (``causal: true``) pad ``dilation*(k-1)`` zeros on the left; non-causal ones pad
``dilation*(k-1)//2`` on both sides; a causal transposed conv (kernel ``2*stride``) drops its last
``stride`` samples. An input of ``n`` samples gives ``ceil`` frames at every strided conv after
``floor(n / num_samples)`` at the pooling, and the decoder returns ``frames * hop`` samples
(``hop = num_samples * prod(downsample_factors)``, 320 at 16 kHz = 50 frames/s).

Quirk kept on purpose: upstream's ``DownsampleLayer`` takes ``activation=nn.PReLU()`` as a default
argument, so every encoder block shares ONE PReLU; the state dict lists it once per block
(``encoder.<i>.down_conv.activation.weight``) and loading leaves it at the last block's value.
:class:`SQCodecModel` shares one PReLU between its encoder blocks the same way (upstream also shares it
between model instances in one process; that is not reproduced).

Resynthesis as upstream runs a file (``ScalarModel.inference``: encode, quantise, decode) at its raw
length, the output cut to the item's length. For causal configs the only look-ahead is the decoder's
first conv, so a padded batch runs in one call with every item's quantised latent zeroed past its own
frame count (what that conv's zero padding gives when the item runs alone); non-causal configs run
each item alone (grouped by length).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from codec_wrappers.base import BatchedCodec, ResolvedWeights, Variant, trim_to_lengths
from codec_wrappers.layers.conv import WNConv1d, WNConvTranspose1d

DILATIONS = (1, 3, 5, 7, 9)
CONFIG_NAME = "config.yaml"


@dataclass(frozen=True)
class SQCodecConfig:
    """``generator.config`` of upstream's ``config.yaml`` (``sample_rate`` is unused by the model) plus
    the rounding ``levels`` that upstream hard-codes in its quantiser function."""

    sample_rate: int = 16000
    num_bands: int = 1
    causal: bool = True
    num_samples: int = 2
    downsample_factors: tuple = (2, 4, 4, 5)
    downsample_kernel_sizes: tuple = (4, 8, 8, 10)
    upsample_factors: tuple = (5, 4, 4, 2)
    upsample_kernel_sizes: tuple = (10, 8, 8, 4)
    latent_hidden_dim: int = 50
    default_kernel_size: int = 7
    delay_kernel_size: int = 5
    init_channel: int = 64
    res_kernel_size: int = 7
    levels: int = 9

    def __post_init__(self):
        down, up = self.downsample_factors, self.upsample_factors
        if len(down) != len(self.downsample_kernel_sizes) or len(up) != len(self.upsample_kernel_sizes):
            raise ValueError("SQ-Codec: each factor list needs a kernel list of the same length")
        if len(down) != len(up) or math.prod(down) != math.prod(up):
            raise ValueError(f"SQ-Codec: downsample_factors {list(down)} and upsample_factors {list(up)} "
                             "must have the same length and product")
        if self.causal and any(k != 2 * s for s, k in zip(up, self.upsample_kernel_sizes)):
            raise ValueError("SQ-Codec: a causal transposed conv needs kernel == 2 * stride "
                             f"(upsample_factors {list(up)}, kernels {list(self.upsample_kernel_sizes)})")
        if self.levels < 1 or self.num_samples < 1:
            raise ValueError("SQ-Codec: levels and num_samples must be >= 1")

    @property
    def hop_length(self) -> int:
        return self.num_samples * math.prod(self.downsample_factors)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def n_values(self) -> int:
        """Values per latent dimension (``2 * levels + 1``)."""
        return 2 * self.levels + 1

    @property
    def bitrate_kbps(self) -> float:
        return self.latent_hidden_dim * self.frame_rate * math.log2(self.n_values) / 1000

    def frames(self, n: int) -> int:
        """Latent frames upstream gives for ``n`` input samples (residual units keep the length)."""

        def conv(t: int, k: int, s: int = 1) -> int:
            left, pad = _pad_for(k, 1, self.causal)
            return (t + left + 2 * pad - (k - 1) - 1) // s + 1

        t = conv(n, self.default_kernel_size)
        if self.num_samples > 1:
            t = conv(t, self.default_kernel_size) // self.num_samples
        for s, k in zip(self.downsample_factors, self.downsample_kernel_sizes):
            t = conv(t, k, s)
        return conv(t, self.default_kernel_size)


def _pad_for(k: int, dilation: int, causal: bool) -> tuple[int, int]:
    """(left pad, symmetric conv padding) of upstream's conv: causal -> (d*(k-1), 0), else (0, d*(k-1)//2)."""
    return (dilation * (k - 1), 0) if causal else (0, dilation * (k - 1) // 2)


class SQConv1d(nn.Conv1d):
    """Plain conv with upstream's padding rule; ``(B, in, T) -> (B, out, T')``."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1, causal: bool = False):
        left, pad = _pad_for(k, dilation, causal)
        super().__init__(cin, cout, k, stride=stride, padding=pad, dilation=dilation)
        self.left = left

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left, 0)) if self.left else x)


class SQWNConv1d(WNConv1d):
    """Weight-normed (``weight_g``/``weight_v``) conv with upstream's padding rule."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1, causal: bool = False):
        left, pad = _pad_for(k, dilation, causal)
        super().__init__(cin, cout, k, stride=stride, padding=pad, dilation=dilation)
        self.left = left

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left, 0)) if self.left else x)


class SQWNConvTranspose1d(WNConvTranspose1d):
    """Weight-normed transposed conv: causal -> no padding and the last ``stride`` samples dropped (T*s out),
    else padding ``(k - s) // 2``."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, causal: bool):
        super().__init__(cin, cout, k, stride=stride, padding=0 if causal else (k - stride) // 2)
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y[..., : -self.stride[0]] if self.causal else y


class ResidualUnit(nn.Module):
    """Keys ``conv1``, ``conv2``, ``activation1``, ``activation2``."""

    def __init__(self, ch: int, dilation: int, k: int, causal: bool):
        super().__init__()
        self.conv1 = SQWNConv1d(ch, ch, k, dilation=dilation, causal=causal)
        self.conv2 = SQWNConv1d(ch, ch, 1, causal=causal)
        self.activation1 = nn.PReLU()
        self.activation2 = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.activation2(self.conv2(self.activation1(self.conv1(x))))


class Resample(nn.Module):
    """``layer`` (a strided or transposed conv) then ``activation`` (may be None, or shared between blocks).
    The activation is registered first, as upstream (state-dict order)."""

    def __init__(self, layer: nn.Module, activation: nn.Module | None):
        super().__init__()
        self.activation = activation
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer(x)
        return x if self.activation is None else self.activation(x)


class EncoderBlock(nn.Module):
    """Five residual units at ``ch``, then ``down_conv`` to ``2*ch`` (keys ``convs.<j>``, ``down_conv.layer``,
    ``down_conv.activation``)."""

    def __init__(self, ch: int, stride: int, kernel: int, res_k: int, causal: bool, activation: nn.Module):
        super().__init__()
        self.convs = nn.ModuleList(ResidualUnit(ch, d, res_k, causal) for d in DILATIONS)
        self.down_conv = Resample(SQWNConv1d(ch, 2 * ch, kernel, stride=stride, causal=causal), activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.convs:
            x = unit(x)
        return self.down_conv(x)


class DecoderBlock(nn.Module):
    """``up_conv`` (transposed conv ``cin -> cout``, no activation) then five residual units at ``cout``."""

    def __init__(self, cin: int, cout: int, stride: int, kernel: int, res_k: int, causal: bool):
        super().__init__()
        self.up_conv = Resample(SQWNConvTranspose1d(cin, cout, kernel, stride, causal), None)
        self.convs = nn.ModuleList(ResidualUnit(cout, d, res_k, causal) for d in DILATIONS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up_conv(x)
        for unit in self.convs:
            x = unit(x)
        return x


class PreProcessor(nn.Module):
    """Plain conv + PReLU at the input rate, then average pooling by ``num_samples`` (floors the length)."""

    def __init__(self, ch: int, num_samples: int, k: int, causal: bool):
        super().__init__()
        self.conv = SQConv1d(ch, ch, k, causal=causal)
        self.activation = nn.PReLU()
        self.pooling = nn.AvgPool1d(num_samples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooling(self.activation(self.conv(x)))


class PostProcessor(nn.Module):
    """Each frame repeated ``num_samples`` times, then plain conv + PReLU."""

    def __init__(self, ch: int, num_samples: int, k: int, causal: bool):
        super().__init__()
        self.num_samples = num_samples
        self.conv = SQConv1d(ch, ch, k, causal=causal)
        self.activation = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(x.repeat_interleave(self.num_samples, dim=-1)))


class SQCodecModel(nn.Module):
    """Waveform ``(B, bands, N)`` <-> latent ``(B, latent_hidden_dim, frames)``; keys ``encoder.<i>`` /
    ``decoder.<i>`` as upstream ``ScalarModel``."""

    def __init__(self, cfg: SQCodecConfig = SQCodecConfig()):
        super().__init__()
        self.cfg = cfg
        c, k, causal = cfg.init_channel, cfg.default_kernel_size, cfg.causal
        n = len(cfg.downsample_factors)
        shared = nn.PReLU()  # one activation for every down_conv, as upstream's default-argument PReLU
        enc: list[nn.Module] = [SQWNConv1d(cfg.num_bands, c, k, causal=causal)]
        if cfg.num_samples > 1:
            enc.append(PreProcessor(c, cfg.num_samples, k, causal))
        for i, (s, ks) in enumerate(zip(cfg.downsample_factors, cfg.downsample_kernel_sizes)):
            enc.append(EncoderBlock(c * 2**i, s, ks, cfg.res_kernel_size, causal, shared))
        enc.append(SQWNConv1d(c * 2**n, cfg.latent_hidden_dim, k, causal=causal))
        dec: list[nn.Module] = [SQWNConv1d(cfg.latent_hidden_dim, c * 2**n, cfg.delay_kernel_size, causal=False)]
        for i, (s, ks) in enumerate(zip(cfg.upsample_factors, cfg.upsample_kernel_sizes)):
            dec.append(DecoderBlock(c * 2 ** (n - i), c * 2 ** (n - i - 1), s, ks, cfg.res_kernel_size, causal))
        if cfg.num_samples > 1:
            dec.append(PostProcessor(c, cfg.num_samples, k, causal))
        dec.append(SQWNConv1d(c, cfg.num_bands, k, causal=causal))
        self.encoder = nn.ModuleList(enc)
        self.decoder = nn.ModuleList(dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, bands, N)`` -> continuous latent ``tanh(...)`` ``(B, D, frames)`` in (-1, 1)."""
        for layer in self.encoder[:-1]:
            x = layer(x)
        return torch.tanh(self.encoder[-1](x))

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """``round(L * z) / L`` (the values the decoder sees)."""
        return torch.round(self.cfg.levels * z) / self.cfg.levels

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, bands, N)`` -> int64 codes ``(B, D, frames)`` in ``0 .. 2L``."""
        return (torch.round(self.cfg.levels * self.encode(x)) + self.cfg.levels).to(torch.int64)

    def decode_latent(self, q: torch.Tensor) -> torch.Tensor:
        """Quantised latent ``(B, D, T)`` -> waveform ``(B, bands, T * hop)``."""
        for layer in self.decoder:
            q = layer(q)
        return q

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, D, T)`` (``0 .. 2L``) -> waveform ``(B, bands, T * hop)``."""
        return self.decode_latent((codes.to(torch.float32) - self.cfg.levels) / self.cfg.levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upstream ``ScalarModel.inference``'s waveform: encode, quantise, decode."""
        return self.decode_latent(self.quantize(self.encode(x)))


def config_from_options(variant: Variant | None = None,
                        options: Mapping[str, Any] | None = None) -> SQCodecConfig:
    """Config from catalog ``options`` or from a ``generator.config`` mapping (unknown keys are errors)."""
    opts = dict(options if options is not None else (variant.options if variant else {}))
    hop = opts.pop("hop_length", None)
    names = {f.name for f in fields(SQCodecConfig)}
    unknown = sorted(set(opts) - names - {"batch_mode"})
    if unknown:
        raise ValueError(f"SQ-Codec: unknown option(s) {unknown}")
    kw: dict[str, Any] = {} if variant is None else {"sample_rate": variant.sample_rate}
    for f in fields(SQCodecConfig):
        if f.name in opts:
            value = opts[f.name]
            kw[f.name] = tuple(int(v) for v in value) if isinstance(f.default, tuple) else (
                bool(value) if isinstance(f.default, bool) else int(value))
    cfg = SQCodecConfig(**kw)
    if hop is not None and int(hop) != cfg.hop_length:
        raise ValueError(f"SQ-Codec options: hop_length {hop} != num_samples * prod(downsample_factors) "
                         f"= {cfg.hop_length}")
    return cfg


def config_file_for(weights: ResolvedWeights) -> Path | None:
    """The ``config.yaml`` among the resolved files, else one beside the checkpoint, else None."""
    paths = [Path(p) for p in weights.files]
    for p in paths:
        if p.suffix in (".yaml", ".yml"):
            return p
    beside = paths[0].with_name(CONFIG_NAME) if paths else None
    return beside if beside is not None and beside.is_file() else None


def read_config_file(path: Path, base: SQCodecConfig) -> SQCodecConfig:
    """``generator.config`` of an upstream ``config.yaml`` (``levels`` kept from ``base``); errors name the file."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
        gen = dict(data["generator"]["config"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not an SQ-Codec config.yaml with generator.config "
                         f"({type(exc).__name__}: {exc})") from None
    try:
        return config_from_options(options={**gen, "levels": base.levels})
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def official_state_dict(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``{'codec_model': state_dict, ...}`` (upstream's training checkpoint) or a plain state dict."""
    inner = ckpt.get("codec_model")
    if isinstance(inner, Mapping):
        return dict(inner)
    if any(str(k).startswith(("encoder.", "decoder.")) for k in ckpt):
        return dict(ckpt)
    raise ValueError(f"expected a dict with 'codec_model' (a state dict), got keys {sorted(map(str, ckpt))[:5]}")


def load_official_checkpoint(model: SQCodecModel, path: str) -> SQCodecModel:
    """Load an SQ-Codec checkpoint file into ``model`` with ``strict=True``; errors name the file."""
    from codec_wrappers.weights import load_strict

    return load_strict(model, path, official_state_dict, "SQ-Codec")


def build_model(cfg: SQCodecConfig, weights: ResolvedWeights, variant: Variant | None = None) -> SQCodecModel:
    """A model in eval mode with seeded random weights or the official files of ``weights``.

    With files, a ``config.yaml`` (resolved or beside the checkpoint) replaces ``cfg``, as upstream
    builds the model from it; it must keep the variant's frame rate and latent size.
    """
    from codec_wrappers.weights import seeded_state_dict

    if weights.kind == "random":
        model = SQCodecModel(cfg).eval()
        model.load_state_dict(seeded_state_dict(model, weights.seed or 0))
        return model
    if weights.kind != "files":
        raise ValueError(f"SQ-Codec needs weights ('random:<seed>' or a checkpoint file), got kind {weights.kind!r}")
    ckpts = [p for p in weights.files if Path(p).suffix not in (".yaml", ".yml")]
    if len(ckpts) != 1:
        raise ValueError(f"SQ-Codec takes one checkpoint file (and its config.yaml), got {list(weights.files)}")
    cfg_path = config_file_for(weights)
    if cfg_path is not None:
        own = read_config_file(cfg_path, cfg)
        shape = (own.hop_length, own.latent_hidden_dim, own.num_bands)
        if shape != (cfg.hop_length, cfg.latent_hidden_dim, cfg.num_bands):
            what = variant.id if variant is not None else "the catalog config"
            raise ValueError(f"{cfg_path}: hop {own.hop_length}, latent {own.latent_hidden_dim}, bands {own.num_bands} "
                             f"differ from {what} (hop {cfg.hop_length}, latent {cfg.latent_hidden_dim}, "
                             f"bands {cfg.num_bands}): a checkpoint of another SQ-Codec configuration")
        cfg = SQCodecConfig(**{**{f.name: getattr(own, f.name) for f in fields(own)}, "sample_rate": cfg.sample_rate})
    model = SQCodecModel(cfg).eval()
    return load_official_checkpoint(model, ckpts[0]).eval()


class SQCodecCodec(BatchedCodec):
    """``resynthesize((B, 1, T), lengths) -> (B, 1, T)``: each item as upstream runs it alone at its raw
    length (``frames * hop`` samples out, cut to ``n``); causal configs run the batch in one call with each
    item's latent zeroed past its own frames, others run items alone in groups of equal length.

    ``hop_length`` is 1 for :class:`BatchedCodec` (no padding to the frame hop); the frame hop is
    ``model.cfg.hop_length``. ``encode_codes`` gives one ``(b, frames)`` tensor per latent dimension.
    """

    hop_length = 1

    def __init__(self, variant: Variant, weights: ResolvedWeights, model: SQCodecModel):
        super().__init__(variant, weights)
        self.model = model
        self.min_samples = model.cfg.num_samples  # the pooling needs num_samples samples for one frame
        self.batch_mode = str(variant.options.get("batch_mode", "exact"))

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        with torch.inference_mode():
            return list(self.model.codes(audio.to(self.device)).unbind(1))

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio)

    def resynthesize(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.model.cfg.causal or self.batch_mode == "padded":
            return super().resynthesize(audio, lengths)
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise ValueError(f"expected audio of shape (batch, 1, samples), got {tuple(audio.shape)}")
        if lengths.shape != (audio.shape[0],):
            raise ValueError(f"lengths must have shape ({audio.shape[0]},), got {tuple(lengths.shape)}")
        total = audio.shape[-1]
        x = audio.to(self.device, torch.float32)
        lengths = lengths.to(torch.int64)
        keep = torch.arange(total, device=x.device)[None, :] < lengths.to(x.device)[:, None]
        x = x * keep[:, None, :].to(x.dtype)
        if total < self.min_samples:
            x = F.pad(x, (0, self.min_samples - total))
        # An item shorter than min_samples runs as if zero-padded to it (upstream gives no frame for it).
        frames = torch.tensor([self.model.cfg.frames(max(int(n), self.min_samples)) for n in lengths.tolist()])
        with torch.inference_mode():
            q = self.model.quantize(self.model.encode(x))
            # Causal encoder: the frames of each item equal its own; zero the rest, as the decoder's
            # look-ahead conv sees zeros past an item that runs alone.
            valid = torch.arange(q.shape[-1], device=q.device)[None, :] < frames.to(q.device)[:, None]
            y = self.model.decode_latent(q * valid[:, None, :].to(q.dtype))
            # Alone an item gives frames * hop samples, fewer than n when the pooling dropped a sample
            # (n = k * hop + 1): zero-fill past them as the raw-length run does.
            produced = torch.minimum(lengths, frames * self.model.cfg.hop_length)
            return trim_to_lengths(y.float(), produced, total)


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> SQCodecCodec:
    model = build_model(config_from_options(variant), weights, variant).to(device)
    return SQCodecCodec(variant, weights, model)
