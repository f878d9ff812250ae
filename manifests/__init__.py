"""Manifests: the parquet contract between ncst stages (imports nothing else of ncst)."""
from .atomic import atomic_path, write_bytes_atomic, write_text_atomic
from .card import card_text, clear_stale_subsets, write_card, write_protocol_card
from .io import (
    ManifestError,
    absolute_paths,
    concat_manifests,
    read_manifest,
    to_frame,
    validate_manifest,
    write_manifest,
)
from .layout import SUBSETS_DIR, protocol_subset_names, protocol_subset_path
from .paths import portable_path, resolve_path
from .rows import NCST_VERSION, external_spoof_row, failed, real_row, sha256_bytes, sha256_file
from .schema import (
    COLUMN_NAMES,
    COLUMNS,
    ID_LABELS,
    NO_LABEL,
    OOD_LABELS,
    PROTOCOL_COLUMNS,
    SCHEMA_VERSION,
    ST_LABELS,
    arrow_schema,
)
