"""FACodec (NaturalSpeech 3, Amphion), native re-implementation of its resynthesis path.

Official checkpoint: Hugging Face ``amphion/naturalspeech3_facodec``, files
``ns3_facodec_encoder.bin`` and ``ns3_facodec_decoder.bin``, each a plain ``torch.save`` state dict
(no wrapper key, no prefix) of Amphion's ``FACodecEncoder`` / ``FACodecDecoder``. Mapping
(:func:`load_official_state_dicts`): encoder file key ``k`` -> ``encoder.k``; decoder file key ``k``
-> ``decoder.k``, except the training-only predictors (``f0_predictor.*``, ``phone_predictor.*``,
``res_f0_predictor.*``, ``res_phone_predictor.*``, ``x_timbre_predictor.*`` and the optional
``content_f0_predictor.*`` / ``prosody_phone_predictor.*``: 73.5 M of the decoder's 98.1 M
parameters, never used by resynthesis), which are dropped. Everything else loads with ``strict=True``; weight-normed layers keep the
legacy ``weight_g`` / ``weight_v`` keys; filter and positional-table buffers are taken as loaded.

Resynthesis (Amphion README: ``enc_out = fa_encoder(wav)``; ``vq_post_emb, vq_id, _, quantized,
spk_embs = fa_decoder(enc_out, eval_vq=False, vq=True)``; ``fa_decoder.inference(vq_post_emb,
spk_embs)``): 16 kHz -> 80 frames/s latent (256-d); prosody (1 codebook) and content (2) quantise
the latent in parallel, the residual quantiser (3) takes latent - (prosody + content); a 4-layer
transformer averages the unquantised latent into a timbre vector that scales/shifts the
layer-normalised sum of the quantised parts before the conv decoder (tanh output).

Lengths: upstream (the README snippet) feeds the raw waveform, no padding. Its strided convs give
``F = floor((floor((floor(N/8) + 1)/5) + 1)/5)`` latent frames (:meth:`FACodecConfig.frames`; ``N/200``
when 200 divides N, but e.g. 81 for N = 16199) and the decoder returns ``200 F`` samples, a little
more or less than N. Here too every item runs at its raw length (padding to the hop would move the
timbre vector, the mean over all frames, by a few per cent, and the replicate padding of every
alias-free activation sits at the item's real end); the output is cut or zero-filled to N. Items
too short for one frame (N < 152, where upstream fails) are zero-padded to the shortest length that
gives one (:attr:`FACodecConfig.min_samples`).

Batching: upstream adds ``pe[:batch]`` of its positional table along the *batch* axis (it indexes a
batch-first tensor by dim 0), so item ``b`` of a batch would get row ``b``. Upstream runs one file at
a time, so every item here gets row 0, as it would alone. Items run in groups of equal length
(or, ``batch_mode="masked"``, in one masked forward: :func:`forward_masked`), so batched output
equals one-by-one output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from codec_wrappers.base import BatchedCodec, ResolvedWeights, ValidLengthMask, Variant, trim_to_lengths
from codec_wrappers.layers.conv import WNConv1d, WNConvTranspose1d
from codec_wrappers.layers.facodec_blocks import Activation1d, ResidualUnit, WNLinear

TRAINING_ONLY_PREFIXES = ("f0_predictor.", "phone_predictor.", "res_f0_predictor.", "res_phone_predictor.",
                          "x_timbre_predictor.", "content_f0_predictor.", "prosody_phone_predictor.")


@dataclass(frozen=True)
class FACodecConfig:
    """Hyperparameters (defaults: the released 16 kHz FACodec)."""

    sample_rate: int = 16000
    ngf: int = 32
    encoder_ratios: tuple = (2, 4, 5, 5)
    latent_dim: int = 256  # encoder out_channels = decoder in_channels = vq_dim
    decoder_ratios: tuple = (5, 5, 4, 2)
    decoder_channels: int = 1024  # upsample_initial_channel
    codebook_dim: int = 8
    codebook_bits: int = 10  # 2**10 = 1024 entries
    n_prosody: int = 1
    n_content: int = 2
    n_residual: int = 3
    timbre_layers: int = 4
    timbre_heads: int = 4
    timbre_ffn: int = 1024
    timbre_kernel: int = 5
    max_positions: int = 5000

    def __post_init__(self):
        if math.prod(self.encoder_ratios) != math.prod(self.decoder_ratios):
            raise ValueError(f"encoder ratios {self.encoder_ratios} and decoder ratios {self.decoder_ratios} differ in hop")
        if self.latent_dim % self.timbre_heads:
            raise ValueError("latent_dim must be divisible by timbre_heads")

    @property
    def hop_length(self) -> int:
        return math.prod(self.encoder_ratios)

    @property
    def n_codebooks(self) -> int:
        return self.n_prosody + self.n_content + self.n_residual

    def frames(self, samples: int) -> int:
        """Latent frames the encoder gives for ``samples`` input samples (its strided convs, kernel
        ``2s``, padding ``ceil(s/2)``, each give ``floor((n + 2 ceil(s/2) - 2s) / s) + 1``)."""
        n = int(samples)
        for s in self.encoder_ratios:
            n = max(0, (n + 2 * (s // 2 + s % 2) - 2 * s) // s + 1) if n > 0 else 0
        return n

    @property
    def min_samples(self) -> int:
        """The shortest input that gives one latent frame (152 samples for the released model)."""
        return next(n for n in range(1, self.hop_length + 1) if self.frames(n) >= 1)


class FACodecEncoder(nn.Module):
    """``(B, 1, T)`` -> ``(B, latent_dim, T // hop)`` (keys ``block.<i>...``)."""

    def __init__(self, cfg: FACodecConfig):
        super().__init__()
        dim = cfg.ngf
        layers: list[nn.Module] = [WNConv1d(1, dim, 7, padding=3)]
        for stride in cfg.encoder_ratios:
            layers.append(_EncoderBlock(dim, stride))
            dim *= 2
        layers += [Activation1d(dim), WNConv1d(dim, cfg.latent_dim, 3, padding=1)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class _EncoderBlock(nn.Module):
    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            ResidualUnit(dim, 1), ResidualUnit(dim, 3), ResidualUnit(dim, 9), Activation1d(dim),
            WNConv1d(dim, 2 * dim, 2 * stride, stride=stride, padding=stride // 2 + stride % 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class _DecoderBlock(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            Activation1d(dim_in),
            WNConvTranspose1d(dim_in, dim_out, 2 * stride, stride=stride, padding=stride // 2 + stride % 2,
                              output_padding=stride % 2),
            ResidualUnit(dim_out, 1), ResidualUnit(dim_out, 3), ResidualUnit(dim_out, 9),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class FactorizedVQ(nn.Module):
    """Project to ``codebook_dim``, nearest L2-normalised codeword, project back (keys in_proj/out_proj/_codebook)."""

    def __init__(self, dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.in_proj = WNLinear(dim, codebook_dim)
        self.out_proj = WNLinear(codebook_dim, dim)
        self._codebook = nn.Embedding(codebook_size, codebook_dim)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, D, T)`` -> (quantized ``(B, D, T)``, codes ``(B, T)``)."""
        z_e = self.in_proj(z.transpose(1, 2)).transpose(1, 2)  # (B, d, T)
        flat = F.normalize(z_e.transpose(1, 2).reshape(-1, z_e.shape[1]))
        book = F.normalize(self._codebook.weight)
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ book.t() + book.pow(2).sum(1, keepdim=True).t()
        codes = (-dist).max(1)[1].view(z.shape[0], -1)
        z_q = F.embedding(codes, self._codebook.weight).transpose(1, 2)
        z_q = z_e + (z_q - z_e)
        return self.out_proj(z_q.transpose(1, 2)).transpose(1, 2), codes


class ResidualFVQ(nn.Module):
    def __init__(self, n: int, dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.layers = nn.ModuleList(FactorizedVQ(dim, codebook_size, codebook_dim) for _ in range(n))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, D, T)`` -> (sum of outputs, codes ``(n, B, T)``, stacked outputs summed over layers)."""
        out, residual, codes, parts = 0.0, x, [], []
        for layer in self.layers:
            q, k = layer(residual)
            residual = residual - q
            out = out + q
            codes.append(k)
            parts.append(q)
        return out, torch.stack(codes), torch.stack(parts).sum(0)


class _FFN(nn.Module):
    def __init__(self, dim: int, hidden: int, kernel: int):
        super().__init__()
        self.ffn_1 = nn.Conv1d(dim, hidden, kernel, padding=kernel // 2)
        self.ffn_2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn_2(F.relu(self.ffn_1(x.permute(0, 2, 1)).permute(0, 2, 1)))


class _TimbreLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, kernel: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = _FFN(dim, hidden, kernel)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.self_attn(query=h, key=h, value=h, key_padding_mask=key_padding_mask)[0]
        return x + self.ffn(self.ln_2(x))


class _Positions(nn.Module):
    def __init__(self, dim: int, max_len: int):
        super().__init__()
        pos = torch.arange(max_len).unsqueeze(1)
        freq = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(max_len, 1, dim)
        pe[:, 0, 0::2] = torch.sin(pos * freq)
        pe[:, 0, 1::2] = torch.cos(pos * freq)
        self.register_buffer("pe", pe)


class TimbreEncoder(nn.Module):
    """Pre-LN transformer over frames; ``(B, T, D) -> (B, T, D)`` (every item gets ``pe[0]``, see module doc)."""

    def __init__(self, cfg: FACodecConfig):
        super().__init__()
        d = cfg.latent_dim
        self.position_emb = _Positions(d, cfg.max_positions)
        self.layers = nn.ModuleList(_TimbreLayer(d, cfg.timbre_heads, cfg.timbre_ffn, cfg.timbre_kernel)
                                    for _ in range(cfg.timbre_layers))
        self.last_ln = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``key_padding_mask (B, T)``: True at frames past an item (padded batches)."""
        x = x + self.position_emb.pe[:1]
        for layer in self.layers:
            x = layer(x, key_padding_mask)
        return self.last_ln(x)


class FACodecDecoder(nn.Module):
    """Quantisers, timbre encoder and conv generator (keys as Amphion's FACodecDecoder, predictors excluded)."""

    def __init__(self, cfg: FACodecConfig):
        super().__init__()
        self.cfg = cfg
        size, d = 2**cfg.codebook_bits, cfg.latent_dim
        self.quantizer = nn.ModuleList(ResidualFVQ(n, d, size, cfg.codebook_dim)
                                       for n in (cfg.n_prosody, cfg.n_content, cfg.n_residual) if n > 0)
        ch = cfg.decoder_channels
        layers: list[nn.Module] = [WNConv1d(d, ch, 7, padding=3)]
        for i, stride in enumerate(cfg.decoder_ratios):
            layers.append(_DecoderBlock(ch // 2**i, ch // 2 ** (i + 1), stride))
        out_dim = ch // 2 ** len(cfg.decoder_ratios)
        layers += [Activation1d(out_dim), WNConv1d(out_dim, 1, 7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.timbre_encoder = TimbreEncoder(cfg)
        self.timbre_linear = nn.Linear(d, 2 * d)
        with torch.no_grad():
            self.timbre_linear.bias[:d] = 1.0
            self.timbre_linear.bias[d:] = 0.0

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(B, D, T)`` -> (vq_post_emb ``(B, D, T)``, codes ``(6, B, T)``, [prosody, content, residual] parts)."""
        post, p_codes, prosody = self.quantizer[0](x)
        c_out, c_codes, content = self.quantizer[1](x)
        post = post + c_out
        codes, parts = [p_codes, c_codes], [prosody, content]
        if len(self.quantizer) > 2:
            r_out, r_codes, residual = self.quantizer[2](x - (prosody + content))
            post = post + r_out
            codes.append(r_codes)
            parts.append(residual)
        return post, torch.cat(codes, 0), parts

    def speaker_embedding(self, x: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, D, T)`` encoder output -> timbre vector ``(B, D)``; ``frames (B,)``: valid frames per item."""
        if frames is None:
            return self.timbre_encoder(x.transpose(1, 2)).transpose(1, 2).mean(dim=2)
        pad = torch.arange(x.shape[-1], device=x.device)[None, :] >= frames.to(x.device)[:, None]
        h = self.timbre_encoder(x.transpose(1, 2), pad).transpose(1, 2)
        return (h * (~pad).unsqueeze(1).to(h.dtype)).sum(dim=2) / frames.to(h.dtype).view(-1, 1)

    def inference(self, post: torch.Tensor, spk: torch.Tensor) -> torch.Tensor:
        """``(B, D, T)``, ``(B, D)`` -> waveform ``(B, 1, T * hop)``."""
        gamma, beta = self.timbre_linear(spk).unsqueeze(2).chunk(2, 1)
        h = F.layer_norm(post.transpose(1, 2), (post.shape[1],), eps=1e-5).transpose(1, 2)
        return self.model(h * gamma + beta)


class FACodecModel(nn.Module):
    """Encoder + decoder: ``forward((B, 1, T)) -> dict(codes (6, B, F), latent, quantized, spk_embs, output)``."""

    def __init__(self, config: FACodecConfig | None = None):
        super().__init__()
        self.config = config or FACodecConfig()
        self.encoder = FACodecEncoder(self.config)
        self.decoder = FACodecDecoder(self.config)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        latent = self.encoder(x)
        post, codes, _ = self.decoder.quantize(latent)
        spk = self.decoder.speaker_embedding(latent)
        return {"codes": codes, "latent": latent, "quantized": post, "spk_embs": spk,
                "output": self.decoder.inference(post, spk)}


def forward_masked(model: FACodecModel, x: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
    """A right-padded batch ``(B, 1, T)`` whose item ``b`` has ``lengths[b]`` samples, in one call, as if
    each item ran alone at exactly that length: every conv sees zeros past the item's valid frames
    and every alias-free activation replicates the item's own last frame (valid frames follow each
    conv's length arithmetic, so non-hop lengths are exact too), attention and the timbre mean skip
    other items' padding. Equal to per-item runs up to float rounding.

    Returns ``codes (n, B, F)``, ``frames (B,)`` (valid latent frames per item), ``latent``,
    ``quantized``, ``spk_embs`` and ``output (B, 1, T')`` with ``T' >= 200 * frames`` (the batch is
    zero-padded to a multiple of the hop) and zeros past each item's ``200 * frames`` samples.
    Raises ``ValueError`` when an item is too short for one latent frame.
    """
    cfg = model.config
    lengths = lengths.to(torch.int64).cpu()
    if bool((lengths < cfg.min_samples).any()):
        raise ValueError(f"FACodec needs at least {cfg.min_samples} samples per item for one latent frame, "
                         f"got lengths {lengths.tolist()}")
    total = -(-max(int(lengths.max()), x.shape[-1]) // cfg.hop_length) * cfg.hop_length
    x = F.pad(x, (0, total - x.shape[-1]))
    valid = ValidLengthMask(model)
    acts = [m for m in model.modules() if isinstance(m, Activation1d)]
    for m in acts:
        m.valid_lengths = valid.valid_for
    try:
        # Encoder, quantisers and timbre encoder: layer lengths T, T/2, T/8, T/40, F are all distinct.
        valid.begin(lengths, total)
        latent = model.encoder(x)
        frames = valid.valid_for(latent.shape[-1]).clone()
        post, codes, _ = model.decoder.quantize(latent)
        spk = model.decoder.speaker_embedding(latent, frames)
        # Decoder: its layer lengths F, 5F, 25F, 100F, 200F repeat the encoder's with other valid frames.
        valid.begin(frames, latent.shape[-1])
        out = model.decoder.inference(post, spk)
        out = ValidLengthMask.mask(out, valid.valid_for(out.shape[-1]))
    finally:
        valid.end()
        for h in valid.handles:
            h.remove()
        for m in acts:
            m.valid_lengths = None
    return {"codes": codes, "frames": frames, "latent": latent, "quantized": post, "spk_embs": spk, "output": out}


def load_official_state_dicts(model: FACodecModel, encoder_sd: Mapping, decoder_sd: Mapping, source: str = "") -> None:
    """Load Amphion's two plain state dicts (encoder, decoder) strictly; predictors are dropped."""
    state = {f"encoder.{k}": v for k, v in encoder_sd.items()}
    state.update({f"decoder.{k}": v for k, v in decoder_sd.items() if not k.startswith(TRAINING_ONLY_PREFIXES)})
    from codec_wrappers.weights import load_state_checked

    load_state_checked(model, state, f"{source or 'FACodec checkpoint'}: does not match FACodec")


class FACodecCodec(BatchedCodec):
    """FACodec; ``resynthesize((B, 1, T), lengths) -> (B, 1, T)``: each item as upstream runs it, at
    its raw length (``200 * frames(n)`` output samples, cut or zero-filled to ``n``).

    ``batch_mode``: "exact" (default; items in groups of equal length), "masked" (one forward of the
    whole batch through :func:`forward_masked`, equal to exact up to float rounding: the fast choice
    on a GPU) or "padded" (one plain forward; padding leaks into items' ends and timbre). Set from
    ``variant.options["batch_mode"]`` or on the instance. ``hop_length`` is 1 for
    :class:`BatchedCodec` (no padding to the frame hop); the frame hop is ``model.config.hop_length``.
    """

    padding_invariant = False
    hop_length = 1
    batch_modes = ("exact", "masked", "padded")

    def __init__(self, variant: Variant, weights: ResolvedWeights, model: FACodecModel):
        super().__init__(variant, weights)
        self.model = model.eval()
        self.min_samples = model.config.min_samples
        self.batch_mode = str(variant.options.get("batch_mode", "exact"))

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` (t >= ``min_samples``) -> one ``(b, frames(t))`` tensor per quantizer:
        prosody, then content, then residual layers (6 for the default 1 + 2 + 3). The timbre vector
        is continuous and not among them."""
        with torch.inference_mode():
            _, codes, _ = self.model.decoder.quantize(self.model.encoder(audio.to(self.device)))
        return list(codes.unbind(0))

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio)["output"]

    def resynthesize(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.batch_mode != "masked":
            return super().resynthesize(audio, lengths)
        if audio.dim() != 3 or audio.shape[1] != 1 or lengths.shape != (audio.shape[0],):
            raise ValueError(f"expected audio (batch, 1, samples) and lengths (batch,), got {tuple(audio.shape)}")
        total = audio.shape[-1]
        lengths = lengths.to(torch.int64).cpu()
        runs = lengths.clamp(min=self.min_samples)  # as the exact path pads items too short for a frame
        x = audio.to(self.device, torch.float32)
        keep = torch.arange(total, device=x.device)[None, :] < lengths.to(x.device)[:, None]
        with torch.inference_mode():
            out = forward_masked(self.model, x * keep.unsqueeze(1), runs)["output"]
        return trim_to_lengths(out.float(), lengths, total)


def build_model(variant: Variant, weights: ResolvedWeights) -> FACodecModel:
    from codec_wrappers.weights import load_checkpoint, seeded_state_dict

    counts = dict(variant.options.get("n_quantizers") or {})
    model = FACodecModel(FACodecConfig(
        sample_rate=variant.sample_rate, n_prosody=int(counts.get("prosody", 1)),
        n_content=int(counts.get("content", 2)), n_residual=int(counts.get("residual", 3)),
        codebook_bits=int(math.log2(int(variant.options.get("codebook_size", 1024)))),
    ))
    if model.config.hop_length != int(variant.options.get("hop_length", model.config.hop_length)):
        raise ValueError(f"{variant.id}: options hop_length does not match FACodec's {model.config.hop_length}")
    if weights.is_random:
        state = seeded_state_dict(model, weights.seed)
        # Unit weight-norm gains stack up to a pre-tanh std of ~10 (a clipped square wave); a small
        # gain on the last conv keeps random-weight output in tanh's linear range, input-dependent.
        last = f"decoder.model.{len(model.decoder.model) - 2}.weight_g"
        state[last] = state[last] * 0.03
        model.load_state_dict(state, strict=True)
        return model
    import os

    enc = [f for f in weights.files if "encoder" in os.path.basename(f)]
    dec = [f for f in weights.files if "decoder" in os.path.basename(f)]
    if len(enc) != 1 or len(dec) != 1:
        raise ValueError(f"{variant.id}: need ns3_facodec_encoder.bin and ns3_facodec_decoder.bin, got {weights.files}")
    load_official_state_dicts(model, load_checkpoint(enc[0]), load_checkpoint(dec[0]), f"{enc[0]} + {dec[0]}")
    return model


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> FACodecCodec:
    return FACodecCodec(variant, weights, build_model(variant, weights).to(device))
