"""Study plots (matplotlib, Agg canvas through the object API; no pyplot global state).

Each function writes one PNG and returns its path:
- :func:`roc_curves`: one panel per OOD condition, one curve per detector;
- :func:`confusion`: true ST label (rows, ID and OOD sets) x predicted class (columns);
- :func:`score_histograms`: one panel per detector, ID vs OOD score distributions;
- :func:`embedding_map`: 2-D PCA (or t-SNE) of penultimate embeddings, coloured by ST label;
- :func:`task_confusions`: a codec-taxonomy run's confusion matrices of one head, one panel per
  eval subset (:func:`taxonomy_plots` draws one figure per head).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from manifests import ST_LABELS

from . import metrics as M
from .tables import AGGREGATE_CONDITIONS

__all__ = ["confusion", "embedding_map", "model_plots", "roc_curves", "score_histograms", "task_confusions", "taxonomy_plots"]

DPI = 90


def _name(label: int) -> str:
    return ST_LABELS.get(int(label), str(label))


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _grid(n: int, ncols: int = 4, size: float = 3.2) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size * ncols, size * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    return fig, axes


def roc_curves(scores: Mapping[str, Mapping[str, np.ndarray]], path: Path, id_name: str = "eval_id", title: str = "") -> Path | None:
    """``scores[detector][condition] (N,)``; ``id_name`` holds the ID scores. None if nothing to draw."""
    conds = sorted({c for s in scores.values() for c in s if c != id_name})
    if not conds:
        return None
    fig, axes = _grid(len(conds))
    for ax, cond in zip(axes, conds):
        for det, s in scores.items():
            if id_name not in s or cond not in s:
                continue
            try:
                y, sc = M.binary_scores(s[id_name], s[cond])
                fpr, tpr, _ = M.roc(y, sc)
                ax.plot(fpr, tpr, label=f"{det} ({M.auc(y, sc):.3f})", lw=1.2)
            except ValueError:
                continue
        ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=0.8)
        ax.set_title(cond, fontsize=8)
        ax.set_xlabel("FPR (OOD called ID)", fontsize=7)
        ax.set_ylabel("TPR (ID kept)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[int], path: Path, title: str = "") -> Path | None:
    """Counts of (true label, predicted class), rows normalised for colour, counts printed."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return None
    rows = sorted(set(y_true.tolist()))
    cols = list(classes)
    mat = np.zeros((len(rows), len(cols)), dtype=np.int64)
    r_idx = {v: i for i, v in enumerate(rows)}
    c_idx = {v: i for i, v in enumerate(cols)}
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        if p in c_idx:
            mat[r_idx[t], c_idx[p]] += 1
    frac = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(1 + 0.6 * len(cols), 1 + 0.5 * len(rows)))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, str(mat[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(cols)), [f"{c} {_name(c)}" for c in cols], rotation=60, ha="right", fontsize=6)
    ax.set_yticks(range(len(rows)), [f"{r} {_name(r)}" for r in rows], fontsize=6)
    ax.set_xlabel("predicted class", fontsize=7)
    ax.set_ylabel("true ST label", fontsize=7)
    ax.set_title(title or "confusion matrix", fontsize=8)
    return _save(fig, path)


def score_histograms(id_scores: Mapping[str, np.ndarray], ood_scores: Mapping[str, np.ndarray], path: Path, title: str = "") -> Path | None:
    """Per detector: histograms of ID and OOD scores on shared bins."""
    dets = [d for d in id_scores if d in ood_scores and len(id_scores[d]) and len(ood_scores[d])]
    if not dets:
        return None
    fig, axes = _grid(len(dets), ncols=5, size=3.0)
    for ax, det in zip(axes, dets):
        a, b = np.asarray(id_scores[det]), np.asarray(ood_scores[det])
        lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 31)
        ax.hist(a, bins=bins, alpha=0.6, density=True, label=f"ID ({len(a)})")
        ax.hist(b, bins=bins, alpha=0.6, density=True, label=f"OOD ({len(b)})")
        ax.set_title(det, fontsize=8)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def embedding_map(emb: np.ndarray, labels: np.ndarray, path: Path, method: str = "pca", seed: int = 0,
                  max_points: int = 3000, title: str = "") -> Path | None:
    """2-D map of ``emb (N, D)`` coloured by ST label; seeded subsample of ``max_points``."""
    emb, labels = np.asarray(emb, dtype=np.float64), np.asarray(labels)
    if len(emb) < 3:
        return None
    rng = np.random.default_rng(seed)
    if len(emb) > max_points:
        keep = np.sort(rng.choice(len(emb), max_points, replace=False))
        emb, labels = emb[keep], labels[keep]
    if method == "tsne":
        from sklearn.manifold import TSNE

        xy = TSNE(n_components=2, perplexity=min(30.0, (len(emb) - 1) / 3), random_state=seed, init="pca").fit_transform(emb)
    else:
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=seed).fit_transform(emb) if emb.shape[1] >= 2 else np.c_[emb, np.zeros(len(emb))]
    fig = Figure(figsize=(6, 5))
    ax = fig.add_subplot(1, 1, 1)
    cmap = __import__("matplotlib").colormaps["tab20"]
    for lab in sorted(set(labels.tolist())):
        m = labels == lab
        ax.scatter(xy[m, 0], xy[m, 1], s=6, color=cmap(int(lab) % 20), label=f"{lab} {_name(lab)}",
                   marker="o" if lab < 7 else "x")
    ax.legend(fontsize=6, markerscale=2, loc="best")
    ax.set_title(title or f"embeddings ({method.upper()})", fontsize=8)
    ax.tick_params(labelsize=6)
    return _save(fig, path)


def task_confusions(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], class_names: Sequence[str], path: Path,
                    title: str = "") -> Path | None:
    """One confusion matrix per ``(panel title, true class index, predicted class index)``; rows
    with an unknown class (-1) are left out; counts printed, colour = row share."""
    panels = [(t, np.asarray(y), np.asarray(p)) for t, y, p in panels]
    panels = [(t, y[y >= 0], p[y >= 0]) for t, y, p in panels if (y >= 0).any()]
    if not panels:
        return None
    k = len(class_names)
    fig, axes = _grid(len(panels), ncols=3, size=1.0 + 0.7 * k)
    for ax, (name, y, p) in zip(axes, panels):
        mat = np.zeros((k, k), dtype=np.int64)
        np.add.at(mat, (y, p), 1)
        frac = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(mat[i, j]), ha="center", va="center", fontsize=6, color="white" if frac[i, j] > 0.5 else "black")
        ax.set_xticks(range(k), list(class_names), rotation=45, ha="right", fontsize=6)
        ax.set_yticks(range(k), list(class_names), fontsize=6)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
        ax.set_title(f"{name} (n={len(y)})", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def taxonomy_plots(model: str, res: Mapping[str, Any], out_dir: Path) -> list[tuple[str, Path]]:
    """Per head of a taxonomy run: confusion matrices on every eval subset it was scored on."""
    from .taxonomy import TASK_CLASSES, TASK_NAMES

    preds = {k: p for k, p in res.get("preds", {}).items() if p is not None}
    out = []
    for task in res.get("tasks", ()):
        panels = [(name, p.targets[task], p.predicted(task)) for name, p in preds.items()]
        title = f"{model}: {TASK_NAMES[task]} confusion matrices"
        path = task_confusions(panels, TASK_CLASSES[task], out_dir / f"confusion_{task}.png", title=title)
        if path is not None:
            out.append((f"{title} ({res.get('frontend', '')} front end; rows = true class)", path))
    return out


def model_plots(model: str, res: Mapping[str, Any], out_dir: Path, config: Any) -> list[tuple[str, Path]]:
    """All plots of one model's study results; returns ``[(caption, png path)]``."""
    if res.get("kind") == "taxonomy":
        return taxonomy_plots(model, res, out_dir)
    preds, scores = res.get("preds", {}), res.get("scores", {})
    out: list[tuple[str, Path]] = []

    def add(caption: str, p: Path | None) -> None:
        if p is not None:
            out.append((caption, p))

    add(f"{model}: ROC per OOD condition (AUC in legend)", roc_curves(scores, out_dir / "roc.png", title=model))
    parts = [p for k, p in preds.items() if k in ("eval_id", "eval_ood") and p is not None]
    if parts:
        y = np.concatenate([p.labels for p in parts])
        yp = np.concatenate([p.predicted for p in parts])
        add(f"{model}: confusion matrix (eval_id + eval_ood)", confusion(y, yp, parts[0].classes, out_dir / "confusion.png", title=model))
        emb = np.concatenate([p.embeddings for p in parts])
        add(f"{model}: embedding map ({config.embedding_map.upper()}; x = OOD labels)",
            embedding_map(emb, y, out_dir / "embeddings.png", method=config.embedding_map, seed=config.seed, title=model))
    if scores:
        id_s = {d: s["eval_id"] for d, s in scores.items() if "eval_id" in s}
        # every OOD row once: the aggregates repeat rows of the per-condition sets
        ood_s = {d: np.concatenate([v for c, v in s.items() if c != "eval_id" and c not in AGGREGATE_CONDITIONS] or [np.empty(0)])
                 for d, s in scores.items()}
        add(f"{model}: OOD scores, ID (eval_id) vs every OOD condition", score_histograms(id_s, ood_s, out_dir / "scores.png", title=model))
    return out
