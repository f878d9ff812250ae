"""Post-hoc OOD detectors on a trained classifier's logits and penultimate embeddings.

Every detector returns a score per sample where **higher means more in-distribution**, so the
metrics in :mod:`train.metrics` (ID = positive) apply directly. Shapes: ``logits (N, C)``,
``embeddings (N, D)``, ``labels (N,)``; scores ``(N,)`` float64.

Detectors (the ST-Codecfake set):

- ``msp``: maximum softmax probability, in float64 by default; ``msp_precision="float32"``
  computes it in float32 as the anchor does (softmax of float32 logits), where confident rows
  saturate to exactly 1.0 and tie (the study uses it with ``eer: anchor``).
- ``energy``: ``T * logsumexp(logits / T)`` with T = 1 (the negative free energy).
- ``knn``: cosine similarity to the k-th nearest training feature (k = 7), on L2-normalised
  features.
- ``mahalanobis``: minus the smallest squared Mahalanobis distance to a class mean, with one tied
  (pooled within-class) covariance and its pseudo-inverse, on L2-normalised features (see
  :class:`MahalanobisDetector` for how this relates to the anchor's code).
- ``nsd``: ``LSE(test logits) * mean_j cos(test, train_j) * LSE(train_j logits)``. Because the mean
  of dot products is the dot product with the mean, the training side reduces to one vector
  (``guide``) and no ``N_eval x N_train`` matrix is ever built; :func:`nsd_pairwise` is the chunked
  literal form, kept as the reference the tests compare against.

Beyond the ST-Codecfake set, ``fusion`` (opt-in: ``detectors: [..., fusion]``) is the score-embedding
fusion of Kulkarni et al. (Interspeech 2025) as a post-hoc detector on any source tracer:
``max_k (1 - w) softmax(logits)_k + w cos(x, p_k)`` with ``p_k`` the mean L2-normalised training
embedding of logit column k's class (:mod:`train.fusion`; w = ``fusion_w``, default 0.5). A REFD
run fuses its FD stage's logits inside its own decision; this detector fuses the logits the study
sees, so it puts the fusion on the same Table 5 footing as the five detectors above.

Detectors that need training statistics (``knn``, ``mahalanobis``, ``nsd``) are fitted once on
the training-set predictions; :func:`fit_detectors` caches their state as ``.npz`` files keyed by
the run and a checksum of the training predictions.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from scipy.special import logsumexp
from manifests.atomic import atomic_path

__all__ = [
    "ALL_DETECTORS",
    "DETECTOR_NAMES",
    "Detector",
    "EnergyDetector",
    "FusionDetector",
    "KNNDetector",
    "MSPDetector",
    "MSP_PRECISIONS",
    "MahalanobisDetector",
    "NSDDetector",
    "fit_detectors",
    "l2_normalize",
    "make_detector",
    "nsd_pairwise",
    "predictions_checksum",
]

DETECTOR_NAMES = ("msp", "energy", "knn", "mahalanobis", "nsd")  # the paper's five (the study's default)
ALL_DETECTORS = (*DETECTOR_NAMES, "fusion")
DEFAULT_CHUNK = 1024


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x (N, D)`` scaled to unit L2 norm (all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def _as_2d(name: str, x, n: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, dim), got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} rows, expected {n}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _chunks(n: int, size: int) -> Iterable[slice]:
    if size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {size}")
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


class Detector:
    """Base class: ``fit`` (if needed) on training predictions, then ``score`` test predictions."""

    name = "base"
    needs_fit = False

    def params(self) -> dict:
        """Hyperparameters that change the fitted state (part of the cache key)."""
        return {}

    def fit(self, logits, embeddings, labels) -> "Detector":
        return self

    def score(self, logits, embeddings) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: Mapping[str, np.ndarray]) -> "Detector":
        return self

    def _check_fitted(self, key: str) -> None:
        if getattr(self, key, None) is None:
            raise RuntimeError(f"{self.name} detector is not fitted: call fit() or load_state() first")


MSP_PRECISIONS = ("float64", "float32")


class MSPDetector(Detector):
    """Maximum softmax probability.

    ``precision="float64"`` (default) keeps confident rows apart (``1 - 1e-12`` is not 1);
    ``"float32"`` is the anchor's arithmetic: the softmax of float32 logits in float32, so every
    row whose top logit leads the others by roughly 17 or more scores exactly 1.0, and those rows
    tie.
    """

    name = "msp"

    def __init__(self, precision: str = "float64"):
        if precision not in MSP_PRECISIONS:
            raise ValueError(f"msp precision must be one of {MSP_PRECISIONS}, got {precision!r}")
        self.precision = precision

    def params(self) -> dict:
        return {"precision": self.precision}

    def score(self, logits, embeddings=None) -> np.ndarray:
        z = _as_2d("logits", logits)
        if self.precision == "float32":
            z32 = z.astype(np.float32)
            e = np.exp(z32 - z32.max(axis=1, keepdims=True))
            return (e / e.sum(axis=1, keepdims=True)).max(axis=1).astype(np.float64)
        return np.exp(z.max(axis=1) - logsumexp(z, axis=1))


class EnergyDetector(Detector):
    name = "energy"

    def __init__(self, temperature: float = 1.0):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def score(self, logits, embeddings=None) -> np.ndarray:
        z = _as_2d("logits", logits)
        return self.temperature * logsumexp(z / self.temperature, axis=1)


class KNNDetector(Detector):
    """k-th largest cosine similarity to the training features (chunked over test rows)."""

    name = "knn"
    needs_fit = True

    def __init__(self, k: int = 7, chunk_size: int = DEFAULT_CHUNK):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k, self.chunk_size = int(k), int(chunk_size)
        self.train_feats: np.ndarray | None = None

    def params(self) -> dict:
        return {"k": self.k}

    def fit(self, logits, embeddings, labels=None) -> "KNNDetector":
        feats = _as_2d("train embeddings", embeddings)
        if len(feats) < self.k:
            raise ValueError(f"knn needs at least k={self.k} training features, got {len(feats)}")
        self.train_feats = l2_normalize(feats).astype(np.float32)
        return self

    def score(self, logits, embeddings) -> np.ndarray:
        self._check_fitted("train_feats")
        x = l2_normalize(_as_2d("embeddings", embeddings)).astype(np.float32)
        if x.shape[1] != self.train_feats.shape[1]:
            raise ValueError(f"embeddings have dim {x.shape[1]}, training features {self.train_feats.shape[1]}")
        n_train = len(self.train_feats)
        out = np.empty(len(x), dtype=np.float64)
        for sl in _chunks(len(x), self.chunk_size):
            sims = x[sl] @ self.train_feats.T  # (chunk, N_train)
            out[sl] = np.partition(sims, n_train - self.k, axis=1)[:, n_train - self.k]
        return out

    def state(self) -> dict[str, np.ndarray]:
        self._check_fitted("train_feats")
        return {"train_feats": self.train_feats}

    def load_state(self, state) -> "KNNDetector":
        self.train_feats = np.asarray(state["train_feats"], dtype=np.float32)
        return self


class MahalanobisDetector(Detector):
    """``-min_c (x - mu_c)^T P (x - mu_c)``, P the pseudo-inverse of the tied covariance.

    The tied covariance is the pooled within-class covariance: every training feature centred on
    its class mean, ``cov = X_c^T X_c / N`` (the anchor averages the per-class covariances
    instead; the two agree when the classes are equally large, as in ST-Codecfake's train set).
    With ``normalize=True`` (default) features are L2-normalised before the statistics AND before
    scoring, as the anchor does too.

    The anchor's slip: it takes the mean and std per dimension of the RAW training features, then
    L2-normalises every feature (training and test alike) and standardises the normalised
    features with those raw-feature statistics. That is the same per-dimension shift and scale
    on both sides, an invertible affine map, and the Mahalanobis distance does not change under
    such a map (class means and covariance move with it); so the slip is rank-neutral, and ncst
    leaves the standardisation out. (Exactly so where the tied covariance has full rank; with a
    singular one the pseudo-inverse makes it exact only within the span of the training features.)
    The anchor also maps the distance d to ``exp(-d / 4096)``, which is monotone: rank-neutral.
    """

    name = "mahalanobis"
    needs_fit = True

    def __init__(self, normalize: bool = True, chunk_size: int = DEFAULT_CHUNK):
        self.normalize, self.chunk_size = bool(normalize), int(chunk_size)
        self.means: np.ndarray | None = None
        self.precision: np.ndarray | None = None
        self.classes: np.ndarray | None = None

    def params(self) -> dict:
        return {"normalize": self.normalize}

    def _prep(self, x) -> np.ndarray:
        return l2_normalize(x) if self.normalize else x

    def fit(self, logits, embeddings, labels) -> "MahalanobisDetector":
        feats = self._prep(_as_2d("train embeddings", embeddings))
        labels = np.asarray(labels).ravel()
        if len(labels) != len(feats):
            raise ValueError(f"{len(labels)} labels for {len(feats)} training features")
        self.classes = np.unique(labels)
        if len(self.classes) == 0:
            raise ValueError("mahalanobis needs labelled training features, got none")
        self.means = np.stack([feats[labels == c].mean(axis=0) for c in self.classes])
        centred = feats - self.means[np.searchsorted(self.classes, labels)]
        cov = centred.T @ centred / len(feats)
        self.precision = np.linalg.pinv(cov, hermitian=True)
        return self

    def score(self, logits, embeddings) -> np.ndarray:
        self._check_fitted("precision")
        x = self._prep(_as_2d("embeddings", embeddings))
        if x.shape[1] != self.means.shape[1]:
            raise ValueError(f"embeddings have dim {x.shape[1]}, class means {self.means.shape[1]}")
        mu_p = self.means @ self.precision  # (C, D)
        mu_term = np.einsum("cd,cd->c", mu_p, self.means)
        out = np.empty(len(x), dtype=np.float64)
        for sl in _chunks(len(x), self.chunk_size):
            xc = x[sl]
            quad = np.einsum("nd,nd->n", xc @ self.precision, xc)
            dist = quad[:, None] - 2.0 * xc @ mu_p.T + mu_term[None, :]  # (chunk, C)
            out[sl] = -np.maximum(dist.min(axis=1), 0.0)
        return out

    def state(self) -> dict[str, np.ndarray]:
        self._check_fitted("precision")
        return {"means": self.means, "precision": self.precision, "classes": self.classes}

    def load_state(self, state) -> "MahalanobisDetector":
        self.means = np.asarray(state["means"], dtype=np.float64)
        self.precision = np.asarray(state["precision"], dtype=np.float64)
        self.classes = np.asarray(state["classes"])
        return self


def nsd_pairwise(train_scaled: np.ndarray, test_feats: np.ndarray, chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """``mean_j <test_i, train_scaled_j>`` computed chunk by chunk (reference form of NSD's guide).

    ``train_scaled (N_train, D)``: normalised training features times their LSE;
    ``test_feats (N, D)``: normalised test features. Peak memory ``chunk_size x N_train``.
    """
    out = np.empty(len(test_feats), dtype=np.float64)
    for sl in _chunks(len(test_feats), chunk_size):
        out[sl] = (test_feats[sl] @ train_scaled.T).mean(axis=1)
    return out


class NSDDetector(Detector):
    """``LSE(logits) * mean_j cos(x, f_j) * LSE_j`` over all training features ``f_j``."""

    name = "nsd"
    needs_fit = True

    def __init__(self, chunk_size: int = DEFAULT_CHUNK):
        self.chunk_size = int(chunk_size)
        self.guide: np.ndarray | None = None

    def fit(self, logits, embeddings, labels=None) -> "NSDDetector":
        feats = _as_2d("train embeddings", embeddings)
        z = _as_2d("train logits", logits, n=len(feats))
        if len(feats) == 0:
            raise ValueError("nsd needs training features, got none")
        scaled_mean = np.zeros(feats.shape[1], dtype=np.float64)
        for sl in _chunks(len(feats), self.chunk_size):  # running sum: no (N_train, D) copy
            scaled_mean += (l2_normalize(feats[sl]) * logsumexp(z[sl], axis=1)[:, None]).sum(axis=0)
        self.guide = scaled_mean / len(feats)
        return self

    def score(self, logits, embeddings) -> np.ndarray:
        self._check_fitted("guide")
        x = l2_normalize(_as_2d("embeddings", embeddings))
        z = _as_2d("logits", logits, n=len(x))
        if x.shape[1] != self.guide.shape[0]:
            raise ValueError(f"embeddings have dim {x.shape[1]}, training features {self.guide.shape[0]}")
        return (x @ self.guide) * logsumexp(z, axis=1)

    def state(self) -> dict[str, np.ndarray]:
        self._check_fitted("guide")
        return {"guide": self.guide}

    def load_state(self, state) -> "NSDDetector":
        self.guide = np.asarray(state["guide"], dtype=np.float64)
        return self


class FusionDetector(Detector):
    """Score-embedding fusion: ``max_k (1 - w) softmax(logits)_k + w cos(x, p_k)``.

    ``classes`` names the class of each logit column; ``p_k`` is the prototype
    (:func:`train.fusion.class_prototypes`) of the training rows labelled ``classes[k]``. A column
    whose class has no training row keeps a zero prototype (cosine 0), as REFD's trainer does.
    """

    name = "fusion"
    needs_fit = True

    def __init__(self, w: float = 0.5, classes=None):
        if not 0.0 <= float(w) <= 1.0:
            raise ValueError(f"fusion weight w must be in [0, 1], got {w}")
        self.w = float(w)
        self.classes = None if classes is None else [int(c) for c in classes]
        self.prototypes: np.ndarray | None = None

    def params(self) -> dict:
        return {"w": self.w, "classes": tuple(self.classes or ())}

    def fit(self, logits, embeddings, labels) -> "FusionDetector":
        from .fusion import class_prototypes

        feats = _as_2d("train embeddings", embeddings)
        z = _as_2d("train logits", logits, n=len(feats))
        labels = np.asarray(labels)
        if self.classes is None or len(self.classes) != z.shape[1]:
            raise ValueError(f"fusion needs the class of each of the {z.shape[1]} logit columns, got classes {self.classes}")
        known = np.isin(labels, self.classes)
        if not known.any():
            raise ValueError("fusion needs training rows of the model's classes, got none")
        found, protos = class_prototypes(feats[known], labels[known])
        self.prototypes = np.zeros((len(self.classes), feats.shape[1]), dtype=np.float64)
        for c, p in zip(found.tolist(), protos):
            self.prototypes[self.classes.index(int(c))] = p
        return self

    def score(self, logits, embeddings) -> np.ndarray:
        from .fusion import fused_class_scores

        self._check_fitted("prototypes")
        x = _as_2d("embeddings", embeddings)
        return fused_class_scores(_as_2d("logits", logits, n=len(x)), x, self.prototypes, self.w).max(axis=1)

    def state(self) -> dict[str, np.ndarray]:
        self._check_fitted("prototypes")
        return {"prototypes": self.prototypes}

    def load_state(self, state) -> "FusionDetector":
        self.prototypes = np.asarray(state["prototypes"], dtype=np.float64)
        return self


_FACTORIES = {
    "msp": lambda msp_precision="float64", **kw: MSPDetector(msp_precision),
    "energy": lambda temperature=1.0, **kw: EnergyDetector(temperature),
    "knn": lambda k=7, chunk_size=DEFAULT_CHUNK, **kw: KNNDetector(k, chunk_size),
    "mahalanobis": lambda normalize=True, chunk_size=DEFAULT_CHUNK, **kw: MahalanobisDetector(normalize, chunk_size),
    "nsd": lambda chunk_size=DEFAULT_CHUNK, **kw: NSDDetector(chunk_size),
    "fusion": lambda fusion_w=0.5, classes=None, **kw: FusionDetector(fusion_w, classes),
}


def make_detector(name: str, **kwargs) -> Detector:
    """A detector by name (``ALL_DETECTORS``); unknown keyword arguments are ignored."""
    key = name.lower()
    if key not in _FACTORIES:
        raise ValueError(f"unknown OOD detector {name!r}; expected one of {ALL_DETECTORS}")
    return _FACTORIES[key](**kwargs)


def predictions_checksum(logits, embeddings, labels) -> str:
    """sha256 over the training predictions' arrays (dtype, shape and bytes)."""
    h = hashlib.sha256()
    for a in (logits, embeddings, labels):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _save_npz(path: Path, state: Mapping[str, np.ndarray]) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **state)


def fit_detectors(
    names: Iterable[str],
    logits,
    embeddings,
    labels,
    *,
    cache_dir: str | os.PathLike | None = None,
    run_key: str = "",
    **kwargs,
) -> dict[str, Detector]:
    """Build detectors ``names`` and fit them on training predictions, caching fitted states.

    The cache file is ``<cache_dir>/<name>-<hash>.npz`` where the hash covers ``run_key`` (the run
    dir or checkpoint), the checksum of the training predictions and the detector's parameters.
    ``kwargs`` go to :func:`make_detector` (``k``, ``chunk_size``, ``normalize``, ...).
    """
    out: dict[str, Detector] = {}
    checksum = None
    for name in names:
        det = make_detector(name, **kwargs)
        if det.needs_fit:
            if cache_dir is None:
                det.fit(logits, embeddings, labels)
            else:
                if checksum is None:
                    checksum = predictions_checksum(logits, embeddings, labels)
                key = hashlib.sha256(f"{run_key}|{checksum}|{det.name}|{sorted(det.params().items())}".encode())
                path = Path(cache_dir) / f"{det.name}-{key.hexdigest()[:20]}.npz"
                if path.exists():
                    with np.load(path) as state:
                        det.load_state(dict(state))
                else:
                    det.fit(logits, embeddings, labels)
                    _save_npz(path, det.state())
        out[det.name] = det
    return out
