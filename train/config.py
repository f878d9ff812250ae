"""The one training configuration: every hyperparameter of a run, with the paper's defaults.

Defaults follow ST-Codecfake (paper and repo): 16 kHz audio cut (first samples) or repeat-padded
to 64600 samples, Adam lr 5e-4 / weight decay 5e-4 / betas (0.9, 0.999) / eps 1e-8, learning
rate halved every 10 epochs, 50 epochs, batch 24, cross-entropy, seed 688, and the checkpoint
with the lowest dev loss kept as ``best.pt``. These defaults are the baselines'; other setups come
as presets (:data:`PRESETS`), e.g. ``codec_taxonomy``: the codec-taxonomy model's training as its
authors ran it (Adam lr 1e-6, weight decay 1e-4, constant lr, batch 8, 20 epochs, seed 1234,
fine-tuned XLS-R 300m last layer, RawBoost algorithm 5, AUX-balanced sampling).

A config is overridden, in this order, by a preset (``preset:`` in the recipe's ``train:`` section,
or :meth:`TrainConfig.from_preset`), by the recipe's ``train:`` section
(:func:`TrainConfig.from_recipe`) and then by explicit keyword overrides (the CLI flags), see
:meth:`TrainConfig.replace`. It is stored in every checkpoint as a plain dict
(:meth:`TrainConfig.to_dict`) so that checkpoints load with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from manifests.paths import portable_path, resolve_path

# Settings that name files; stored portably in config.json and checkpoints.
PATH_FIELDS = ("protocol_dir", "out_dir", "feature_cache_dir", "w2v2_model")

MODEL_NAMES = ("mel_lcnn", "aasist", "w2v2_aasist", "taxonomy", "refd")
REFD_BACKENDS = ("conformer", "aasist")
DEFAULT_W2V2 = "facebook/wav2vec2-xls-r-300m"
BALANCE_CHOICES = ("aux", "dec", "vq", "none")

# Named bundles of settings a recipe or caller starts from (then overrides). Documented values:
# codec_taxonomy follows the codec-taxonomy authors' train.py / train.sh (ResponsibleGenAI/
# CodecFake-Source-Tracing, w2v2_aasist_baseline): Adam(lr 1e-6, weight decay 1e-4) with no lr
# schedule (lr_gamma 1.0), batch 8, 20 epochs, seed 1234, XLS-R 300m fine-tuned and read at its
# last (24th) layer on raw, un-normalised waveforms (they call the fairseq model directly, without
# the feature extractor's normalisation), RawBoost algorithm 5, 64600 samples (first samples,
# repeat-padded), AUX-balanced epochs, M1, task weights fixed and equal.
PRESETS: dict[str, dict[str, Any]] = {
    "codec_taxonomy": dict(
        model="taxonomy", variant="M1", w2v2_finetune=True, w2v2_model=DEFAULT_W2V2, w2v2_layer=24, w2v2_normalize=False,
        lr=1e-6, weight_decay=1e-4, lr_gamma=1.0, batch_size=8, epochs=20, seed=1234, rawboost=5,
        balance="aux", learnable_task_weights=False, num_samples=64600, random_crop=False,
    ),
}


@dataclass
class TrainConfig:
    """Every setting of a training run. ``out_dir`` is the run directory."""

    # what to train, on what
    model: str = "aasist"
    protocol_dir: str = ""
    out_dir: str = ""
    train_subset: str = "train"
    dev_subset: str = "dev"
    classes: tuple[int, ...] | None = None  # ST labels, in logit order; None: labels present in train
    # what a row's class is: label (ST label) | class_id (extra.class_id, for releases whose fake
    # systems are not ST codecs, e.g. MLAAD; see train.data.apply_class_column)
    class_column: str = "label"
    # audio
    sample_rate: int = 16000
    num_samples: int = 64600
    random_crop: bool = False  # training only; evaluation always takes the first num_samples
    # optimisation
    epochs: int = 50
    batch_size: int = 24
    lr: float = 5e-4
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    lr_step_epochs: int = 10  # StepLR step size, in epochs
    lr_gamma: float = 0.5
    seed: int = 688
    # machinery
    device: str = "cpu"
    num_workers: int = 0
    eval_batch_size: int | None = None  # None: batch_size
    max_steps_per_epoch: int | None = None  # quick demo runs
    limit: int | None = None  # at most this many rows per subset, a seeded random sample (quick demo runs)
    resume: bool = False
    log_every: int = 50  # steps between "step" records in metrics.jsonl
    progress: bool = True
    tensorboard: bool = False  # used only when the tensorboard package is installed
    # W2V2-AASIST front end
    w2v2_model: str = DEFAULT_W2V2  # HF repo id (read from the local HF cache) or a local directory
    w2v2_layer: int = 5  # hidden_states index the back end reads
    w2v2_normalize: bool | None = None  # per-utterance zero mean / unit variance; None: the model's preprocessor_config
    feature_cache_dir: str | None = None  # None: <out_dir>/feature_cache
    feature_dtype: str = "float16"
    cache_shard_size: int = 1024  # utterances per cache shard file
    # augmentation (training only): RawBoost algorithm, 0 off, 1 LnL, 2 ISD, 5 LnL + ISD (train.rawboost)
    rawboost: int = 0
    # codec-taxonomy model (model="taxonomy"; see train.taxonomy)
    variant: str = "M1"  # S_BIN S_AUX S_DEC S_VQ D_AUX D_DEC D_VQ M1 M2
    w2v2_finetune: bool = False  # True: wav2vec 2.0 trained inside the model; False: frozen, feature cache
    balance: str = "aux"  # epochs half real, half spoof split equally over aux | dec | vq classes; none: plain shuffle
    learnable_task_weights: bool = False  # softmax(w) task weights trained with the model
    # REFD two-stage source tracer (model="refd"; see train.refd_trainer, train.models.refd). ``epochs``
    # is the Fake Dispersion stage's; RefdConfig fields (margins, eta, N-pair weight, Conformer size)
    # go in model_kwargs, e.g. {"conformer_layers": 2}
    refd_backend: str = "conformer"  # conformer | aasist
    refd_re_epochs: int | None = None  # Real Emphasis stage epochs; None: epochs
    refd_fusion_w: float = 0.5  # score-embedding fusion weight w (0: FD softmax only, 1: prototype cosine only)
    refd_ood_tpr: float = 0.95  # dev fakes above the OOD threshold (the unknown-system decision point)
    # model-specific extras (e.g. {"dropout": 0.7} for mel_lcnn); plain JSON values only
    model_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r}; expected one of {MODEL_NAMES}")
        for name in ("num_samples", "epochs", "batch_size", "sample_rate", "lr_step_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.w2v2_layer < 1:
            raise ValueError(f"w2v2_layer must be >= 1 (hidden_states[0] is the CNN output), got {self.w2v2_layer}")
        if self.feature_dtype not in ("float16", "float32"):
            raise ValueError(f"feature_dtype must be float16 or float32, got {self.feature_dtype!r}")
        if self.rawboost not in (0, 1, 2, 5):
            raise ValueError(f"rawboost must be 0 (off), 1, 2 or 5, got {self.rawboost!r}")
        if self.balance not in BALANCE_CHOICES:
            raise ValueError(f"balance must be one of {BALANCE_CHOICES}, got {self.balance!r}")
        if self.refd_backend not in REFD_BACKENDS:
            raise ValueError(f"refd_backend must be one of {REFD_BACKENDS}, got {self.refd_backend!r}")
        if self.refd_re_epochs is not None and self.refd_re_epochs < 1:
            raise ValueError(f"refd_re_epochs must be >= 1 (or None: epochs), got {self.refd_re_epochs}")
        if not 0.0 <= self.refd_fusion_w <= 1.0:
            raise ValueError(f"refd_fusion_w must be in [0, 1], got {self.refd_fusion_w}")
        if not 0.0 < self.refd_ood_tpr < 1.0:
            raise ValueError(f"refd_ood_tpr must be in (0, 1), got {self.refd_ood_tpr}")
        if self.class_column not in ("label", "class_id"):
            raise ValueError(f"class_column must be 'label' or 'class_id', got {self.class_column!r}")
        if self.model == "taxonomy":
            from .taxonomy import VARIANTS

            if self.variant not in VARIANTS:
                raise ValueError(f"unknown taxonomy variant {self.variant!r}; expected one of {list(VARIANTS)}")
        elif self.w2v2_finetune:
            raise ValueError(f"w2v2_finetune is a taxonomy-model setting; {self.model} uses a frozen front end")
        self.betas = tuple(float(b) for b in self.betas)
        if self.classes is not None:
            self.classes = tuple(int(c) for c in self.classes)
        self.model_kwargs = dict(self.model_kwargs or {})

    # ---- derived values
    @property
    def run_dir(self) -> Path:
        if not self.out_dir:
            raise ValueError("out_dir (the run directory) is not set")
        return Path(self.out_dir)

    @property
    def uses_w2v2(self) -> bool:
        return self.model in ("w2v2_aasist", "taxonomy", "refd")

    @property
    def uses_frozen_w2v2(self) -> bool:
        """True when inputs are frozen W2V2 features (the feature cache), not waveforms."""
        return self.model in ("w2v2_aasist", "refd") or (self.model == "taxonomy" and not self.w2v2_finetune)

    @property
    def frontend_kind(self) -> str:
        """``fine-tuned`` | ``frozen`` (W2V2 models) | ``none``: what every result should say."""
        if not self.uses_w2v2:
            return "none"
        return "frozen" if self.uses_frozen_w2v2 else "fine-tuned"

    @property
    def refd_stage_epochs(self) -> tuple[int, int]:
        """(Real Emphasis, Fake Dispersion) epochs of a refd run."""
        return (self.refd_re_epochs or self.epochs, self.epochs)

    @property
    def run_name(self) -> str:
        """Default run folder name: the model, plus the variant for the taxonomy model."""
        return f"taxonomy_{self.variant}" if self.model == "taxonomy" else self.model

    @property
    def cache_dir(self) -> Path:
        return Path(self.feature_cache_dir) if self.feature_cache_dir else self.run_dir / "feature_cache"

    # ---- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of JSON/pickle-free values (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        out["classes"] = None if self.classes is None else list(self.classes)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """Build from a dict; unknown keys raise ``ValueError`` naming them."""
        from manifests.recipe_schema import check_keys

        # The train section's keys are the dataclass fields: a new setting is one new field.
        names = {f.name for f in dataclasses.fields(cls)}
        check_keys(data, names, "training settings", "train")
        return cls(**dict(data))

    def replace(self, **overrides: Any) -> "TrainConfig":
        """A copy with ``overrides`` applied; ``None`` values are ignored (unset CLI flags)."""
        data = self.to_dict()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig.from_dict(data)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "TrainConfig":
        """The preset ``name`` (:data:`PRESETS`) with ``overrides`` applied (``None`` ignored)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        return cls.from_dict(PRESETS[name]).replace(**overrides)

    @classmethod
    def from_recipe(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        """Read the ``train:`` section of a YAML recipe, then apply ``overrides``.

        Like every stage, relative paths are taken from the recipe file's folder, and defaults
        follow the recipe's ``output_dir``: ``protocol_dir`` = ``<output_dir>/protocol`` and
        ``out_dir`` = ``<output_dir>/runs/<model>`` (``runs/taxonomy_<variant>`` for the taxonomy
        model). A ``per_model:`` mapping (model name -> settings) overrides the section for one
        model, e.g. fewer epochs for the slowest. ``preset: <name>`` starts the section from a
        preset (:data:`PRESETS`): the section's own keys override it.
        """
        import yaml

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"recipe not found: {path}")
        doc = yaml.safe_load(path.read_text()) or {}
        if isinstance(doc, dict):
            from manifests.recipe_schema import check_sections

            check_sections(doc, str(path))
        section = doc.get("train", {}) if isinstance(doc, dict) else None
        if section is None:
            section = {}
        if not isinstance(section, dict):
            raise ValueError(f"{path}: the 'train:' section must be a mapping")
        section = dict(section)
        preset = section.pop("preset", None)
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(f"{path}: train.preset: unknown preset {preset!r}; known: {sorted(PRESETS)}")
            section = {**PRESETS[preset], **section}
        per_model = section.pop("per_model", None) or {}
        if not isinstance(per_model, dict):
            raise ValueError(f"{path}: train.per_model must map model names to settings")
        unknown_models = sorted(set(per_model) - set(MODEL_NAMES))
        if unknown_models:
            raise ValueError(f"{path}: train.per_model: unknown model(s) {unknown_models}; known: {list(MODEL_NAMES)}")
        model = overrides.get("model") or section.get("model") or cls.model
        section.update(per_model.get(model) or {})
        base_dir = path.resolve().parent
        output_dir = doc.get("output_dir") if isinstance(doc, dict) else None
        root = (base_dir / output_dir).resolve() if output_dir else base_dir

        def rel(value: Any) -> str:
            p = Path(str(value)).expanduser()
            return str(p if p.is_absolute() else (base_dir / p).resolve())

        for key in ("protocol_dir", "out_dir", "feature_cache_dir"):
            if section.get(key):
                section[key] = rel(section[key])
        w2v2 = section.get("w2v2_model")
        if w2v2 and (str(w2v2).startswith((".", "/", "~")) or (base_dir / str(w2v2)).exists()):
            section["w2v2_model"] = rel(w2v2)
        section.setdefault("protocol_dir", str(root / "protocol"))
        variant = overrides.get("variant") or section.get("variant") or cls.variant
        run_name = f"taxonomy_{variant}" if model == "taxonomy" else model
        section.setdefault("out_dir", str(root / "runs" / run_name))
        try:
            base = cls.from_dict(section)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: train section: {exc}") from exc
        return base.replace(**overrides)

    def save_json(self, path: str | Path) -> None:
        """Write the config, its paths portable from the file's folder (:meth:`portable_dict`)."""
        Path(path).write_text(json.dumps(self.portable_dict(Path(path).parent), indent=2, sort_keys=True) + "\n")

    def portable_dict(self, folder: str | Path) -> dict[str, Any]:
        """:meth:`to_dict` with the path settings relative to ``folder`` (``./`` or ``../`` prefix)
        when in the same tree (:mod:`manifests.paths`), so a moved run folder still finds its
        protocol, cache and front end; :meth:`from_portable_dict` reads it back."""
        out = self.to_dict()
        for key in PATH_FIELDS:
            value = out.get(key)
            if value and os.path.isabs(value):
                rel = portable_path(value, folder)
                out[key] = rel if os.path.isabs(rel) or rel.startswith("..") else f"./{rel}"
        return out

    @classmethod
    def from_portable_dict(cls, data: Mapping[str, Any], folder: str | Path) -> "TrainConfig":
        """Build from a (portable or older absolute) stored config; relative paths from ``folder``."""
        data = dict(data)
        for key in PATH_FIELDS:
            value = data.get(key)
            if isinstance(value, str) and value.startswith(("./", "../")) or value in (".", ".."):
                data[key] = resolve_path(value, folder)
        return cls.from_dict(data)
