"""Study plots (matplotlib, Agg canvas through the object API; no pyplot global state).

Each function writes one PNG and returns its path:
- :func:`roc_curves` / :func:`det_curves`: one panel per OOD condition, one curve per detector
  (scikit-learn's ``RocCurveDisplay`` / ``DetCurveDisplay``; ID is the positive class);
- :func:`confusion`: true ST label (rows, ID and OOD sets) x predicted class (columns), colourbar;
- :func:`score_histograms`: one panel per detector, ID vs OOD score distributions;
- :func:`embedding_map`: 2-D PCA (or t-SNE) of penultimate embeddings, one colour + marker per label;
- :func:`task_confusions`: a codec-taxonomy run's confusion matrices of one head, one panel per
  eval subset (:func:`taxonomy_plots` draws one figure per head).

Sizes: figures are laid out in inches with text in points, saved at :data:`SAVE_DPI`; the report
shows them at :data:`DISPLAY_DPI` CSS pixels per inch (the browser's 96 px = 1 in), so a
:data:`FONT_SIZE` pt label is read at its real size, and a click opens the full-resolution PNG.
Widths stay under :data:`MAX_WIDTH_IN` so a figure fits a 1400 px page without shrinking.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from manifests import ST_LABELS

from . import metrics as M
from .tables import AGGREGATE_CONDITIONS

__all__ = ["DISPLAY_DPI", "FONT_SIZE", "MAX_WIDTH_IN", "SAVE_DPI", "confusion", "det_curves", "embedding_map",
           "model_plots", "roc_curves", "score_histograms", "task_confusions", "taxonomy_plots"]

SAVE_DPI = 150  # full resolution (what click-to-enlarge shows)
DISPLAY_DPI = 96  # CSS px per inch in the page: text shows at its point size
FONT_SIZE = 11.0
MAX_WIDTH_IN = 13.0  # 13 in x 96 = 1248 px: fits the report's 1400 px column
# 10 clearly different hues (tab10) x 7 marker shapes: 7 and 10 are coprime, so label i gets
# the pair (i % 10, i % 7) and the first 70 labels never share both colour and shape.
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_RC = {"font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE + 1, "axes.labelsize": FONT_SIZE,
       "xtick.labelsize": FONT_SIZE - 1, "ytick.labelsize": FONT_SIZE - 1, "legend.fontsize": FONT_SIZE - 1,
       "figure.titlesize": FONT_SIZE + 2, "savefig.dpi": SAVE_DPI}


def _styled(fn):
    """Run a plot function under the report's font sizes (rc_context covers creation and saving)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(_RC):
            return fn(*args, **kwargs)
    return wrapper


def _name(label: int) -> str:
    return ST_LABELS.get(int(label), str(label))


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=SAVE_DPI, bbox_inches="tight")
    return path


def _grid(n: int, ncols: int = 3, size: float = 4.2) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n, int(MAX_WIDTH_IN // size) or 1))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size * ncols, size * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    return fig, axes


def _curves(scores: Mapping[str, Mapping[str, np.ndarray]], path: Path, id_name: str, title: str, kind: str) -> Path | None:
    from sklearn.metrics import DetCurveDisplay, RocCurveDisplay

    conds = sorted({c for s in scores.values() for c in s if c != id_name})
    if not conds:
        return None
    fig, axes = _grid(len(conds))
    drawn = False
    for ax, cond in zip(axes, conds):
        for det, s in scores.items():
            if id_name not in s or cond not in s:
                continue
            try:
                y, sc = M.binary_scores(s[id_name], s[cond])
                if kind == "roc":
                    RocCurveDisplay.from_predictions(y, sc, pos_label=1, name=det, ax=ax, curve_kwargs={"lw": 1.5})
                else:
                    disp = DetCurveDisplay.from_predictions(y, sc, pos_label=1, name=det, ax=ax, lw=1.5)
                    # sklearn clips rates to machine epsilon; a point at 0 % or 100 % lies off the axes
                    fpr, fnr = np.asarray(disp.fpr), np.asarray(disp.fnr)
                    inside = (fpr > 1e-9) & (fpr < 1 - 1e-9) & (fnr > 1e-9) & (fnr < 1 - 1e-9)
                    if not inside.any():
                        disp.line_.set_label(f"{det} (only 0 % / 100 % points)")
                drawn = True
            except ValueError:  # one class only in this condition
                continue
        if kind == "roc":
            ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=0.8)
            ax.set_xlabel("FPR (OOD called ID)")
            ax.set_ylabel("TPR (ID kept)")
        else:
            ax.set_xlabel("FPR (OOD called ID)")
            ax.set_ylabel("FNR (ID rejected)")
        ax.set_title(cond)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right" if kind == "roc" else "upper right")
    if not drawn:
        return None
    if title:
        fig.suptitle(title)
    return _save(fig, path)


@_styled
def roc_curves(scores: Mapping[str, Mapping[str, np.ndarray]], path: Path, id_name: str = "eval_id", title: str = "") -> Path | None:
    """``scores[detector][condition] (N,)``; ``id_name`` holds the ID scores. None if nothing to draw."""
    return _curves(scores, path, id_name, title, "roc")


@_styled
def det_curves(scores: Mapping[str, Mapping[str, np.ndarray]], path: Path, id_name: str = "eval_id", title: str = "") -> Path | None:
    """DET curves (normal-deviate axes) of the same pairs as :func:`roc_curves`. None if nothing to draw."""
    return _curves(scores, path, id_name, title, "det")


def _matrix(ax, mat: np.ndarray):
    """Row-share colours (0-1, so panels share one colourbar), counts printed in each cell."""
    frac = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            ax.text(j, i, str(mat[i, j]), ha="center", va="center", fontsize=FONT_SIZE - 2,
                    color="white" if frac[i, j] > 0.5 else "black")
    return im


def _colourbar(fig: Figure, im, axes) -> None:
    fig.colorbar(im, ax=axes, label="share of the true row", fraction=0.04, pad=0.02, shrink=0.9)


@_styled
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
    fig = Figure(figsize=(min(MAX_WIDTH_IN, 3.0 + 0.75 * len(cols)), 2.0 + 0.45 * len(rows)), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    _colourbar(fig, _matrix(ax, mat), ax)
    ax.set_xticks(range(len(cols)), [f"{c} {_name(c)}" for c in cols], rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), [f"{r} {_name(r)}" for r in rows])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true ST label")
    ax.set_title(title or "confusion matrix")
    return _save(fig, path)


@_styled
def score_histograms(id_scores: Mapping[str, np.ndarray], ood_scores: Mapping[str, np.ndarray], path: Path, title: str = "") -> Path | None:
    """Per detector: histograms of ID and OOD scores on shared bins."""
    dets = [d for d in id_scores if d in ood_scores and len(id_scores[d]) and len(ood_scores[d])]
    if not dets:
        return None
    fig, axes = _grid(len(dets), ncols=3, size=4.0)
    for ax, det in zip(axes, dets):
        a, b = np.asarray(id_scores[det]), np.asarray(ood_scores[det])
        lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 31)
        ax.hist(a, bins=bins, alpha=0.6, density=True, label=f"ID ({len(a)})")
        ax.hist(b, bins=bins, alpha=0.6, density=True, label=f"OOD ({len(b)})")
        ax.set_title(det)
        ax.set_xlabel("score (higher = more ID)")
        ax.locator_params(axis="x", nbins=5)  # wide score ranges (Mahalanobis) otherwise overlap
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def label_style(index: int) -> tuple[Any, str]:
    """``(colour, marker)`` of the ``index``-th label of a map: distinct up to 70 labels."""
    return mpl.colormaps["tab10"](index % 10), MARKERS[index % len(MARKERS)]


@_styled
def embedding_map(emb: np.ndarray, labels: np.ndarray, path: Path, method: str = "pca", seed: int = 0,
                  max_points: int = 3000, title: str = "") -> Path | None:
    """2-D map of ``emb (N, D)``, one colour + marker per ST label; seeded subsample of ``max_points``."""
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
    fig = Figure(figsize=(9.5, 6.5), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for i, lab in enumerate(sorted(set(labels.tolist()))):
        m = labels == lab
        colour, marker = label_style(i)
        kind = "ID" if 0 <= lab < 7 else "OOD"
        ax.scatter(xy[m, 0], xy[m, 1], s=28, color=colour, marker=marker, edgecolors="black", linewidths=0.3,
                   alpha=0.85, label=f"{lab} {_name(lab)} ({kind}, {int(m.sum())})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), markerscale=1.3, title="ST label")
    ax.set_title(title or f"embeddings ({method.upper()})")
    ax.set_xlabel(f"{method.upper()} 1")
    ax.set_ylabel(f"{method.upper()} 2")
    return _save(fig, path)


@_styled
def task_confusions(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], class_names: Sequence[str], path: Path,
                    title: str = "") -> Path | None:
    """One confusion matrix per ``(panel title, true class index, predicted class index)``; rows
    with an unknown class (-1) are left out; counts printed, colour = row share (colourbar)."""
    panels = [(t, np.asarray(y), np.asarray(p)) for t, y, p in panels]
    panels = [(t, y[y >= 0], p[y >= 0]) for t, y, p in panels if (y >= 0).any()]
    if not panels:
        return None
    k = len(class_names)
    fig, axes = _grid(len(panels), ncols=3, size=max(3.8, 1.6 + 0.6 * k))
    for ax, (name, y, p) in zip(axes, panels):
        mat = np.zeros((k, k), dtype=np.int64)
        np.add.at(mat, (y, p), 1)
        im = _matrix(ax, mat)
        ax.set_xticks(range(k), list(class_names), rotation=45, ha="right")
        ax.set_yticks(range(k), list(class_names))
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name} (n={len(y)})")
    _colourbar(fig, im, axes)
    if title:
        fig.suptitle(title)
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

    add(f"{model}: ROC per OOD condition (ID = positive; AUC in legend)", roc_curves(scores, out_dir / "roc.png", title=model))
    add(f"{model}: DET per OOD condition (normal-deviate axes; lower-left is better)",
        det_curves(scores, out_dir / "det.png", title=model))
    parts = [p for k, p in preds.items() if k in ("eval_id", "eval_ood") and p is not None]
    if parts:
        y = np.concatenate([p.labels for p in parts])
        yp = np.concatenate([p.predicted for p in parts])
        add(f"{model}: confusion matrix (eval_id + eval_ood)", confusion(y, yp, parts[0].classes, out_dir / "confusion.png", title=model))
        emb = np.concatenate([p.embeddings for p in parts])
        add(f"{model}: embedding map ({config.embedding_map.upper()}; one colour + marker per ST label)",
            embedding_map(emb, y, out_dir / "embeddings.png", method=config.embedding_map, seed=config.seed, title=model))
    if scores:
        id_s = {d: s["eval_id"] for d, s in scores.items() if "eval_id" in s}
        # every OOD row once: the aggregates repeat rows of the per-condition sets
        ood_s = {d: np.concatenate([v for c, v in s.items() if c != "eval_id" and c not in AGGREGATE_CONDITIONS] or [np.empty(0)])
                 for d, s in scores.items()}
        add(f"{model}: OOD scores, ID (eval_id) vs every OOD condition", score_histograms(id_s, ood_s, out_dir / "scores.png", title=model))
    return out
