"""AASIST (Jung et al., ICASSP 2022): raw-waveform spoofing countermeasure with graph attention.

Architecture, as in the official clovaai/aasist model and config ``AASIST.conf``:

    wave (B, S) -> fixed sinc band-pass filterbank, 70 mel-spaced filters, kernel 129 -> |.|
      -> max-pool 3x3 -> BN -> SELU -> (B, 1, 23, S'/3)
      -> residual encoder: 6 blocks (filters [1,32],[32,32],[32,64],[64,64] x3), each 2x3 convs
         + a max-pool over time by 3                                 -> (B, 64, 23, T)
      -> spectral nodes (max |.| over time, + learned positional embedding) (B, 23, 64)
         temporal nodes (max |.| over frequency)                         (B, T, 64)
      -> graph attention on each (64 -> 64) + graph pooling (ratios 0.5 and 0.7)
      -> two branches of heterogeneous stacking graph attention (64 -> 32 -> 32, a learned master
         node each) with graph pooling (0.5), combined by element-wise max
      -> readout [max|T|, mean T, max|S|, mean S, master] (B, 160) -> dropout 0.5 -> linear.

Two details of the official code are kept on purpose so that results stay comparable:
- each residual block computes its first convolution on the block input itself (the official
  block evaluates a BN + SELU "pre-activation" and then discards it); we leave that dead branch
  out, so its BatchNorm parameters (512 in all) are absent: 297,354 parameters with 2 outputs
  where the official model has 297,866 (the paper's "297K"); 7 outputs add 805;
- the four heterogeneous layers share temperature ``temperatures[2]`` and the four pools after
  them share ``pool_ratios[2]`` (the last entries of both lists are unused upstream too).

The graph back end (:class:`GraphBackEnd`) is shared with :mod:`train.models.w2v2_aasist`.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FILTS = (70, (1, 32), (32, 32), (32, 64), (64, 64))
GAT_DIMS = (64, 32)
POOL_RATIOS = (0.5, 0.7, 0.5, 0.5)
TEMPERATURES = (2.0, 2.0, 100.0, 100.0)
FIRST_CONV = 128


# ------------------------------------------------------------------ front end
def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def sinc_bandpass_bank(n_filters: int, kernel_size: int, sample_rate: int = 16000) -> torch.Tensor:
    """Hamming-windowed ideal band-pass filters with mel-spaced edges from 0 to Nyquist.

    Returns ``(n_filters, kernel_size)``; ``kernel_size`` must be odd (symmetric filters).
    """
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_filters + 1))
    half = (kernel_size - 1) / 2
    t = np.arange(-half, half + 1)
    window = np.hamming(kernel_size)
    bank = np.empty((n_filters, kernel_size), dtype=np.float64)
    for k in range(n_filters):
        lo, hi = edges[k], edges[k + 1]
        ideal = (2 * hi / sample_rate) * np.sinc(2 * hi * t / sample_rate) - (2 * lo / sample_rate) * np.sinc(
            2 * lo * t / sample_rate
        )
        bank[k] = window * ideal
    return torch.from_numpy(bank).float()


class SincFilterbank(nn.Module):
    """Fixed (not learned) sinc band-pass conv. ``(B, 1, S) -> (B, n_filters, S - kernel + 1)``."""

    def __init__(self, n_filters: int = 70, kernel_size: int = FIRST_CONV, sample_rate: int = 16000):
        super().__init__()
        if kernel_size % 2 == 0:
            kernel_size += 1  # symmetric filters need an odd length (128 -> 129, as upstream)
        self.n_filters, self.kernel_size = n_filters, kernel_size
        self.register_buffer("filters", sinc_bandpass_bank(n_filters, kernel_size, sample_rate).unsqueeze(1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.filters)


class ResBlock(nn.Module):
    """2x3 conv -> BN -> SELU -> 2x3 conv, plus a (1x3 conv) skip; optional max-pool (1, 3).

    ``(B, C_in, F, T) -> (B, C_out, F, T // 3 if pool else T)``.
    """

    def __init__(self, c_in: int, c_out: int, pool: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=(2, 3), padding=(1, 1))
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.SELU()
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=(2, 3), padding=(0, 1))
        self.skip = nn.Conv2d(c_in, c_out, kernel_size=(1, 3), padding=(0, 1)) if c_in != c_out else nn.Identity()
        self.pool = nn.MaxPool2d((1, 3)) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.act(self.bn(self.conv1(x))))
        return self.pool(out + self.skip(x))


def residual_encoder(filts: Sequence = FILTS, pool: bool = True) -> nn.Sequential:
    """Six residual blocks: filts[1], filts[2], filts[3], then filts[4] three times."""
    specs = [filts[1], filts[2], filts[3], filts[4], filts[4], filts[4]]
    return nn.Sequential(*[ResBlock(int(a), int(b), pool=pool) for a, b in specs])


# ------------------------------------------------------------------ graph layers
def _xavier(*shape: int) -> nn.Parameter:
    p = nn.Parameter(torch.empty(*shape))
    nn.init.xavier_normal_(p)
    return p


def _bn_nodes(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over the feature axis of ``(B, N, D)`` node tensors."""
    b, n, d = x.shape
    return bn(x.reshape(b * n, d)).reshape(b, n, d)


class GraphAttention(nn.Module):
    """Graph attention over a fully connected graph. ``(B, N, in_dim) -> (B, N, out_dim)``.

    Edge score ``e_ij = w . tanh(W (x_i * x_j)) / temperature``, softmax over j; output
    ``BN(W_a sum_j a_ij x_j + W_r x_i)`` then SELU.
    """

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = _xavier(out_dim, 1)
        self.proj_att = nn.Linear(in_dim, out_dim)
        self.proj_res = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.drop = nn.Dropout(0.2)
        self.act = nn.SELU()
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(x)
        pair = x.unsqueeze(2) * x.unsqueeze(1)  # (B, N, N, D)
        scores = torch.tanh(self.att_proj(pair)) @ self.att_weight  # (B, N, N, 1)
        att = torch.softmax(scores.squeeze(-1) / self.temperature, dim=-1)  # (B, N, N)
        out = self.proj_att(att @ x) + self.proj_res(x)
        return self.act(_bn_nodes(self.bn, out))


class HeteroGraphAttention(nn.Module):
    """Heterogeneous stacking graph attention over two node types and a master node.

    ``x1 (B, N1, in_dim), x2 (B, N2, in_dim), master (B or 1, 1, in_dim)`` ->
    ``(B, N1, out_dim), (B, N2, out_dim), (B, 1, out_dim)``. Edges within type 1, within type 2
    and across types have their own score vectors; the master node attends to every node.
    """

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.type1 = nn.Linear(in_dim, in_dim)
        self.type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_proj_master = nn.Linear(in_dim, out_dim)
        self.w11 = _xavier(out_dim, 1)
        self.w22 = _xavier(out_dim, 1)
        self.w12 = _xavier(out_dim, 1)
        self.w_master = _xavier(out_dim, 1)
        self.proj_att = nn.Linear(in_dim, out_dim)
        self.proj_res = nn.Linear(in_dim, out_dim)
        self.proj_att_master = nn.Linear(in_dim, out_dim)
        self.proj_res_master = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.drop = nn.Dropout(0.2)
        self.act = nn.SELU()
        self.temperature = float(temperature)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, master: torch.Tensor | None = None):
        n1 = x1.shape[1]
        x = torch.cat([self.type1(x1), self.type2(x2)], dim=1)  # (B, N, D)
        if master is None:
            master = x.mean(dim=1, keepdim=True)
        x = self.drop(x)
        # node-to-node attention, one score vector per block of the type-by-type matrix
        hid = torch.tanh(self.att_proj(x.unsqueeze(2) * x.unsqueeze(1)))  # (B, N, N, out)
        n = x.shape[1]
        is1 = torch.arange(n, device=x.device) < n1
        same1 = is1[:, None] & is1[None, :]
        same2 = ~is1[:, None] & ~is1[None, :]
        scores = torch.where(
            same1, (hid @ self.w11).squeeze(-1), torch.where(same2, (hid @ self.w22).squeeze(-1), (hid @ self.w12).squeeze(-1))
        )
        att = torch.softmax(scores / self.temperature, dim=-1)  # (B, N, N)
        # master node: attention over all nodes, from the dropped-out inputs
        m_scores = torch.tanh(self.att_proj_master(x * master)) @ self.w_master  # (B, N, 1)
        m_att = torch.softmax(m_scores / self.temperature, dim=1)  # (B, N, 1)
        master = self.proj_att_master(m_att.transpose(1, 2) @ x) + self.proj_res_master(master)
        out = self.proj_att(att @ x) + self.proj_res(x)
        out = self.act(_bn_nodes(self.bn, out))
        return out[:, :n1], out[:, n1:], master


class GraphPool(nn.Module):
    """Keep the top ``ratio`` of nodes by a learned sigmoid score, scaled by it.

    ``(B, N, D) -> (B, max(int(N * ratio), 1), D)``.
    """

    def __init__(self, ratio: float, dim: int, p: float = 0.3):
        super().__init__()
        self.ratio = float(ratio)
        self.drop = nn.Dropout(p) if p > 0 else nn.Identity()
        self.proj = nn.Linear(dim, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        scores = torch.sigmoid(self.proj(self.drop(h)))  # (B, N, 1)
        k = max(int(h.shape[1] * self.ratio), 1)
        idx = torch.topk(scores, k, dim=1).indices.expand(-1, -1, h.shape[-1])
        return torch.gather(h * scores, 1, idx)


class GraphBackEnd(nn.Module):
    """Spectral + temporal graph attention, two heterogeneous branches, readout and classifier.

    ``forward(nodes_S (B, N_S, C), nodes_T (B, N_T, C))`` -> ``(logits (B, n_classes), embedding
    (B, 5 * gat_dims[1]))``; ``nodes_S`` already carries its positional embedding.
    """

    def __init__(self, in_dim: int, n_classes: int, gat_dims: Sequence[int] = GAT_DIMS,
                 pool_ratios: Sequence[float] = POOL_RATIOS, temperatures: Sequence[float] = TEMPERATURES):
        super().__init__()
        g0, g1 = int(gat_dims[0]), int(gat_dims[1])
        self.gat_S = GraphAttention(in_dim, g0, temperatures[0])
        self.gat_T = GraphAttention(in_dim, g0, temperatures[1])
        self.pool_S = GraphPool(pool_ratios[0], g0)
        self.pool_T = GraphPool(pool_ratios[1], g0)
        self.masters = nn.ParameterList([nn.Parameter(torch.randn(1, 1, g0)) for _ in range(2)])
        self.hgat_first = nn.ModuleList([HeteroGraphAttention(g0, g1, temperatures[2]) for _ in range(2)])
        self.hgat_second = nn.ModuleList([HeteroGraphAttention(g1, g1, temperatures[2]) for _ in range(2)])
        self.pool_hS = nn.ModuleList([GraphPool(pool_ratios[2], g1) for _ in range(2)])
        self.pool_hT = nn.ModuleList([GraphPool(pool_ratios[2], g1) for _ in range(2)])
        self.drop_way = nn.Dropout(0.2)
        self.drop = nn.Dropout(0.5)
        self.embedding_dim = 5 * g1
        self.out = nn.Linear(self.embedding_dim, n_classes)

    def forward(self, nodes_S: torch.Tensor, nodes_T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_S = self.pool_S(self.gat_S(nodes_S))
        out_T = self.pool_T(self.gat_T(nodes_T))
        branches = []
        for b in range(2):
            t, s, m = self.hgat_first[b](out_T, out_S, self.masters[b])
            s, t = self.pool_hS[b](s), self.pool_hT[b](t)
            t2, s2, m2 = self.hgat_second[b](t, s, m)
            branches.append((self.drop_way(t + t2), self.drop_way(s + s2), self.drop_way(m + m2)))
        t = torch.maximum(branches[0][0], branches[1][0])
        s = torch.maximum(branches[0][1], branches[1][1])
        m = torch.maximum(branches[0][2], branches[1][2])
        emb = torch.cat([t.abs().amax(dim=1), t.mean(dim=1), s.abs().amax(dim=1), s.mean(dim=1), m.squeeze(1)], dim=1)
        return self.out(self.drop(emb)), emb


# ------------------------------------------------------------------ the model
class AASIST(nn.Module):
    """Raw-waveform AASIST. ``forward(wave (B, S))`` -> ``(logits (B, n_classes), embedding (B, 160))``."""

    def __init__(self, n_classes: int, *, filts: Sequence = FILTS, gat_dims: Sequence[int] = GAT_DIMS,
                 pool_ratios: Sequence[float] = POOL_RATIOS, temperatures: Sequence[float] = TEMPERATURES,
                 first_conv: int = FIRST_CONV, sample_rate: int = 16000):
        super().__init__()
        n_filt = int(filts[0])
        self.sinc = SincFilterbank(n_filt, first_conv, sample_rate)
        self.first_bn = nn.BatchNorm2d(1)
        self.act = nn.SELU()
        self.encoder = residual_encoder(filts, pool=True)
        c = int(filts[-1][-1])
        self.pos_S = nn.Parameter(torch.randn(1, n_filt // 3, c))
        self.backend = GraphBackEnd(c, n_classes, gat_dims, pool_ratios, temperatures)
        self.embedding_dim = self.backend.embedding_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.sinc(x.unsqueeze(1)).unsqueeze(1)  # (B, 1, n_filt, S')
        x = self.act(self.first_bn(F.max_pool2d(x.abs(), (3, 3))))
        e = self.encoder(x)  # (B, C, n_filt // 3, T)
        nodes_S = e.abs().amax(dim=3).transpose(1, 2) + self.pos_S  # (B, F, C)
        nodes_T = e.abs().amax(dim=2).transpose(1, 2)  # (B, T, C)
        return self.backend(nodes_S, nodes_T)


def min_samples(first_conv: int = FIRST_CONV) -> int:
    """Shortest input that leaves at least one temporal node after all pooling."""
    k = first_conv + (first_conv % 2 == 0)
    return k - 1 + 3 * int(math.pow(3, 6))
