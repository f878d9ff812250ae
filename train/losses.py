"""Losses of the REFD-style two-stage source tracer: OC-Softmax, RegMixup, multi-class N-pair.

- :class:`OCSoftmax`: one-class angular margin loss (Zhang et al. 2021; REFD's ``AngularIsoLoss``).
  A learned centre ``w`` on the unit sphere; with ``s = cos(x, w)`` a real sample (label 0) costs
  ``softplus(alpha * (r_real - s))`` and a fake one ``softplus(alpha * (s - r_fake))``: reals are
  pulled inside the cone ``s > r_real``, fakes pushed outside ``s < r_fake``. REFD's defaults:
  ``r_real = 0.9``, ``r_fake = 0.5``, ``alpha = 20``.
- :func:`mixup_batch` / :func:`regmixup_loss`: RegMixup (Pinto et al. 2022): cross-entropy on the
  clean batch plus ``eta`` times the mixup cross-entropy on ``lam * x + (1 - lam) * x[perm]``,
  ``lam ~ Beta(alpha, alpha)`` drawn from a seeded generator so a run can be replayed.
- :func:`npair_loss`: multi-class N-pair loss (Sohn 2016): for N (anchor, positive) pairs of N
  different classes, ``mean_i log(1 + sum_{j != i} exp(a_i . p_j - a_i . p_i))`` (= cross-entropy
  of the ``a_i . p_j`` similarity matrix with target ``i``) plus Sohn's L2 penalty on the embeddings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

REFD_R_REAL = 0.9
REFD_R_FAKE = 0.5
REFD_ALPHA = 20.0


class OCSoftmax(nn.Module):
    """One-class softmax over embeddings ``(B, dim)``; label 0 = real, any other label = fake.

    ``scores(x)`` is the cosine to the real centre (higher = more real); ``forward(x, labels)`` the
    mean loss.
    """

    def __init__(self, dim: int, r_real: float = REFD_R_REAL, r_fake: float = REFD_R_FAKE, alpha: float = REFD_ALPHA):
        super().__init__()
        if not -1.0 <= r_fake <= r_real <= 1.0:
            raise ValueError(f"OCSoftmax needs -1 <= r_fake <= r_real <= 1, got r_real={r_real}, r_fake={r_fake}")
        self.r_real, self.r_fake, self.alpha = float(r_real), float(r_fake), float(alpha)
        self.center = nn.Parameter(torch.empty(1, dim))
        nn.init.kaiming_uniform_(self.center, a=0.25)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.center, dim=1).squeeze(0)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        s = self.scores(x)
        fake = labels.to(s.device) != 0
        margin = torch.where(fake, s - self.r_fake, self.r_real - s)
        return F.softplus(self.alpha * margin).mean()


def mixup_batch(x: torch.Tensor, labels: torch.Tensor, alpha: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(lam * x + (1 - lam) * x[perm], labels[perm], lam)``; ``lam ~ Beta(alpha, alpha)`` and the
    permutation both come from ``generator`` (CPU), so the same seed gives the same batch."""
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    lam = _beta_sample(alpha, generator)
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return lam * x + (1.0 - lam) * x[perm], labels[perm], lam


def _beta_sample(alpha: float, generator: torch.Generator) -> float:
    """One draw of Beta(alpha, alpha) driven by ``generator``: torch's Beta sampler takes no generator,
    so a numpy generator seeded from it draws the value."""
    import numpy as np

    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def regmixup_loss(clean_logits: torch.Tensor, labels: torch.Tensor, mixed_logits: torch.Tensor,
                  mixed_labels: torch.Tensor, lam: float, eta: float = 1.0) -> torch.Tensor:
    """``CE(clean, y) + eta * (lam * CE(mixed, y) + (1 - lam) * CE(mixed, y[perm]))``."""
    mix = lam * F.cross_entropy(mixed_logits, labels) + (1.0 - lam) * F.cross_entropy(mixed_logits, mixed_labels)
    return F.cross_entropy(clean_logits, labels) + eta * mix


def npair_indices(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(anchor, positive) row indices: the first two rows of every class with at least two rows,
    classes in order of first appearance (deterministic, so a batch always gives the same pairs)."""
    firsts: dict[int, list[int]] = {}
    order: list[int] = []
    for i, y in enumerate(labels.tolist()):
        rows = firsts.setdefault(int(y), [])
        if not rows:
            order.append(int(y))
        if len(rows) < 2:
            rows.append(i)
    pairs = [firsts[y] for y in order if len(firsts[y]) == 2]
    anchors = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    positives = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    return anchors, positives


def npair_loss(embeddings: torch.Tensor, labels: torch.Tensor, l2_weight: float = 0.002) -> torch.Tensor:
    """Multi-class N-pair loss of a labelled batch (pairs from :func:`npair_indices`).

    Fewer than two classes with a pair leave nothing to contrast: the loss is 0 (still attached to
    the graph so ``backward`` works). ``l2_weight`` scales the mean squared norm of the paired
    embeddings (Sohn's regulariser; 0.002 as in the paper).
    """
    anchors, positives = npair_indices(labels.cpu())
    if len(anchors) < 2:
        return embeddings.sum() * 0.0
    a, p = embeddings[anchors.to(embeddings.device)], embeddings[positives.to(embeddings.device)]
    sim = a @ p.t()
    target = torch.arange(len(a), device=embeddings.device)
    reg = (a.pow(2).sum(1).mean() + p.pow(2).sum(1).mean()) / 2
    return F.cross_entropy(sim, target) + l2_weight * reg
