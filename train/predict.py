"""Inference API for the study runner: load a trained run, score protocol rows.

    model, config, classes = load_trained("runs/aasist")          # best.pt of a run directory
    preds = predict(model, config, df, batch_size=32, device="cpu")
    preds.logits      # (N, C) float32, columns in ``classes`` order (ST labels)
    preds.embeddings  # (N, D) float32 penultimate features (KNN / Mahalanobis / NSD)

Evaluation always takes the FIRST ``config.num_samples`` samples (repeat-padded when shorter).
Rows whose audio cannot be read are left out of the result with a warning naming each file, so
``preds.utt_ids`` says which rows were scored. For frozen W2V2 front ends (``w2v2_aasist``, a
frozen taxonomy model) the front end is loaded from ``config.w2v2_model`` (offline) and features
go through the run's feature cache (``config.feature_cache_dir``), so scoring the same rows twice
runs the front end once.

Taxonomy runs (``model="taxonomy"``) are scored with :func:`predict_taxonomy`::

    model, config, _ = load_trained("runs/taxonomy_M1")
    tp = predict_taxonomy(model, config, df)
    tp.probs["aux"]   # (N, 4) softmax of the AUX head, columns TASK_CLASSES["aux"]
    tp.p_spoof        # (N,) P(spoof) (BIN head, or the M2 formula), see train.taxonomy
    tp.targets["vq"]  # (N,) the rows' true classes (-1 unknown), from the manifest columns
    tp.to_frame()     # one row per utterance: utt_id, label, codec, p_<task>_<class>, pred_<task>,
                      # true_<task>, p_spoof, p_bonafide; attrs: variant, tasks, frontend
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from manifests.progress import Progress

from .config import TrainConfig
from .data import AudioDataset, apply_class_column, make_loader
from .taxonomy import TASK_CLASSES, TASKS, spoof_probability, task_probabilities, task_targets
from .trainer import load_checkpoint, model_for

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """Scores of N rows. ``labels`` are class labels: ST labels (0..11, -1 for non-ST spoofs) from the
    manifest, or ``CLASS_ID_BASE + class_id`` for a run with ``class_column: class_id``;
    ``logits (N, C)`` and ``embeddings (N, D)`` float32; ``classes`` maps logit columns to labels."""

    utt_ids: list[str]
    labels: np.ndarray
    logits: np.ndarray
    embeddings: np.ndarray
    classes: list[int]

    def __len__(self) -> int:
        return len(self.utt_ids)


def load_trained(run_dir_or_checkpoint: str | os.PathLike, device: str = "cpu") -> tuple[torch.nn.Module, TrainConfig, list[int]]:
    """Model (eval mode, on ``device``), its config and its classes from a run directory (its
    ``best.pt``, else ``last.pt``) or a checkpoint file."""
    p = Path(run_dir_or_checkpoint)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).exists():
                p = p / name
                break
        else:
            raise FileNotFoundError(f"{run_dir_or_checkpoint}: no best.pt or last.pt in this run directory")
    ck = load_checkpoint(p, device)
    config = TrainConfig.from_portable_dict(ck["config"], p.parent)
    classes = [int(x) for x in ck["classes"]]
    model = model_for(config, len(classes), ck.get("ssl_dim"), pretrained=False)
    model.load_state_dict(ck["model"])
    model.to(device).eval()
    return model, config, classes


@torch.no_grad()
def predict(model: torch.nn.Module, config: TrainConfig, df: pd.DataFrame, batch_size: int = 32, device: str = "cpu",
            num_workers: int = 0) -> Predictions:
    """Logits and embeddings of the ``status == "ok"`` rows of ``df`` (a protocol frame)."""
    classes = [int(x) for x in (config.classes or [])]
    if not classes:
        raise ValueError("config.classes is empty: use the config returned by load_trained")
    ds, keep, logits, embs = _forward_rows(model, config, df, classes, batch_size, device, num_workers)
    return Predictions(
        utt_ids=[ds.utt_ids[i] for i in keep],
        labels=np.asarray([ds.labels[i] for i in keep], dtype=np.int64),
        logits=logits,
        embeddings=embs,
        classes=classes,
    )


def _forward_rows(model: torch.nn.Module, config: TrainConfig, df: pd.DataFrame, classes: list[int], batch_size: int,
                  device: str, num_workers: int):
    """``(dataset, kept positions, logits (N, C), embeddings (N, D))`` of the ok rows of ``df``."""
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    df = apply_class_column(df.reset_index(drop=True), config.class_column)
    ds = AudioDataset(df, classes, num_samples=config.num_samples, sample_rate=config.sample_rate, random_crop=False,
                      name=str(df.attrs.get("source_path", "predict")))
    inputs = lambda b: b["wav"]  # noqa: E731
    data = ds
    if config.uses_frozen_w2v2:
        from .features import CachedFeatureDataset, FeatureCache, cache_identity, ensure_features, load_frontend

        fe = load_frontend(config.w2v2_model, config.w2v2_layer, config.w2v2_normalize, device)
        cache = FeatureCache(config.cache_dir, cache_identity(fe, sample_rate=config.sample_rate, num_samples=config.num_samples),
                             dtype=config.feature_dtype, shard_size=config.cache_shard_size)
        ensure_features(fe, cache, ds, batch_size=batch_size, device=device, num_workers=num_workers)
        data = CachedFeatureDataset(ds, cache, fe.num_frames(config.num_samples), fe.hidden_size)
        inputs = lambda b: b["feat"]  # noqa: E731
    model.to(device).eval()
    loader = make_loader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    idx, logits, embs = [], [], []
    bar = Progress(len(ds), f"predict {Path(str(ds.name)).name}", unit="clips",
                   enabled=len(ds) >= 64)
    for batch in loader:
        ok = batch["ok"]
        bar.update(len(ok))
        if not ok.any():
            continue
        x = inputs(batch)[ok].to(device)
        lg, emb = model(x)
        idx.append(batch["index"][ok])
        logits.append(lg.float().cpu())
        embs.append(emb.float().cpu())
    bar.close()
    keep = torch.cat(idx).numpy() if idx else np.zeros(0, dtype=np.int64)
    failed = sorted(set(range(len(ds))) - set(keep.tolist()))
    if failed:
        log.warning("predict: %d row(s) left out, their audio failed to decode: %s", len(failed),
                    ", ".join(ds.paths[i] for i in failed[:20]))
    emb_dim = int(getattr(model, "embedding_dim", 0))
    n_out = sum(getattr(model, "task_sizes", [])) or len(classes)
    return (ds, keep,
            torch.cat(logits).numpy() if logits else np.zeros((0, n_out), np.float32),
            torch.cat(embs).numpy() if embs else np.zeros((0, emb_dim), np.float32))


@dataclass
class TaxonomyPredictions:
    """Scores of N rows by a taxonomy model.

    ``probs[task] (N, C_task)``: softmax of each head (columns in ``TASK_CLASSES[task]`` order:
    bin = spoof, bonafide; taxonomy heads REAL first). ``p_spoof (N,)``: P(spoof) from
    :func:`train.taxonomy.spoof_probability` (BIN head, or M2's ``(a*d*q)^(1/3)``).
    ``targets[task] (N,)``: the rows' true class per task for all four tasks, -1 unknown.
    ``rows``: the scored protocol rows (same order). ``embeddings (N, 160 * n_tasks)``.
    """

    utt_ids: list[str]
    rows: pd.DataFrame
    probs: dict[str, np.ndarray]
    p_spoof: np.ndarray
    targets: dict[str, np.ndarray]
    embeddings: np.ndarray
    variant: str
    tasks: tuple[str, ...]
    frontend: str

    def __len__(self) -> int:
        return len(self.utt_ids)

    def to_frame(self) -> pd.DataFrame:
        """One row per utterance: ``utt_id``, ``label``, ``codec``, ``is_fake``, then per head
        ``p_<task>_<class>``, ``pred_<task>`` (class name), ``true_<task>`` (class name, '' if
        unknown) and last ``p_spoof``, ``p_bonafide``. ``attrs``: variant, tasks, frontend."""
        out = pd.DataFrame({"utt_id": self.utt_ids})
        for col in ("label", "codec", "is_fake"):
            if col in self.rows.columns:
                out[col] = self.rows[col].to_numpy()
        for task in self.tasks:
            names = TASK_CLASSES[task]
            for k, name in enumerate(names):
                out[f"p_{task}_{name}"] = self.probs[task][:, k]
            out[f"pred_{task}"] = [names[i] for i in self.probs[task].argmax(axis=1)]
            out[f"true_{task}"] = [names[i] if i >= 0 else "" for i in self.targets[task]]
        out["p_spoof"] = self.p_spoof
        out["p_bonafide"] = 1.0 - self.p_spoof
        out.attrs.update(variant=self.variant, tasks=list(self.tasks), frontend=self.frontend)
        return out


@torch.no_grad()
def predict_taxonomy(model: torch.nn.Module, config: TrainConfig, df: pd.DataFrame, batch_size: int = 32,
                     device: str = "cpu", num_workers: int = 0) -> TaxonomyPredictions:
    """Per-task probabilities, P(spoof) and true targets of the ``status == "ok"`` rows of ``df``.

    ``df`` needs ``is_fake`` and the ``aux`` / ``decoder`` / ``vq`` columns (every protocol has
    them). Rows whose audio cannot be decoded are left out, as in :func:`predict`."""
    if config.model != "taxonomy":
        raise ValueError(f"predict_taxonomy needs a taxonomy run, got a {config.model} run (use predict)")
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    df = df.reset_index(drop=True)
    classes = [int(x) for x in (config.classes or [])]
    ds, keep, logits, embs = _forward_rows(model, config, df, classes, batch_size, device, num_workers)
    rows = df.iloc[ds.rows[keep]].reset_index(drop=True)
    parts = dict(zip(model.tasks, np.split(logits, np.cumsum(model.task_sizes)[:-1], axis=1)))
    probs = task_probabilities(parts)
    return TaxonomyPredictions(
        utt_ids=[ds.utt_ids[i] for i in keep], rows=rows, probs=probs, p_spoof=spoof_probability(probs),
        targets=task_targets(rows, TASKS), embeddings=embs, variant=config.variant, tasks=tuple(model.tasks),
        frontend=config.frontend_kind,
    )
