"""Convolutions with the legacy weight-norm parametrisation of ``torch.nn.utils.weight_norm``.

State-dict keys of a ``WNConv1d`` named ``conv``: ``conv.bias`` ``(out,)``, ``conv.weight_g``
``(out, 1, 1)``, ``conv.weight_v`` ``(out, in/groups, k)``; of a ``WNConvTranspose1d``:
``bias`` ``(out,)``, ``weight_g`` ``(in, 1, 1)``, ``weight_v`` ``(in, out/groups, k)`` (dim 0 is
the input-channel axis for transposed convolutions). The effective weight is
``weight_g * weight_v / ||weight_v||`` with the norm over every axis but 0, computed on each
forward exactly as the legacy hook does (``torch._weight_norm``), so ``remove_weight_norm`` is
never needed. ``torch.nn.utils.parametrizations.weight_norm`` would name these
``parametrizations.weight.original0/1`` instead, which official checkpoints do not use.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _to_legacy_weight_norm(module: nn.Module) -> None:
    weight = module.weight.detach()
    del module.weight
    module.weight_g = nn.Parameter(torch.norm_except_dim(weight, 2, 0))
    module.weight_v = nn.Parameter(weight.clone())


def _effective_weight(module: nn.Module) -> torch.Tensor:
    return torch._weight_norm(module.weight_v, module.weight_g, 0)


class WNConv1d(nn.Conv1d):
    """``nn.Conv1d`` (same arguments) whose weight is stored as ``weight_g`` / ``weight_v``.

    Input ``(batch, in_channels, frames)`` -> ``(batch, out_channels, frames')``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _to_legacy_weight_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, _effective_weight(self), self.bias)


class WNConvTranspose1d(nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` (same arguments) whose weight is stored as ``weight_g`` / ``weight_v``.

    Input ``(batch, in_channels, frames)`` -> ``(batch, out_channels, frames')``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _to_legacy_weight_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, _effective_weight(self), self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)
