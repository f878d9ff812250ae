"""W2V2-AASIST back end (ST-Codecfake's ``W2VAASIST``): AASIST's graph module on SSL features.

Input: hidden states of a frozen wav2vec 2.0 model, ``(B, frames, ssl_dim)`` (XLS-R 300m layer 5:
``(B, 201, 1024)`` for 64600 samples). The front end and its on-disk feature cache live in
:mod:`train.features`; this module is only what is trained:

    (B, T, 1024) -> Linear(1024, 128) -> (B, 1, 128, T) -> max-pool 3x3 -> BN -> SELU
      -> 6 residual blocks without time pooling -> BN -> SELU          (B, 64, 42, T/3)
      -> attention weights w = conv1x1(64->128) -> SELU -> BN -> conv1x1(128->64)
      -> spectral nodes  sum_t x * softmax_t(w)  (+ positional embedding)  (B, 42, 64)
         temporal nodes  sum_f x * softmax_f(w)                           (B, T/3, 64)
      -> the AASIST graph back end (pool ratios 0.5 everywhere) -> (logits, embedding (B, 160)).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .aasist import GAT_DIMS, TEMPERATURES, GraphBackEnd, residual_encoder

W2V_FILTS = (128, (1, 32), (32, 32), (32, 64), (64, 64))
W2V_POOL_RATIOS = (0.5, 0.5, 0.5, 0.5)


class W2V2AASIST(nn.Module):
    """``forward(features (B, T, ssl_dim))`` -> ``(logits (B, n_classes), embedding (B, 160))``."""

    def __init__(self, n_classes: int, *, ssl_dim: int = 1024, proj_dim: int = 128, filts: Sequence = W2V_FILTS,
                 gat_dims: Sequence[int] = GAT_DIMS, pool_ratios: Sequence[float] = W2V_POOL_RATIOS,
                 temperatures: Sequence[float] = TEMPERATURES):
        super().__init__()
        self.ssl_dim = ssl_dim
        self.proj = nn.Linear(ssl_dim, proj_dim)
        self.first_bn = nn.BatchNorm2d(1)
        self.act = nn.SELU()
        self.encoder = residual_encoder(filts, pool=False)
        c = int(filts[-1][-1])
        self.enc_bn = nn.BatchNorm2d(c)
        self.attention = nn.Sequential(
            nn.Conv2d(c, 2 * c, kernel_size=1), nn.SELU(), nn.BatchNorm2d(2 * c), nn.Conv2d(2 * c, c, kernel_size=1)
        )
        self.pos_S = nn.Parameter(torch.randn(1, proj_dim // 3, c))
        self.backend = GraphBackEnd(c, n_classes, gat_dims, pool_ratios, temperatures)
        self.embedding_dim = self.backend.embedding_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 3 or x.shape[-1] != self.ssl_dim:
            raise ValueError(f"W2V2AASIST expects features (batch, frames, {self.ssl_dim}), got {tuple(x.shape)}")
        x = self.proj(x).transpose(1, 2).unsqueeze(1)  # (B, 1, proj_dim, T)
        x = self.act(self.first_bn(F.max_pool2d(x, (3, 3))))
        x = self.act(self.enc_bn(self.encoder(x)))  # (B, C, proj_dim // 3, T // 3)
        w = self.attention(x)
        nodes_S = (x * torch.softmax(w, dim=-1)).sum(dim=-1).transpose(1, 2) + self.pos_S
        nodes_T = (x * torch.softmax(w, dim=-2)).sum(dim=-2).transpose(1, 2)
        return self.backend(nodes_S, nodes_T)
