"""FunCodec's SEANet blocks (1-D time domain and 2-D frequency x time), named like its checkpoints.

FunCodec (alibaba-damo-academy/FunCodec) builds its encoders/decoders from EnCodec-style "S" convs
with ``time_group_norm``: every conv is ``<name>.conv.conv`` (or ``.convtr.convtr``) followed by a
``GroupNorm(num_groups, C)`` at ``<name>.conv.norm`` (``.convtr.norm``), with statistics over all
channels and all frames of the utterance. Padding is non-causal ``reflect`` with the length-dependent
"extra" padding that makes ``frames = ceil(length / stride)``; the 2-D conv puts that extra time
padding on the left, the 1-D conv on the right (both as upstream).

Module indices inside ``model`` (a ``nn.Sequential``) follow upstream exactly, so that
``encoder.model.13.lstm.weight_ih_l0`` etc. load with ``strict=True``.

Separate from the shared :mod:`codec_wrappers.layers.seanet` (weight-normed convs, 1-D only):
FunCodec needs GroupNorm after every conv, the 2-D (frequency x time) variants, and a masked path
(:func:`run_masked`) that runs a padded batch as if every item ran alone at its own length.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _extra_padding(length: int, kernel: int, stride: int, padding_total: int) -> int:
    n_frames = (length - kernel + padding_total) / stride + 1
    return (math.ceil(n_frames) - 1) * stride + (kernel - padding_total) - length


def _reflect_pad(x: torch.Tensor, pads: Sequence[int]) -> torch.Tensor:
    """``F.pad(x, pads, 'reflect')`` on the last one or two axes, zero-extending axes too short to reflect."""
    pads = list(pads)
    n_axes = len(pads) // 2
    extra = []
    for i in range(n_axes):  # pads[2i:2i+2] belongs to axis -(i+1)
        size = x.shape[-(i + 1)]
        m = max(pads[2 * i], pads[2 * i + 1])
        extra += [0, m - size + 1 if size <= m else 0]
    if any(extra):
        x = F.pad(x, extra)
    y = F.pad(x, pads, mode="reflect")
    index = [slice(None)] * y.dim()
    for i in range(n_axes):
        if extra[2 * i + 1]:
            index[y.dim() - 1 - i] = slice(0, y.shape[-(i + 1)] - extra[2 * i + 1])
    return y[tuple(index)]


class LengthTooShort(ValueError):
    """An item is too short for reflect padding at some layer (masked batching falls back)."""


def _frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    return (torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1)


def _masked_reflect_pad(x: torch.Tensor, lengths: torch.Tensor, left: int, rights: torch.Tensor) -> torch.Tensor:
    """Reflect-pad each item of ``(B, C, T)`` at its own end ``lengths[b]``; zeros after ``left + n + right``."""
    if bool((lengths <= torch.clamp(rights, min=left)).any()):
        raise LengthTooShort("item too short for reflect padding")
    size = int((left + lengths + rights).max())
    j = torch.arange(size, device=x.device)[None, :] - left
    n = lengths[:, None]
    src = torch.where(j >= n, 2 * (n - 1) - j, j.abs()).clamp(0, x.shape[-1] - 1)
    out = x.gather(2, src[:, None, :].expand(-1, x.shape[1], -1))
    return out * (j < n + rights[:, None]).unsqueeze(1).to(x.dtype)


def masked_group_norm(norm: nn.GroupNorm, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``GroupNorm(1, C)`` with statistics over each item's valid frames only; invalid frames -> 0."""
    if norm.num_groups != 1:
        raise NotImplementedError("masked GroupNorm supports one group")
    mask = _frame_mask(lengths, x.shape[-1]).to(x.dtype)
    count = (lengths * x.shape[1]).to(x.dtype).view(-1, 1, 1)
    mean = (x * mask).sum(dim=(1, 2), keepdim=True) / count
    var = (((x - mean) * mask) ** 2).sum(dim=(1, 2), keepdim=True) / count
    y = (x - mean) / torch.sqrt(var + norm.eps) * norm.weight.view(1, -1, 1) + norm.bias.view(1, -1, 1)
    return y * mask


class _NormConv(nn.Module):
    """``conv`` then ``norm`` (GroupNorm): keys ``conv.weight/bias`` and ``norm.weight/bias``."""

    def __init__(self, conv: nn.Module, num_groups: int):
        super().__init__()
        self.conv = conv
        self.norm = nn.GroupNorm(num_groups, conv.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class _NormConvTr(nn.Module):
    def __init__(self, convtr: nn.Module, num_groups: int):
        super().__init__()
        self.convtr = convtr
        self.norm = nn.GroupNorm(num_groups, convtr.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.convtr(x))


class SConv1d(nn.Module):
    """Non-causal reflect-padded Conv1d + GroupNorm: ``(B, C_in, T) -> (B, C_out, ceil(T / stride))``."""

    def __init__(self, c_in, c_out, kernel, stride=1, dilation=1, groups=1, num_groups=1):
        super().__init__()
        self.conv = _NormConv(nn.Conv1d(c_in, c_out, kernel, stride, dilation=dilation, groups=groups), num_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv.conv
        k, s, d = conv.kernel_size[0], conv.stride[0], conv.dilation[0]
        total = (k - 1) * d - (s - 1)
        extra = _extra_padding(x.shape[-1], k, s, total)
        right = total // 2
        return self.conv(_reflect_pad(x, (total - right, right + extra)))

    def forward_masked(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each item padded at its own length ``lengths (B,)``: returns ``(y, out_lengths)``."""
        conv = self.conv.conv
        k, s, d = conv.kernel_size[0], conv.stride[0], conv.dilation[0]
        total = (k - 1) * d - (s - 1)
        frames = torch.ceil((lengths - k + total).double() / s + 1).long()
        extra = (frames - 1) * s + (k - total) - lengths
        right = total // 2
        padded = _masked_reflect_pad(x, lengths, total - right, right + extra)
        out_len = (lengths + total + extra - d * (k - 1) - 1) // s + 1
        return masked_group_norm(self.conv.norm, conv(padded), out_len), out_len


class SConvTranspose1d(nn.Module):
    """ConvTranspose1d + GroupNorm, trimmed symmetrically: ``(B, C_in, T) -> (B, C_out, T * stride)``."""

    def __init__(self, c_in, c_out, kernel, stride, num_groups=1):
        super().__init__()
        self.convtr = _NormConvTr(nn.ConvTranspose1d(c_in, c_out, kernel, stride), num_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.convtr.convtr
        total = conv.kernel_size[0] - conv.stride[0]
        right = total // 2
        y = self.convtr(x)
        return y[..., total - right : y.shape[-1] - right]

    def forward_masked(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        conv = self.convtr.convtr
        total = conv.kernel_size[0] - conv.stride[0]
        right = total // 2
        x = x * _frame_mask(lengths, x.shape[-1]).to(x.dtype)  # frames past an item add nothing
        y = masked_group_norm(self.convtr.norm, conv(x), lengths * conv.stride[0] + total)  # norm before trim
        out_len = lengths * conv.stride[0]
        y = y[..., total - right : y.shape[-1] - right]
        return y * _frame_mask(out_len, y.shape[-1]).to(y.dtype), out_len


class SConv2d(nn.Module):
    """Reflect-padded Conv2d over (freq, time) + GroupNorm; extra time padding goes to the left (upstream)."""

    def __init__(self, c_in, c_out, kernel, stride=(1, 1), dilation=(1, 1), groups=1, num_groups=1):
        super().__init__()
        kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        self.conv = _NormConv(
            nn.Conv2d(c_in, c_out, kernel, tuple(stride), dilation=tuple(dilation), groups=groups), num_groups
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv.conv
        (kf, kt), (sf, st), (df, dt) = conv.kernel_size, conv.stride, conv.dilation
        tot_f = (kf - 1) * df - (sf - 1)
        tot_t = (kt - 1) * dt - (st - 1)
        extra_t = _extra_padding(x.shape[-1], kt, st, tot_t)
        f_after, t_after = tot_f // 2, tot_t // 2
        pads = (tot_t - t_after + extra_t, t_after, tot_f - f_after, f_after)
        return self.conv(_reflect_pad(x, pads))


class SConvTranspose2d(nn.Module):
    """ConvTranspose2d + GroupNorm, trimmed per axis less ``out_padding`` ((freq l, r), (time l, r))."""

    def __init__(self, c_in, c_out, kernel, stride, out_padding=((0, 0), (0, 0)), groups=1, num_groups=1):
        super().__init__()
        self.convtr = _NormConvTr(nn.ConvTranspose2d(c_in, c_out, tuple(kernel), tuple(stride), groups=groups), num_groups)
        self.out_padding = tuple(tuple(p) for p in out_padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.convtr.convtr
        y = self.convtr(x)
        cuts = []
        for axis in range(2):
            total = conv.kernel_size[axis] - conv.stride[axis]
            right = total // 2
            left = total - right
            opl, opr = self.out_padding[axis]
            cuts.append((max(left - opl, 0), max(right - opr, 0)))
        (fl, fr), (tl, tr) = cuts
        return y[..., fl : y.shape[-2] - fr, tl : y.shape[-1] - tr]


class SLSTM(nn.Module):
    """Unidirectional LSTM over frames with a skip: ``(B, C, T) -> (B, C, T)``."""

    def __init__(self, dim: int, num_layers: int = 2, skip: bool = True):
        super().__init__()
        self.skip = skip
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(2, 0, 1)
        y, _ = self.lstm(x)
        if self.skip:
            y = y + x
        return y.permute(1, 2, 0)


class ResBlock(nn.Module):
    """SEANet residual block ``shortcut(x) + block(x)``; block = [ELU, conv k, ELU, conv 1] at dim//compress."""

    def __init__(self, dim, kernel, dilation, compress=2, num_groups=1, two_d=False, group_ratio=-1):
        super().__init__()
        hidden = dim // compress
        if two_d:
            groups = min(dim, hidden) // 2 // group_ratio if group_ratio > 0 else 1
            self.block = nn.Sequential(
                nn.ELU(), SConv2d(dim, hidden, (kernel, kernel), dilation=(1, dilation), groups=groups, num_groups=num_groups),
                nn.ELU(), SConv2d(hidden, dim, (1, 1), groups=groups, num_groups=num_groups),
            )
            self.shortcut = SConv2d(dim, dim, (1, 1), groups=dim // 2 // group_ratio if group_ratio > 0 else 1,
                                    num_groups=num_groups)
        else:
            self.block = nn.Sequential(
                nn.ELU(), SConv1d(dim, hidden, kernel, dilation=dilation, num_groups=num_groups),
                nn.ELU(), SConv1d(hidden, dim, 1, num_groups=num_groups),
            )
            self.shortcut = SConv1d(dim, dim, 1, num_groups=num_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)

    def forward_masked(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, _ = run_masked(self.block, x, lengths)
        return self.shortcut.forward_masked(x, lengths)[0] + y, lengths


def run_masked(layers: nn.Sequential, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run 1-D layers on a padded batch as if each item ``(B,)`` ran alone at its length (float rounding aside)."""
    for layer in layers:
        if hasattr(layer, "forward_masked"):
            x, lengths = layer.forward_masked(x, lengths)
        elif isinstance(layer, SLSTM):  # unidirectional: frames past an item never reach its own frames
            x = layer(x) * _frame_mask(lengths, x.shape[-1]).to(x.dtype)
        elif isinstance(layer, nn.ELU):
            x = layer(x)  # ELU(0) = 0 keeps padded frames at zero
        else:
            raise NotImplementedError(f"no masked path for {type(layer).__name__}")
    return x, lengths


class _Squeeze(nn.Module):
    def __init__(self, dim: int, unsqueeze: bool = False):
        super().__init__()
        self.dim, self.unsqueeze = dim, unsqueeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(self.dim) if self.unsqueeze else x.squeeze(self.dim)


def seanet_encoder(cfg) -> nn.Module:
    """Encoder ``(B, C_in, T)`` (1-D) or ``(B, C_in, F, T)`` (2-D) -> ``(B, dimension, frames)``.

    ``cfg`` has: channels, dimension, n_filters, ratios (ints, or (freq, time) pairs for 2-D, given
    in decoder order), kernel_size, last_kernel_size, residual_kernel_size, dilation_base, compress,
    lstm_layers, num_groups, conv_group_ratio, two_d.
    """
    nf, two_d, ng = cfg.n_filters, cfg.two_d, cfg.num_groups
    k = cfg.kernel_size
    layers: list[nn.Module] = [
        SConv2d(cfg.channels, nf, (k, k), num_groups=ng) if two_d else SConv1d(cfg.channels, nf, k, num_groups=ng)
    ]
    mult = 1
    for ratio in reversed(list(cfg.ratios)):
        dim = mult * nf
        for j in range(cfg.n_residual_layers):
            layers.append(ResBlock(dim, cfg.residual_kernel_size, cfg.dilation_base**j, cfg.compress, ng, two_d,
                                   cfg.conv_group_ratio))
        layers.append(nn.ELU())
        if two_d:
            fr, tr = ratio
            groups = dim // 2 // cfg.conv_group_ratio if cfg.conv_group_ratio > 0 else 1
            layers.append(SConv2d(dim, 2 * dim, (2 * fr, 2 * tr), (fr, tr), groups=groups, num_groups=ng))
        else:
            layers.append(SConv1d(dim, 2 * dim, 2 * ratio, ratio, num_groups=ng))
        mult *= 2
    if two_d:
        layers.append(_Squeeze(2))
    if cfg.lstm_layers:
        layers.append(SLSTM(mult * nf, cfg.lstm_layers))
    layers += [nn.ELU(), SConv1d(mult * nf, cfg.dimension, cfg.last_kernel_size, num_groups=ng)]
    return _Seq(layers)


def seanet_decoder(cfg) -> nn.Module:
    """Decoder ``(B, dimension, frames)`` -> ``(B, out_channels, T)`` (1-D) or ``(B, out_channels, F, T)`` (2-D)."""
    nf, two_d, ng = cfg.n_filters, cfg.two_d, cfg.num_groups
    mult = 2 ** len(cfg.ratios)
    layers: list[nn.Module] = [SConv1d(cfg.dimension, mult * nf, cfg.kernel_size, num_groups=ng)]
    if cfg.lstm_layers:
        layers.append(SLSTM(mult * nf, cfg.lstm_layers))
    if two_d:
        layers.append(_Squeeze(2, unsqueeze=True))
    n = len(cfg.ratios)
    for i, ratio in enumerate(cfg.ratios):
        dim = mult * nf
        layers.append(nn.ELU())
        if two_d:
            fr, tr = ratio
            groups = dim // 2 // cfg.tr_conv_group_ratio if cfg.tr_conv_group_ratio > 0 else 1
            out_pad = cfg.last_out_padding if i == n - 1 else ((0, 0), (0, 0))
            layers.append(SConvTranspose2d(dim, dim // 2, (2 * fr, 2 * tr), (fr, tr), out_pad, groups, ng))
        else:
            layers.append(SConvTranspose1d(dim, dim // 2, 2 * ratio, ratio, num_groups=ng))
        for j in range(cfg.n_residual_layers):
            layers.append(ResBlock(dim // 2, cfg.residual_kernel_size, cfg.dilation_base**j, cfg.compress, ng, two_d,
                                   cfg.conv_group_ratio))
        mult //= 2
    k = cfg.last_kernel_size
    layers += [
        nn.ELU(),
        SConv2d(nf, cfg.out_channels, (k, k), num_groups=ng) if two_d else SConv1d(nf, cfg.out_channels, k, num_groups=ng),
    ]
    return _Seq(layers)


class _Seq(nn.Module):
    """Holds the layers as ``model`` (so keys read ``encoder.model.<i>...``)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def forward_masked(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """1-D models only: ``(B, C, T)`` with valid lengths ``(B,)`` -> ``(y, out_lengths)``."""
        return run_masked(self.model, x, lengths)
