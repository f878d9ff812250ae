"""Training of the REFD two-stage source tracer (``model="refd"``): Real Emphasis, then Fake Dispersion.

One run directory, one model (:class:`~train.models.refd.RefdModel` holds both stages), the layout
of :mod:`train.trainer` (``config.json``, ``last.pt``, ``best.pt``, ``metrics.jsonl/csv``,
``feature_cache/``) plus ``refd.json`` (the fitted fusion: thresholds, fusion weight, classes).
Inputs are the frozen W2V2 features of the feature cache, as W2V2-AASIST's.

- Epochs ``1 .. refd_re_epochs`` (stage ``re``): RE on every row of the train subset's classes,
  label 0 real vs the rest, OC-Softmax; dev metric: the OC-Softmax loss on dev.
- Epochs after that, ``epochs`` of them (stage ``fd``): FD on the fake rows only (classes after the
  real one), CE + RegMixup + N-pair (:meth:`~train.models.refd.FakeDispersion.loss`; the mixup draws
  come from a generator seeded by (seed, epoch)); dev metric: CE on dev fakes. The RE weights are
  frozen from the best RE epoch (``best.pt``) on.
- ``best.pt`` holds the best RE epoch's RE and the best FD epoch's FD; each stage has its own
  optimiser (Adam, the config's lr / weight decay / StepLR) and its own best metric.
- After the last epoch the fusion is fitted on ``best.pt`` (:func:`fit_fusion`): FD class prototypes
  from the train fakes' embeddings, the RE real threshold at the dev EER point of the real score,
  the OOD threshold so that ``refd_ood_tpr`` of the dev fakes score above it (train rows if there
  is no dev subset); written into ``best.pt``'s buffers and ``refd.json``.

A checkpoint is :mod:`train.trainer`'s, plus ``stage`` ("re" | "fd", of the latest epoch),
``re_epochs``, ``re_best_metric``, ``refd`` (the fitted fusion, once fitted). ``epoch`` counts both
stages, so resuming continues in the right stage with that stage's optimiser and scheduler; epochs
are re-seeded from ``(seed, epoch)`` as in :mod:`train.trainer`, so a resumed run equals an
uninterrupted one.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from manifests import NCST_VERSION, protocol_subset_path
from manifests.atomic import write_text_atomic

from .config import TrainConfig
from .data import make_loader
from .trainer import (CHECKPOINT_FORMAT, _atomic_torch_save, _Data, _Metrics, epoch_seed, load_checkpoint, model_for,
                      open_run_dir, seed_everything)

log = logging.getLogger(__name__)

REAL = 0  # the ST label of real speech: RE's positive class and RefdModel's column 0


def _stage_params(model, stage: str):
    return (model.re if stage == "re" else model.fd).parameters()


def _optimiser(c: TrainConfig, model, stage: str):
    opt = torch.optim.Adam(_stage_params(model, stage), lr=c.lr, betas=c.betas, eps=c.eps, weight_decay=c.weight_decay)
    return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=c.lr_step_epochs, gamma=c.lr_gamma)


def _batch(data: _Data, batch: dict, stage: str, device: str):
    """``(x, y)`` of one batch for ``stage`` (RE: 0 real / 1 fake; FD: fake class index), or None."""
    t = batch["target"]
    keep = batch["ok"] & (t >= 0) if stage == "re" else batch["ok"] & (t > 0)
    if not keep.any():
        return None
    x = data.inputs(batch)
    x = x[keep.to(x.device)].to(device)
    y = t[keep]
    return x, ((y != 0).long() if stage == "re" else y - 1).to(device)


@torch.no_grad()
def _dev_loss(model, data: _Data, loader, stage: str, device: str) -> dict:
    model.eval()
    total, n, correct = 0.0, 0, 0
    for batch in loader:
        b = _batch(data, batch, stage, device)
        if b is None:
            continue
        x, y = b
        if stage == "re":
            loss = model.re.loss(x, y) * len(y)
            pred = (model.re.real_score(model.re.backend(x)) < model.re_threshold).long()
        else:
            logits, _ = model.fd(x)
            loss = F.cross_entropy(logits, y, reduction="sum")
            pred = logits.argmax(1)
        total += float(loss)
        n += len(y)
        correct += int((pred == y).sum())
    return {"loss": total / n if n else float("nan"), "acc": correct / n if n else float("nan"), "n": n}


@torch.no_grad()
def _stage_outputs(model, data: _Data, dataset, device: str, batch_size: int) -> dict[str, np.ndarray]:
    """RefdModel.stages of every ok row of ``dataset`` (plus ``target``: class index)."""
    model.eval()
    out: dict[str, list] = {"real_score": [], "fd_logits": [], "embedding": [], "target": []}
    for batch in make_loader(dataset, batch_size=batch_size, shuffle=False):
        keep = batch["ok"] & (batch["target"] >= 0)
        if not keep.any():
            continue
        x = data.inputs(batch)
        st = model.stages(x[keep.to(x.device)].to(device))
        for k in ("real_score", "fd_logits", "embedding"):
            out[k].append(st[k].float().cpu().numpy())
        out["target"].append(batch["target"][keep].numpy())
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def eer_threshold(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    """The score threshold where the miss rate of ``pos`` equals the false-alarm rate of ``neg``
    (the candidate that brings them closest; higher score = positive)."""
    if not len(pos_scores) or not len(neg_scores):
        return 0.0
    cands = np.unique(np.concatenate([pos_scores, neg_scores]))
    miss = np.array([(pos_scores < t).mean() for t in cands])
    fa = np.array([(neg_scores >= t).mean() for t in cands])
    return float(cands[int(np.argmin(np.abs(miss - fa)))])


def fit_fusion(model, c: TrainConfig, data: _Data, device: str) -> dict:
    """Fit prototypes and thresholds (see the module docstring) into ``model``; returns them as a dict."""
    from .fusion import class_prototypes, fused_score

    bs = c.eval_batch_size or c.batch_size
    tr = _stage_outputs(model, data, data.train_set, device, bs)
    fake = tr["target"] > 0
    labels, protos = class_prototypes(tr["embedding"][fake], tr["target"][fake] - 1)
    k = model.prototypes.shape[0]
    full = np.zeros((k, protos.shape[1]))
    full[labels.astype(int)] = protos  # a fake class with no train row keeps a zero prototype (cosine 0)
    ref = _stage_outputs(model, data, data.dev_set, device, bs) if data.dev_set is not None else tr
    rf = ref["target"] > 0
    re_thr = eer_threshold(ref["real_score"][~rf], ref["real_score"][rf])
    ood = fused_score(ref["fd_logits"][rf], ref["embedding"][rf], full, c.refd_fusion_w) if rf.any() else np.zeros(1)
    ood_thr = float(np.quantile(ood, 1.0 - c.refd_ood_tpr))
    model.set_fusion(torch.from_numpy(full).float(), re_thr, ood_thr)
    return {"re_threshold": re_thr, "ood_threshold": ood_thr, "fusion_w": c.refd_fusion_w, "ood_tpr": c.refd_ood_tpr,
            "fitted_on": "dev" if data.dev_set is not None else "train"}


def train_refd(config: TrainConfig) -> Path:
    """Train RE then FD (:func:`train.trainer.train` calls this for ``model="refd"``); return the run dir."""
    c = config
    run_dir, last_path, best_path, ck = open_run_dir(c)
    device = c.device
    if ck and ck["config"].get("refd_backend") != c.refd_backend:
        raise ValueError(f"{last_path}: checkpoint has back end {ck['config'].get('refd_backend')}, config asks for {c.refd_backend}")
    c = c.replace(protocol_dir=str(Path(c.protocol_dir).resolve()), out_dir=str(run_dir.resolve()),
                  feature_cache_dir=str(Path(c.feature_cache_dir or run_dir / "feature_cache").resolve()))
    if Path(c.w2v2_model).expanduser().is_dir():
        c = c.replace(w2v2_model=str(Path(c.w2v2_model).expanduser().resolve()))
    re_epochs, fd_epochs = c.refd_stage_epochs
    if ck and int(ck["re_epochs"]) != re_epochs and int(ck["epoch"]) > min(re_epochs, int(ck["re_epochs"])):
        raise ValueError(f"{last_path}: the run's RE stage has {ck['re_epochs']} epochs, the config {re_epochs}; "
                         "the RE stage can only change before the run leaves it")
    start_epoch = int(ck["epoch"]) if ck else 0
    metrics = _Metrics(run_dir, start_epoch, c.tensorboard)
    classes = ck["classes"] if ck else (list(c.classes) if c.classes is not None else None)
    data = _Data(c, classes, device, metrics)
    classes = data.classes
    if classes[0] != REAL or len(classes) < 3:
        raise ValueError(f"{protocol_subset_path(c.protocol_dir, c.train_subset)}: refd needs real rows (label 0) and at "
                         f"least two fake classes in the train subset, got classes {classes}")
    c = c.replace(classes=classes)
    c.save_json(run_dir / "config.json")

    seed_everything(c.seed)
    model = model_for(c, len(classes), data.ssl_dim).to(device)
    stage = "re" if start_epoch < re_epochs else "fd"
    optimizer, scheduler = _optimiser(c, model, stage)
    step, best_metric, best_epoch, re_best = 0, math.inf, 0, math.inf
    if ck:
        model.load_state_dict(ck["model"])
        step, re_best = int(ck["step"]), float(ck["re_best_metric"])
        if ck["stage"] == stage:  # else the run stopped at the stage boundary: FD starts fresh
            optimizer.load_state_dict(ck["optimizer"])
            scheduler.load_state_dict(ck["scheduler"])
            best_metric, best_epoch = float(ck["best_metric"]), int(ck["best_epoch"])
        log.info("resuming %s after epoch %d (stage %s, step %d)", run_dir, start_epoch, stage, step)

    def checkpoint(epoch_done: int, fusion: dict | None = None) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "model_name": "refd", "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch_done,
            "step": step, "best_metric": best_metric, "best_epoch": best_epoch, "metric_name": f"dev_loss_{stage}",
            "config": c.to_dict(), "classes": list(classes), "embedding_dim": int(model.embedding_dim),
            "ssl_dim": data.ssl_dim, "ncst_version": NCST_VERSION, "stage": stage, "re_epochs": re_epochs,
            "re_best_metric": re_best, **({"refd": fusion} if fusion else {}),
        }

    eval_bs = c.eval_batch_size or c.batch_size
    for epoch in range(start_epoch, re_epochs + fd_epochs):
        t0 = time.time()
        if epoch == re_epochs and stage == "re":  # stage boundary: best RE weights, fresh FD optimiser
            stage = "fd"
            if best_path.exists():
                best = load_checkpoint(best_path, device)["model"]
                model.re.load_state_dict({k[3:]: v for k, v in best.items() if k.startswith("re.")})
            optimizer, scheduler = _optimiser(c, model, stage)
            best_metric, best_epoch = math.inf, 0
        seed_everything(epoch_seed(c.seed, epoch))
        gen = torch.Generator().manual_seed(epoch_seed(c.seed, epoch))
        loader = make_loader(data.train_set, batch_size=c.batch_size, shuffle=True, seed=c.seed, epoch=epoch)
        n_steps = len(loader) if c.max_steps_per_epoch is None else min(len(loader), c.max_steps_per_epoch)
        model.train()
        model.re.train(stage == "re")
        lr = optimizer.param_groups[0]["lr"]
        loss_sum, seen, parts = 0.0, 0, {"ce_regmixup": 0.0, "npair": 0.0}
        for i, batch in enumerate(loader):
            if i >= n_steps:
                break
            b = _batch(data, batch, stage, device)
            if b is None:
                continue
            x, y = b
            if stage == "re":
                loss = model.re.loss(x, y)
            else:
                out = model.fd.loss(x, y, gen)
                loss = out["total"]
                for k in parts:
                    parts[k] += float(out[k].detach()) * len(y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += float(loss.detach()) * len(y)
            seen += len(y)
            if c.log_every and step % c.log_every == 0:
                metrics({"type": "step", "epoch": epoch + 1, "stage": stage, "step": step, "loss": float(loss.detach()), "lr": lr})
        scheduler.step()
        record = {"type": "epoch", "epoch": epoch + 1, "stage": stage, "step": step, "lr": lr,
                  "train_loss": loss_sum / seen if seen else float("nan"), "train_n": seen}
        if stage == "fd":
            record.update({f"train_{k}": v / seen if seen else float("nan") for k, v in parts.items()})
        metric = record["train_loss"]
        if data.dev_set is not None:
            dev = _dev_loss(model, data, make_loader(data.dev_set, batch_size=eval_bs, shuffle=False), stage, device)
            record.update({f"dev_{k}": v for k, v in dev.items()})
            metric = dev["loss"] if dev["n"] else metric
        improved = metric < best_metric or best_epoch == 0
        if improved:
            best_metric, best_epoch = metric, epoch + 1
            if stage == "re":
                re_best = metric
        record.update(best=improved, best_metric=best_metric, best_epoch=best_epoch, time_s=round(time.time() - t0, 3))
        state = checkpoint(epoch + 1)
        _atomic_torch_save(state, last_path)
        if improved:
            _atomic_torch_save(state, best_path)
        metrics(record)
        log.info("epoch %d (%s): %s", epoch + 1, stage, {k: v for k, v in record.items() if k != "type"})

    # the fitted fusion goes with the best weights
    best = load_checkpoint(best_path, device)
    model.load_state_dict(best["model"])
    fusion = fit_fusion(model, c, data, device)
    best["model"] = model.state_dict()
    best["refd"] = fusion
    _atomic_torch_save(best, best_path)
    write_text_atomic(run_dir / "refd.json", json.dumps({**fusion, "classes": list(classes), "backend": c.refd_backend,
                                                         "re_epochs": re_epochs, "fd_epochs": fd_epochs}, indent=2) + "\n")
    # epoch just past the last one, so a resume that trains on drops this record with the others
    metrics({"type": "fusion", "epoch": re_epochs + fd_epochs + 0.5, **fusion})
    metrics.close()
    return run_dir
