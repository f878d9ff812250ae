"""FACodec's building blocks: a legacy weight-norm linear and alias-free SnakeBeta activations.

Names follow Amphion's ``models/codec/ns3_codec`` so that its checkpoints load with ``strict=True``:
weight-normed layers keep the legacy ``weight_g`` / ``weight_v`` keys (the convs come from the
shared :mod:`codec_wrappers.layers.conv`; ``WNLinear`` here follows the same rule), and an
``Activation1d`` holds ``act.alpha``, ``act.beta``, ``upsample.filter`` and
``downsample.lowpass.filter`` (the two 12-tap Kaiser-sinc filters are buffers; checkpoint values are
used as loaded, the constructor only computes them for freshly built models).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from codec_wrappers.layers.conv import WNConv1d


def _split_weight(module: nn.Module) -> None:
    weight = module.weight.detach()
    del module.weight
    module.weight_g = nn.Parameter(torch.norm_except_dim(weight, 2, 0))
    module.weight_v = nn.Parameter(weight.clone())


class WNLinear(nn.Linear):
    """``nn.Linear`` with legacy weight norm."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _split_weight(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, torch._weight_norm(self.weight_v, self.weight_g, 0), self.bias)


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """A ``(1, 1, kernel_size)`` Kaiser-windowed sinc low-pass with unit DC gain (BigVGAN's design)."""
    half = kernel_size // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False)
    if kernel_size % 2 == 0:
        t = torch.arange(-half, half) + 0.5
    else:
        t = torch.arange(kernel_size) - half
    taps = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
    return (taps / taps.sum()).view(1, 1, kernel_size)


class SnakeBeta(nn.Module):
    """``x + 1 / (exp(beta) + 1e-9) * sin(x * exp(alpha))^2`` per channel (log-scale parameters)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.exp(self.alpha.unsqueeze(0).unsqueeze(-1))
        beta = torch.exp(self.beta.unsqueeze(0).unsqueeze(-1))
        return x + (1.0 / (beta + 1e-9)) * torch.pow(torch.sin(x * alpha), 2)


class _Filter(nn.Module):
    def __init__(self, cutoff: float, half_width: float, kernel_size: int):
        super().__init__()
        self.register_buffer("filter", kaiser_sinc_filter(cutoff, half_width, kernel_size))


class _Down(nn.Module):
    def __init__(self, kernel_size: int):
        super().__init__()
        self.lowpass = _Filter(0.25, 0.3, kernel_size)


def replicate_pad(x: torch.Tensor, left: int, right: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``F.pad(x, (left, right), 'replicate')``; with ``valid (B,)`` each item replicates its own last valid sample."""
    if valid is None:
        return F.pad(x, (left, right), mode="replicate")
    j = torch.arange(x.shape[-1] + left + right, device=x.device)[None, :] - left
    src = torch.minimum(j.clamp(min=0), (valid.to(x.device)[:, None] - 1).clamp(min=0))
    return x.gather(2, src[:, None, :].expand(-1, x.shape[1], -1))


class Activation1d(nn.Module):
    """2x upsample -> SnakeBeta -> 2x downsample (replicate padding): ``(B, C, T) -> (B, C, T)``.

    ``valid_lengths`` (set by a model for padded batches): a callable ``frames -> (B,)`` giving each
    item's valid frames, so the replicate padding happens at each item's own end.
    """

    def __init__(self, channels: int, kernel_size: int = 12):
        super().__init__()
        self.act = SnakeBeta(channels)
        self.upsample = _Filter(0.25, 0.3, kernel_size)
        self.downsample = _Down(kernel_size)
        self.kernel_size = kernel_size
        self.valid_lengths = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels, k = x.shape[1], self.kernel_size
        valid = self.valid_lengths(x.shape[-1]) if self.valid_lengths is not None else None
        pad = k // 2 - 1
        cut_left, cut_right = pad * 2 + (k - 2) // 2, pad * 2 + (k - 1) // 2
        up = replicate_pad(x, pad, pad, valid)
        up = 2 * F.conv_transpose1d(up, self.upsample.filter.expand(channels, -1, -1), stride=2, groups=channels)
        up = self.act(up[..., cut_left:-cut_right])
        up = replicate_pad(up, k // 2 - 1, k // 2, None if valid is None else 2 * valid)
        return F.conv1d(up, self.downsample.lowpass.filter.expand(channels, -1, -1), stride=2, groups=channels)


class ResidualUnit(nn.Module):
    """``x + conv1(act(conv7_dilated(act(x))))`` (keys ``block.0..3``)."""

    def __init__(self, dim: int, dilation: int):
        super().__init__()
        self.block = nn.Sequential(
            Activation1d(dim), WNConv1d(dim, dim, 7, dilation=dilation, padding=3 * dilation),
            Activation1d(dim), WNConv1d(dim, dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)
