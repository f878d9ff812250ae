"""Spectral Codec (NVIDIA NeMo mel codec; Langman et al. 2024, "Spectral Codecs"): the log-mel
spectrogram is cut into 8 bands of 10 mel bins, each band is encoded by its own residual conv net
to 4 channels, each 4-channel group is quantised by a finite scalar quantiser (FSQ, levels
8 x 5 x 5 x 5 = 1000 codes), and a HiFi-GAN generator decodes the 32 dequantised channels to the
waveform. CodecFake+ names it ``spectralcodecs`` (taxonomy SQ / none / frequency).

``spectral_codec_22k`` (NeMo ``mel_codec_22050.yaml``: 22.05 kHz, window 1024, hop 256,
upsampling 8 8 2 2) and ``spectral_codec_44k`` (``mel_codec_44100.yaml``: 44.1 kHz, window 2048,
hop 512, upsampling 8 8 4 2) share one architecture; both run at 86.1 frames/s, 6.9 kbps.

Official checkpoints: Hugging Face ``nvidia/mel-codec-22khz`` file ``mel-codec-22khz.nemo`` and
``nvidia/mel-codec-44khz`` file ``mel-codec-44khz.nemo``. A ``.nemo`` file is a tar archive holding
``model_config.yaml`` and ``model_weights.ckpt`` (a plain ``torch.save`` state dict of NeMo's
``AudioCodecModel``). :func:`read_nemo_state_dict` reads that member straight out of the tar with
``torch.load(weights_only=True)`` (nothing is unpacked to disk); ``model_weights.ckpt`` itself, or a
Lightning ``.ckpt`` with a ``state_dict`` entry, is accepted too. :func:`official_state_dict` keeps
the keys under ``audio_encoder.``, ``vector_quantizer.`` and ``audio_decoder.`` (unchanged) and drops
the training-only parts (``discriminator.*``, the mel / STFT loss modules' buffers); weight norm is
stored as legacy ``weight_g`` / ``weight_v`` (NeMo <= 2.1); checkpoints saved by newer NeMo with
``parametrizations.weight.original0/1`` keys are mapped onto those names. The result loads with
``strict=True``; it includes the mel front end's buffers
``audio_encoder.mel_processor.preprocessor.featurizer.{window,fb}`` (symmetric Hann window of the
window length; slaney-scale mel filterbank without area normalisation, 0 Hz .. Nyquist), which
are used as loaded, and the FSQ's int32 buffers ``num_levels`` / ``dim_base_index``.

Resynthesis follows ``AudioCodecModel.encode`` then ``decode`` of NeMo v2.1.0 (the release the
published models and CodecFake+ ran with): the input is zero-padded to a multiple of the hop; the
mel front end reflect-pads ``(win - hop) / 2`` samples on each side, takes a ``center=False`` STFT
(n_fft = window length), the magnitude (power 1), the filterbank product and ``log(mel + 1)``:
``N / hop`` frames, all valid. Every conv pads by reflection (so an item's end depends on its own
length) and NeMo masks each conv output to the valid frames, which for an item run alone is every
frame; items therefore run alone (:func:`~codec_wrappers.base.run_grouped`, equal padded lengths
share a call) and the masks are not needed. Activations are leaky ReLU with PyTorch's default slope
0.01; the decoder ends in tanh. Output ``ceil(N / hop) * hop`` samples, cut to ``N`` here. Items
shorter than 4 hops (reflect padding of the decoder's first k7 conv needs 4 frames; NeMo fails
below) are zero-padded to 4 hops. NeMo >= July 2025 (commit 0fd4de5) changed the front end to zero
padding and one fewer valid frame; that is not what the models were trained with and is not
reproduced here.
"""
from __future__ import annotations

import io
import math
import tarfile
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from codec_wrappers.base import BatchedCodec, ResolvedWeights, Variant
from codec_wrappers.layers.conv import WNConv1d, WNConvTranspose1d

KEEP_PREFIXES = ("audio_encoder.", "vector_quantizer.", "audio_decoder.")
NEMO_WEIGHTS_MEMBER = "model_weights.ckpt"
SLOPE = 0.01  # NeMo's "lrelu" is torch.nn.LeakyReLU() with its default slope


@dataclass(frozen=True)
class SpectralCodecConfig:
    """Hyperparameters of NeMo ``mel_codec_<rate>.yaml`` (defaults: 22.05 kHz) and the module defaults it relies on."""

    sample_rate: int = 22050
    win_length: int = 1024  # also n_fft
    hop_length: int = 256
    mel_dim: int = 80
    n_bands: int = 8  # equal bands of mel_dim / n_bands bins ([0, 10], [10, 20], ... upstream)
    band_channels: int = 4  # encoder output per band = FSQ dimensions per group
    hidden_channels: int = 128
    filters: int = 256
    encoder_layers: int = 6
    encoder_kernel: int = 3
    fsq_levels: tuple = (8, 5, 5, 5)
    fsq_eps: float = 1e-3
    up_sample_rates: tuple = (8, 8, 2, 2)
    base_channels: int = 1024
    in_kernel: int = 7
    out_kernel: int = 3
    resblock_kernels: tuple = (3, 7, 11)
    resblock_dilations: tuple = (1, 3, 5)
    log_guard: float = 1.0

    def __post_init__(self):
        if math.prod(self.up_sample_rates) != self.hop_length:
            raise ValueError(f"up_sample_rates {self.up_sample_rates} multiply to {math.prod(self.up_sample_rates)}, "
                             f"not the hop {self.hop_length}")
        if self.mel_dim % self.n_bands:
            raise ValueError(f"mel_dim {self.mel_dim} not divisible into {self.n_bands} bands")
        if len(self.fsq_levels) != self.band_channels:
            raise ValueError(f"{len(self.fsq_levels)} FSQ levels for {self.band_channels} channels per band")
        if (self.win_length - self.hop_length) % 2 or self.hop_length % 2:
            raise ValueError("window and hop must be even (NeMo's exact_pad front end)")

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def n_codebooks(self) -> int:
        return self.n_bands

    @property
    def codebook_size(self) -> int:
        return math.prod(self.fsq_levels)

    @property
    def min_samples(self) -> int:
        return 4 * self.hop_length


def _hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    """Slaney mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic (27 mels per factor 6.4) above."""
    step, edge, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27
    return torch.where(f < edge, f / step, edge / step + torch.log(f.clamp(min=1e-10) / edge) / logstep)


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    step, edge, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27
    return torch.where(m < edge / step, m * step, edge * torch.exp(logstep * (m - edge / step)))


def mel_filterbank(cfg: SpectralCodecConfig) -> torch.Tensor:
    """``(1, mel_dim, win/2 + 1)`` float32: triangular slaney-scale mel filters without area
    normalisation (librosa ``filters.mel(norm=None)``, what NeMo's front end gets with
    ``mel_norm=None``), 0 Hz to Nyquist, computed in float64 as librosa does."""
    fmax = cfg.sample_rate / 2
    bins = torch.linspace(0.0, fmax, cfg.win_length // 2 + 1, dtype=torch.float64)
    edges = _mel_to_hz(torch.linspace(0.0, float(_hz_to_mel(torch.tensor(fmax, dtype=torch.float64))),
                                      cfg.mel_dim + 2, dtype=torch.float64))
    width = edges.diff()
    ramps = edges[:, None] - bins[None, :]
    rising = -ramps[:-2] / width[:-1, None]
    falling = ramps[2:] / width[1:, None]
    return torch.minimum(rising, falling).clamp(min=0.0).to(torch.float32).unsqueeze(0)


class _Featurizer(nn.Module):
    """Holds the front end's buffers under NeMo's names (``window``, ``fb``)."""

    def __init__(self, cfg: SpectralCodecConfig):
        super().__init__()
        self.register_buffer("window", torch.hann_window(cfg.win_length, periodic=False))
        self.register_buffer("fb", mel_filterbank(cfg))


class _Preprocessor(nn.Module):
    def __init__(self, cfg: SpectralCodecConfig):
        super().__init__()
        self.featurizer = _Featurizer(cfg)


class MelFrontEnd(nn.Module):
    """Waveform ``(B, N)`` with N a multiple of the hop -> log-mel ``(B, mel_dim, N / hop)``.

    Key path ``preprocessor.featurizer.{window,fb}`` as NeMo's ``MelSpectrogramProcessor``.
    """

    def __init__(self, cfg: SpectralCodecConfig):
        super().__init__()
        self.cfg = cfg
        self.preprocessor = _Preprocessor(cfg)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        cfg, feat = self.cfg, self.preprocessor.featurizer
        pad = (cfg.win_length - cfg.hop_length) // 2
        x = F.pad(audio.float().unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(x, n_fft=cfg.win_length, hop_length=cfg.hop_length, win_length=cfg.win_length,
                          window=feat.window.float(), center=False, return_complex=True)
        mag = torch.view_as_real(spec).pow(2).sum(-1).sqrt()
        return torch.log(torch.matmul(feat.fb.to(mag.dtype), mag) + cfg.log_guard)


class _ConvNorm(nn.Module):
    """NeMo ``Conv1dNorm``: weight-normed conv, 'same' reflect padding; key ``conv.*``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int = 1):
        super().__init__()
        self.conv = WNConv1d(c_in, c_out, kernel, dilation=dilation, padding=(kernel * dilation - dilation) // 2,
                             padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _UpConvNorm(nn.Module):
    """NeMo ``ConvTranspose1dNorm`` with kernel ``2r``, stride ``r``: exactly ``r`` x the frames."""

    def __init__(self, c_in: int, c_out: int, rate: int):
        super().__init__()
        k = 2 * rate
        self.conv = WNConvTranspose1d(c_in, c_out, k, rate, padding=(k - rate + 1) // 2, output_padding=(k - rate) % 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _ResidualBlock(nn.Module):
    """``x + skip_conv(lrelu(input_conv(lrelu(x))))``; keys ``input_conv.*``, ``skip_conv.*``."""

    def __init__(self, channels: int, filters: int, kernel: int, dilation: int = 1):
        super().__init__()
        self.input_conv = _ConvNorm(channels, filters, kernel, dilation)
        self.skip_conv = _ConvNorm(filters, channels, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.skip_conv(F.leaky_relu(self.input_conv(F.leaky_relu(x, SLOPE)), SLOPE))


class _BandEncoder(nn.Module):
    """NeMo ``ResNetEncoder`` for one mel band: ``(B, bins, T)`` -> ``(B, band_channels, T)``."""

    def __init__(self, cfg: SpectralCodecConfig, in_channels: int):
        super().__init__()
        k = cfg.encoder_kernel
        self.pre_conv = _ConvNorm(in_channels, cfg.hidden_channels, k)
        self.res_layers = nn.ModuleList(_ResidualBlock(cfg.hidden_channels, cfg.filters, k)
                                        for _ in range(cfg.encoder_layers))
        self.post_conv = _ConvNorm(cfg.hidden_channels, cfg.band_channels, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre_conv(x)
        for layer in self.res_layers:
            x = layer(x)
        return self.post_conv(F.leaky_relu(x, SLOPE))


class MultiBandMelEncoder(nn.Module):
    """Waveform ``(B, N)`` (N a multiple of the hop) -> latent ``(B, n_bands * band_channels, N / hop)``;
    keys ``mel_processor.*``, ``encoders.<band>.*``."""

    def __init__(self, cfg: SpectralCodecConfig):
        super().__init__()
        self.band = cfg.mel_dim // cfg.n_bands
        self.mel_processor = MelFrontEnd(cfg)
        self.encoders = nn.ModuleList(_BandEncoder(cfg, self.band) for _ in range(cfg.n_bands))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = self.mel_processor(audio)
        return torch.cat([enc(spec[:, i * self.band: (i + 1) * self.band]) for i, enc in enumerate(self.encoders)], 1)


class FSQ(nn.Module):
    """Finite scalar quantiser of one group: ``(B, D, T)`` -> index ``(B, T)`` int32 and back.

    Buffers (int32, in the checkpoint): ``num_levels`` and ``dim_base_index`` (mixed-radix place
    values), both ``(1, D, 1)``. Bounding: ``s * tanh(x + atanh-shift) - offset`` with
    ``s = (L - 1) / 2 * (1 - eps)`` and offset 0.5 for even L, then rounding.
    """

    def __init__(self, levels: tuple, eps: float = 1e-3):
        super().__init__()
        lv = torch.tensor(levels, dtype=torch.int32)
        place = torch.cumprod(torch.cat([lv.new_ones(1), lv[:-1]]), 0, dtype=torch.int32)
        self.register_buffer("dim_base_index", place.view(1, -1, 1))
        self.register_buffer("num_levels", lv.view(1, -1, 1))
        self.eps = eps

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        levels = self.num_levels
        scale = (levels - 1) / 2 * (1 - self.eps)
        offset = torch.where(levels % 2 == 0, 0.5, 0.0)
        bounded = scale * (x + (offset / scale).tan()).tanh() - offset
        half = levels // 2
        # NeMo normalises to [-1, 1] and back (both exact in float: half is 4 or 2); kept for identical rounding.
        digits = torch.round(bounded) / half * half + half
        return (digits * self.dim_base_index).sum(1).to(torch.int32)

    def decode(self, index: torch.Tensor) -> torch.Tensor:
        digits = (index.unsqueeze(1) // self.dim_base_index) % self.num_levels
        half = self.num_levels // 2
        return (digits - half) / half


class GroupFSQ(nn.Module):
    """One :class:`FSQ` per band (keys ``fsqs.<i>.*``); codes ``(B, n_groups, T)`` int32."""

    def __init__(self, cfg: SpectralCodecConfig):
        super().__init__()
        self.fsqs = nn.ModuleList(FSQ(cfg.fsq_levels, cfg.fsq_eps) for _ in range(cfg.n_bands))

    def encode(self, latent: torch.Tensor) -> torch.Tensor:
        groups = latent.chunk(len(self.fsqs), dim=1)
        return torch.stack([fsq.encode(g) for g, fsq in zip(groups, self.fsqs)], 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.cat([fsq.decode(codes[:, i]) for i, fsq in enumerate(self.fsqs)], 1)


class _ResLayer(nn.Module):
    """Mean over kernels of chained residual blocks (one per dilation); keys ``res_blocks.<k>.res_blocks.<d>.*``."""

    def __init__(self, channels: int, kernels: tuple, dilations: tuple):
        super().__init__()
        self.res_blocks = nn.ModuleList()
        for k in kernels:
            chain = nn.Module()
            chain.res_blocks = nn.ModuleList(_ResidualBlock(channels, channels, k, d) for d in dilations)
            self.res_blocks.append(chain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for chain in self.res_blocks:
            y = x
            for block in chain.res_blocks:
                y = block(y)
            outs.append(y)
        return sum(outs) / len(outs)


class HiFiGANDecoder(nn.Module):
    """NeMo ``HiFiGANDecoder``: ``(B, 32, T)`` -> waveform ``(B, T * hop)`` in (-1, 1); keys ``pre_conv``,
    ``up_sample_conv_layers.<i>``, ``res_layers.<i>``, ``post_conv``."""

    def __init__(self, cfg: SpectralCodecConfig):
        super().__init__()
        ch = cfg.base_channels
        self.pre_conv = _ConvNorm(cfg.n_bands * cfg.band_channels, ch, cfg.in_kernel)
        self.up_sample_conv_layers = nn.ModuleList()
        self.res_layers = nn.ModuleList()
        for rate in cfg.up_sample_rates:
            self.up_sample_conv_layers.append(_UpConvNorm(ch, ch // 2, rate))
            ch //= 2
            self.res_layers.append(_ResLayer(ch, cfg.resblock_kernels, cfg.resblock_dilations))
        self.post_conv = _ConvNorm(ch, 1, cfg.out_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre_conv(x)
        for up, res in zip(self.up_sample_conv_layers, self.res_layers):
            x = res(up(F.leaky_relu(x, SLOPE)))
        return torch.tanh(self.post_conv(F.leaky_relu(x, SLOPE))).squeeze(1)


class SpectralCodecModel(nn.Module):
    """``audio_encoder`` / ``vector_quantizer`` / ``audio_decoder``, NeMo ``AudioCodecModel``'s codec part."""

    def __init__(self, cfg: SpectralCodecConfig = SpectralCodecConfig()):
        super().__init__()
        self.cfg = cfg
        self.audio_encoder = MultiBandMelEncoder(cfg)
        self.vector_quantizer = GroupFSQ(cfg)
        self.audio_decoder = HiFiGANDecoder(cfg)

    def pad(self, audio: torch.Tensor) -> torch.Tensor:
        """Zero-pad ``(B, N)`` to a whole number of hops (NeMo ``pad_audio``)."""
        hop = self.cfg.hop_length
        return F.pad(audio, (0, -audio.shape[-1] % hop))

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, N)`` -> codes ``(B, 8, ceil(N / hop))`` int32."""
        return self.vector_quantizer.encode(self.audio_encoder(self.pad(audio)))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, 8, T)`` -> waveform ``(B, T * hop)``."""
        return self.audio_decoder(self.vector_quantizer.decode(codes))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(audio))


def config_from_options(variant: Variant | None = None,
                        options: Mapping[str, Any] | None = None) -> SpectralCodecConfig:
    """Config from catalog ``options`` (``win_length``, ``hop_length``, ``up_sample_rates``, ...)."""
    opts = dict(options if options is not None else (variant.options if variant else {}))
    kw: dict[str, Any] = {}
    if variant is not None:
        kw["sample_rate"] = variant.sample_rate
    for key in ("sample_rate", "win_length", "hop_length", "mel_dim", "n_bands", "band_channels", "hidden_channels",
                "filters", "encoder_layers", "base_channels"):
        if key in opts:
            kw[key] = int(opts[key])
    for key in ("up_sample_rates", "fsq_levels", "resblock_kernels", "resblock_dilations"):
        if key in opts:
            kw[key] = tuple(int(v) for v in opts[key])
    return SpectralCodecConfig(**kw)


def read_nemo_state_dict(path: str) -> Mapping[str, Any]:
    """The weights of a ``.nemo`` tar (its ``model_weights.ckpt`` member), or of a plain checkpoint file,
    read with ``torch.load(weights_only=True)``; errors name the file."""
    from codec_wrappers.weights import load_checkpoint, refusal_message

    if not tarfile.is_tarfile(path):
        return load_checkpoint(path)
    with tarfile.open(path) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.rsplit("/", 1)[-1] == NEMO_WEIGHTS_MEMBER]
        if len(members) != 1:
            raise ValueError(f"{path}: a .nemo archive needs exactly one {NEMO_WEIGHTS_MEMBER}, found {len(members)}")
        data = tar.extractfile(members[0]).read()
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(refusal_message(f"{path}:{members[0].name}", exc)) from None


def official_state_dict(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """NeMo ``AudioCodecModel`` state dict (or ``{'state_dict': ...}``) -> this model's keys."""
    if isinstance(ckpt.get("state_dict"), Mapping):
        ckpt = ckpt["state_dict"]
    out = {}
    for key, value in ckpt.items():
        if not key.startswith(KEEP_PREFIXES):
            continue  # discriminator.*, mel_loss_fn.*, stft_loss_fn.*: training only
        key = key.replace(".parametrizations.weight.original0", ".weight_g")
        key = key.replace(".parametrizations.weight.original1", ".weight_v")
        out[key] = value
    if not out:
        raise ValueError(f"no keys under {', '.join(KEEP_PREFIXES)}; got keys like {sorted(ckpt)[:5]}")
    return out


def load_official_checkpoint(model: SpectralCodecModel, path: str) -> SpectralCodecModel:
    """Load a ``.nemo`` / ``model_weights.ckpt`` into ``model`` with ``strict=True``; errors name the file."""
    ckpt = read_nemo_state_dict(path)
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"{path}: expected a state dict, got {type(ckpt).__name__}")
    try:
        model.load_state_dict(official_state_dict(ckpt), strict=True)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{path}: not a Spectral Codec checkpoint for this config ({exc})") from None
    return model


def build_model(cfg: SpectralCodecConfig, weights: ResolvedWeights) -> SpectralCodecModel:
    """A model in eval mode with seeded random weights (the front end's buffers keep their computed
    values) or the checkpoint file of ``weights``."""
    from codec_wrappers.weights import init_from_weights

    return init_from_weights(SpectralCodecModel(cfg), weights, load_official_checkpoint, "Spectral Codec")


class SpectralCodecCodec(BatchedCodec):
    """``resynthesize((B, 1, T), lengths) -> (B, 1, T)``: each item zero-padded to whole hops (at least
    4) and run alone, as NeMo runs one file (reflect padding makes an item's end depend on its length);
    items of equal padded length share a call."""

    def __init__(self, variant: Variant, weights: ResolvedWeights, model: SpectralCodecModel):
        super().__init__(variant, weights)
        self.model = model
        self.hop_length = model.cfg.hop_length
        self.min_samples = model.cfg.min_samples
        self.batch_mode = str(variant.options.get("batch_mode", "exact"))

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` -> one ``(b, t / hop)`` int32 index tensor per band (8 FSQ codebooks of 1000)."""
        with torch.inference_mode():
            return list(self.model.encode(audio.to(self.device)[:, 0]).unbind(1))

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio[:, 0]).unsqueeze(1)


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> SpectralCodecCodec:
    model = build_model(config_from_options(variant), weights).to(device)
    return SpectralCodecCodec(variant, weights, model)
