"""BigCodec (Xin, Tan, Takamichi, Saruwatari 2024, "BigCodec: Pushing the limits of low-bitrate neural
speech codec"), native re-implementation of its resynthesis path. CodecFake+ names it ``bigcodec``
(taxonomy SVQ / none / time).

16 kHz -> 80 frames/s, one factorised VQ codebook of 8192 entries (13 bits x 80 = 1.04 kbps), 159 M
parameters. Encoder: a DAC-style conv net (48 channels, doubling at each of the strides 2 2 2 5 5,
alias-free SnakeBeta activations) followed by a 2-layer unidirectional LSTM with a skip connection
(1536 channels) and a k3 conv to the 1024-d latent. Quantiser: the latent is projected (weight-normed
linear) to 8 dimensions, the nearest L2-normalised codeword is taken and projected back. Decoder: a k7
conv to 1536 channels, a second skip LSTM, transposed-conv blocks with strides 5 5 2 2 2 (channels
halving to 48), a k7 conv and tanh. There is no normalisation over time and no attention.

Official checkpoint: Hugging Face ``Alethia/BigCodec`` file ``bigcodec.pt``, read by upstream's
``inference.py`` as ``ckpt['CodecEnc']`` (encoder state dict) and ``ckpt['generator']`` (decoder,
quantiser included). :func:`official_state_dict` maps ``CodecEnc.k`` -> ``encoder.k`` and
``generator.k`` -> ``decoder.k``; a Lightning training checkpoint (``state_dict`` with keys under
``model.CodecEnc.`` / ``model.generator.``; the discriminators are dropped) is accepted too. Weight
norm keeps the legacy ``weight_g`` / ``weight_v`` keys (``parametrizations.weight.original0/1`` are
mapped onto them); the alias-free filters are persistent buffers, used as loaded. Loading is
``torch.load(weights_only=True)`` and ``strict=True``.

Lengths (upstream ``inference.py``): the waveform ``(1, N)`` is zero-padded on the right by
``200 - N % 200`` samples, which is a whole extra hop (200 samples) when N is already a multiple
of 200; the codec gives ``(N + pad) / 200`` frames and as many times 200 samples, cut here to N. No
loudness normalisation. Every conv pads with zeros, but each alias-free activation replicates the
item's last sample and the LSTMs run over the whole item, so an item's end depends on its length:
items run alone, those of equal length share a call (:func:`~codec_wrappers.base.run_grouped`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from codec_wrappers.base import BatchedCodec, ResolvedWeights, Variant
from codec_wrappers.layers.conv import WNConv1d, WNConvTranspose1d
from codec_wrappers.layers.facodec_blocks import Activation1d, ResidualUnit, WNLinear

PARTS = {"CodecEnc": "encoder", "generator": "decoder"}  # bigcodec.pt top-level key -> our prefix
LIGHTNING_PREFIX = "model."  # CodecLightningModule keeps the parts in an nn.ModuleDict named model


@dataclass(frozen=True)
class BigCodecConfig:
    """Hyperparameters of upstream ``config/model/default.yaml`` (= the class defaults ``inference.py`` uses)."""

    sample_rate: int = 16000
    ngf: int = 48
    encoder_ratios: tuple = (2, 2, 2, 5, 5)
    decoder_ratios: tuple = (5, 5, 2, 2, 2)
    dilations: tuple = (1, 3, 9)
    latent_dim: int = 1024  # encoder out_channels = decoder in_channels = vq_dim
    decoder_channels: int = 1536  # upsample_initial_channel
    lstm_layers: int = 2
    n_quantizers: int = 1
    codebook_size: int = 8192
    codebook_dim: int = 8

    def __post_init__(self):
        if math.prod(self.encoder_ratios) != math.prod(self.decoder_ratios):
            raise ValueError(f"encoder ratios {self.encoder_ratios} and decoder ratios {self.decoder_ratios} "
                             f"give different hops")
        if self.decoder_channels % 2 ** len(self.decoder_ratios):
            raise ValueError(f"decoder_channels {self.decoder_channels} cannot halve {len(self.decoder_ratios)} times")

    @property
    def hop_length(self) -> int:
        return math.prod(self.encoder_ratios)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def padding(self, samples: int) -> int:
        """Samples upstream ``inference.py`` appends: ``hop - N % hop`` (1 .. hop, never 0)."""
        return self.hop_length - samples % self.hop_length


class ResLSTM(nn.Module):
    """``x + LSTM(x)`` over time, unidirectional; ``(B, C, T) -> (B, C, T)``, keys ``lstm.*``."""

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)
        y, _ = self.lstm(h)
        return (y + h).transpose(1, 2)


class EncoderBlock(nn.Module):
    """Three dilated residual units at ``dim // 2`` channels, then a strided conv to ``dim`` (keys ``block.0..4``)."""

    def __init__(self, dim: int, stride: int, dilations: tuple):
        super().__init__()
        half = dim // 2
        self.block = nn.Sequential(
            *(ResidualUnit(half, d) for d in dilations), Activation1d(half),
            WNConv1d(half, dim, 2 * stride, stride=stride, padding=stride // 2 + stride % 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DecoderBlock(nn.Module):
    """Activation, transposed conv giving exactly ``stride`` x the frames, three residual units (keys ``block.0..4``)."""

    def __init__(self, dim_in: int, dim_out: int, stride: int, dilations: tuple):
        super().__init__()
        self.block = nn.Sequential(
            Activation1d(dim_in),
            WNConvTranspose1d(dim_in, dim_out, 2 * stride, stride=stride, padding=stride // 2 + stride % 2,
                              output_padding=stride % 2),
            *(ResidualUnit(dim_out, d) for d in dilations),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class BigCodecEncoder(nn.Module):
    """Upstream ``CodecEncoder``: ``(B, 1, N)`` (N a multiple of the hop) -> latent ``(B, 1024, N / hop)``."""

    def __init__(self, cfg: BigCodecConfig):
        super().__init__()
        dim = cfg.ngf
        layers: list[nn.Module] = [WNConv1d(1, dim, 7, padding=3)]
        for stride in cfg.encoder_ratios:
            dim *= 2
            layers.append(EncoderBlock(dim, stride, cfg.dilations))
        layers += [ResLSTM(dim, cfg.lstm_layers), Activation1d(dim), WNConv1d(dim, cfg.latent_dim, 3, padding=1)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class FactorizedVQ(nn.Module):
    """One factorised codebook (keys ``in_proj.*``, ``out_proj.*``, ``_codebook.weight``)."""

    def __init__(self, dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.in_proj = WNLinear(dim, codebook_dim)
        self.out_proj = WNLinear(codebook_dim, dim)
        self._codebook = nn.Embedding(codebook_size, codebook_dim)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, D, T)`` -> (quantised ``(B, D, T)``, codes ``(B, T)`` int64)."""
        z_e = self.in_proj(z.transpose(1, 2))  # (B, T, d)
        flat = F.normalize(z_e.reshape(-1, z_e.shape[-1]))
        book = F.normalize(self._codebook.weight)
        # Upstream's expanded squared distance, not torch.cdist: the argmax must match on near ties.
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ book.t() + book.pow(2).sum(1, keepdim=True).t()
        codes = (-dist).max(1)[1].view(z.shape[0], -1)
        # Upstream decodes the straight-through value z_e + (z_q - z_e), which differs from z_q by
        # float rounding (latents are large); keeping it keeps the waveform within the fixture bound.
        z_q = z_e + (F.embedding(codes, self._codebook.weight) - z_e)
        return self.out_proj(z_q).transpose(1, 2), codes

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, T)`` -> ``(B, D, T)`` (upstream ``vq2emb``)."""
        return self.out_proj(F.embedding(codes, self._codebook.weight)).transpose(1, 2)


class ResidualVQ(nn.Module):
    """Residual stack of :class:`FactorizedVQ` (one layer in the release; keys ``layers.<i>.*``)."""

    def __init__(self, cfg: BigCodecConfig):
        super().__init__()
        self.layers = nn.ModuleList(FactorizedVQ(cfg.latent_dim, cfg.codebook_size, cfg.codebook_dim)
                                    for _ in range(cfg.n_quantizers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, D, T)`` -> (sum of the layers' outputs, codes ``(n_q, B, T)``)."""
        out, residual, codes = 0.0, x, []
        for layer in self.layers:
            q, k = layer(residual)
            residual = residual - q
            out = out + q
            codes.append(k)
        return out, torch.stack(codes)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        return sum(layer.embed(codes[i]) for i, layer in enumerate(self.layers))


class BigCodecDecoder(nn.Module):
    """Upstream ``CodecDecoder``: ``quantizer`` then ``model`` (conv, LSTM, up-blocks, conv, tanh)."""

    def __init__(self, cfg: BigCodecConfig):
        super().__init__()
        self.quantizer = ResidualVQ(cfg)
        ch = cfg.decoder_channels
        layers: list[nn.Module] = [WNConv1d(cfg.latent_dim, ch, 7, padding=3), ResLSTM(ch, cfg.lstm_layers)]
        for i, stride in enumerate(cfg.decoder_ratios):
            layers.append(DecoderBlock(ch // 2 ** i, ch // 2 ** (i + 1), stride, cfg.dilations))
        out_dim = ch // 2 ** len(cfg.decoder_ratios)
        layers += [Activation1d(out_dim), WNConv1d(out_dim, 1, 7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, post: torch.Tensor) -> torch.Tensor:
        """Quantised latent ``(B, D, T)`` -> waveform ``(B, 1, T * hop)``."""
        return self.model(post)


class BigCodecModel(nn.Module):
    """``encoder`` (upstream ``CodecEnc``) and ``decoder`` (upstream ``generator``)."""

    def __init__(self, cfg: BigCodecConfig = BigCodecConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = BigCodecEncoder(cfg)
        self.decoder = BigCodecDecoder(cfg)

    def pad(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, 1, N)`` -> ``(B, 1, N + hop - N % hop)``, as upstream ``inference.py`` pads."""
        return F.pad(audio, (0, self.cfg.padding(audio.shape[-1])))

    def quantize(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw ``(B, 1, N)`` -> (quantised latent ``(B, D, T)``, codes ``(n_q, B, T)``), T = ceil((N + 1) / hop)."""
        return self.decoder.quantizer(self.encoder(self.pad(audio)))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(n_q, B, T)`` -> waveform ``(B, 1, T * hop)``."""
        return self.decoder(self.decoder.quantizer.embed(codes))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Upstream ``inference.py``: raw ``(B, 1, N)`` -> ``(B, 1, N + pad)``."""
        post, _ = self.quantize(audio)
        return self.decoder(post)


def config_from_options(variant: Variant | None = None, options: Mapping[str, Any] | None = None) -> BigCodecConfig:
    """Config from catalog ``options`` (``ngf``, ``encoder_ratios``, ``codebook_size``, ...)."""
    opts = dict(options if options is not None else (variant.options if variant else {}))
    kw: dict[str, Any] = {}
    if variant is not None:
        kw["sample_rate"] = variant.sample_rate
    for key in ("sample_rate", "ngf", "latent_dim", "decoder_channels", "lstm_layers", "n_quantizers",
                "codebook_size", "codebook_dim"):
        if key in opts:
            kw[key] = int(opts[key])
    for key in ("encoder_ratios", "decoder_ratios", "dilations"):
        if key in opts:
            kw[key] = tuple(int(v) for v in opts[key])
    cfg = BigCodecConfig(**kw)
    if "hop_length" in opts and int(opts["hop_length"]) != cfg.hop_length:
        raise ValueError(f"options hop_length {opts['hop_length']} does not match the ratios' hop {cfg.hop_length}")
    return cfg


def _legacy_weight_norm(key: str) -> str:
    return key.replace(".parametrizations.weight.original0", ".weight_g").replace(
        ".parametrizations.weight.original1", ".weight_v")


def official_state_dict(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``bigcodec.pt`` (``{'CodecEnc': ..., 'generator': ...}``) or a Lightning checkpoint -> this model's keys."""
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"expected a dict, got {type(ckpt).__name__}")
    out: dict[str, torch.Tensor] = {}
    if all(isinstance(ckpt.get(part), Mapping) for part in PARTS):
        for part, prefix in PARTS.items():
            out.update({f"{prefix}.{_legacy_weight_norm(k)}": v for k, v in ckpt[part].items()})
        return out
    state = ckpt.get("state_dict")
    if isinstance(state, Mapping):
        for key, value in state.items():
            for part, prefix in PARTS.items():
                head = f"{LIGHTNING_PREFIX}{part}."
                if key.startswith(head):
                    out[f"{prefix}.{_legacy_weight_norm(key[len(head):])}"] = value
        if out:
            return out  # model.discriminator.* / model.spec_discriminator.*: training only
    raise ValueError(f"not a BigCodec checkpoint: need the entries 'CodecEnc' and 'generator' (state dicts), "
                     f"as upstream inference.py reads them, or a Lightning 'state_dict' under "
                     f"'{LIGHTNING_PREFIX}CodecEnc.' / '{LIGHTNING_PREFIX}generator.'; got keys {sorted(ckpt)[:6]}")


def load_official_checkpoint(model: BigCodecModel, path: str) -> BigCodecModel:
    """Load ``bigcodec.pt`` into ``model`` with ``strict=True``; errors name the file."""
    from codec_wrappers.weights import load_checkpoint, load_state_checked

    try:
        state = official_state_dict(load_checkpoint(path))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    load_state_checked(model, state, f"{path}: not a BigCodec checkpoint for this config")
    return model


def build_model(cfg: BigCodecConfig, weights: ResolvedWeights) -> BigCodecModel:
    """A model in eval mode with seeded random weights or the checkpoint file of ``weights``."""
    from codec_wrappers.weights import init_from_weights, seeded_state_dict

    if weights.kind != "random":
        return init_from_weights(BigCodecModel(cfg), weights, load_official_checkpoint, "BigCodec")
    model = BigCodecModel(cfg).eval()
    # Unit weight-norm gains stack up to a saturated tanh; a small gain on the last conv keeps
    # random-weight output in tanh's linear range, so it still depends on the input.
    state = seeded_state_dict(model, weights.seed or 0)
    last = f"decoder.model.{len(model.decoder.model) - 2}.weight_g"
    state[last] = state[last] * 0.03
    model.load_state_dict(state, strict=True)
    return model


class BigCodecCodec(BatchedCodec):
    """``resynthesize((B, 1, T), lengths) -> (B, 1, T)``: each item as upstream ``inference.py`` runs one
    file (padded by ``hop - n % hop``, output cut to n); items of equal length share a call.

    ``hop_length`` is 1 for :class:`BatchedCodec` because the model applies upstream's padding itself
    (it differs from padding to a multiple when n already is one); the frame hop is ``model.cfg.hop_length``.
    ``batch_mode``: "exact" (default) or "padded" (one forward of the right-padded batch; the padding
    then reaches into items' ends through the activations' replicate padding and the decoder convs).
    """

    hop_length = 1
    min_samples = 1
    padding_invariant = False

    def __init__(self, variant: Variant, weights: ResolvedWeights, model: BigCodecModel):
        super().__init__(variant, weights)
        self.model = model.eval()
        self.batch_mode = str(variant.options.get("batch_mode", "exact"))

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` -> ``[(b, frames)]`` int64 (one codebook of 8192), with upstream's padding applied."""
        with torch.inference_mode():
            _, codes = self.model.quantize(audio.to(self.device, torch.float32))
        return list(codes.unbind(0))

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio)


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> BigCodecCodec:
    return BigCodecCodec(variant, weights, build_model(config_from_options(variant), weights).to(device))
