"""WavTokenizer (jishengpeng/WavTokenizer): EnCodec SEANet encoder + one 4096-entry codebook, decoded
by a Vocos backbone (attention ``pos_net`` + ConvNeXt, AdaLayerNorm) and an ISTFT head. 24 kHz;
``wavtokenizer_24k_75tps`` (hop 320, n_fft 1280) and ``wavtokenizer_24k_40tps`` (hop 600, n_fft 2400).

Official checkpoints (Hugging Face; put the file in ``$NCST_WEIGHTS_DIR/<variant>/``):

- 75 tps: ``novateur/WavTokenizer`` ``WavTokenizer_small_320_24k_4096.ckpt`` (also
  ``novateur/WavTokenizer-medium-speech-75token`` ``wavtokenizer_medium_speech_320_24k.ckpt``,
  same layout);
- 40 tps: ``novateur/WavTokenizer`` ``WavTokenizer_small_600_24k_4096.ckpt``.

Each is a PyTorch-Lightning ``.ckpt``; :func:`official_state_dict` takes ``ckpt['state_dict']`` and
keeps only keys starting with ``feature_extractor.``, ``backbone.`` or ``head.`` (unchanged),
dropping the discriminators and loss buffers, exactly as upstream ``from_pretrained0802``; the
result loads with ``strict=True``. It includes the unused SEANet decoder
(``feature_extractor.encodec.decoder.*``, ratios 8,5,4,2 for both variants), the codebook buffers
``feature_extractor.encodec.quantizer.vq.layers.0._codebook.{inited,cluster_size,embed,embed_avg}``
and the ISTFT window ``head.istft.window``, which is used as loaded (never recomputed).

Resynthesis (upstream ``encode_infer`` + ``decode`` with ``bandwidth_id=0``): latent
``(B, 512, ceil(N/hop))``, codes ``(1, B, F)``, output ``F*hop`` samples, trimmed to the input length
here. Reflect padding, the LSTM and full self-attention see the whole item, so items run at their
exact length (no padding to the hop, as upstream).
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
from codec_wrappers.layers.vocos import ISTFTHead, VocosBackbone

KEEP_PREFIXES = ("backbone.", "head.", "feature_extractor.")


@dataclass(frozen=True)
class WavTokenizerConfig:
    """Hyperparameters of a WavTokenizer config yaml (defaults: small, 75 tokens/s)."""

    sample_rate: int = 24000
    downsamples: tuple = (8, 5, 4, 2)  # encoder ratios ("dowmsamples" upstream)
    decoder_ratios: tuple = (8, 5, 4, 2)  # unused SEANet decoder, hard-coded upstream
    codebook_size: int = 4096
    dimension: int = 512
    n_filters: int = 32
    backbone_dim: int = 768
    intermediate_dim: int = 2304
    num_layers: int = 12
    adanorm_num_embeddings: int = 4
    n_fft: int | None = None  # default 4 * hop

    def __post_init__(self):
        if self.codebook_size < 2 or not self.downsamples:
            raise ValueError(f"invalid WavTokenizer config {self}")
        if self.istft_n_fft < self.hop_length:
            raise ValueError(f"n_fft {self.istft_n_fft} is shorter than the hop {self.hop_length}")

    @property
    def hop_length(self) -> int:
        return math.prod(self.downsamples)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def istft_n_fft(self) -> int:
        return self.n_fft if self.n_fft is not None else 4 * self.hop_length


class _EncodecFeatures(nn.Module):
    """``feature_extractor``: holds ``encodec.{encoder,quantizer,decoder}``."""

    def __init__(self, cfg: WavTokenizerConfig):
        super().__init__()
        self.encodec = nn.Module()
        self.encodec.encoder = SEANetEncoder(n_filters=cfg.n_filters, dimension=cfg.dimension, ratios=cfg.downsamples)
        self.encodec.quantizer = ResidualVectorQuantizer(cfg.dimension, cfg.codebook_size, 1)
        self.encodec.decoder = SEANetDecoder(n_filters=cfg.n_filters, dimension=cfg.dimension, ratios=cfg.decoder_ratios)


class WavTokenizerModel(nn.Module):
    """``feature_extractor`` / ``backbone`` / ``head`` with upstream key names."""

    def __init__(self, cfg: WavTokenizerConfig = WavTokenizerConfig()):
        super().__init__()
        self.cfg = cfg
        self.feature_extractor = _EncodecFeatures(cfg)
        self.backbone = VocosBackbone(cfg.dimension, cfg.backbone_dim, cfg.intermediate_dim, cfg.num_layers,
                                      cfg.adanorm_num_embeddings)
        self.head = ISTFTHead(cfg.backbone_dim, cfg.istft_n_fft, cfg.hop_length)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, 1, N)`` -> codes ``(1, B, ceil(N/hop))`` int64."""
        enc = self.feature_extractor.encodec
        return enc.quantizer.encode(enc.encoder(x), 1)

    def codes_to_features(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(1, B, F)`` -> features ``(B, 512, F)``."""
        return self.feature_extractor.encodec.quantizer.decode(codes)

    def decode(self, features: torch.Tensor, bandwidth_id: int = 0) -> torch.Tensor:
        """Features ``(B, 512, F)`` -> waveform ``(B, 1, F*hop)``."""
        cond = torch.tensor([bandwidth_id], device=features.device)
        return self.head(self.backbone(features, cond)).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.codes_to_features(self.encode(x)))


def config_from_options(variant: Variant | None = None, options: Mapping[str, Any] | None = None) -> WavTokenizerConfig:
    """Config from catalog ``options`` (``downsamples``, ``codebook_size``, optional ``n_fft``, ...)."""
    opts = dict(options if options is not None else (variant.options if variant else {}))
    kw: dict[str, Any] = {}
    if variant is not None:
        kw["sample_rate"] = variant.sample_rate
    for key in ("downsamples", "decoder_ratios"):
        if key in opts:
            kw[key] = tuple(int(r) for r in opts[key])
    for key in ("codebook_size", "dimension", "n_filters", "backbone_dim", "intermediate_dim", "num_layers",
                "adanorm_num_embeddings", "n_fft"):
        if key in opts:
            kw[key] = int(opts[key])
    cfg = WavTokenizerConfig(**kw)
    if "hop_length" in opts and int(opts["hop_length"]) != cfg.hop_length:
        raise ValueError(f"options hop_length {opts['hop_length']} != prod(downsamples) {cfg.hop_length}")
    return cfg


def official_state_dict(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Lightning checkpoint dict (or a bare state dict) -> model state dict (kept prefixes only)."""
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, Mapping):
        raise ValueError("checkpoint 'state_dict' is not a dict")
    return {k: v for k, v in state.items() if k.startswith(KEEP_PREFIXES)}


def load_official_checkpoint(model: WavTokenizerModel, path: str) -> WavTokenizerModel:
    """Load a WavTokenizer ``.ckpt`` (or safetensors) into ``model`` with ``strict=True``."""
    from codec_wrappers.weights import load_strict

    return load_strict(model, path, official_state_dict, "WavTokenizer")


def build_model(cfg: WavTokenizerConfig, weights: ResolvedWeights) -> WavTokenizerModel:
    """A model in eval mode with seeded random weights or the checkpoint file of ``weights``."""
    from codec_wrappers.weights import init_from_weights

    return init_from_weights(WavTokenizerModel(cfg), weights, load_official_checkpoint, "WavTokenizer")


class WavTokenizerCodec(BatchedCodec):
    """``resynthesize((B, 1, T), lengths) -> (B, 1, T)``; items run at their exact length.

    ``hop_length`` is 1 for :class:`BatchedCodec` (no padding to the frame hop); the frame hop is
    ``model.cfg.hop_length``.
    """

    hop_length = 1

    def __init__(self, variant: Variant, weights: ResolvedWeights, model: WavTokenizerModel):
        super().__init__(variant, weights)
        self.model = model
        self.batch_mode = str(variant.options.get("batch_mode", "exact"))

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` -> ``[(b, ceil(t / frame hop))]``: WavTokenizer's single codebook."""
        with torch.inference_mode():
            return list(self.model.encode(audio.to(self.device)).unbind(0))

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio)


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> WavTokenizerCodec:
    model = build_model(config_from_options(variant), weights).to(device)
    return WavTokenizerCodec(variant, weights, model)
