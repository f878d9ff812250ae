"""The training loop: :func:`train` (one :class:`~train.config.TrainConfig` in, a run directory out).

Run directory layout::

    <out_dir>/config.json      the effective config (classes resolved)
    <out_dir>/last.pt          checkpoint after the latest epoch (what ``resume=True`` continues)
    <out_dir>/best.pt          checkpoint of the epoch with the lowest dev loss
    <out_dir>/metrics.jsonl    one JSON record per line: type "features" | "step" | "epoch"
    <out_dir>/metrics.csv      the "epoch" records as a table
    <out_dir>/feature_cache/   W2V2 features (frozen front ends only, unless feature_cache_dir is set)
    <out_dir>/tensorboard/     only with tensorboard=True and the tensorboard package installed

A checkpoint is a dict of plain values and tensors, read with ``torch.load(weights_only=True)``:
``format``, ``model_name``, ``model`` (state dict), ``optimizer``, ``scheduler`` (state dicts),
``epoch`` (epochs completed), ``step`` (optimizer steps taken), ``best_metric`` (lowest dev loss so
far), ``best_epoch``, ``metric_name`` ("dev_loss"), ``config`` (``TrainConfig.to_dict()``),
``classes`` (ST labels in logit order), ``embedding_dim``, ``ssl_dim`` (W2V2 hidden size or None),
``ncst_version``; taxonomy runs add ``variant``, ``tasks`` (heads in logit order) and ``frontend``
("fine-tuned" | "frozen").

The taxonomy model (``model="taxonomy"``, :mod:`train.taxonomy`) trains on EVERY ``ok`` row,
whatever its ST label: its targets come from ``is_fake`` and the taxonomy columns, the loss is
its multi-task :class:`~train.taxonomy.TaxonomyLoss` (unknown taxonomy masked per task), epochs
are drawn by :class:`~train.data.TaxonomyBalancedSampler` (``balance``), and the dev record has
per-task weighted F1 (``dev_f1_<task>``) and the bona fide vs spoof EER (``dev_eer``).

Exact resumes: every epoch re-seeds torch/numpy/random from ``(seed, epoch)`` and shuffles with a
generator seeded the same way, so a run of 2 epochs equals a run of 1 epoch resumed for 1 more.
Resumes are at epoch boundaries (``last.pt`` is written at the end of each epoch).
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from manifests import NCST_VERSION
from manifests.atomic import atomic_path

from .config import TrainConfig
from .data import CLASS_ID_BASE, AudioDataset, TaxonomyBalancedSampler, default_classes, make_loader, protocol_path, read_protocol
from .models import build_model
from .taxonomy import BIN_SPOOF, TASKS, task_probabilities, task_targets, taxonomy_metrics

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "ncst-train-checkpoint/1"


# ------------------------------------------------------------------ small pure helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    return int(seed) * 1009 + int(epoch)


def lr_at(config: TrainConfig, epoch: int) -> float:
    """Learning rate during 0-based ``epoch``: ``lr * gamma ** (epoch // lr_step_epochs)``."""
    return config.lr * config.lr_gamma ** (epoch // config.lr_step_epochs)


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable ncst checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an ncst training checkpoint (format {ck.get('format') if isinstance(ck, dict) else '?'})")
    return ck


def model_for(config: TrainConfig, n_classes: int, ssl_dim: int | None = None, *, pretrained: bool = True) -> torch.nn.Module:
    """The model a config describes (fresh weights; a fine-tuned taxonomy model's wav2vec 2.0
    starts from its pretrained weights, or from its config only with ``pretrained=False``, for
    loading a checkpoint over it)."""
    kwargs = dict(config.model_kwargs)
    if config.model == "w2v2_aasist":
        kwargs["ssl_dim"] = int(ssl_dim or 1024)
    if config.model == "refd":
        kwargs.update(backend=config.refd_backend, fusion_w=config.refd_fusion_w)
        kwargs["ssl_dim"] = int(ssl_dim or 1024)
    if config.model == "taxonomy":
        kwargs.update(variant=config.variant, learnable_task_weights=config.learnable_task_weights)
        if config.w2v2_finetune:
            from .models.taxonomy import TrainableW2V2

            fe = TrainableW2V2.from_pretrained(config.w2v2_model, config.w2v2_layer, normalize=config.w2v2_normalize,
                                               weights=pretrained)
            kwargs["frontend"] = fe
            ssl_dim = fe.hidden_size
        kwargs["ssl_dim"] = int(ssl_dim or 1024)
    return build_model(config.model, n_classes, num_samples=config.num_samples, sample_rate=config.sample_rate, **kwargs)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, inputs: Callable[[dict], torch.Tensor], device: str, n_classes: int) -> dict:
    """Mean CE loss, accuracy and macro F1 over the ``ok`` items whose label is a class."""
    from sklearn.metrics import f1_score

    model.eval()
    total, n, preds, targets = 0.0, 0, [], []
    for batch in loader:
        keep = batch["ok"] & (batch["target"] >= 0)
        if not keep.any():
            continue
        x = inputs(batch)
        x = x[keep.to(x.device)].to(device)
        y = batch["target"][keep].to(device)
        logits, _ = model(x)
        total += float(F.cross_entropy(logits, y, reduction="sum"))
        n += int(y.numel())
        preds.append(logits.argmax(dim=1).cpu())
        targets.append(y.cpu())
    if n == 0:
        return {"loss": float("nan"), "acc": float("nan"), "macro_f1": float("nan"), "n": 0}
    p, t = torch.cat(preds).numpy(), torch.cat(targets).numpy()
    f1 = f1_score(t, p, labels=list(range(n_classes)), average="macro", zero_division=0)
    return {"loss": total / n, "acc": float((p == t).mean()), "macro_f1": float(f1), "n": n}


@torch.no_grad()
def evaluate_taxonomy(model: torch.nn.Module, loader, inputs: Callable[[dict], torch.Tensor], device: str,
                      targets: dict[str, np.ndarray]) -> dict:
    """Multi-task loss (mean over batches, weighted by batch size), ``f1_<task>`` / ``acc_<task>``
    per head and ``eer`` (bona fide vs spoof) over the ``ok`` items. ``targets``: per task, by
    dataset position."""
    model.eval()
    total, n_loss, n = 0.0, 0, 0
    logits_all: dict[str, list[torch.Tensor]] = {t: [] for t in model.tasks}
    index_all = []
    for batch in loader:
        keep = batch["ok"]
        if not keep.any():
            continue
        x = inputs(batch)
        x = x[keep.to(x.device)].to(device)
        idx = batch["index"][keep]
        logits = model.split(model(x)[0])
        loss, _ = model.criterion(logits, {t: torch.from_numpy(targets[t][idx.numpy()]) for t in model.tasks})
        if loss is not None:
            total += float(loss) * int(idx.numel())
            n_loss += int(idx.numel())
        for t in model.tasks:
            logits_all[t].append(logits[t].float().cpu())
        index_all.append(idx)
        n += int(idx.numel())
    if n == 0:
        return {"loss": float("nan"), "n": 0}
    idx = torch.cat(index_all).numpy()
    probs = task_probabilities({t: torch.cat(v) for t, v in logits_all.items()})
    out = {"loss": total / n_loss if n_loss else float("nan"), "n": n}
    out.update(taxonomy_metrics(probs, {t: targets[t][idx] for t in TASKS}))
    return out


# ------------------------------------------------------------------ data for a config
def _limited(df, limit: int | None, seed: int):
    """At most ``limit`` rows, a seeded random sample in protocol order (so every class can appear)."""
    if limit is None or len(df) <= limit:
        return df
    out = df.sample(n=limit, random_state=seed).sort_index().reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


class _Data:
    """Datasets and the batch -> model-input function of one run (waveforms or W2V2 features)."""

    def __init__(self, config: TrainConfig, classes: list[int] | None, device: str, metrics_log=None):
        c = config
        self.train_df = _limited(read_protocol(c.protocol_dir, c.train_subset, class_column=c.class_column), c.limit, c.seed)
        fakes = self.train_df[self.train_df["is_fake"].astype(bool)] if "is_fake" in self.train_df.columns else self.train_df.iloc[:0]
        if (c.class_column == "label" and len(fakes) and "extra" in fakes.columns and (fakes["label"] < 0).all()
                and fakes["extra"].astype(str).str.contains('"class_id"').any()):
            raise ValueError(f"{self.train_df.attrs.get('source_path')}: no fake row has an ST label, but the rows carry "
                             "extra.class_id (an MLAAD-style release): train with class_column: class_id (--class-column class_id)")
        if c.class_column == "class_id" and not (self.train_df["label"] >= CLASS_ID_BASE).any():
            raise ValueError(f"{self.train_df.attrs.get('source_path')}: class_column 'class_id' but no fake row has "
                             "extra.class_id (the MLAAD reader writes it; ST protocols use class_column 'label')")
        taxonomy = c.model == "taxonomy"
        if classes is not None:
            self.classes = list(classes)
        elif taxonomy:  # kept for reference only: the taxonomy model does not use ST labels
            self.classes = sorted(int(x) for x in pd.unique(self.train_df["label"]) if int(x) >= 0)
        else:
            self.classes = default_classes(self.train_df)
        self.dev_df = None
        if c.dev_subset and protocol_path(c.protocol_dir, c.dev_subset).exists():
            self.dev_df = _limited(read_protocol(c.protocol_dir, c.dev_subset, class_column=c.class_column), c.limit, c.seed)
        else:
            log.warning("no dev protocol %s: best.pt will track the training loss",
                        protocol_path(c.protocol_dir, c.dev_subset or "<none>"))
        common = dict(num_samples=c.num_samples, sample_rate=c.sample_rate, seed=c.seed)
        self.train = AudioDataset(self.train_df, self.classes, random_crop=c.random_crop, rawboost=c.rawboost,
                                  name=f"{c.train_subset}", **common)
        self.dev = AudioDataset(self.dev_df, self.classes, name=f"{c.dev_subset}", **common) if self.dev_df is not None else None
        for ds in (self.train, self.dev):
            if ds is not None and not taxonomy:
                outside = sorted({lab for lab, t in zip(ds.labels, ds.targets) if t < 0})
                if outside:
                    log.warning("%s: rows with labels %s are not among classes %s and are left out", ds.name, outside, self.classes)
        if len(self.train) == 0:
            raise ValueError(f"no usable training rows in {protocol_path(c.protocol_dir, c.train_subset)}")
        # per-task targets by dataset position (taxonomy model): every kept row, ST label or not
        self.train_targets = self.dev_targets = None
        if taxonomy:
            self.train_targets = {t: v[self.train.rows] for t, v in task_targets(self.train_df).items()}
            if self.dev is not None:
                self.dev_targets = {t: v[self.dev.rows] for t, v in task_targets(self.dev_df).items()}
        self.train_set, self.dev_set = self.train, self.dev
        self.frontend = None
        self.ssl_dim = None
        self.inputs: Callable[[dict], torch.Tensor] = lambda b: b["wav"]
        if c.uses_frozen_w2v2:
            self._setup_w2v2(c, device, metrics_log)

    def sampler(self, c: TrainConfig, epoch: int):
        """The taxonomy-balanced sampler of ``epoch``, or None (plain seeded shuffle)."""
        if self.train_targets is None or c.balance == "none":
            return None
        return TaxonomyBalancedSampler(self.train_targets["bin"] == BIN_SPOOF, self.train_targets[c.balance],
                                       seed=c.seed, epoch=epoch)

    def _setup_w2v2(self, c: TrainConfig, device: str, metrics_log) -> None:
        from .features import CachedFeatureDataset, FeatureCache, cache_identity, ensure_features, load_frontend

        fe = load_frontend(c.w2v2_model, c.w2v2_layer, c.w2v2_normalize, device)
        self.frontend, self.ssl_dim = fe, fe.hidden_size
        if c.random_crop or c.rawboost:
            log.warning("random_crop or rawboost with a frozen W2V2 front end: features change every epoch, so the "
                        "feature cache is off and the front end runs on every batch")
            self.inputs = lambda b: fe(b["wav"].to(device))
            return
        cache = FeatureCache(c.cache_dir, cache_identity(fe, sample_rate=c.sample_rate, num_samples=c.num_samples),
                             dtype=c.feature_dtype, shard_size=c.cache_shard_size)
        frames = fe.num_frames(c.num_samples)
        for name in ("train", "dev"):
            ds = getattr(self, name)
            if ds is None:
                continue
            stats = ensure_features(fe, cache, ds, batch_size=c.eval_batch_size or c.batch_size, device=device,
                                    num_workers=c.num_workers, progress=c.progress)
            if metrics_log:
                metrics_log({"type": "features", "subset": name, **stats})
            setattr(self, f"{name}_set", CachedFeatureDataset(ds, cache, frames, fe.hidden_size))
        self.cache = cache
        self.inputs = lambda b: b["feat"]


# ------------------------------------------------------------------ logging
class _Metrics:
    def __init__(self, run_dir: Path, keep_epochs_below: int, tensorboard: bool):
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"
        records = []
        if self.jsonl.exists():  # resume: drop records of epochs the checkpoint does not have
            for line in self.jsonl.read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    if r.get("epoch", 0) <= keep_epochs_below:
                        records.append(r)
        self.records = records
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in self.records))
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tensorboard"))
            except Exception as exc:  # noqa: BLE001 - optional
                log.warning("tensorboard logging off (%s)", exc)

    def __call__(self, record: dict) -> None:
        self.records.append(record)
        with open(self.jsonl, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if record.get("type") == "epoch":
            import pandas as pd

            pd.DataFrame([r for r in self.records if r.get("type") == "epoch"]).to_csv(self.csv, index=False)
            if self.tb is not None:
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k not in ("epoch", "type"):
                        self.tb.add_scalar(k, v, record["epoch"])
                self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# ------------------------------------------------------------------ the loop
def open_run_dir(c: TrainConfig) -> tuple[Path, Path, Path, dict | None]:
    """``(run_dir, last.pt, best.pt, checkpoint or None)`` for a run about to start or resume.

    Refuses a run folder that already holds ``last.pt`` without ``resume`` and a checkpoint of
    another model; the caller checks what else its model must match."""
    if not c.protocol_dir:
        raise ValueError("protocol_dir is not set")
    run_dir = c.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if c.device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {c.device!r} requested but CUDA is not available")
    ck = None
    if last_path.exists():
        if not c.resume:
            raise FileExistsError(f"{run_dir} already holds a run (last.pt); pass resume=True (--resume) or use a new --out")
        ck = load_checkpoint(last_path, c.device)
        if ck["model_name"] != c.model:
            raise ValueError(f"{last_path}: checkpoint is a {ck['model_name']} run, config asks for {c.model}")
    elif c.resume:
        log.warning("resume requested but %s has no last.pt: starting a fresh run", run_dir)
    return run_dir, last_path, best_path, ck


def train(config: TrainConfig) -> Path:
    """Train ``config.model`` on ``<protocol_dir>/subsets/<train_subset>.parquet``; return the run directory.

    With ``resume=True`` and an existing ``last.pt`` the run continues after its last epoch
    (model, optimizer, scheduler, counters, best metric restored); without ``resume`` a run
    directory that already holds ``last.pt`` is refused rather than overwritten.
    """
    c = config
    if c.model == "refd":  # two stages, its own loop (train.refd_trainer)
        from .refd_trainer import train_refd

        return train_refd(c)
    run_dir, last_path, best_path, ck = open_run_dir(c)
    device = c.device
    if ck and c.model == "taxonomy" and ck.get("variant") != c.variant:
        raise ValueError(f"{last_path}: checkpoint is a taxonomy {ck.get('variant')} run, config asks for {c.variant}")

    # absolute paths in the stored config, so that predict() works from any working directory
    c = c.replace(protocol_dir=str(Path(c.protocol_dir).resolve()), out_dir=str(run_dir.resolve()))
    if c.uses_frozen_w2v2:
        c = c.replace(feature_cache_dir=str(Path(c.feature_cache_dir or run_dir / "feature_cache").resolve()))
    if c.uses_w2v2:
        if Path(c.w2v2_model).expanduser().is_dir():
            c = c.replace(w2v2_model=str(Path(c.w2v2_model).expanduser().resolve()))
    start_epoch = int(ck["epoch"]) if ck else 0
    metrics = _Metrics(run_dir, start_epoch, c.tensorboard)
    classes = ck["classes"] if ck else (list(c.classes) if c.classes is not None else None)
    data = _Data(c, classes, device, metrics)
    classes = data.classes
    c = c.replace(classes=classes)
    c.save_json(run_dir / "config.json")
    n_classes = len(classes)
    taxonomy = c.model == "taxonomy"

    seed_everything(c.seed)
    model = model_for(c, n_classes, data.ssl_dim).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=c.lr, betas=c.betas, eps=c.eps, weight_decay=c.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=c.lr_step_epochs, gamma=c.lr_gamma)
    step, best_metric, best_epoch = 0, math.inf, 0
    if ck:
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        step, best_metric, best_epoch = int(ck["step"]), float(ck["best_metric"]), int(ck["best_epoch"])
        log.info("resuming %s after epoch %d (step %d)", run_dir, start_epoch, step)

    def checkpoint(epoch_done: int) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "model_name": c.model, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch_done,
            "step": step, "best_metric": best_metric, "best_epoch": best_epoch, "metric_name": "dev_loss",
            "config": c.portable_dict(run_dir), "classes": list(classes), "embedding_dim": int(model.embedding_dim),
            "ssl_dim": data.ssl_dim, "ncst_version": NCST_VERSION,
            **({"variant": c.variant, "tasks": list(model.tasks), "frontend": c.frontend_kind} if taxonomy else {}),
        }

    eval_bs = c.eval_batch_size or c.batch_size
    pin = device.startswith("cuda")
    for epoch in range(start_epoch, c.epochs):
        t0 = time.time()
        seed_everything(epoch_seed(c.seed, epoch))
        data.train.set_epoch(epoch)
        loader = make_loader(data.train_set, batch_size=c.batch_size, shuffle=True, seed=c.seed, epoch=epoch,
                             num_workers=c.num_workers, pin_memory=pin, sampler=data.sampler(c, epoch))
        n_steps = len(loader) if c.max_steps_per_epoch is None else min(len(loader), c.max_steps_per_epoch)
        it = loader
        if c.progress:
            from tqdm.auto import tqdm

            it = tqdm(loader, total=n_steps, desc=f"epoch {epoch + 1}/{c.epochs}", leave=False)
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        loss_sum, correct, seen, done = 0.0, 0, 0, 0
        task_sums = {t: [0.0, 0] for t in (model.tasks if taxonomy else ())}
        for batch in it:
            if done >= n_steps:
                break
            done += 1
            # the taxonomy model learns from every decodable row; the ST classifiers from rows of their classes
            keep = batch["ok"] if taxonomy else batch["ok"] & (batch["target"] >= 0)
            if not keep.any():
                continue
            x = data.inputs(batch)
            x = x[keep.to(x.device)].to(device, non_blocking=pin)
            logits, _ = model(x)
            if taxonomy:
                idx = batch["index"][keep].numpy()
                tg = {t: torch.from_numpy(data.train_targets[t][idx]).to(device) for t in model.tasks}
                loss, parts = model.criterion(model.split(logits), tg)
                if loss is None:  # no known target on any task in this batch
                    continue
                n_items = int(idx.size)
                for t, (lt, nt) in parts.items():
                    if lt is not None:
                        task_sums[t][0] += float(lt.detach()) * nt
                        task_sums[t][1] += nt
            else:
                y = batch["target"][keep].to(device, non_blocking=pin)
                loss = F.cross_entropy(logits, y)
                n_items = int(y.numel())
                correct += int((logits.detach().argmax(1) == y).sum())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bl = float(loss.detach())
            loss_sum += bl * n_items
            seen += n_items
            if c.progress:
                it.set_postfix(loss=f"{bl:.4f}")
            if c.log_every and step % c.log_every == 0:
                metrics({"type": "step", "epoch": epoch + 1, "step": step, "loss": bl, "lr": lr})
        scheduler.step()
        train_loss = loss_sum / seen if seen else float("nan")
        record = {"type": "epoch", "epoch": epoch + 1, "step": step, "lr": lr, "train_loss": train_loss, "train_n": seen}
        if taxonomy:
            record.update({f"train_loss_{t}": (a / b if b else float("nan")) for t, (a, b) in task_sums.items()})
            record.update({f"task_weight_{t}": float(w) for t, w in zip(model.tasks, model.criterion.task_weights().detach().cpu())})
        else:
            record["train_acc"] = correct / seen if seen else float("nan")
        if data.dev_set is not None:
            dev_loader = make_loader(data.dev_set, batch_size=eval_bs, shuffle=False, num_workers=c.num_workers, pin_memory=pin)
            if taxonomy:
                dev = evaluate_taxonomy(model, dev_loader, data.inputs, device, data.dev_targets)
            else:
                dev = evaluate(model, dev_loader, data.inputs, device, n_classes)
            record.update({f"dev_{k}": v for k, v in dev.items()})
            metric = dev["loss"]
        else:
            metric = train_loss
        improved = metric < best_metric
        if improved:
            best_metric, best_epoch = metric, epoch + 1
        record.update(best=improved, best_metric=best_metric, best_epoch=best_epoch, time_s=round(time.time() - t0, 3))
        state = checkpoint(epoch + 1)
        _atomic_torch_save(state, last_path)
        if improved:
            _atomic_torch_save(state, best_path)
        metrics(record)
        log.info("epoch %d: %s", epoch + 1, {k: v for k, v in record.items() if k != "type"})
    metrics.close()
    return run_dir
