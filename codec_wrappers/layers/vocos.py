"""Vocos backbone (ConvNeXt + AdaLayerNorm) with WavTokenizer's attention ``pos_net``, and the ISTFT head.

Keys (WavTokenizer names, under ``backbone.`` / ``head.`` there):

- ``VocosBackbone``: ``embed.{weight,bias}`` (Conv1d k7), ``pos_net.{0,1,3,4}`` ``ResnetBlock``
  (``norm1``, ``conv1``, ``norm2``, ``conv2``), ``pos_net.2`` ``AttnBlock`` (``norm``, ``q``, ``k``,
  ``v``, ``proj_out``), ``pos_net.5`` GroupNorm, ``norm.{scale,shift}.weight`` (AdaLayerNorm
  embeddings ``(n_embeddings, dim)``), ``convnext.<i>.{dwconv,norm.scale,norm.shift,pwconv1,pwconv2,
  gamma}``, ``final_layer_norm.{weight,bias}``.
- ``ISTFTHead``: ``out.{weight,bias}`` (Linear dim -> n_fft + 2), ``istft.window`` ``(n_fft,)``: a
  persistent buffer (periodic Hann in trained checkpoints) that is always taken from the state dict.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6, affine=True)


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine, then ``* scale[id] + shift[id]``; ``(B, T, dim)`` kept."""

    def __init__(self, num_embeddings: int, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.scale = nn.Embedding(num_embeddings, dim)
        self.shift = nn.Embedding(num_embeddings, dim)

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x, (self.dim,), eps=self.eps)
        return x * self.scale(cond_id) + self.shift(cond_id)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv k7, AdaLayerNorm, MLP (GELU), layer scale ``gamma``, residual; ``(B, dim, T)``."""

    def __init__(self, dim: int, intermediate_dim: int, num_embeddings: int):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = AdaLayerNorm(num_embeddings, dim)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1.0 / 12))

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y, cond_id))))
        return x + (self.gamma * y).transpose(1, 2)


class ResnetBlock(nn.Module):
    """``x + conv2(swish(norm2(conv1(swish(norm1(x))))))`` (dropout is inactive at inference)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = _group_norm(channels)
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=1)
        self.norm2 = _group_norm(channels)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_swish(self.norm1(x)))
        return x + self.conv2(_swish(self.norm2(h)))


class AttnBlock(nn.Module):
    """Single-head self-attention over all frames (non-causal), residual; ``(B, C, T)`` kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _group_norm(channels)
        self.q = nn.Conv1d(channels, channels, 1)
        self.k = nn.Conv1d(channels, channels, 1)
        self.v = nn.Conv1d(channels, channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        c = q.shape[1]
        w = torch.bmm(q.permute(0, 2, 1), k) * (int(c) ** (-0.5))  # (B, T_q, T_k)
        w = torch.softmax(w, dim=2)
        return x + self.proj_out(torch.bmm(v, w.permute(0, 2, 1)))


class VocosBackbone(nn.Module):
    """Features ``(B, input_channels, F)`` -> hidden ``(B, F, dim)``."""

    def __init__(self, input_channels: int = 512, dim: int = 768, intermediate_dim: int = 2304,
                 num_layers: int = 12, num_embeddings: int = 4):
        super().__init__()
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.norm = AdaLayerNorm(num_embeddings, dim)
        self.convnext = nn.ModuleList(ConvNeXtBlock(dim, intermediate_dim, num_embeddings) for _ in range(num_layers))
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)
        self.pos_net = nn.Sequential(ResnetBlock(dim), ResnetBlock(dim), AttnBlock(dim), ResnetBlock(dim),
                                     ResnetBlock(dim), _group_norm(dim))

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor) -> torch.Tensor:
        x = self.pos_net(self.embed(x))
        x = self.norm(x.transpose(1, 2), cond_id).transpose(1, 2)
        for block in self.convnext:
            x = block(x, cond_id)
        return self.final_layer_norm(x.transpose(1, 2))


class ISTFT(nn.Module):
    """Inverse STFT with 'same' padding: spectrum ``(B, n_fft//2+1, F)`` -> ``(B, F * hop)``."""

    def __init__(self, n_fft: int, hop_length: int):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        pad = (self.n_fft - self.hop_length) // 2
        frames = spec.shape[-1]
        ifft = torch.fft.irfft(spec, self.n_fft, dim=1, norm="backward") * self.window[None, :, None]
        size = (frames - 1) * self.hop_length + self.n_fft
        fold = dict(output_size=(1, size), kernel_size=(1, self.n_fft), stride=(1, self.hop_length))
        y = F.fold(ifft, **fold)[:, 0, 0, pad:-pad]
        env = self.window.square().expand(1, frames, -1).transpose(1, 2)
        env = F.fold(env, **fold).squeeze()[pad:-pad]
        if not bool((env > 1e-11).all()):
            raise ValueError("ISTFT window envelope is ~0 somewhere (is head.istft.window a valid window?)")
        return y / env


class ISTFTHead(nn.Module):
    """Hidden ``(B, F, dim)`` -> waveform ``(B, F * hop)``: log-magnitude and phase, then ISTFT."""

    def __init__(self, dim: int, n_fft: int, hop_length: int):
        super().__init__()
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = ISTFT(n_fft, hop_length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mag, phase = self.out(x).transpose(1, 2).chunk(2, dim=1)
        mag = torch.clip(torch.exp(mag), max=1e2)
        spec = mag * (torch.cos(phase) + 1j * torch.sin(phase))
        return self.istft(spec)
