"""Training and evaluation data: protocol rows -> fixed-length 16 kHz waveforms.

A protocol file is a manifest of kind ``protocol`` at ``<protocol_dir>/subsets/<subset>.parquet``
(``path`` column absolute once read, ST ``label`` 0..11, -1 for non-ST spoofs). Only ``status == "ok"`` rows are used.

Classes are ST labels by default (``class_column="label"``). A release whose fake systems are not ST
codecs (MLAAD: every fake has label -1 and its system's index in ``extra["class_id"]``) is read with
``class_column="class_id"``: fakes of a known system get label ``CLASS_ID_BASE + class_id``, reals
keep 0, fakes of systems absent from training get -1 (see :func:`apply_class_column`).

Each item is decoded with soundfile (channels averaged), resampled to 16 kHz with soxr and cut to
its FIRST ``num_samples`` samples (ST-Codecfake does this in training too), or repeat-padded
(tiled) when shorter. ``random_crop=True`` takes a random window instead (training only), drawn
from a generator seeded by ``(seed, epoch, index)`` so that runs, workers and resumes agree.
``rawboost=5`` (training only) distorts each item with RawBoost (:mod:`train.rawboost`) after the
crop and before repeat-padding, from a generator seeded the same way.

Taxonomy training draws its epochs with :class:`TaxonomyBalancedSampler` (half real, half spoof,
the spoof half split equally over the classes of one taxonomy column), see
:func:`taxonomy_balanced_indices`.

Bad files: the dataset checks every file's header at construction (``soundfile.info``, cheap);
rows whose file is missing or unreadable are dropped with ONE warning listing them (kept in
``dataset.dropped`` as ``(utt_id, path, error)``). A file that passes the header check but fails
to decode later is returned as a zero waveform with ``ok = False`` and a warning naming the file;
the trainer leaves such items out of the loss and :func:`train.predict.predict` leaves them out
of its output, so one bad file never stops an epoch.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import soundfile as sf
import soxr
import torch
from torch.utils.data import Dataset

from manifests import protocol_subset_path, read_manifest

log = logging.getLogger(__name__)

NUM_SAMPLES = 64600
SAMPLE_RATE = 16000
CLASS_COLUMNS = ("label", "class_id")
# class_id classes sit above every ST label (0..11), so a table or a checkpoint can never read one
# as the other (class_id 0 would otherwise be label 1, Mimi).
CLASS_ID_BASE = 1000


# ---------------------------------------------------------------- protocol rows
def protocol_path(protocol_dir: str | os.PathLike, subset: str) -> Path:
    """``<protocol_dir>/subsets/<subset>.parquet`` (or an older folder's ``<subset>.parquet``)."""
    return protocol_subset_path(protocol_dir, subset)


def _class_id(extra) -> int | None:
    try:
        value = json.loads(extra).get("class_id") if isinstance(extra, str) and extra else None
    except (ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def apply_class_column(df: pd.DataFrame, class_column: str = "label") -> pd.DataFrame:
    """``df`` with ``label`` holding the class each row trains and scores as.

    ``"label"``: unchanged (ST labels). ``"class_id"``: reals (``is_fake`` False) 0, fakes with an
    integer ``extra["class_id"]`` ``CLASS_ID_BASE + class_id``, other fakes -1 (an unseen system);
    the manifest's label is kept in ``st_label``. Depends only on ``is_fake`` and ``extra``, so
    applying it twice changes nothing.
    """
    if class_column not in CLASS_COLUMNS:
        raise ValueError(f"class_column must be one of {CLASS_COLUMNS}, got {class_column!r}")
    if class_column == "label":
        return df
    where = df.attrs.get("source_path", "protocol frame")
    for col in ("is_fake", "extra"):
        if col not in df.columns:
            raise ValueError(f"{where}: class_column 'class_id' needs column {col!r}")
    out = df.copy()
    ids = [_class_id(e) for e in out["extra"]]
    fake = out["is_fake"].astype(bool).to_numpy()
    if "st_label" not in out.columns:
        out["st_label"] = out["label"]
    out["label"] = [0 if not f else (-1 if i is None else CLASS_ID_BASE + i) for i, f in zip(ids, fake)]
    out.attrs = dict(df.attrs)
    return out


def read_protocol(protocol_dir: str | os.PathLike, subset: str, *, limit: int | None = None,
                  class_column: str = "label") -> pd.DataFrame:
    """The ``status == "ok"`` rows of ``<protocol_dir>/subsets/<subset>.parquet`` (first ``limit``
    rows if set), labelled by ``class_column`` (:func:`apply_class_column`)."""
    path = protocol_path(protocol_dir, subset)
    if not path.exists():
        raise FileNotFoundError(f"protocol file not found: {path} (run `ncst protocol` first)")
    df = read_manifest(path)
    for col in ("utt_id", "path", "label", "status"):
        if col not in df.columns:
            raise ValueError(f"{path}: missing column {col!r}")
    df = df[df["status"] == "ok"].reset_index(drop=True)
    if limit is not None:
        df = df.iloc[:limit].reset_index(drop=True)
    df.attrs["source_path"] = str(path)
    return apply_class_column(df, class_column)


def default_classes(train_df: pd.DataFrame) -> list[int]:
    """ST labels present in the training rows, sorted (ID training: [0, 1, ..., 6])."""
    labels = sorted(int(x) for x in pd.unique(train_df["label"]) if int(x) >= 0)
    if not labels:
        where = train_df.attrs.get("source_path", "the training protocol")
        raise ValueError(f"{where}: no rows with a class label (>= 0); a release whose fakes are not ST "
                         "codecs (MLAAD) trains with class_column: class_id")
    return labels


# ---------------------------------------------------------------- audio
def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate``: shape ``(samples,)``."""
    wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    wav = wav.mean(axis=1)
    if sr != sample_rate:
        wav = soxr.resample(wav, sr, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(wav, dtype=np.float32)


def fit_length(
    wav: np.ndarray, num_samples: int = NUM_SAMPLES, *, random_crop: bool = False, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Cut ``wav (samples,)`` to ``num_samples`` or repeat-pad it (tile, then cut).

    Longer input: the first ``num_samples`` (or, with ``random_crop``, a window starting at a
    uniform offset in ``[0, len - num_samples]``). Shorter input: the signal repeated end to end.
    Empty input gives zeros. Output ``(num_samples,)`` float32.
    """
    n = wav.shape[0]
    if n == 0:
        return np.zeros(num_samples, dtype=np.float32)
    if n >= num_samples:
        start = 0
        if random_crop and n > num_samples:
            rng = rng or np.random.default_rng()
            start = int(rng.integers(0, n - num_samples + 1))
        return np.ascontiguousarray(wav[start : start + num_samples], dtype=np.float32)
    reps = -(-num_samples // n)
    return np.tile(wav, reps)[:num_samples].astype(np.float32, copy=False)


def file_key(path: str, sha256: str | None = None) -> str:
    """Identity of an audio file's content: its sha256 when known, else size + mtime."""
    if sha256:
        return f"sha256:{sha256}"
    st = os.stat(path)
    return f"stat:{st.st_size}:{st.st_mtime_ns}"


def _check_one(path: str) -> str | None:
    try:
        if not os.path.exists(path):
            raise FileNotFoundError("file not found")
        if sf.info(path).frames == 0:
            raise ValueError("no audio frames")
    except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
        return f"{type(exc).__name__}: {exc}"
    return None


def check_files(paths: Sequence[str], threads: int = 8) -> list[tuple[int, str]]:
    """``(position, error)`` for every path whose header soundfile cannot read (I/O-bound: threads)."""
    if len(paths) < 64:
        errors = [_check_one(p) for p in paths]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads) as pool:
            errors = list(pool.map(_check_one, paths, chunksize=64))
    return [(i, e) for i, e in enumerate(errors) if e is not None]


# ---------------------------------------------------------------- dataset
@dataclass
class Item:
    """What the dataset returns; collated into a dict of tensors by :func:`collate`."""

    wav: np.ndarray  # (num_samples,) float32
    label: int  # ST label
    target: int  # index in classes, -1 if the label is not a class
    index: int  # position in the dataset
    ok: bool


class AudioDataset(Dataset):
    """Fixed-length waveforms of protocol rows. ``__getitem__`` -> dict with ``wav (num_samples,)``
    float32, ``label`` (ST label), ``target`` (class index or -1), ``index``, ``ok``.

    ``dataset.utt_ids`` / ``labels`` / ``keys`` follow the kept rows; ``dropped`` lists rows whose
    files failed the header check.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        classes: Sequence[int],
        *,
        num_samples: int = NUM_SAMPLES,
        sample_rate: int = SAMPLE_RATE,
        random_crop: bool = False,
        seed: int = 0,
        check: bool = True,
        name: str = "",
        rawboost: int = 0,
    ):
        self.name = name or str(df.attrs.get("source_path", "<frame>"))
        paths = [str(p) for p in df["path"]]
        utt_ids = [str(u) for u in df["utt_id"]]
        labels = [int(x) for x in df["label"]]
        shas = list(df["sha256"]) if "sha256" in df.columns else [None] * len(df)
        self.dropped: list[tuple[str, str, str]] = []
        keep = np.ones(len(paths), dtype=bool)
        if check:
            for i, err in check_files(paths):
                keep[i] = False
                self.dropped.append((utt_ids[i], paths[i], err))
            if self.dropped:
                listing = "\n".join(f"  {u}: {p}: {e}" for u, p, e in self.dropped[:50])
                more = f"\n  ... and {len(self.dropped) - 50} more" if len(self.dropped) > 50 else ""
                log.warning("%s: dropped %d unreadable file(s):\n%s%s", self.name, len(self.dropped), listing, more)
        self.rows = np.flatnonzero(keep)  # positions of the kept rows in ``df``
        self.paths = [p for p, k in zip(paths, keep) if k]
        self.utt_ids = [u for u, k in zip(utt_ids, keep) if k]
        self.labels = [x for x, k in zip(labels, keep) if k]
        self._shas = [s if isinstance(s, str) and s else None for s, k in zip(shas, keep) if k]
        self.classes = [int(c) for c in classes]
        index_of = {c: i for i, c in enumerate(self.classes)}
        self.targets = [index_of.get(x, -1) for x in self.labels]
        self.num_samples = int(num_samples)
        self.sample_rate = int(sample_rate)
        self.random_crop = bool(random_crop)
        from .rawboost import check_algo

        self.rawboost = check_algo(rawboost)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Seeds random crops; call before building the epoch's iterator (workers copy it)."""
        self.epoch = int(epoch)

    def content_key(self, i: int) -> str:
        """``path|sha256 or size+mtime`` of item ``i`` (the feature cache's per-file identity)."""
        return f"{self.paths[i]}|{file_key(self.paths[i], self._shas[i])}"

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> tuple[np.ndarray, bool]:
        try:
            wav = load_audio(self.paths[i], self.sample_rate)
        except Exception as exc:  # noqa: BLE001 - reported, the epoch goes on
            log.warning("%s: cannot decode %s (%s: %s); item %d returned as zeros, ok=False",
                        self.name, self.paths[i], type(exc).__name__, exc, i)
            return np.zeros(self.num_samples, dtype=np.float32), False
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.random_crop else None
        if self.rawboost:
            from .rawboost import rawboost

            # crop first (cheaper than boosting a long file), boost, then repeat-pad
            if wav.shape[0] > self.num_samples:
                wav = fit_length(wav, self.num_samples, random_crop=self.random_crop, rng=rng)
            boost_rng = np.random.default_rng([self.seed, self.epoch, i, 5])
            wav = rawboost(wav, self.sample_rate, self.rawboost, boost_rng)
        return fit_length(wav, self.num_samples, random_crop=self.random_crop, rng=rng), True

    def __getitem__(self, i: int) -> dict:
        wav, ok = self.load(i)
        return {
            "wav": torch.from_numpy(wav),
            "label": self.labels[i],
            "target": self.targets[i],
            "index": i,
            "ok": ok,
        }


def collate(items: list[dict]) -> dict:
    """Stack items: ``wav (B, num_samples)``, ``label``/``target``/``index`` (B,) int64, ``ok`` (B,) bool.

    Items may carry ``feat (frames, dim)`` instead of ``wav`` (cached W2V2 features).
    """
    out = {
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "target": torch.tensor([it["target"] for it in items], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        "ok": torch.tensor([bool(it["ok"]) for it in items], dtype=torch.bool),
    }
    for key in ("wav", "feat"):
        if key in items[0]:
            out[key] = torch.stack([it[key] for it in items])
    return out


def make_loader(dataset: Dataset, *, batch_size: int, shuffle: bool, seed: int = 0, epoch: int = 0,
                num_workers: int = 0, pin_memory: bool = False,
                sampler: torch.utils.data.Sampler | None = None) -> torch.utils.data.DataLoader:
    """A DataLoader whose shuffle order depends only on ``(seed, epoch)`` (exact resumes).

    ``sampler`` (e.g. a :class:`TaxonomyBalancedSampler`) replaces the shuffle when given."""
    gen = torch.Generator()
    gen.manual_seed(int(seed) * 100003 + int(epoch))
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        generator=gen,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=False,
        persistent_workers=False,
    )


# ---------------------------------------------------------------- taxonomy-balanced sampling
def _cycled(pool: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` items of ``pool``: whole random permutations end to end, so every item is drawn once
    before any is drawn twice."""
    if k <= 0 or len(pool) == 0:
        return np.zeros(0, dtype=np.int64)
    reps = -(-k // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:k].astype(np.int64)


def taxonomy_balanced_indices(is_fake: Sequence[bool], group: Sequence[int], num_samples: int,
                              rng: np.random.Generator) -> np.ndarray:
    """``num_samples`` dataset positions: half real rows, half spoof rows, the spoof half split
    equally over the known classes of ``group`` (a taxonomy target per row, -1 = unknown).

    - Spoofs whose group is unknown keep their natural share of the spoof half
      (``n_unknown / n_spoof``), so they are used without taking a class's place; the rest of the
      half is split equally over the classes present (a remainder of r draws goes one each to r
      classes picked at random).
    - With no real rows (or no spoof rows) the other side takes all draws.
    - Within each class rows are drawn as whole permutations (every row once before any twice).

    The result is shuffled. Deterministic given ``rng``.
    """
    fake = np.asarray(is_fake, dtype=bool)
    group = np.asarray(group, dtype=np.int64)
    if fake.shape != group.shape:
        raise ValueError(f"is_fake {fake.shape} and group {group.shape} differ in shape")
    if len(fake) == 0:
        raise ValueError("no rows to sample from")
    real_pool = np.flatnonzero(~fake)
    spoof = np.flatnonzero(fake)
    n = int(num_samples)
    if len(real_pool) == 0:
        n_real = 0
    elif len(spoof) == 0:
        n_real = n
    else:
        n_real = n // 2
    n_spoof = n - n_real
    picks = [_cycled(real_pool, n_real, rng)]
    if n_spoof:
        unknown = spoof[group[spoof] < 0]
        classes = sorted(set(group[spoof][group[spoof] >= 0].tolist()))
        n_unknown = int(round(n_spoof * len(unknown) / len(spoof))) if classes else n_spoof
        picks.append(_cycled(unknown, n_unknown, rng))
        if classes:
            left = n_spoof - n_unknown
            share = np.full(len(classes), left // len(classes), dtype=np.int64)
            share[rng.permutation(len(classes))[: left % len(classes)]] += 1
            for c, k in zip(classes, share):
                picks.append(_cycled(spoof[group[spoof] == c], int(k), rng))
    out = np.concatenate(picks)
    return out[rng.permutation(len(out))]


class TaxonomyBalancedSampler(torch.utils.data.Sampler):
    """Indices of one epoch from :func:`taxonomy_balanced_indices`, seeded by ``(seed, epoch)``
    (exact resumes). ``num_samples`` defaults to the dataset's length."""

    def __init__(self, is_fake: Sequence[bool], group: Sequence[int], *, seed: int = 0, epoch: int = 0,
                 num_samples: int | None = None):
        self.is_fake = np.asarray(is_fake, dtype=bool)
        self.group = np.asarray(group, dtype=np.int64)
        self.num_samples = int(num_samples) if num_samples is not None else len(self.is_fake)
        self.indices = taxonomy_balanced_indices(self.is_fake, self.group, self.num_samples,
                                                 np.random.default_rng([int(seed), int(epoch), 20]))

    def __iter__(self):
        return iter(self.indices.tolist())

    def __len__(self) -> int:
        return len(self.indices)
