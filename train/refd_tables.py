"""Study tables of REFD runs (``model="refd"``, :mod:`train.refd_trainer`), beside Tables 3-6.

A REFD run gets Tables 3-6 rows like every source tracer (its logits follow REFD's closed-set
decision, its embedding is the Fake Dispersion one, so the OOD detectors run on it unchanged).
On top of those, from the run's stage outputs (:func:`stage_predictions`: RE real score, FD
logits, FD embedding per row):

    refd_frechet.{csv,md}       per class: Fréchet distance between the train rows' FD embeddings of
                                that class and each eval subset's (eval_id, every OOD set); a class
                                the train rows lack (an unseen system) is compared with all train fakes
    refd_fusion_sweep.{csv,md}  per fusion weight w: in-domain macro F1 of the fused FD class on the
                                eval_id fakes, and AUC / FPR95 / EER of the fused score (eval_id fakes
                                = positive) against each OOD set's rows and their mean
    refd_decision.{csv,md}      REFD's open-set rule with the run's dev-fitted thresholds: per eval
                                subset the share called real / unknown / a known fake system, and
                                the accuracy of the decision (eval_id: the right label; OOD sets:
                                "unknown"; unseen real: "real")
    plots/<model>/refd_fusion_sweep.png  in-domain F1 and mean OOD AUC over w

``refd_study`` returns ``(tables, notes, images)`` for :func:`train.study.run_study` to write.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .frechet import frechet_table
from .fusion import UNKNOWN, class_prototypes, fused_class_scores, refd_decide
from .metrics import f1_scores, ood_metrics

SWEEP_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# eval subsets whose rows count as out of distribution for the FD stage (every row of these sets)
OOD_SETS = ("eval_ood", "ood_config", "diff_source", "ood_other", "alm")
FRECHET_SETS = ("eval_id", "eval_ood", "unseen_real", "diff_config", "diff_source", "ood_config", "ood_other", "alm")
NOTES = {
    "refd_frechet": ("REFD: Fréchet distance (mean + covariance, as in FID) between FD embeddings of the train rows "
                     "of a class and of an eval set's rows of that class; 'all' = an unseen class against every train "
                     "fake. NaN: fewer than 2 rows on a side.",),
    "refd_fusion_sweep": ("REFD score-embedding fusion over its weight w: (1 - w) softmax(FD logits) + w cos(FD embedding, "
                          "class prototype); id_macro_f1 on eval_id fakes, OOD metrics with eval_id fakes as positive. "
                          "w = 0 is FD's MSP, w = 1 the prototype similarity alone.",),
    "refd_decision": ("REFD's open-set decision with the run's dev-fitted thresholds (refd.json): real if the RE real "
                      "score reaches its threshold, else unknown if the fused score is below the OOD threshold, else "
                      "the FD class. correct: eval_id the true label, OOD sets 'unknown', unseen_real 'real'.",),
}


class _StageView(nn.Module):
    """``forward`` -> ``(FD logits ++ RE real score, FD embedding)``: the stage outputs through the
    predict machinery (feature cache, unreadable rows left out) unchanged."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.embedding_dim = model.embedding_dim

    def forward(self, x):
        st = self.model.stages(x)
        return torch.cat([st["fd_logits"], st["real_score"][:, None]], dim=1), st["embedding"]


def stage_predictions(model, config, df: pd.DataFrame, batch_size: int = 32, device: str = "cpu") -> dict:
    """``labels``, ``real_score (N,)``, ``fd_logits (N, K)``, ``embedding (N, D)`` of the ok rows of ``df``."""
    from .predict import predict

    p = predict(_StageView(model), config, df, batch_size=batch_size, device=device)
    return {"labels": p.labels, "fd_logits": p.logits[:, :-1], "real_score": p.logits[:, -1], "embedding": p.embeddings}


def _fake_classes(classes: Sequence[int]) -> np.ndarray:
    return np.asarray(list(classes)[1:], dtype=np.int64)


def frechet_rows(name: str, train: dict, subsets: Mapping[str, dict]) -> pd.DataFrame:
    sets = {s: (p["embedding"], p["labels"]) for s, p in subsets.items() if s in FRECHET_SETS and len(p["labels"])}
    df = frechet_table((train["embedding"], train["labels"]), sets)
    df.insert(0, "model", name)
    return df


def sweep_rows(name: str, train: dict, subsets: Mapping[str, dict], classes: Sequence[int],
               weights: Sequence[float] = SWEEP_WEIGHTS, eer_convention: str = "interpolated") -> pd.DataFrame:
    fake = _fake_classes(classes)
    tr = np.isin(train["labels"], fake)
    idx = np.searchsorted(fake, train["labels"][tr])
    _, protos = class_prototypes(train["embedding"][tr], idx)
    ev = subsets.get("eval_id")
    if ev is None or not np.isin(ev["labels"], fake).any():
        return pd.DataFrame()
    m = np.isin(ev["labels"], fake)
    rows = []
    for w in weights:
        fid = fused_class_scores(ev["fd_logits"][m], ev["embedding"][m], protos, w)
        row = {"model": name, "w": float(w),
               "id_macro_f1": f1_scores(ev["labels"][m], fake[fid.argmax(1)], labels=list(fake))["macro"]}
        aucs = []
        for s in OOD_SETS:
            p = subsets.get(s)
            if p is None or not len(p["labels"]):
                continue
            sood = fused_class_scores(p["fd_logits"], p["embedding"], protos, w).max(1)
            om = ood_metrics(fid.max(1), sood, eer_convention)
            row.update({f"{s} auc": om["auc"], f"{s} fpr95": om["fpr95"], f"{s} eer": om["eer"]})
            aucs.append(om["auc"])
        row["mean ood auc"] = float(np.mean(aucs)) if aucs else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def decision_rows(name: str, model, subsets: Mapping[str, dict], classes: Sequence[int]) -> pd.DataFrame:
    fake = _fake_classes(classes)
    protos = model.prototypes.detach().cpu().numpy()
    w = float(model.fusion_w)
    rows = []
    for s, p in subsets.items():
        if not len(p["labels"]):
            continue
        fused = fused_class_scores(p["fd_logits"], p["embedding"], protos, w)
        dec = refd_decide(fused.max(1), float(model.ood_threshold), p["real_score"], float(model.re_threshold),
                          fused.argmax(1), fd_labels=fake)
        y = p["labels"]
        want = np.where(np.isin(y, classes), y, UNKNOWN)  # a label outside the run's classes: unknown is right
        rows.append({"model": name, "subset": s, "n": int(len(y)), "real": float(np.mean(dec == 0)),
                     "unknown": float(np.mean(dec == UNKNOWN)), "known fake": float(np.mean(dec > 0)),
                     "correct": float(np.mean(dec == want))})
    return pd.DataFrame(rows)


def sweep_plot(name: str, sweep: pd.DataFrame, path: Path) -> Path | None:
    if sweep.empty:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 3.0), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(sweep["w"], sweep["id_macro_f1"], marker="o", label="in-domain macro F1 (eval_id fakes)")
    ax.plot(sweep["w"], sweep["mean ood auc"], marker="s", label="mean OOD AUC")
    ax.set_xlabel("fusion weight w (0: FD softmax, 1: prototype cosine)", fontsize=7)
    ax.set_ylim(-0.02, 1.02)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6)
    ax.set_title(f"{name}: REFD fusion trade-off", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    return path


def refd_study(runs: Mapping[str, tuple], protocol, out: Path, *, fit_subset: str = "train", batch_size: int = 32,
               device: str = "cpu", eer_convention: str = "interpolated", plots: bool = True,
               safe=lambda s: s) -> tuple[dict, dict, dict]:
    """``runs``: model name -> ``(model, config, classes)`` of REFD runs (``load_trained``);
    ``protocol``: the study's :class:`~train.study.Protocol`. Returns ``(tables, notes, images)``."""
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in NOTES}
    images: dict[str, list[tuple[str, Path]]] = {}
    for name, (model, config, classes) in runs.items():
        rows = protocol.get(fit_subset)
        if rows is None or not len(rows):
            continue
        train = stage_predictions(model, config, rows, batch_size, device)
        subsets = {}
        for s in FRECHET_SETS:
            df = protocol.get(s)
            if df is not None and len(df):
                subsets[s] = stage_predictions(model, config, df, batch_size, device)
        sweep = sweep_rows(name, train, subsets, classes, eer_convention=eer_convention)
        parts["refd_frechet"].append(frechet_rows(name, train, subsets))
        parts["refd_fusion_sweep"].append(sweep)
        parts["refd_decision"].append(decision_rows(name, model, subsets, classes))
        if plots:
            p = sweep_plot(name, sweep, out / "plots" / safe(name) / "refd_fusion_sweep.png")
            if p is not None:
                images[name] = [("REFD fusion: in-domain F1 vs OOD AUC over w", p)]
    tables = {k: pd.concat(v, ignore_index=True) for k, v in parts.items() if v and not all(d.empty for d in v)}
    return tables, {k: NOTES[k] for k in tables}, images
