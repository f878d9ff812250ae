"""EnCodec's SEANet encoder/decoder (non-causal, weight-normed, reflect padding), checkpoint-named.

Used by WavTokenizer (``feature_extractor.encodec.{encoder,decoder}``) and AcademiCodec's
SoundStream (``encoder``, ``decoder``). Key names inside an encoder/decoder (``nn.Sequential`` at
``model``, indices as upstream):

- ``SConv1d``: ``<i>.conv.conv.{bias,weight_g,weight_v}``; ``SConvTranspose1d``:
  ``<i>.convtr.convtr.{bias,weight_g,weight_v}``; ``SLSTM``: ``<i>.lstm.{weight_ih_l0,...}``;
  ``SEANetResnetBlock``: ``<i>.block.{1,3}.conv.conv.*`` and ``<i>.shortcut.conv.conv.*``.
- Encoder, ratios ``r`` (applied reversed): ``0`` conv k7; per stride: resblock, ELU, strided conv
  (kernel ``2*stride``); then ``SLSTM``, ELU, last conv. With 4 ratios: convs at 0, 3, 6, 9, 12,
  resblocks at 1, 4, 7, 10, LSTM 13, last conv 15.
- Decoder: ``0`` conv k7, ``1`` LSTM, per ratio: ELU, transposed conv, resblock; ELU, last conv
  (convtr at 3, 6, 9, 12; resblocks at 4, 7, 10, 13; last conv 15).

Padding (EnCodec ``SConv1d``): ``total = (k-1)*dilation + 1 - stride``, right ``total//2`` plus
the "extra" that makes the frame count ``ceil(length/stride)``, left the rest; reflect mode, with
inputs too short to reflect zero-extended first (and that extension dropped after). Transposed
convs trim ``k - stride`` samples, ``total//2`` on the right and the rest on the left.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from codec_wrappers.layers.conv import WNConv1d, WNConvTranspose1d


def extra_padding(length: int, kernel: int, stride: int, padding_total: int) -> int:
    """Right padding that completes the last frame: EnCodec's ``get_extra_padding_for_conv1d``."""
    n_frames = (length - kernel + padding_total) / stride + 1
    return (math.ceil(n_frames) - 1) * stride + (kernel - padding_total) - length


def pad1d_reflect(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Reflect-pad ``(B, C, T)``; a ``T`` too short to reflect is zero-extended first, as upstream."""
    length = x.shape[-1]
    extra = max(left, right) - length + 1 if length <= max(left, right) else 0
    if extra:
        x = F.pad(x, (0, extra))
    y = F.pad(x, (left, right), mode="reflect")
    return y[..., : y.shape[-1] - extra]


class _NormConv(nn.Module):
    """Holds the weight-normed conv at ``conv`` (EnCodec's NormConv1d with ``norm='weight_norm'``)."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _NormConvTr(nn.Module):
    def __init__(self, convtr: nn.Module):
        super().__init__()
        self.convtr = convtr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convtr(x)


class SConv1d(nn.Module):
    """Non-causal reflect-padded conv: ``(B, C_in, T)`` -> ``(B, C_out, ceil(T/stride))``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = _NormConv(WNConv1d(c_in, c_out, kernel, stride, dilation=dilation))
        self.kernel, self.stride, self.dilation = kernel, stride, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k_eff = (self.kernel - 1) * self.dilation + 1
        total = k_eff - self.stride
        extra = extra_padding(x.shape[-1], k_eff, self.stride, total)
        right = total // 2
        return self.conv(pad1d_reflect(x, total - right, right + extra))


class SConvTranspose1d(nn.Module):
    """Non-causal transposed conv: ``(B, C_in, T)`` -> ``(B, C_out, T*stride)``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        self.convtr = _NormConvTr(WNConvTranspose1d(c_in, c_out, kernel, stride))
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convtr(x)
        total = self.kernel - self.stride
        right = total // 2
        return y[..., total - right: y.shape[-1] - right]


class SLSTM(nn.Module):
    """Unidirectional LSTM over time with a skip: ``(B, C, T)`` -> ``(B, C, T)``; keys ``lstm.*``."""

    def __init__(self, dim: int, num_layers: int = 2):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(2, 0, 1)
        y, _ = self.lstm(x)
        return (y + x).permute(1, 2, 0)


class SEANetResnetBlock(nn.Module):
    """``shortcut(x) + block(x)``; block = ELU, conv k (dilated), ELU, conv 1; ``(B, C, T)`` kept."""

    def __init__(self, dim: int, kernel: int = 3, dilation: int = 1, compress: int = 2):
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(nn.ELU(alpha=1.0), SConv1d(dim, hidden, kernel, dilation=dilation),
                                   nn.ELU(alpha=1.0), SConv1d(hidden, dim, 1))
        self.shortcut = SConv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


def _resblocks(dim: int, n: int, kernel: int, dilation_base: int, compress: int) -> list[nn.Module]:
    return [SEANetResnetBlock(dim, kernel, dilation_base**j, compress) for j in range(n)]


class SEANetEncoder(nn.Module):
    """Waveform ``(B, channels, T)`` -> latent ``(B, dimension, ceil(T / prod(ratios)))``."""

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32,
                 ratios: Sequence[int] = (8, 5, 4, 2), kernel_size: int = 7, last_kernel_size: int = 7,
                 residual_kernel_size: int = 3, dilation_base: int = 2, n_residual_layers: int = 1,
                 compress: int = 2, lstm: int = 2):
        super().__init__()
        self.hop_length = math.prod(ratios)
        mult = 1
        layers: list[nn.Module] = [SConv1d(channels, mult * n_filters, kernel_size)]
        for ratio in reversed(list(ratios)):
            dim = mult * n_filters
            layers += _resblocks(dim, n_residual_layers, residual_kernel_size, dilation_base, compress)
            layers += [nn.ELU(alpha=1.0), SConv1d(dim, dim * 2, ratio * 2, stride=ratio)]
            mult *= 2
        if lstm:
            layers.append(SLSTM(mult * n_filters, lstm))
        layers += [nn.ELU(alpha=1.0), SConv1d(mult * n_filters, dimension, last_kernel_size)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SEANetDecoder(nn.Module):
    """Latent ``(B, dimension, F)`` -> waveform ``(B, channels, F * prod(ratios))``."""

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32,
                 ratios: Sequence[int] = (8, 5, 4, 2), kernel_size: int = 7, last_kernel_size: int = 7,
                 residual_kernel_size: int = 3, dilation_base: int = 2, n_residual_layers: int = 1,
                 compress: int = 2, lstm: int = 2):
        super().__init__()
        self.hop_length = math.prod(ratios)
        mult = 2 ** len(ratios)
        layers: list[nn.Module] = [SConv1d(dimension, mult * n_filters, kernel_size)]
        if lstm:
            layers.append(SLSTM(mult * n_filters, lstm))
        for ratio in ratios:
            dim = mult * n_filters
            layers += [nn.ELU(alpha=1.0), SConvTranspose1d(dim, dim // 2, ratio * 2, ratio)]
            layers += _resblocks(dim // 2, n_residual_layers, residual_kernel_size, dilation_base, compress)
            mult //= 2
        layers += [nn.ELU(alpha=1.0), SConv1d(n_filters, channels, last_kernel_size)]
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)
