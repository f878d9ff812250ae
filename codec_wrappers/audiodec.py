"""AudioDec (Meta), native re-implementation of ``libritts_v1``: symAD 24 kHz hop-300 autoencoder's
encoder + residual VQ, decoded by the AudioDec_v1 causal HiFi-GAN vocoder.

Official checkpoints (``exp.zip`` of github.com/facebookresearch/AudioDec release
``pretrain_models_v02``; unzip into the weights folder, keeping the ``exp/`` paths):

- ``exp/autoencoder/symAD_libritts_24000_hop300/checkpoint-500000steps.pkl``
- ``exp/vocoder/AudioDec_v1_symAD_libritts_24000_hop300_clean/checkpoint-500000steps.pkl``

Each is a ``torch.save`` dict; the generator's state dict is at ``ckpt["model"]["generator"]``
(:func:`generator_state_dict`). Mapping (:func:`load_official_state_dicts`): autoencoder key ``k``
-> ``autoencoder.k`` (``encoder.*``, ``projector.*``, ``quantizer.codebook.layers.<i>.{embed,
cluster_size,embed_avg}`` and the symAD decoder ``decoder.*``, kept so loading stays strict though
this path does not run it); vocoder key ``k`` -> ``vocoder.k`` (weight-normed convs with legacy
``weight_g``/``weight_v``, input statistics ``mean``/``scale``). Both load with ``strict=True``.

Resynthesis follows upstream's streaming demo (``demoFile.py`` / ``bin/stream.py``): every causal
conv owns a ``pad_buffer`` (in the checkpoint) that holds the last input samples it saw. Upstream
warms the models up once: the encoder encodes 8192 zeros, the vocoder decodes their codes; the
buffers left by that warm-up are the state every utterance starts from here (computed once at load,
copied per item), so items are independent and batched output equals one-by-one output. The
model is causal, so right zero-padding to a multiple of the 300-sample hop does not change the
valid samples: upstream runs the raw length N (every strided stage gives ``ceil(n/s)`` frames, so
``ceil(N/300)`` frames, output cut to N), and the padded run gives the same frames and the same first
N samples, so a batch runs in one call. Codes are ``(8, B, frames)`` offset by ``1024 * i`` as upstream's ``flatten_idx``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from codec_wrappers.base import BatchedCodec, ResolvedWeights, Variant
from codec_wrappers.layers.conv import WNConv1d, WNConvTranspose1d


@dataclass(frozen=True)
class AudioDecConfig:
    """Hyperparameters of libritts_v1 (symAD_libritts_24000_hop300 + AudioDec_v1 vocoder)."""

    sample_rate: int = 24000
    encode_channels: int = 32
    enc_ratios: tuple = (2, 4, 8, 16)
    enc_strides: tuple = (3, 4, 5, 5)
    dec_ratios: tuple = (16, 8, 4, 2)  # symAD decoder (held for strict loading)
    dec_strides: tuple = (5, 5, 4, 3)
    code_dim: int = 64
    n_codebooks: int = 8
    codebook_size: int = 1024
    voc_channels: int = 512
    voc_kernel: int = 7
    voc_scales: tuple = (5, 5, 4, 3)
    voc_resblock_kernel: int = 11
    voc_dilations: tuple = (1, 3, 5)
    voc_groups: int = 3
    warmup_samples: int = 8192  # upstream receptive_length

    def __post_init__(self):
        if math.prod(self.enc_strides) != math.prod(self.voc_scales):
            raise ValueError(f"encoder strides {self.enc_strides} and vocoder scales {self.voc_scales} differ in hop")

    @property
    def hop_length(self) -> int:
        return math.prod(self.enc_strides)


class _Causal(nn.Module):
    """Streaming causal conv: ``y = conv(cat(state, x))``, ``state <- last pad_length samples``.

    ``state`` starts from the ``pad_buffer`` buffer (checkpoint value) and is set per batch by
    :meth:`AudioDecModel.set_state`.
    """

    def __init__(self, conv: nn.Module, in_channels: int, pad_length: int, transpose_stride: int = 0):
        super().__init__()
        self.pad_length = pad_length
        self.stride = transpose_stride
        if transpose_stride:
            self.deconv = conv
        else:
            self.conv = conv
        self.register_buffer("pad_buffer", torch.zeros(1, in_channels, pad_length))
        self.state: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self.state if self.state is not None else self.pad_buffer.expand(x.shape[0], -1, -1)
        x = torch.cat((state, x), -1)
        self.state = x[:, :, -self.pad_length :]
        if self.stride:
            return self.deconv(x)[:, :, self.stride : -self.stride]
        return self.conv(x)


def causal_conv(c_in, c_out, kernel, stride=1, dilation=1, groups=1, bias=True, weight_norm=False) -> _Causal:
    cls = WNConv1d if weight_norm else nn.Conv1d
    conv = cls(c_in, c_out, kernel, stride, dilation=dilation, groups=groups, bias=bias)
    return _Causal(conv, c_in, (kernel - 1) * dilation)


def causal_deconv(c_in, c_out, stride, weight_norm=False) -> _Causal:
    cls = WNConvTranspose1d if weight_norm else nn.ConvTranspose1d
    return _Causal(cls(c_in, c_out, 2 * stride, stride), c_in, 1, transpose_stride=stride)


class _ResUnit(nn.Module):
    def __init__(self, ch: int, dilation: int):
        super().__init__()
        self.conv1 = causal_conv(ch, ch, 7, dilation=dilation, bias=False)
        self.conv2 = nn.Conv1d(ch, ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.elu(self.conv1(F.elu(x))))


class _Block(nn.Module):
    """Encoder block (res units then strided conv) or decoder block (transposed conv then res units)."""

    def __init__(self, c_in: int, c_out: int, stride: int, up: bool):
        super().__init__()
        self.up = up
        self.conv = causal_deconv(c_in, c_out, stride) if up else causal_conv(c_in, c_out, 2 * stride, stride)
        self.res_units = nn.ModuleList(_ResUnit(c_out if up else c_in, d) for d in (1, 3, 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = self.conv(x)
        for unit in self.res_units:
            x = unit(x)
        return x if self.up else self.conv(x)


class _Coder(nn.Module):
    def __init__(self, cfg: AudioDecConfig, decoder: bool):
        super().__init__()
        ch = cfg.encode_channels
        if decoder:
            widths = [ch * r for r in cfg.dec_ratios] + [ch]
            self.conv1 = causal_conv(cfg.code_dim, widths[0], 7, bias=False)
            self.conv_blocks = nn.ModuleList(_Block(widths[i], widths[i + 1], s, True) for i, s in enumerate(cfg.dec_strides))
            self.conv2 = causal_conv(ch, 1, 7, bias=False)
        else:
            widths = [ch] + [ch * r for r in cfg.enc_ratios]
            self.conv = causal_conv(1, ch, 7, bias=False)
            self.conv_blocks = nn.ModuleList(_Block(widths[i], widths[i + 1], s, False) for i, s in enumerate(cfg.enc_strides))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x) if hasattr(self, "conv1") else self.conv(x)
        for block in self.conv_blocks:
            x = block(x)
        return self.conv2(x) if hasattr(self, "conv2") else x


class _Codebook(nn.Module):
    def __init__(self, dim: int, size: int):
        super().__init__()
        self.register_buffer("embed", torch.randn(dim, size))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed_avg", torch.zeros(dim, size))


class SymAD(nn.Module):
    """The symAD autoencoder generator's modules: ``encoder``, ``decoder``, ``projector``, ``quantizer``."""

    def __init__(self, cfg: AudioDecConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = _Coder(cfg, decoder=False)
        self.decoder = _Coder(cfg, decoder=True)
        self.projector = nn.Module()
        self.projector.project = causal_conv(cfg.encode_channels * cfg.enc_ratios[-1], cfg.code_dim, 3, bias=False)
        self.quantizer = nn.Module()
        self.quantizer.codebook = nn.Module()
        self.quantizer.codebook.layers = nn.ModuleList(_Codebook(cfg.code_dim, cfg.codebook_size)
                                                       for _ in range(cfg.n_codebooks))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` -> ``(B, code_dim, ceil(T / hop))``."""
        return self.projector.project(self.encoder(x))

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, D, F)`` -> codes ``(n_codebooks, B, F)``, offset by ``codebook_size * i``."""
        residual, codes = z.transpose(2, 1), []
        for i, layer in enumerate(self.quantizer.codebook.layers):
            flat = residual.reshape(-1, residual.shape[-1])
            dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ layer.embed + layer.embed.pow(2).sum(0, keepdim=True)
            idx = (-dist).max(1)[1].view(*residual.shape[:-1])
            q = F.embedding(idx, layer.embed.transpose(0, 1))
            residual = residual - (residual + (q - residual))
            codes.append(idx + self.cfg.codebook_size * i)
        return torch.stack(codes)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes ``(n, B, F)`` -> summed codewords ``(B, F, code_dim)`` (upstream's flat table lookup)."""
        table = torch.stack([layer.embed.transpose(0, 1) for layer in self.quantizer.codebook.layers])
        return F.embedding(codes, table.reshape(-1, table.shape[-1])).sum(dim=0)


class _GroupBlock(nn.Module):
    """MultiGroupConv1d: repeat channels ``groups`` times, grouped dilated residual convs, 1x1 merge."""

    def __init__(self, ch: int, kernel: int, dilations: tuple, groups: int):
        super().__init__()
        wide = ch * groups
        self.groups = groups
        self.convs1 = nn.ModuleList(causal_conv(wide, wide, kernel, dilation=d, groups=groups, weight_norm=True)
                                    for d in dilations)
        self.convs2 = nn.ModuleList(causal_conv(wide, wide, kernel, groups=groups, weight_norm=True) for _ in dilations)
        self.conv_out = WNConv1d(wide, ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.repeat(1, self.groups, 1)
        for c1, c2 in zip(self.convs1, self.convs2):
            x = c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1)) + x
        return self.conv_out(x)


class Vocoder(nn.Module):
    """AudioDec_v1 causal HiFi-GAN: ``(B, F, code_dim)`` -> ``(B, 1, F * hop)``."""

    def __init__(self, cfg: AudioDecConfig):
        super().__init__()
        ch = cfg.voc_channels
        self.register_buffer("mean", torch.zeros(cfg.code_dim))
        self.register_buffer("scale", torch.ones(cfg.code_dim))
        self.input_conv = causal_conv(cfg.code_dim, ch, cfg.voc_kernel, weight_norm=True)
        self.upsamples = nn.ModuleList(causal_deconv(ch // 2**i, ch // 2 ** (i + 1), s, weight_norm=True)
                                       for i, s in enumerate(cfg.voc_scales))
        self.blocks = nn.ModuleList(_GroupBlock(ch // 2 ** (i + 1), cfg.voc_resblock_kernel, cfg.voc_dilations, cfg.voc_groups)
                                    for i in range(len(cfg.voc_scales)))
        self.output_conv = causal_conv(ch // 2 ** len(cfg.voc_scales), 1, cfg.voc_kernel, weight_norm=True)

    def forward(self, zq: torch.Tensor) -> torch.Tensor:
        c = self.input_conv(((zq - self.mean) / self.scale).transpose(2, 1))
        for up, block in zip(self.upsamples, self.blocks):
            c = block(up(F.leaky_relu(c, 0.1)))
        return torch.tanh(self.output_conv(F.leaky_relu(c, 0.01)))


class AudioDecModel(nn.Module):
    """``forward((B, 1, T)) -> dict(codes (8, B, F), latent (B, 64, F), output (B, 1, T))`` from the warm state."""

    def __init__(self, config: AudioDecConfig | None = None):
        super().__init__()
        self.config = config or AudioDecConfig()
        self.autoencoder = SymAD(self.config)
        self.vocoder = Vocoder(self.config)
        self._warm: dict[str, torch.Tensor] | None = None

    def _streams(self, root: nn.Module) -> dict[str, _Causal]:
        return {name: m for name, m in root.named_modules() if isinstance(m, _Causal)}

    def warm_up(self) -> None:
        """Upstream's set-up: from the loaded pad buffers, encode ``warmup_samples`` zeros and decode them."""
        streams = self._streams(self)
        for m in streams.values():
            m.state = None
        with torch.no_grad():  # not inference_mode: the states must stay usable outside it
            zeros = torch.zeros(1, 1, self.config.warmup_samples, device=self.vocoder.mean.device)
            zq = self.autoencoder.lookup(self.autoencoder.quantize(self.autoencoder.encode(zeros)))
            self.vocoder(zq)
        self._warm = {name: m.state.clone() for name, m in streams.items() if m.state is not None}

    def set_state(self, batch: int) -> None:
        if self._warm is None:
            self.warm_up()
        for name, m in self._streams(self).items():
            warm = self._warm.get(name)
            m.state = None if warm is None else warm.expand(batch, -1, -1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.set_state(x.shape[0])
        z = self.autoencoder.encode(x)
        codes = self.autoencoder.quantize(z)
        y = self.vocoder(self.autoencoder.lookup(codes))
        return {"codes": codes, "latent": z, "output": y[..., : x.shape[-1]]}

    def _load_from_state_dict(self, *args, **kwargs):
        self._warm = None  # new weights or buffers: recompute the warm state
        return super()._load_from_state_dict(*args, **kwargs)


def generator_state_dict(checkpoint: Mapping[str, Any], source: str = "checkpoint") -> Mapping[str, torch.Tensor]:
    """The generator's state dict of an AudioDec ``.pkl`` (``ckpt['model']['generator']``; a bare dict passes)."""
    model = checkpoint.get("model") if isinstance(checkpoint, Mapping) else None
    if isinstance(model, Mapping) and isinstance(model.get("generator"), Mapping):
        return model["generator"]
    if isinstance(checkpoint, Mapping) and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    raise ValueError(f"{source}: no ['model']['generator'] state dict in this AudioDec checkpoint")


def load_official_state_dicts(model: AudioDecModel, autoencoder_sd: Mapping, vocoder_sd: Mapping, source: str = "") -> None:
    """Load the symAD generator and the AudioDec_v1 vocoder generator state dicts strictly."""
    state = {f"autoencoder.{k}": v for k, v in autoencoder_sd.items()}
    state.update({f"vocoder.{k}": v for k, v in vocoder_sd.items()})
    from codec_wrappers.weights import load_state_checked

    load_state_checked(model, state, f"{source or 'AudioDec checkpoint'}: does not match AudioDec libritts_v1")


class AudioDecCodec(BatchedCodec):
    """AudioDec; ``resynthesize((B, 1, T), lengths) -> (B, 1, T)``; causal, so one padded batch call."""

    padding_invariant = True

    def __init__(self, variant: Variant, weights: ResolvedWeights, model: AudioDecModel):
        super().__init__(variant, weights)
        self.model = model.eval()
        self.hop_length = model.config.hop_length

    def to(self, device):
        super().to(device)
        self.model.warm_up()
        return self

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` (t a multiple of the hop) -> one ``(b, frames)`` tensor per codebook, each an
        index into its own codebook (the codec's flat-table offset ``codebook_size * i`` removed).
        Starts from the warm streaming state, as :meth:`resynthesize` does."""
        size = self.model.config.codebook_size
        with torch.inference_mode():
            self.model.set_state(audio.shape[0])
            codes = self.model.autoencoder.quantize(self.model.autoencoder.encode(audio.to(self.device)))
        return [c - size * i for i, c in enumerate(codes.unbind(0))]

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio)["output"]


def build_model(variant: Variant, weights: ResolvedWeights) -> AudioDecModel:
    from codec_wrappers.weights import load_checkpoint, seeded_state_dict

    opts = variant.options
    model = AudioDecModel(AudioDecConfig(sample_rate=variant.sample_rate,
                                         n_codebooks=int(opts.get("n_quantizers", 8)),
                                         codebook_size=int(opts.get("codebook_size", 1024))))
    if model.config.hop_length != int(variant.options.get("hop_length", model.config.hop_length)):
        raise ValueError(f"{variant.id}: options hop_length does not match AudioDec's {model.config.hop_length}")
    if weights.is_random:
        model.load_state_dict(seeded_state_dict(model, weights.seed), strict=True)
        return model.eval()
    enc = [f for f in weights.files if "autoencoder" in f.replace(os.sep, "/")]
    voc = [f for f in weights.files if "vocoder" in f.replace(os.sep, "/")]
    if len(enc) != 1 or len(voc) != 1:
        raise ValueError(f"{variant.id}: need the exp/autoencoder/... and exp/vocoder/... checkpoints, got {weights.files}")
    load_official_state_dicts(model, generator_state_dict(load_checkpoint(enc[0]), enc[0]),
                              generator_state_dict(load_checkpoint(voc[0]), voc[0]), f"{enc[0]} + {voc[0]}")
    return model.eval()


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> AudioDecCodec:
    model = build_model(variant, weights).to(device)
    model.warm_up()
    return AudioDecCodec(variant, weights, model)
