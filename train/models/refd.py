"""REFD-style two-stage source tracer: Real Emphasis (RE) then Fake Dispersion (FD) over SSL features.

Seed model II (Kulkarni et al., Interspeech 2025, building on xieyuankun/REFD). Input: cached
wav2vec 2.0 hidden states ``(B, T, ssl_dim)`` as :class:`~train.models.w2v2_aasist.W2V2AASIST`
takes them. Two back ends turn them into an utterance embedding:

- ``conformer``: ``Linear(ssl_dim, d)`` -> ``torchaudio.models.Conformer`` (self-attention for global,
  depthwise convolution for local context) -> mean over time -> embedding ``(B, d)``;
- ``aasist``: the W2V2-AASIST graph back end (reused from :mod:`train.models.w2v2_aasist`),
  embedding ``(B, 160)``.

Stage 1, :class:`RealEmphasis`: binary real vs fake, trained with OC-Softmax (:mod:`train.losses`);
``forward`` -> ``(logits (B, 2), embedding)`` with ``logits = alpha * [s - t, t - s]``, ``s`` the
cosine to the real centre and ``t = re_threshold`` (column 0 = real, like label 0).
Stage 2, :class:`FakeDispersion`: a classifier over the fake systems only, trained with
``CE + RegMixup (eta, Beta(alpha, alpha)) + npair_weight * N-pair`` (:meth:`FakeDispersion.loss`).

Where the numbers come from:
- REFD's code: OC-Softmax ``r_real = 0.9``, ``r_fake = 0.5``, ``alpha = 20`` (``AngularIsoLoss``);
  the RE decision point ``re_threshold = 0`` (its RE scoring calls a cosine above 0 real); the
  W2V2-AASIST back end (its dimensions are those of :mod:`train.models.w2v2_aasist`).
- N-pair regulariser 0.002: Sohn 2016.
- ncst's choices (the paper's body is not reachable; all are :class:`RefdConfig` fields):
  Conformer width 144, 4 heads, FFN 576, 4 layers, kernel 31, dropout 0.1; mean pooling; RegMixup
  ``eta = 1.0``, ``alpha = 10.0`` (RegMixup's paper recommends a large alpha; REFD's own mixup
  helper draws Beta(0.5, 0.5)); N-pair weight 0.5.
- ncst's choices in the two-stage run (:class:`~train.config.TrainConfig` fields, see
  :mod:`train.refd_trainer`): RE and FD each with its own Adam (the baselines' lr / weight decay /
  StepLR), ``refd_re_epochs`` then ``epochs``; FD starts from the best RE epoch with RE frozen;
  fusion weight ``refd_fusion_w = 0.5``; the RE real threshold at the dev EER point and the OOD
  threshold with ``refd_ood_tpr = 0.95`` of dev fakes above it (REFD hand-sets them: real cosine
  0.98, OOD score 0); :class:`RefdModel`'s fake-column temperature ``FAKE_TEMPERATURE = 0.1``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..losses import REFD_ALPHA, REFD_R_FAKE, REFD_R_REAL, OCSoftmax, mixup_batch, npair_loss, regmixup_loss
from .w2v2_aasist import W2V2AASIST

BACKENDS = ("conformer", "aasist")


@dataclass
class RefdConfig:
    backend: str = "conformer"
    ssl_dim: int = 1024
    conformer_dim: int = 144
    conformer_heads: int = 4
    conformer_ffn_dim: int = 576
    conformer_layers: int = 4
    conformer_kernel: int = 31
    dropout: float = 0.1
    oc_r_real: float = REFD_R_REAL
    oc_r_fake: float = REFD_R_FAKE
    oc_alpha: float = REFD_ALPHA
    re_threshold: float = 0.0
    regmixup_eta: float = 1.0
    regmixup_alpha: float = 10.0
    npair_weight: float = 0.5
    npair_l2: float = 0.002

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"RefdConfig.backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.conformer_dim % self.conformer_heads:
            raise ValueError(f"conformer_dim {self.conformer_dim} is not divisible by conformer_heads {self.conformer_heads}")
        if self.conformer_kernel % 2 == 0:
            raise ValueError(f"conformer_kernel must be odd (same-length depthwise conv), got {self.conformer_kernel}")


class ConformerBackEnd(nn.Module):
    """``(B, T, ssl_dim)`` -> embedding ``(B, conformer_dim)``."""

    def __init__(self, cfg: RefdConfig):
        super().__init__()
        from torchaudio.models import Conformer

        self.ssl_dim = cfg.ssl_dim
        self.proj = nn.Linear(cfg.ssl_dim, cfg.conformer_dim)
        self.conformer = Conformer(input_dim=cfg.conformer_dim, num_heads=cfg.conformer_heads,
                                   ffn_dim=cfg.conformer_ffn_dim, num_layers=cfg.conformer_layers,
                                   depthwise_conv_kernel_size=cfg.conformer_kernel, dropout=cfg.dropout)
        self.embedding_dim = cfg.conformer_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.ssl_dim:
            raise ValueError(f"Conformer back end expects features (batch, frames, {self.ssl_dim}), got {tuple(x.shape)}")
        lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
        h, _ = self.conformer(self.proj(x), lengths)
        return h.mean(dim=1)


class AasistBackEnd(nn.Module):
    """W2V2-AASIST up to its embedding ``(B, 160)``; its own output layer is left unused."""

    def __init__(self, cfg: RefdConfig):
        super().__init__()
        self.net = W2V2AASIST(n_classes=1, ssl_dim=cfg.ssl_dim)
        self.embedding_dim = self.net.embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[1]


def make_backend(cfg: RefdConfig) -> nn.Module:
    return ConformerBackEnd(cfg) if cfg.backend == "conformer" else AasistBackEnd(cfg)


class RealEmphasis(nn.Module):
    """Stage 1: real (column 0) vs fake; ``loss(features, labels)`` is OC-Softmax (label 0 = real)."""

    def __init__(self, cfg: RefdConfig | None = None):
        super().__init__()
        self.cfg = cfg or RefdConfig()
        self.backend = make_backend(self.cfg)
        self.embedding_dim = self.backend.embedding_dim
        self.oc = OCSoftmax(self.embedding_dim, self.cfg.oc_r_real, self.cfg.oc_r_fake, self.cfg.oc_alpha)

    def real_score(self, embedding: torch.Tensor) -> torch.Tensor:
        """Cosine to the real centre: higher = more real."""
        return self.oc.scores(embedding)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.backend(x)
        s = self.real_score(emb)
        t = self.cfg.re_threshold
        logits = self.oc.alpha * torch.stack([s - t, t - s], dim=1)
        return logits, emb

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.oc(self.backend(x), labels)


class FakeDispersion(nn.Module):
    """Stage 2: ``n_classes`` fake systems (labels 0..n_classes-1 *within the fakes*)."""

    def __init__(self, n_classes: int, cfg: RefdConfig | None = None):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"FakeDispersion needs at least 2 fake classes, got {n_classes}")
        self.cfg = cfg or RefdConfig()
        self.backend = make_backend(self.cfg)
        self.embedding_dim = self.backend.embedding_dim
        self.out = nn.Linear(self.embedding_dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.backend(x)
        return self.out(emb), emb

    def loss(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``{"total", "ce_regmixup", "npair"}``; the mixup draw comes from ``generator``."""
        logits, emb = self(x)
        x_mix, labels_mix, lam = mixup_batch(x, labels, self.cfg.regmixup_alpha, generator)
        mixed_logits, _ = self(x_mix)
        ce = regmixup_loss(logits, labels, mixed_logits, labels_mix, lam, self.cfg.regmixup_eta)
        npair = npair_loss(emb, labels, self.cfg.npair_l2)
        return {"total": ce + self.cfg.npair_weight * npair, "ce_regmixup": ce, "npair": npair}


FAKE_TEMPERATURE = 0.1  # ncst's: spread of the fake columns of RefdModel's logits (fused-score units)


class RefdModel(nn.Module):
    """Both stages as one classifier over ``n_classes`` ST labels, column 0 = real (label 0).

    ``forward(x (B, T, ssl_dim))`` -> ``(logits (B, n_classes), FD embedding (B, D))``, the study's
    interface. Its argmax is REFD's closed-set decision: real where the RE real score reaches
    ``re_threshold`` (column 0 = ``logsigmoid(alpha (s - t))``), else the fused FD class (fake
    column k = ``logsigmoid(-alpha (s - t)) + (f_k - max_j f_j) / FAKE_TEMPERATURE`` with ``f`` the
    :func:`train.fusion.fused_class_scores` of FD's logits and embedding, weight ``fusion_w``). The
    prototypes, the thresholds and ``fusion_w`` are buffers, fitted after training
    (:meth:`set_fusion`); before that ``f`` is FD's softmax alone.
    """

    def __init__(self, n_classes: int, cfg: RefdConfig | None = None, fusion_w: float = 0.5):
        super().__init__()
        if n_classes < 3:
            raise ValueError(f"RefdModel needs real + at least 2 fake classes, got {n_classes} classes")
        self.cfg = cfg or RefdConfig()
        self.re = RealEmphasis(self.cfg)
        self.fd = FakeDispersion(n_classes - 1, self.cfg)
        self.embedding_dim = self.fd.embedding_dim
        self.register_buffer("prototypes", torch.zeros(n_classes - 1, self.embedding_dim))
        self.register_buffer("re_threshold", torch.tensor(float(self.cfg.re_threshold)))
        self.register_buffer("ood_threshold", torch.tensor(float("-inf")))
        self.register_buffer("fusion_w", torch.tensor(float(fusion_w)))
        self.register_buffer("fitted", torch.tensor(False))

    def set_fusion(self, prototypes: torch.Tensor, re_threshold: float, ood_threshold: float) -> None:
        self.prototypes.copy_(torch.as_tensor(prototypes, dtype=self.prototypes.dtype))
        self.re_threshold.fill_(float(re_threshold))
        self.ood_threshold.fill_(float(ood_threshold))
        self.fitted.fill_(True)

    def stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``real_score (B,)`` (RE cosine), ``fd_logits (B, K)``, ``embedding (B, D)``, ``fused (B, K)``."""
        s = self.re.real_score(self.re.backend(x))
        fd_logits, emb = self.fd(x)
        probs = torch.softmax(fd_logits, dim=1)
        if bool(self.fitted):
            w = self.fusion_w
            cos = nn.functional.normalize(emb, dim=1) @ nn.functional.normalize(self.prototypes, dim=1).T
            fused = (1 - w) * probs + w * cos
        else:
            fused = probs
        return {"real_score": s, "fd_logits": fd_logits, "embedding": emb, "fused": fused}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.stages(x)
        z = self.re.oc.alpha * (out["real_score"] - self.re_threshold)
        fused = out["fused"]
        fake = nn.functional.logsigmoid(-z)[:, None] + (fused - fused.max(dim=1, keepdim=True).values) / FAKE_TEMPERATURE
        return torch.cat([nn.functional.logsigmoid(z)[:, None], fake], dim=1), out["embedding"]
