"""Vector quantisers of the native codecs, with upstream state-dict names.

``ResidualVectorQuantizer`` (EnCodec ``core_vq``; WavTokenizer and AcademiCodec SoundStream): keys
``vq.layers.<i>._codebook.inited`` ``(1,)``, ``.cluster_size`` ``(K,)``, ``.embed`` ``(K, D)``,
``.embed_avg`` ``(K, D)`` -- all buffers, only ``embed`` is used at inference (no k-means, no EMA).
Nearest code: ``argmax(-(|x|^2 - 2 x E^T + |E|^2))`` in float32, that op order (first index on ties).

``GroupResidualVQ`` (AcademiCodec HiFi-Codec): ``quantizer_modules.<g>.embedding.weight``
``(K, D/G)`` for residual layer 0, ``quantizer_modules2.<g>...`` for layer 1 (``quantizer_modules<l+1>``
for deeper layers); distance ``|x|^2 + |E|^2 - 2 x E^T`` with ``argmin``, and the residual step in
the straight-through form ``residual - (residual + (q - residual))`` that upstream computes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EuclideanCodebook(nn.Module):
    """One codebook of ``codebook_size`` vectors of size ``dim`` (buffers, as EnCodec's)."""

    def __init__(self, dim: int, codebook_size: int):
        super().__init__()
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", torch.zeros(codebook_size, dim))
        self.register_buffer("embed_avg", torch.zeros(codebook_size, dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, dim)`` -> nearest code indices ``(N,)`` int64."""
        embed = self.embed.t()
        dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed + embed.pow(2).sum(0, keepdim=True))
        return dist.max(dim=-1).indices

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Indices ``(...)`` -> vectors ``(..., dim)``."""
        return F.embedding(codes, self.embed)


class VectorQuantization(nn.Module):
    """EnCodec ``VectorQuantization`` with ``codebook_dim == dim`` (identity projections)."""

    def __init__(self, dim: int, codebook_size: int):
        super().__init__()
        self._codebook = EuclideanCodebook(dim, codebook_size)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D, T)`` -> codes ``(B, T)``."""
        b, d, t = x.shape
        return self._codebook.encode(x.transpose(1, 2).reshape(b * t, d)).view(b, t)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` -> ``(B, D, T)``."""
        return self._codebook.decode(codes).transpose(1, 2)


class _ResidualVQ(nn.Module):
    def __init__(self, dim: int, codebook_size: int, n_q: int):
        super().__init__()
        self.layers = nn.ModuleList(VectorQuantization(dim, codebook_size) for _ in range(n_q))


class ResidualVectorQuantizer(nn.Module):
    """Residual VQ: latent ``(B, D, T)`` <-> codes ``(n_q, B, T)`` (layer-major, as EnCodec)."""

    def __init__(self, dim: int, codebook_size: int, n_q: int):
        super().__init__()
        self.vq = _ResidualVQ(dim, codebook_size, n_q)

    @property
    def n_q(self) -> int:
        return len(self.vq.layers)

    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """``(B, D, T)`` -> ``(n_q, B, T)`` int64, using the first ``n_q`` layers (all by default)."""
        residual, codes = x, []
        for layer in self.vq.layers[: n_q or self.n_q]:
            idx = layer.encode(residual)
            residual = residual - layer.decode(idx)
            codes.append(idx)
        return torch.stack(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``(n, B, T)`` -> summed quantised latent ``(B, D, T)`` (``0.0 + q_0 + q_1 + ...``)."""
        out = torch.tensor(0.0, device=codes.device)
        for i, idx in enumerate(codes):
            out = out + self.vq.layers[i].decode(idx)
        return out


class _GroupCodebook(nn.Module):
    def __init__(self, n_codes: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(n_codes, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, dim)`` -> (nearest vectors ``(N, dim)``, indices ``(N,)``)."""
        w = self.embedding.weight
        d = torch.sum(x**2, 1, keepdim=True) + torch.sum(w**2, 1) - 2 * torch.matmul(x, w.T)
        idx = torch.argmin(d, 1)
        return self.embedding(idx), idx


class GroupResidualVQ(nn.Module):
    """HiFi-Codec GRVQ: latent ``(B, dim, T)`` <-> codes ``(B, T, n_layers * n_groups)``.

    Code column ``l * n_groups + g`` is residual layer ``l``, channel group ``g`` (channels
    ``g*dim/G .. (g+1)*dim/G``).
    """

    def __init__(self, dim: int = 512, n_groups: int = 2, n_codes: int = 1024, n_layers: int = 2):
        super().__init__()
        if dim % n_groups:
            raise ValueError(f"latent dim {dim} is not divisible by n_code_groups={n_groups}")
        self.dim, self.n_groups, self.n_layers = dim, n_groups, n_layers
        for layer in range(n_layers):
            name = "quantizer_modules" if layer == 0 else f"quantizer_modules{layer + 1}"
            setattr(self, name, nn.ModuleList(_GroupCodebook(n_codes, dim // n_groups) for _ in range(n_groups)))

    def _layer(self, layer: int) -> nn.ModuleList:
        return getattr(self, "quantizer_modules" if layer == 0 else f"quantizer_modules{layer + 1}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, dim, T)`` -> codes ``(B, T, n_layers * n_groups)`` int64."""
        b = x.shape[0]
        residual, codes = x, []
        for layer in range(self.n_layers):
            xin = residual.transpose(1, 2)
            parts = torch.split(xin.reshape(-1, self.dim), self.dim // self.n_groups, dim=-1)
            qs = []
            for part, book in zip(parts, self._layer(layer)):
                q, idx = book(part)
                qs.append(q)
                codes.append(idx.reshape(b, -1))
            q = torch.cat(qs, -1).reshape(xin.shape)
            q = xin + (q - xin)  # upstream's straight-through form; rounds unlike plain q
            residual = residual - q.transpose(1, 2)
        return torch.stack(codes, -1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``(B, T, n_layers * n_groups)`` -> ``(B, dim, T)``: ``0.0 + sum over layers of cat(groups)``."""
        out = torch.tensor(0.0, device=codes.device)
        for layer in range(self.n_layers):
            books = self._layer(layer)
            cols = [books[g].embedding(codes[..., layer * self.n_groups + g]) for g in range(self.n_groups)]
            out = out + torch.cat(cols, -1)
        return out.transpose(1, 2)
