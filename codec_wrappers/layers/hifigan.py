"""HiFi-GAN V1 blocks (weight-normed, zero padding), named as the HiFi-GAN/AcademiCodec checkpoints.

Keys: ``ResBlock1``: ``convs1.<i>.{bias,weight_g,weight_v}`` (dilations ``d_i``) and
``convs2.<i>.*`` (dilation 1). ``HiFiGANGenerator``: ``conv_pre.*``, ``ups.<i>.*`` (transposed,
``weight_g`` ``(in, 1, 1)``), ``resblocks.<i * n_kernels + j>.*``, ``conv_post.*``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from codec_wrappers.layers.conv import WNConv1d, WNConvTranspose1d

LRELU_SLOPE = 0.1


def get_padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """``x += conv2_i(lrelu(conv1_i(lrelu(x))))`` for each dilation; ``(B, C, T)`` kept."""

    def __init__(self, channels: int, kernel: int = 3, dilation: Sequence[int] = (1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList(WNConv1d(channels, channels, kernel, 1, dilation=d, padding=get_padding(kernel, d))
                                    for d in dilation)
        self.convs2 = nn.ModuleList(WNConv1d(channels, channels, kernel, 1, dilation=1, padding=get_padding(kernel, 1))
                                    for _ in dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = xt + x
        return x


class HiFiGANGenerator(nn.Module):
    """Latent ``(B, in_channels, F)`` -> waveform ``(B, 1, F * prod(upsample_rates))`` in [-1, 1].

    conv_pre (k7); per stage: leaky-ReLU 0.1, transposed conv (kernel ``k``, stride ``u``, padding
    ``(k-u)//2``), mean of the ``ResBlock1`` outputs; leaky-ReLU 0.1, conv_post (k7), tanh.
    """

    def __init__(self, in_channels: int = 512, initial_channel: int = 512,
                 upsample_rates: Sequence[int] = (8, 5, 4, 2), upsample_kernel_sizes: Sequence[int] = (16, 11, 8, 4),
                 resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
                 resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))):
        super().__init__()
        if len(upsample_rates) != len(upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes differ in length")
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = WNConv1d(in_channels, initial_channel, 7, 1, padding=3)
        self.ups = nn.ModuleList(
            WNConvTranspose1d(initial_channel // 2**i, initial_channel // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)))
        self.resblocks = nn.ModuleList(
            ResBlock1(initial_channel // 2 ** (i + 1), k, d)
            for i in range(len(self.ups)) for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes))
        self.conv_post = WNConv1d(initial_channel // 2 ** len(self.ups), 1, 7, 1, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            xs = None
            for j in range(self.num_kernels):
                y = self.resblocks[i * self.num_kernels + j](x)
                xs = y if xs is None else xs + y
            x = xs / self.num_kernels
        x = self.conv_post(F.leaky_relu(x, LRELU_SLOPE))
        return torch.tanh(x)
