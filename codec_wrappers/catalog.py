"""The variant catalog: ``catalog.yaml`` plus entries contributed by plugins.

Sources, in order (a duplicate id is an error that names both sources):

1. ``codec_wrappers/catalog.yaml`` (the built-in variants);
2. every module behind an ``ncst.codecs`` entry point that defines ``catalog_entries()``
   returning a list of dicts with the catalog.yaml fields;
3. every YAML file named in ``$NCST_CATALOG_PATH`` (``os.pathsep``-separated files or folders of
   ``*.yaml``), each with a top-level ``variants:`` list: local variants without a package.

``load_catalog()`` is cached per value of ``$NCST_CATALOG_PATH``; :func:`clear_cache` drops it.
"""
from __future__ import annotations

import difflib
import functools
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from codec_wrappers.base import Taxonomy, Variant

CATALOG_FILE = Path(__file__).with_name("catalog.yaml")
ENTRY_POINT_GROUP = "ncst.codecs"
CATALOG_PATH_ENV = "NCST_CATALOG_PATH"

VQ_VALUES = ("MVQ", "SVQ", "SQ")
AUX_VALUES = ("none", "semantic", "disentangle")
DECODER_VALUES = ("time", "frequency")
ST_ROLES = ("id", "ood", "diff_config", "ood_config", "extra")
_REQUIRED = ("id", "family", "codec", "sample_rate", "bitrate_kbps", "n_codebooks", "taxonomy", "st_role")


class CatalogError(ValueError):
    """A catalog entry that cannot be used; the message names the source and the entry."""


def parse_variant(entry: Mapping[str, Any], source: str = "<dict>") -> Variant:
    """Validate one catalog entry (a dict with the catalog.yaml fields) and build its :class:`Variant`."""
    where = f"{source}: variant {entry.get('id', '<no id>')!r}"
    if not isinstance(entry, Mapping):
        raise CatalogError(f"{source}: catalog entry must be a mapping, got {type(entry).__name__}")
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise CatalogError(f"{where}: missing field(s) {', '.join(missing)}")
    known = set(Variant.__dataclass_fields__)
    unknown = sorted(set(entry) - known)
    if unknown:
        raise CatalogError(f"{where}: unknown field(s) {', '.join(unknown)}")
    tax = entry["taxonomy"]
    if not isinstance(tax, Mapping) or set(tax) != {"vq", "aux", "decoder"}:
        raise CatalogError(f"{where}: taxonomy must have exactly vq, aux, decoder")
    for key, allowed in (("vq", VQ_VALUES), ("aux", AUX_VALUES), ("decoder", DECODER_VALUES)):
        if tax[key] not in allowed:
            raise CatalogError(f"{where}: taxonomy.{key}={tax[key]!r} not in {allowed}")
    if entry["st_role"] not in ST_ROLES:
        raise CatalogError(f"{where}: st_role={entry['st_role']!r} not in {ST_ROLES}")
    label = entry.get("st_label")
    if label is not None and (not isinstance(label, int) or not 1 <= label <= 11):
        raise CatalogError(f"{where}: st_label must be 1..11 or null, got {label!r}")
    if entry["st_role"] in ("id", "ood", "diff_config", "ood_config") and label is None:
        raise CatalogError(f"{where}: st_role {entry['st_role']!r} needs an st_label")
    try:
        sample_rate = int(entry["sample_rate"])
        bitrate = float(entry["bitrate_kbps"])
        n_codebooks = int(entry["n_codebooks"])
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"{where}: bad number ({exc})") from None
    if sample_rate <= 0 or bitrate <= 0 or n_codebooks <= 0:
        raise CatalogError(f"{where}: sample_rate, bitrate_kbps and n_codebooks must be positive")
    return Variant(
        id=str(entry["id"]),
        family=str(entry["family"]),
        codec=str(entry["codec"]),
        sample_rate=sample_rate,
        bitrate_kbps=bitrate,
        n_codebooks=n_codebooks,
        taxonomy=Taxonomy(vq=tax["vq"], aux=tax["aux"], decoder=tax["decoder"]),
        st_label=label,
        st_role=str(entry["st_role"]),
        condition=str(entry.get("condition") or ""),
        checkpoint=dict(entry.get("checkpoint") or {}),
        options=dict(entry.get("options") or {}),
        notes=str(entry.get("notes") or "").strip(),
        native=bool(entry.get("native", False)),
    )


def _read_yaml(path: Path) -> list[Mapping[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: cannot read catalog ({exc})") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("variants"), list):
        raise CatalogError(f"{path}: a catalog file needs a top-level 'variants:' list")
    return data["variants"]


def _extra_yaml_files(env_value: str) -> list[Path]:
    files: list[Path] = []
    for part in filter(None, env_value.split(os.pathsep)):
        path = Path(part).expanduser()
        if path.is_dir():
            files.extend(sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")))
        elif path.is_file():
            files.append(path)
        else:
            raise CatalogError(f"{CATALOG_PATH_ENV} names {path}, which does not exist")
    return files


def plugin_entry_points() -> list[Any]:
    """The installed ``ncst.codecs`` entry points (name = family, value = ``module:load_codec``)."""
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def _plugin_entries() -> Iterable[tuple[str, Mapping[str, Any]]]:
    import importlib

    for ep in plugin_entry_points():
        module_name = ep.value.split(":", 1)[0].strip()
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # a broken plugin must not hide the built-in catalog
            raise CatalogError(f"codec plugin {ep.name!r} ({ep.value}): cannot import ({exc})") from exc
        fn = getattr(module, "catalog_entries", None)
        if fn is None:
            continue
        for entry in fn():
            yield f"plugin {ep.name!r} ({module_name}.catalog_entries)", entry


@functools.lru_cache(maxsize=8)
def _load(env_value: str) -> dict[str, Variant]:
    catalog: dict[str, Variant] = {}
    sources: dict[str, str] = {}

    def add(source: str, entry: Mapping[str, Any]) -> None:
        variant = parse_variant(entry, source)
        if variant.id in catalog:
            raise CatalogError(
                f"duplicate variant id {variant.id!r}: in {sources[variant.id]} and in {source}"
            )
        catalog[variant.id] = variant
        sources[variant.id] = source

    for entry in _read_yaml(CATALOG_FILE):
        add(str(CATALOG_FILE), entry)
    for source, entry in _plugin_entries():
        add(source, entry)
    for path in _extra_yaml_files(env_value):
        for entry in _read_yaml(path):
            add(str(path), entry)
    return catalog


def load_catalog() -> dict[str, Variant]:
    """All variants by id (built-in, plugins, ``$NCST_CATALOG_PATH``); cached. Do not mutate."""
    return _load(os.environ.get(CATALOG_PATH_ENV, ""))


def clear_cache() -> None:
    """Forget the cached catalog (after installing a plugin or changing files)."""
    _load.cache_clear()


def get_variant(variant_id: str) -> Variant:
    """The variant called ``variant_id``; ``KeyError`` naming the closest ids when there is none."""
    catalog = load_catalog()
    try:
        return catalog[variant_id]
    except KeyError:
        close = difflib.get_close_matches(variant_id, catalog, n=5, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown codec variant {variant_id!r}{hint} (`ncst codecs` lists all)") from None


def variants_by(st_role: str | None = None, family: str | None = None) -> list[Variant]:
    """Variants filtered by ST role and/or family, in catalog order."""
    if st_role is not None and st_role not in ST_ROLES:
        raise ValueError(f"st_role {st_role!r} not in {ST_ROLES}")
    return [
        v
        for v in load_catalog().values()
        if (st_role is None or v.st_role == st_role) and (family is None or v.family == family)
    ]


def st_variant(label: int) -> Variant:
    """The protocol variant (st_role id or ood) of ST-Codecfake class ``label`` (1..11)."""
    found = [v for v in load_catalog().values() if v.st_label == label and v.st_role in ("id", "ood")]
    if len(found) != 1:
        raise CatalogError(f"ST label {label}: expected one id/ood variant, found {[v.id for v in found]}")
    return found[0]
