"""Recipe files: what to generate, written once as YAML and re-run as often as needed.

A recipe is a mapping with a ``name``, an ``output_dir`` (relative paths are taken from the recipe
file's folder) and one section per stage. This module reads the top level and the ``generate:``
section; ``protocol:``, ``train:`` and ``study:`` belong to their own stages and are ignored here.

    name: demo
    output_dir: ../runs/demo
    generate:
      sources: [../data/manifests/vctk.parquet]      # source manifests (relative to this file)
      variants:
        - encodec_24k_6kbps                           # a catalog id ...
        - {id: mimi_24k_8q, batch_size: 64, num_gpus: 0.5, concurrency: [1, 4]}   # ... or a dict
        - {id: dac_44k, sources: [../protocol/sources/eval.parquet]}   # its own source manifests
        - {id: facodec_16k, batch_mode: masked}     # GPU: one forward per batch (exact up to rounding)
      weights: null          # null = official files; "random:<seed>" = seeded random (flagged)
      audio_format: flac     # flac | wav
      sample_rate: native    # "native" (the codec's rate) or an integer, e.g. 16000
      seed: 0
      batch_size: 16         # items per predictor call
      max_batch_seconds: null  # padded audio per forward pass (length bucketing); null = on a GPU, what
                               # fits in half its free memory (probed once per predictor, at most 320 s);
                               # on CPU one item per forward (faster there, see bench/README.md)
      precision: fp32        # fp32 | bf16 | bf16_fp32vq (autocast; faster on recent GPUs, changes the
                             # output and flips codes; bf16_fp32vq keeps the quantisers in fp32 and
                             # flips fewer; recorded in each row's extra; see bench precision)
      num_threads: null      # torch intra-op threads per predictor (null = torch's / Ray's default:
                             # a Ray actor gets its num_cpus)
      io_threads: null       # local executor: threads that decode and write around the model
                             # (null = half the cores, 1..8; 0 = decode, model, write in turn)
      split_io: auto         # decode / write in their own Ray stages: auto (= when GPUs) | true | false
      shard_rows: 256        # manifest rows per parquet shard (resume granularity)
      executor: ray          # ray | local (in-process, no Ray); recorded in each row's extra with
                             # num_threads, and resume redoes rows made another way
      max_item_seconds: 600  # longer sources fail at plan time ("too long: 4200 s > 600 s") before any
                             # model runs; null = no bound
      min_item_seconds: 0.02 # shorter sources (or shorter than one codec frame) fail at plan time
      chunk_seconds: null    # chunked mode (opt-in): longer sources run as chunks of this length that
      chunk_overlap_seconds: 0.5  # overlap by this much, cross-faded with linear ramps; marked in extra
      allow_outside_root: false  # source rows whose path leaves their manifest's root (../x, /abs/x) fail
      verify_sources: false  # hash each source and fail "source changed since ingest" on a mismatch
      verify: false          # resume re-hashes finished files (false: checks each file's size only)
      address: null          # Ray cluster address; null = start Ray on this machine
      node_ip: null          # Ray node IP of the driver; null = Ray's default
      num_cpus: null         # logical CPUs of a local Ray (null = the machine's)
      temp_dir: null         # Ray temp dir of a local Ray (null = Ray's default)

Every mistake raises :class:`RecipeError` naming the file, the key and what is wrong.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from codec_wrappers.precision import PRECISIONS
from manifests.recipe_schema import check_keys, check_sections

AUDIO_FORMATS = ("flac", "wav")
BATCH_MODES = ("exact", "masked", "padded")  # what each codec supports: Codec.batch_modes
EXECUTORS = ("ray", "local")


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class VariantSpec:
    """One codec variant of a generate section and how its actor pool runs.

    ``concurrency`` is Ray Data's: an int (fixed pool) or ``(min, max)`` (elastic pool); None
    picks a pool that leaves at least one logical CPU for the input and output stages.
    """

    id: str
    batch_size: int | None = None  # None: the section's batch_size
    num_gpus: float = 0.0
    num_cpus: float = 1.0
    concurrency: int | tuple[int, int] | None = None
    weights: str | None = None  # None: the section's weights
    # None: the section's sources. ST-Codecfake resynthesises only the eval reals through its OOD
    # and config variants, so a variant may name its own (e.g. protocol/sources/eval.parquet).
    sources: tuple[Path, ...] | None = None
    precision: str | None = None  # None: the section's precision
    # None: the codec's own ("exact", or the catalog's options.batch_mode). "masked" (FunCodec,
    # FACodec: one forward, equal to exact up to rounding) and "padded" (one plain forward of the
    # padded batch; not exact) are GPU speed options, recorded in each row's extra.
    batch_mode: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("variant id is empty")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"{self.id}: batch_size must be >= 1, got {self.batch_size}")
        if self.num_gpus < 0 or self.num_cpus < 0:
            raise ValueError(f"{self.id}: num_gpus and num_cpus must be >= 0")
        if self.num_gpus == 0 and self.num_cpus == 0:
            raise ValueError(f"{self.id}: an actor needs num_cpus > 0 or num_gpus > 0")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"{self.id}: precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.batch_mode is not None and self.batch_mode not in BATCH_MODES:
            raise ValueError(f"{self.id}: batch_mode must be one of {BATCH_MODES}, got {self.batch_mode!r}")
        c = self.concurrency
        if isinstance(c, tuple):
            if len(c) != 2 or not 1 <= c[0] <= c[1]:
                raise ValueError(f"{self.id}: concurrency (min, max) needs 1 <= min <= max, got {c}")
        elif c is not None and c < 1:
            raise ValueError(f"{self.id}: concurrency must be >= 1, got {c}")


@dataclass(frozen=True)
class GenerateConfig:
    """The ``generate:`` section, with paths resolved. See the module docstring for each key."""

    sources: tuple[Path, ...]
    variants: tuple[VariantSpec, ...]
    weights: str | None = None
    audio_format: str = "flac"
    sample_rate: str | int = "native"
    seed: int = 0
    batch_size: int = 16
    max_batch_seconds: float | None = None
    split_io: str | bool = "auto"
    shard_rows: int = 256
    executor: str = "ray"
    address: str | None = None
    node_ip: str | None = None
    num_cpus: int | None = None
    temp_dir: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    num_threads: int | None = None
    io_threads: int | None = None
    max_item_seconds: float | None = 600.0
    min_item_seconds: float = 0.02
    allow_outside_root: bool = False
    verify_sources: bool = False
    verify: bool = False  # resume: re-hash finished files (default: size check against the row)
    chunk_seconds: float | None = None
    chunk_overlap_seconds: float = 0.5

    def __post_init__(self) -> None:
        if self.max_item_seconds is not None and self.max_item_seconds <= 0:
            raise ValueError(f"max_item_seconds must be > 0 or null, got {self.max_item_seconds}")
        if self.chunk_seconds is not None and not 0 <= self.chunk_overlap_seconds < self.chunk_seconds:
            raise ValueError(f"chunk_overlap_seconds must be >= 0 and below chunk_seconds, got "
                             f"{self.chunk_overlap_seconds} with chunk_seconds {self.chunk_seconds}")
        if self.min_item_seconds < 0:
            raise ValueError(f"min_item_seconds must be >= 0, got {self.min_item_seconds}")
        if not self.sources:
            raise ValueError("sources: at least one source manifest is needed")
        if not self.variants:
            raise ValueError("variants: at least one codec variant is needed")
        ids = [v.id for v in self.variants]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"variants: listed more than once: {dup}")
        if self.audio_format not in AUDIO_FORMATS:
            raise ValueError(f"audio_format must be one of {AUDIO_FORMATS}, got {self.audio_format!r}")
        if self.sample_rate != "native" and (isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) or self.sample_rate <= 0):
            raise ValueError(f"sample_rate must be 'native' or a positive integer, got {self.sample_rate!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_batch_seconds is not None and self.max_batch_seconds <= 0:
            raise ValueError(f"max_batch_seconds must be > 0, got {self.max_batch_seconds}")
        if self.split_io not in ("auto", True, False):
            raise ValueError(f"split_io must be auto, true or false, got {self.split_io!r}")
        if self.shard_rows < 1:
            raise ValueError(f"shard_rows must be >= 1, got {self.shard_rows}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {self.executor!r}")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1 or null, got {self.num_cpus}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or null, got {self.num_threads}")
        if self.io_threads is not None and self.io_threads < 0:
            raise ValueError(f"io_threads must be >= 0 or null, got {self.io_threads}")

    def output_rate(self, codec_rate: int) -> int:
        """Sample rate of the written files for a codec running at ``codec_rate``."""
        return int(codec_rate) if self.sample_rate == "native" else int(self.sample_rate)

    def weights_for(self, spec: VariantSpec) -> str | None:
        """The weights spec of a variant: its own, else the section's (``random`` gets the seed)."""
        w = spec.weights if spec.weights is not None else self.weights
        if w is not None and str(w) == "random":
            return f"random:{self.seed}"
        return None if w is None else str(w)

    def sources_for(self, spec: VariantSpec) -> tuple[Path, ...]:
        """Source manifests of a variant: its own, else the section's."""
        return spec.sources if spec.sources else self.sources

    def batch_size_for(self, spec: VariantSpec) -> int:
        return spec.batch_size or self.batch_size

    def precision_for(self, spec: VariantSpec) -> str:
        return spec.precision or self.precision

    def io_threads_for_local(self) -> int:
        """Decode/write threads of the local executor: ``io_threads``, else half the cores (1..8)."""
        if self.io_threads is not None:
            return int(self.io_threads)
        return max(1, min(8, (os.cpu_count() or 2) // 2))

    def replace(self, **changes: Any) -> "GenerateConfig":
        """A copy with ``changes`` applied; ``None`` values are ignored (unset CLI flags)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe: its file, name, output folder, the generate section, and the raw mapping."""

    path: Path
    name: str
    output_dir: Path
    generate: GenerateConfig | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def dataset_dir(self) -> Path:
        """Where generation writes: ``<output_dir>/dataset`` (audio/, manifests/, README.md)."""
        return self.output_dir / "dataset"


# Allowed keys of the generate: section and of one variants: entry (manifests.recipe_schema checks
# them with JSON Schema): a new recipe key is one more name here.
GENERATE_KEYS = {
    "sources", "variants", "weights", "audio_format", "sample_rate", "seed", "batch_size",
    "max_batch_seconds", "split_io", "shard_rows", "executor", "address", "node_ip", "num_cpus",
    "temp_dir", "device", "precision", "num_threads", "io_threads", "max_item_seconds", "min_item_seconds",
    "allow_outside_root", "verify_sources", "chunk_seconds", "chunk_overlap_seconds",
    "verify",  # resume re-hashes finished files instead of the fast size check (issue 22 item 11)
}
VARIANT_KEYS = {"id", "batch_size", "num_gpus", "num_cpus", "concurrency", "weights", "sources", "precision", "batch_mode"}


def _resolve(base: Path, p: Any) -> Path:
    path = Path(os.path.expanduser(str(p)))
    return (path if path.is_absolute() else base / path).resolve()


def _number(where: str, key: str, value: Any, kind: type, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
        raise RecipeError(f"{where}: {key} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    return kind(value)


def _variant_spec(where: str, entry: Any, base: Path) -> VariantSpec:
    if isinstance(entry, str):
        return VariantSpec(id=entry)
    if not isinstance(entry, Mapping):
        raise RecipeError(f"{where}: a variant is a catalog id or a mapping with 'id', got {entry!r}")
    check_keys(entry, VARIANT_KEYS, where, f"variant {entry.get('id')}", RecipeError)
    if not entry.get("id"):
        raise RecipeError(f"{where}: variant entry {dict(entry)!r} needs an 'id'")
    vid = str(entry["id"])
    w = f"{where} {vid}"
    conc = entry.get("concurrency")
    if isinstance(conc, (list, tuple)):
        if len(conc) != 2:
            raise RecipeError(f"{w}: concurrency must be an integer or [min, max], got {conc!r}")
        conc = (_number(w, "concurrency", conc[0], int), _number(w, "concurrency", conc[1], int))
    elif conc is not None:
        conc = _number(w, "concurrency", conc, int)
    sources = entry.get("sources")
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if sources is not None and (not isinstance(sources, list) or not sources):
        raise RecipeError(f"{w}: sources must be a non-empty list of source manifest paths, got {sources!r}")
    try:
        return VariantSpec(
            id=vid,
            batch_size=_number(w, "batch_size", entry.get("batch_size"), int, allow_none=True),
            num_gpus=_number(w, "num_gpus", entry.get("num_gpus", 0.0), float),
            num_cpus=_number(w, "num_cpus", entry.get("num_cpus", 1.0), float),
            concurrency=conc,
            weights=None if entry.get("weights") is None else str(entry["weights"]),
            sources=None if sources is None else tuple(_resolve(base, p) for p in sources),
            precision=None if entry.get("precision") is None else str(entry["precision"]),
            batch_mode=None if entry.get("batch_mode") is None else str(entry["batch_mode"]),
        )
    except ValueError as exc:
        raise RecipeError(f"{where}: {exc}") from None


def parse_generate(section: Any, base: Path, where: str = "<recipe>") -> GenerateConfig:
    """Validate a ``generate:`` mapping; relative source paths are taken from ``base``."""
    w = f"{where}: generate"
    if not isinstance(section, Mapping):
        raise RecipeError(f"{w}: must be a mapping, got {type(section).__name__}")
    check_keys(section, GENERATE_KEYS, where, "generate", RecipeError)
    sources = section.get("sources")
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if not isinstance(sources, list) or not sources:
        raise RecipeError(f"{w}.sources: a non-empty list of source manifest paths is needed")
    variants = section.get("variants")
    if isinstance(variants, str):
        variants = [variants]
    if not isinstance(variants, list) or not variants:
        raise RecipeError(f"{w}.variants: a non-empty list of variant ids (or mappings) is needed")
    kwargs: dict[str, Any] = {
        "sources": tuple(_resolve(base, s) for s in sources),
        "variants": tuple(_variant_spec(f"{w}.variants", v, base) for v in variants),
    }
    for key in ("seed", "batch_size", "shard_rows"):
        if key in section:
            kwargs[key] = _number(w, key, section[key], int)
    for key in ("num_cpus", "num_threads", "io_threads"):
        if key in section:
            kwargs[key] = _number(w, key, section[key], int, allow_none=True)
    if "max_item_seconds" in section:
        kwargs["max_item_seconds"] = _number(w, "max_item_seconds", section["max_item_seconds"], float, allow_none=True)
    if "chunk_seconds" in section:
        kwargs["chunk_seconds"] = _number(w, "chunk_seconds", section["chunk_seconds"], float, allow_none=True)
    if "chunk_overlap_seconds" in section:
        kwargs["chunk_overlap_seconds"] = _number(w, "chunk_overlap_seconds", section["chunk_overlap_seconds"], float)
    if "min_item_seconds" in section:
        kwargs["min_item_seconds"] = _number(w, "min_item_seconds", section["min_item_seconds"], float)
    for key in ("allow_outside_root", "verify_sources", "verify"):  # verify: resume re-hashes (issue 22 item 11)
        if key in section:
            if not isinstance(section[key], bool):
                raise RecipeError(f"{w}: {key} must be true or false, got {section[key]!r}")
            kwargs[key] = section[key]
    if "max_batch_seconds" in section:
        kwargs["max_batch_seconds"] = _number(w, "max_batch_seconds", section["max_batch_seconds"], float, allow_none=True)
    if "sample_rate" in section:
        sr = section["sample_rate"]
        kwargs["sample_rate"] = sr if sr == "native" else _number(w, "sample_rate", sr, int)
    for key in ("weights", "address", "node_ip", "temp_dir"):
        if section.get(key) is not None:
            kwargs[key] = str(section[key])
    if "audio_format" in section:
        kwargs["audio_format"] = str(section["audio_format"]).lower()
    for key in ("executor", "device", "precision"):
        if key in section:
            kwargs[key] = str(section[key])
    if "split_io" in section:
        kwargs["split_io"] = section["split_io"]
    try:
        return GenerateConfig(**kwargs)
    except ValueError as exc:
        raise RecipeError(f"{w}: {exc}") from None


def read_recipe_yaml(path: str | os.PathLike, error: type[ValueError] = None) -> tuple[Mapping[str, Any], Path, Path]:
    """The top level every stage reads: ``(mapping, recipe folder, output_dir)`` (absolute paths).

    Raises ``error`` (default :class:`RecipeError`) naming the file for a missing file, bad YAML,
    a non-mapping document or a missing/invalid ``output_dir``.
    """
    error = error or RecipeError
    path = Path(path)
    if not path.is_file():
        raise error(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, Mapping):
        raise error(f"{path}: a recipe must be a mapping, got {type(data).__name__}")
    check_sections(data, str(path), error)
    base = path.resolve().parent
    out = data.get("output_dir")
    if out is None:
        raise error(f"{path}: output_dir is missing (a folder, relative to the recipe file)")
    if not isinstance(out, (str, os.PathLike)):
        raise error(f"{path}: output_dir must be a path, got {out!r}")
    return data, base, _resolve(base, out)


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read a recipe YAML: top level (``name``, ``output_dir``) and the ``generate:`` section.

    ``recipe.generate`` is None when the recipe has no ``generate:`` section.
    """
    path = Path(path)
    data, base, output_dir = read_recipe_yaml(path)
    name = data.get("name") or path.stem
    if not isinstance(name, str):
        raise RecipeError(f"{path}: name must be a string, got {name!r}")
    gen = data.get("generate")
    config = parse_generate(gen, base, where=str(path)) if gen is not None else None
    return Recipe(path=path.resolve(), name=name, output_dir=output_dir, generate=config, raw=data)
