"""Fréchet distance between embedding sets (as FID does for images).

``FD(A, B) = |mu_A - mu_B|^2 + tr(S_A + S_B - 2 (S_A S_B)^{1/2})`` with the sample means and
covariances of the two sets: the 2-Wasserstein distance of the Gaussians fitted to them. Small =
the representation of the two sets agrees (stable across domains); large = separated.

The trace of the square root is computed as ``tr((S_A^{1/2} S_B S_A^{1/2})^{1/2})``: that matrix is
symmetric positive semi-definite, so its square root is an eigen-decomposition with clipped
eigenvalues, which stays real and stable where ``scipy.linalg.sqrtm(S_A S_B)`` can return complex
noise for singular covariances (few samples, wide embeddings).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def gaussian_stats(embeddings) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased; zero for a single row) of ``(N, D)`` embeddings."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"embeddings must be a non-empty (N, D) array, got shape {x.shape}")
    cov = np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]) if len(x) > 1 else np.zeros((x.shape[1],) * 2)
    return x.mean(axis=0), cov


def frechet_from_stats(mu_a, cov_a, mu_b, cov_b) -> float:
    mu_a, mu_b = np.asarray(mu_a, dtype=np.float64), np.asarray(mu_b, dtype=np.float64)
    cov_a, cov_b = np.asarray(cov_a, dtype=np.float64), np.asarray(cov_b, dtype=np.float64)
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (len(mu_a), len(mu_a)):
        raise ValueError(f"frechet: mean/covariance shapes disagree: {mu_a.shape}, {cov_a.shape}, {mu_b.shape}, {cov_b.shape}")
    root_a = _psd_sqrt(cov_a)
    cross = np.trace(_psd_sqrt(root_a @ cov_b @ root_a))
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)
    return max(value, 0.0)  # rounding can leave a tiny negative for identical sets


def frechet_distance(a, b) -> float:
    """Fréchet distance between two embedding sets ``(N_a, D)`` and ``(N_b, D)``."""
    return frechet_from_stats(*gaussian_stats(a), *gaussian_stats(b))


def frechet_table(reference: tuple[np.ndarray, np.ndarray], sets: Mapping[str, tuple[np.ndarray, np.ndarray]],
                  min_rows: int = 2) -> pd.DataFrame:
    """Per class: Fréchet distance between the reference set's embeddings of that class (e.g. train)
    and each other set's (e.g. eval_id, every OOD set).

    ``reference`` and each value of ``sets`` are ``(embeddings (N, D), labels (N,))``. Rows:
    ``set, label, n_reference, n_set, frechet``; a class with fewer than ``min_rows`` rows on either
    side gets NaN (a covariance from one row says nothing). A label the reference does not hold (an
    unseen system of an OOD set) is compared with the whole reference (``reference`` = ``all``).
    """
    ref_x, ref_y = np.asarray(reference[0]), np.asarray(reference[1])
    rows = []
    for name, (x, y) in sets.items():
        x, y = np.asarray(x), np.asarray(y)
        for label in np.unique(y):
            own = x[y == label]
            known = label in set(ref_y.tolist())
            ref = ref_x[ref_y == label] if known else ref_x
            ok = len(own) >= min_rows and len(ref) >= min_rows
            rows.append({"set": name, "label": label.item() if hasattr(label, "item") else label,
                         "reference": "same class" if known else "all",
                         "n_reference": int(len(ref)), "n_set": int(len(own)),
                         "frechet": frechet_distance(ref, own) if ok else float("nan")})
    return pd.DataFrame(rows, columns=["set", "label", "reference", "n_reference", "n_set", "frechet"])
