"""FunCodec (Alibaba DAMO), native re-implementation: time-domain Encodec-style and magnitude/phase FreqCodec.

Official checkpoints (Hugging Face / ModelScope, two files each, both needed):

- ``alibaba-damo/audio_codec-encodec-zh_en-general-16k-nq32ds320-pytorch`` (ST label 3; hop 320),
- ``alibaba-damo/audio_codec-encodec-zh_en-general-16k-nq32ds640-pytorch`` (C3-1..C3-3; hop 640),
- ``alibaba-damo/audio_codec-encodec-en-libritts-16k-nq32ds320-pytorch`` (C3-4),
- ``alibaba-damo/audio_codec-freqcodec_magphase-en-libritts-16k-gr1nq32ds320-pytorch`` (DEC=frequency).

Files: ``config.yaml`` (the trainer's full argparse dump: ``encoder_conf``, ``decoder_conf``,
``quantizer_conf``, ``model_conf``) and ``model.pth``, a FLAT ``torch.save`` of the whole model's
``state_dict()`` (no wrapper key, no ``module.`` prefix). Checkpoint dict -> this model
(:func:`load_official_state_dict`): keys starting with ``discriminator.`` or ``mel_spec_transforms.``
(training only) are dropped; every other key maps 1:1 (``encoder.model.<i>...``,
``quantizer.rq.model.{embed,embed_avg,cluster_size,inited}``, ``decoder.model.<i>...``, and for
FreqCodec ``enc_trans_func.window`` / ``dec_trans_func.window``) and is loaded with ``strict=True``.
Upstream's own loader is silently non-strict; ours fails loudly on a shape mismatch. When
``config.yaml`` is given, the architecture is read from it (:func:`config_from_yaml`), so the
FreqCodec gr1 checkpoint, whose exact widths/groups are not in the public repo, builds from its own
config (group ratios are config fields).

Resynthesis follows ``Speech2Token(..., run_mod='inference')``: RMS normalisation
``x / (1e-8 + rms)``, encoder, greedy RVQ over the first ``n_q`` codebooks where
``n_q = max(1, floor(bit_width / (log2(codebook_size) * sr / hop)))``, decoder, output times the RMS
scale (``use_scale=True``, upstream's default), cut to the input length. GroupNorm statistics and the
RMS are taken over the whole utterance, so by default every item runs at its own exact length (items
of equal length share a forward call); batched output equals one-by-one output. For GPUs,
``batch_mode="masked"`` (time domain) runs the padded batch in one call with every layer honouring
each item's length, equal to one-by-one up to float rounding (see :class:`FunCodecCodec`). FreqCodec's ISTFT returns
``(2 * ceil(F / 2) - 1) * stft_hop`` samples for ``F = 1 + T // stft_hop`` STFT frames, up to
``stft_hop - 1`` fewer than the input (upstream returns the shorter signal); the missing tail is zeros.
Clips of at most ``n_fft // 2`` samples (16 ms), which upstream's STFT rejects, are zero-padded to
``n_fft // 2 + 1`` samples first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from codec_wrappers.base import Codec, ResolvedWeights, Variant, pad_to_multiple, trim_to_lengths
from codec_wrappers.layers.funcodec_seanet import LengthTooShort, seanet_decoder, seanet_encoder

TRAINING_ONLY_PREFIXES = ("discriminator.", "mel_spec_transforms.")


@dataclass(frozen=True)
class FunCodecConfig:
    """Hyperparameters of one FunCodec model (defaults: the zh_en-general 16k nq32ds320 Encodec)."""

    domain: str = "time"  # "time" (Encodec) | "freq" (FreqCodec, magnitude/phase STFT)
    sample_rate: int = 16000
    ratios: tuple = (8, 5, 4, 2)  # time: ints; freq: (freq, time) pairs; decoder order
    n_filters: int = 32
    dimension: int = 128
    n_codebooks: int = 32  # codebooks in the checkpoint
    codebook_size: int = 1024
    bit_width: int | None = 16000  # selects n_q as upstream; None -> all codebooks
    n_residual_layers: int = 1
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    compress: int = 2
    lstm_layers: int = 2
    num_groups: int = 1  # GroupNorm groups ("time_group_norm")
    conv_group_ratio: int = -1  # freq only: grouped convs (upstream encoder_conf.conv_group_ratio)
    decoder_conv_group_ratio: int = -1  # decoder_conf.conv_group_ratio (residual blocks)
    tr_conv_group_ratio: int = -1  # decoder_conf.tr_conv_group_ratio (transposed convs)
    last_out_padding: tuple = ((0, 1), (0, 0))
    n_fft: int = 512
    stft_hop: int = 160
    audio_normalize: bool = True
    use_scale: bool = True

    def __post_init__(self):
        if self.domain not in ("time", "freq"):
            raise ValueError(f"FunCodec domain must be 'time' or 'freq', got {self.domain!r}")
        pairs = all(isinstance(r, (tuple, list)) and len(r) == 2 for r in self.ratios)
        if self.domain == "freq" and not pairs:
            raise ValueError(f"freq FunCodec needs (freq, time) ratio pairs, got {self.ratios!r}")
        if self.domain == "time" and pairs:
            raise ValueError(f"time FunCodec needs integer ratios, got {self.ratios!r}")
        if self.bit_width is not None and self.bit_width <= 0:
            raise ValueError(f"bit_width must be positive or None, got {self.bit_width}")

    @property
    def hop_length(self) -> int:
        if self.domain == "freq":
            return self.stft_hop * math.prod(int(t) for _, t in self.ratios)
        return math.prod(int(r) for r in self.ratios)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def bits_per_quantizer(self) -> float:
        return math.log2(self.codebook_size) * self.sample_rate / self.hop_length

    @property
    def n_quantizers(self) -> int:
        """Codebooks used at ``bit_width`` (upstream get_num_quantizers_for_bandwidth; at most n_codebooks)."""
        if not self.bit_width:
            return self.n_codebooks
        return min(self.n_codebooks, int(max(1, math.floor(self.bit_width / self.bits_per_quantizer))))

    def seanet(self, decoder: bool) -> SimpleNamespace:
        two_d = self.domain == "freq"
        return SimpleNamespace(
            channels=3 if two_d else 1, out_channels=3 if two_d else 1, dimension=self.dimension,
            n_filters=self.n_filters, ratios=[tuple(r) if two_d else int(r) for r in self.ratios],
            kernel_size=self.kernel_size, last_kernel_size=self.last_kernel_size,
            residual_kernel_size=self.residual_kernel_size, dilation_base=self.dilation_base,
            compress=self.compress, lstm_layers=self.lstm_layers, num_groups=self.num_groups,
            n_residual_layers=self.n_residual_layers,
            conv_group_ratio=self.decoder_conv_group_ratio if decoder else self.conv_group_ratio,
            tr_conv_group_ratio=self.tr_conv_group_ratio, last_out_padding=self.last_out_padding, two_d=two_d,
        )


FREQ_DS320 = dict(domain="freq", ratios=((4, 1), (4, 1), (4, 2), (4, 1)), dilation_base=1)


def config_from_options(options: Mapping[str, Any], sample_rate: int = 16000) -> FunCodecConfig:
    """A config from a catalog entry's ``options`` (domain, ratios, bit_width, codebook_size, ...)."""
    opts = dict(options)
    domain = opts.get("domain", "time")
    base = FunCodecConfig(**FREQ_DS320) if domain == "freq" else FunCodecConfig()
    kw: dict[str, Any] = {"sample_rate": sample_rate}
    for key in ("ratios", "last_out_padding"):
        if key in opts:
            kw[key] = tuple(tuple(r) if isinstance(r, (list, tuple)) else int(r) for r in opts[key])
    for key in ("bit_width", "codebook_size", "n_codebooks", "n_filters", "dimension", "lstm_layers", "n_fft",
                "stft_hop", "conv_group_ratio", "decoder_conv_group_ratio", "tr_conv_group_ratio", "num_groups", "dilation_base", "use_scale"):
        if key in opts:
            kw[key] = opts[key]
    cfg = replace(base, **kw)
    if "hop_length" in opts and int(opts["hop_length"]) != cfg.hop_length:
        raise ValueError(f"options hop_length {opts['hop_length']} != hop of ratios {cfg.ratios} ({cfg.hop_length})")
    if "n_quantizers" in opts and int(opts["n_quantizers"]) != cfg.n_quantizers:
        raise ValueError(f"options n_quantizers {opts['n_quantizers']} != {cfg.n_quantizers} selected by bit_width {cfg.bit_width}")
    return cfg


def config_from_yaml(conf: Mapping[str, Any], bit_width: int | None = 16000, use_scale: bool = True) -> FunCodecConfig:
    """A config from an official ``config.yaml`` (already parsed): model/encoder_conf/quantizer_conf/..."""
    enc = dict(conf.get("encoder_conf") or {})
    dec = dict(conf.get("decoder_conf") or {})
    quant = dict(conf.get("quantizer_conf") or {})
    model_conf = dict(conf.get("model_conf") or {})
    domain = "freq" if conf.get("model") == "freq_codec" or str(conf.get("encoder", "")).endswith("_2d") else "time"
    if domain == "freq" and list(model_conf.get("codec_domain", ["mag_phase"] * 2)) != ["mag_phase", "mag_phase"]:
        raise ValueError(f"only the mag_phase FreqCodec is implemented, config has {model_conf.get('codec_domain')}")
    if enc.get("causal") or dec.get("causal"):
        raise ValueError("causal FunCodec configs are not implemented")
    for part in (enc, dec):
        if part.get("norm", "time_group_norm") != "time_group_norm":
            raise ValueError(f"only norm 'time_group_norm' is implemented, config has {part.get('norm')!r}")
        if part.get("seq_model", "lstm") not in ("lstm", None, "none"):
            raise ValueError(f"only an LSTM sequence model is implemented, config has {part.get('seq_model')!r}")
    for key in ("n_filters", "seq_layer_num", "seq_model", "dilation_base", "compress", "kernel_size",
                "residual_kernel_size", "last_kernel_size", "n_residual_layers", "ratios"):
        if key in enc and key in dec and enc[key] != dec[key]:
            raise ValueError(f"encoder_conf.{key}={enc[key]!r} differs from decoder_conf.{key}={dec[key]!r}: not supported")
    if quant.get("codec_dim") not in (None, model_conf.get("odim", 128)):
        raise ValueError(f"quantizer projections (codec_dim={quant['codec_dim']}) are not implemented")
    base = FunCodecConfig(**FREQ_DS320) if domain == "freq" else FunCodecConfig()
    ratios = enc.get("ratios", base.ratios)
    ratios = tuple(tuple(int(v) for v in r) if isinstance(r, (list, tuple)) else int(r) for r in ratios)
    domain_conf = dict(model_conf.get("domain_conf") or {})
    return replace(
        base, ratios=ratios, bit_width=bit_width, use_scale=use_scale,
        sample_rate=int(model_conf.get("target_sample_hz", quant.get("sampling_rate", base.sample_rate))),
        n_filters=int(enc.get("n_filters", base.n_filters)),
        dimension=int(model_conf.get("odim", enc.get("dimension", base.dimension))),
        n_codebooks=int(quant.get("num_quantizers", base.n_codebooks)),
        codebook_size=int(quant.get("codebook_size", base.codebook_size)),
        dilation_base=int(enc.get("dilation_base", base.dilation_base)),
        lstm_layers=int(enc.get("seq_layer_num", base.lstm_layers)) if enc.get("seq_model", "lstm") == "lstm" else 0,
        num_groups=int((enc.get("norm_params") or {}).get("num_groups", 1)),
        conv_group_ratio=int(enc.get("conv_group_ratio", -1)),
        decoder_conv_group_ratio=int(dec.get("conv_group_ratio", -1)),
        tr_conv_group_ratio=int(dec.get("tr_conv_group_ratio", -1)),
        n_fft=int(domain_conf.get("n_fft", base.n_fft)), stft_hop=int(domain_conf.get("hop_length", base.stft_hop)),
        audio_normalize=bool(model_conf.get("audio_normalize", True)),
    )


class _Holder(nn.Module):
    pass


class FunCodecRVQ(nn.Module):
    """Greedy residual VQ with upstream's buffer layout ``rq.model.{inited,cluster_size,embed,embed_avg}``."""

    def __init__(self, n_codebooks: int, codebook_size: int, dim: int):
        super().__init__()
        self.rq = _Holder()
        self.rq.model = _Holder()
        self.rq.model.register_buffer("inited", torch.ones(n_codebooks, 1))
        self.rq.model.register_buffer("cluster_size", torch.zeros(n_codebooks, codebook_size))
        self.rq.model.register_buffer("embed", torch.zeros(n_codebooks, codebook_size, dim))
        self.rq.model.register_buffer("embed_avg", torch.zeros(n_codebooks, codebook_size, dim))

    def forward(self, z: torch.Tensor, n_q: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``z (B, D, F)`` -> codes ``(n_q, B, F)`` int64 and quantized ``(B, D, F)`` (sum of the n_q codewords)."""
        residual = z.transpose(1, 2)  # (B, F, D)
        out = torch.zeros_like(residual)
        codes = []
        for q in range(n_q):
            embed = self.rq.model.embed[q]
            flat = residual.reshape(-1, residual.shape[-1])
            et = embed.t()
            dist = -(flat.pow(2).sum(1, keepdim=True) - 2 * flat @ et + et.pow(2).sum(0, keepdim=True))
            idx = dist.max(dim=-1).indices.view(residual.shape[:-1])
            quant = F.embedding(idx, embed)
            residual = residual - quant
            out = out + quant
            codes.append(idx)
        return torch.stack(codes), out.transpose(1, 2)


class _Window(nn.Module):
    def __init__(self, n_fft: int):
        super().__init__()
        self.register_buffer("window", torch.hann_window(n_fft))


class FunCodecModel(nn.Module):
    """FunCodec generator: ``forward((B, 1, T)) -> dict(codes (n_q, B, F), quantized (B, D, F), output (B, 1, T))``."""

    def __init__(self, config: FunCodecConfig):
        super().__init__()
        self.config = config
        self.encoder = seanet_encoder(config.seanet(False))
        self.quantizer = FunCodecRVQ(config.n_codebooks, config.codebook_size, config.dimension)
        self.decoder = seanet_decoder(config.seanet(True))
        if config.domain == "freq":
            self.enc_trans_func = _Window(config.n_fft)
            self.dec_trans_func = _Window(config.n_fft)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 1, T)`` -> latent ``(B, D, F)`` and RMS scale ``(B, 1, 1)`` (ones without normalisation)."""
        if self.config.audio_normalize:
            scale = 1e-8 + x.mean(dim=1, keepdim=True).pow(2).mean(dim=2, keepdim=True).sqrt()
            x = x / scale
        else:
            scale = torch.ones(x.shape[0], 1, 1, dtype=x.dtype, device=x.device)
        if self.config.domain == "freq":
            cfg = self.config
            spec = torch.stft(x.squeeze(1), cfg.n_fft, cfg.stft_hop, cfg.n_fft, self.enc_trans_func.window,
                              center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
            mag = spec.abs()
            clamped = torch.clamp(mag, min=1e-6)
            phase = spec / clamped
            x = torch.stack([torch.log(clamped), phase.real, phase.imag], dim=1)
        return self.encoder(x), scale

    def decode(self, quantized: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, D, F)`` -> ``(B, 1, F * hop)`` (time) or ``(B, 1, (2F - 1) * stft_hop)`` (freq), times ``scale``."""
        out = self.decoder(quantized)
        if self.config.domain == "freq":
            cfg = self.config
            out = out.float()  # under bf16 autocast: torch.complex / istft take no bfloat16
            spec = F.softplus(out[:, 0]) * torch.complex(out[:, 1], out[:, 2])
            out = torch.istft(spec, cfg.n_fft, cfg.stft_hop, cfg.n_fft, self.dec_trans_func.window,
                              center=True, normalized=False, onesided=True).unsqueeze(1)
        if scale is not None and self.config.use_scale:
            out = out * scale.view(-1, 1, 1)
        return out

    def forward_masked(self, x: torch.Tensor, lengths: torch.Tensor, n_q: int | None = None) -> dict[str, torch.Tensor]:
        """Time domain: a padded batch ``(B, 1, T)`` run as if each item ran alone at ``lengths (B,)``.

        Per-item RMS, reflect padding at each item's end and GroupNorm statistics over its own
        frames; equal to :meth:`forward` per item up to float rounding. Raises ``LengthTooShort``
        for an item too short to reflect-pad at some layer, ``NotImplementedError`` for FreqCodec.
        """
        if self.config.domain != "time":
            raise NotImplementedError("masked batching is implemented for the time-domain model only")
        total = x.shape[-1]
        valid = (torch.arange(total, device=x.device)[None, :] < lengths[:, None]).unsqueeze(1).to(x.dtype)
        x = x * valid
        scale = torch.ones(x.shape[0], 1, 1, dtype=x.dtype, device=x.device)
        if self.config.audio_normalize:
            scale = 1e-8 + (x.pow(2).sum(dim=2, keepdim=True) / lengths.view(-1, 1, 1).to(x.dtype)).sqrt()
            x = x / scale
        latent, frames = self.encoder.forward_masked(x, lengths)
        codes, quantized = self.quantizer(latent, n_q or self.config.n_quantizers)
        quantized = quantized * (torch.arange(quantized.shape[-1], device=x.device)[None, :] < frames[:, None]).unsqueeze(1)
        out, _ = self.decoder.forward_masked(quantized, frames)
        if self.config.use_scale:
            out = out * scale
        out = F.pad(out, (0, max(0, total - out.shape[-1])))[..., :total] * valid
        return {"codes": codes, "frames": frames, "latent": latent, "quantized": quantized, "scale": scale, "output": out}

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> dict[str, torch.Tensor]:
        latent, scale = self.encode(x)
        codes, quantized = self.quantizer(latent, n_q or self.config.n_quantizers)
        return {"codes": codes, "latent": latent, "quantized": quantized, "scale": scale,
                "output": self.decode(quantized, scale)[..., : x.shape[-1]]}


def load_official_state_dict(model: FunCodecModel, checkpoint: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load an upstream ``model.pth`` dict (flat, whole Encodec/FreqCodec model) with ``strict=True``.

    Training-only entries (``discriminator.*``, ``mel_spec_transforms.*``) are dropped; a ``module.``
    prefix (DDP saves) is stripped. Raises ``ValueError`` naming ``source`` and the offending keys.
    """
    if "model" in checkpoint and isinstance(checkpoint["model"], Mapping):
        checkpoint = checkpoint["model"]
    state = {}
    for key, value in checkpoint.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if not key.startswith(TRAINING_ONLY_PREFIXES):
            state[key] = value
    from codec_wrappers.weights import load_state_checked

    load_state_checked(model, state, f"{source}: does not match the FunCodec architecture")


class FunCodecCodec(Codec):
    """A FunCodec variant: ``resynthesize((B, 1, T), lengths) -> (B, 1, T)``.

    ``batch_mode = "exact"`` (default): each item runs at its exact length, as upstream, items of
    equal length together. ``"masked"`` (time domain; FreqCodec falls back to exact): one forward
    of the padded batch in which every layer honours each item's own length (RMS, reflect padding,
    GroupNorm statistics), equal to "exact" up to float rounding; the fast choice on a GPU; batches
    with an item too short to reflect-pad (under ~1000 samples) fall back to exact. ``"padded"``: one forward of the batch zero-padded to a multiple of the
    hop; faster on a GPU, but the RMS, GroupNorm statistics and item ends then see the padding
    (record it if you use it). Set from ``variant.options["batch_mode"]`` or on the instance.
    """

    batch_modes = ("exact", "masked", "padded")

    def __init__(self, variant: Variant, weights: ResolvedWeights, model: FunCodecModel):
        super().__init__(variant, weights)
        self.model = model.eval()
        self.hop_length = model.config.hop_length
        self.batch_mode = str(variant.options.get("batch_mode", "exact"))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` -> one ``(b, frames)`` tensor per RVQ level used (``n_quantizers``), as
        :meth:`resynthesize` encodes an item of exactly ``t`` samples (RMS over the whole input)."""
        x = audio.to(self.device, torch.float32)
        if self.model.config.domain == "freq" and x.shape[-1] <= self.model.config.n_fft // 2:
            x = F.pad(x, (0, self.model.config.n_fft // 2 + 1 - x.shape[-1]))  # as resynthesize pads
        with torch.inference_mode():
            latent, _ = self.model.encode(x)
            codes, _ = self.model.quantizer(latent, self.model.config.n_quantizers)
        return list(codes.unbind(0))

    def resynthesize(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if audio.dim() != 3 or audio.shape[1] != 1 or lengths.shape != (audio.shape[0],):
            raise ValueError(f"expected audio (batch, 1, samples) and lengths (batch,), got {tuple(audio.shape)}, {tuple(lengths.shape)}")
        if self.batch_mode not in ("exact", "masked", "padded"):
            raise ValueError(f"batch_mode must be 'exact', 'masked' or 'padded', got {self.batch_mode!r}")
        total = audio.shape[-1]
        out = torch.zeros(audio.shape, dtype=torch.float32, device=self.device)
        lens = [int(n) for n in lengths.tolist()]
        with torch.inference_mode():
            if self.batch_mode == "masked" and self.model.config.domain == "time" and min(lens) > 0:
                try:
                    y = self.model.forward_masked(audio.to(self.device, torch.float32), lengths.to(self.device))["output"]
                    return trim_to_lengths(y.float(), lengths, total)
                except LengthTooShort:
                    pass  # an item too short for reflect padding somewhere: run items one length at a time
            if self.batch_mode == "padded":
                x = audio.to(self.device, torch.float32)
                valid = torch.arange(total, device=x.device)[None, :] < lengths.to(x.device)[:, None]
                y = self.model(pad_to_multiple(x * valid[:, None, :], self.hop_length))["output"].float()
                keep = min(total, y.shape[-1])
                out[..., :keep] = y[..., :keep]
                return trim_to_lengths(out, lengths, total)
            for n in sorted(set(lens)):
                idx = [i for i, m in enumerate(lens) if m == n]
                if n <= 0:
                    continue
                x = audio[idx, :, :n].to(self.device, torch.float32)
                if self.model.config.domain == "freq" and n <= self.model.config.n_fft // 2:
                    # torch.stft's reflect padding needs more than n_fft // 2 samples (upstream fails)
                    x = F.pad(x, (0, self.model.config.n_fft // 2 + 1 - n))
                y = self.model(x)["output"].float()  # FreqCodec may return up to stft_hop-1 fewer samples
                keep = min(n, y.shape[-1])
                out[idx, :, :keep] = y[..., :keep]
        return trim_to_lengths(out, lengths, total)


def build_model(variant: Variant, weights: ResolvedWeights) -> FunCodecModel:
    """The model of ``variant`` with its weights (seeded random, or config.yaml + model.pth)."""
    from codec_wrappers.weights import load_checkpoint, seeded_state_dict

    cfg = config_from_options(variant.options, variant.sample_rate)
    if weights.is_random:
        model = FunCodecModel(cfg)
        model.load_state_dict(seeded_state_dict(model, weights.seed), strict=True)
        return model
    yamls = [f for f in weights.files if f.endswith((".yaml", ".yml"))]
    ckpts = [f for f in weights.files if not f.endswith((".yaml", ".yml"))]
    if len(ckpts) != 1:
        raise ValueError(f"{variant.id}: expected one model.pth among {weights.files}")
    if yamls:
        import yaml

        with open(yamls[0]) as f:
            file_cfg = config_from_yaml(yaml.safe_load(f), cfg.bit_width, cfg.use_scale)
        if file_cfg.hop_length != cfg.hop_length or file_cfg.domain != cfg.domain:
            raise ValueError(f"{yamls[0]}: hop {file_cfg.hop_length}/{file_cfg.domain} does not match {variant.id} "
                             f"(hop {cfg.hop_length}/{cfg.domain})")
        cfg = file_cfg
    model = FunCodecModel(cfg)
    load_official_state_dict(model, load_checkpoint(ckpts[0]), ckpts[0])
    return model


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> FunCodecCodec:
    return FunCodecCodec(variant, weights, build_model(variant, weights).to(device))
