"""A study's settings: :class:`StudyConfig` (what :func:`train.study.run_study` reads), the models
it studies (:class:`ModelRef`) and :func:`load_study_config`, the recipe's ``study:`` section with
paths taken from the recipe's folder. Kept apart from the runner so the CLI and tests can build and
check a config without loading the study's tables and plots."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from manifests.recipe_schema import check_keys, check_sections

from .data import CLASS_COLUMNS
from .metrics import EER_CONVENTIONS
from .ood import ALL_DETECTORS, DETECTOR_NAMES
from .paper_tables import TABLE6_COLUMNS
from .tables import DEFAULT_ALM_BACKENDS

SUBSETS = ("train", "dev", "eval_id", "eval_unseen", "eval_ood", "unseen_real", "diff_config", "diff_source", "ood_config",
           "ood_other", "alm", "cors")
# Allowed keys of the study: section (checked with JSON Schema by manifests.recipe_schema): a new
# key is one more name here.
STUDY_KEYS = {
    "models", "protocol_dir", "detectors", "output", "title", "checkpoint", "batch_size", "device",
    "num_workers", "knn_k", "chunk_size", "max_fit_rows", "seed", "embedding_map", "alm_backends", "alm_columns",
    "dataset_card", "plots", "fit_subset", "eer", "class_column", "fusion_w",
}


@dataclass(frozen=True)
class ModelRef:
    """A trained run to study: display ``name`` and ``path`` (run dir or checkpoint file)."""

    name: str
    path: Path


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study needs. Paths are absolute once built by :func:`load_study_config`."""

    models: tuple[ModelRef, ...]
    protocol_dir: Path
    output: Path
    detectors: tuple[str, ...] = DETECTOR_NAMES
    title: str = "ncst study"
    checkpoint: str = "best.pt"  # file inside a run dir; ignored when a ModelRef points at a file
    batch_size: int = 32
    device: str = "cpu"
    num_workers: int = 0
    knn_k: int = 7
    chunk_size: int = 1024
    max_fit_rows: int | None = None  # seeded subsample of the fit subset (None: all rows)
    fit_subset: str = "train"
    seed: int = 0
    embedding_map: str = "pca"  # pca | tsne
    alm_backends: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_ALM_BACKENDS))
    # ALM condition -> the paper's Table 6 column it fills (beyond the built-in names), e.g. a
    # labelled stand-in set; every mapping is noted under Table 6.
    alm_columns: Mapping[str, str] = field(default_factory=dict)
    dataset_card: Path | None = None
    plots: bool = True
    eer: str = "interpolated"  # interpolated | anchor (see train.metrics); anchor: MSP in float32 too
    # how rows are labelled: label (ST) | class_id (MLAAD-style releases); every studied model must
    # have been trained with the same (train.data.apply_class_column)
    class_column: str = "label"
    fusion_w: float = 0.5  # weight w of the opt-in ``fusion`` detector (train.ood.FusionDetector)

    def __post_init__(self):
        bad = {k: v for k, v in dict(self.alm_columns).items() if v not in {c for c, _ in TABLE6_COLUMNS}}
        if bad:
            raise ValueError(f"alm_columns: {bad} name no Table 6 column; expected some of {[c for c, _ in TABLE6_COLUMNS]}")
        if self.eer not in EER_CONVENTIONS:
            raise ValueError(f"eer must be one of {EER_CONVENTIONS}, got {self.eer!r}")
        unknown = [d for d in self.detectors if d not in ALL_DETECTORS]
        if unknown:
            raise ValueError(f"unknown OOD detectors {unknown}; expected some of {ALL_DETECTORS}")
        if not 0.0 <= self.fusion_w <= 1.0:
            raise ValueError(f"fusion_w must be in [0, 1], got {self.fusion_w}")
        if self.embedding_map not in ("pca", "tsne"):
            raise ValueError(f"embedding_map must be 'pca' or 'tsne', got {self.embedding_map!r}")
        if self.class_column not in CLASS_COLUMNS:
            raise ValueError(f"class_column must be one of {CLASS_COLUMNS}, got {self.class_column!r}")
        if self.fit_subset not in SUBSETS:
            raise ValueError(f"fit_subset must be one of {SUBSETS}, got {self.fit_subset!r}")
        if self.max_fit_rows is not None and self.max_fit_rows < 1:
            raise ValueError(f"max_fit_rows must be >= 1 or null, got {self.max_fit_rows}")


# ----------------------------------------------------------------------------- recipe


def _resolve(base: Path, p: str | os.PathLike) -> Path:
    p = Path(os.path.expanduser(str(p)))
    return (p if p.is_absolute() else base / p).resolve()


def _run_dirs(runs_root: Path) -> list[Path]:
    if not runs_root.is_dir():
        return []
    return sorted(d for d in runs_root.iterdir() if d.is_dir() and any((d / f).exists() for f in ("best.pt", "last.pt")))


def load_study_config(recipe: str | os.PathLike, **overrides: Any) -> StudyConfig:
    """Build a :class:`StudyConfig` from a recipe YAML's ``study:`` section (+ ``overrides``).

    Relative paths (``output_dir``, ``protocol_dir``, ``output``, model paths) are taken from the
    recipe file's folder. A model given by name is ``<output_dir>/runs/<name>``; no ``models``
    means every run dir under ``<output_dir>/runs/``.
    """
    import yaml

    recipe = Path(recipe)
    if not recipe.is_file():
        raise FileNotFoundError(f"recipe not found: {recipe}")
    data = yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{recipe}: a recipe must be a mapping, got {type(data).__name__}")
    check_sections(data, str(recipe))
    base = recipe.resolve().parent
    output_dir = _resolve(base, data.get("output_dir", "."))
    sec = data.get("study") or {}
    if not isinstance(sec, dict):
        raise ValueError(f"{recipe}: 'study' must be a mapping")
    sec = {**sec, **{k: v for k, v in overrides.items() if v is not None}}
    check_keys(sec, STUDY_KEYS, str(recipe), "study")

    models: list[ModelRef] = []
    entries = sec.get("models")
    if isinstance(entries, (str, dict)):
        entries = [entries]
    for entry in entries or []:
        if isinstance(entry, dict):
            if "path" not in entry and "name" not in entry:
                raise ValueError(f"{recipe}: study.models entry {entry!r} needs 'name' or 'path'")
            name = str(entry.get("name") or Path(entry["path"]).name)
            raw = entry.get("path") or name
        else:
            raw = str(entry)
            name = Path(raw).name if raw not in (".", "") else "model"
        cand = _resolve(base, raw)
        path = cand if cand.exists() else (output_dir / "runs" / raw).resolve()
        if path.is_file():  # a checkpoint: name it after its run dir
            name = name if isinstance(entry, dict) and entry.get("name") else f"{path.parent.name}/{path.stem}"
        models.append(ModelRef(name, path))
    if not entries:
        models = [ModelRef(d.name, d) for d in _run_dirs(output_dir / "runs")]
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"{recipe}: study.models names repeat: {names}")

    detectors = sec.get("detectors") or DETECTOR_NAMES
    if isinstance(detectors, str):
        detectors = [detectors]
    kwargs = {k: sec[k] for k in ("checkpoint", "batch_size", "device", "num_workers", "knn_k", "chunk_size",
                                   "max_fit_rows", "seed", "embedding_map", "plots", "fit_subset", "eer",
                                   "class_column", "fusion_w") if k in sec}
    if "alm_backends" in sec:
        kwargs["alm_backends"] = {str(k).lower(): int(v) for k, v in (sec["alm_backends"] or {}).items()}
    if "alm_columns" in sec:
        kwargs["alm_columns"] = {str(k).lower(): str(v) for k, v in (sec["alm_columns"] or {}).items()}
    if "eer" in sec:
        kwargs["eer"] = str(sec["eer"]).lower()
    try:
        return StudyConfig(
            models=tuple(models),
            protocol_dir=_resolve(base, sec["protocol_dir"]) if sec.get("protocol_dir") else output_dir / "protocol",
            output=_resolve(base, sec["output"]) if sec.get("output") else output_dir / "study",
            detectors=tuple(str(d).lower() for d in detectors),
            title=str(sec.get("title") or data.get("name") or "ncst study"),
            dataset_card=_resolve(base, sec["dataset_card"]) if sec.get("dataset_card") else None,
            **kwargs,
        )
    except ValueError as exc:
        raise ValueError(f"{recipe}: study: {exc}") from exc
