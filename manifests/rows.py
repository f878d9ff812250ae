"""Building manifest rows: defaults for real/external audio and the fields every row carries."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
from typing import Any, Mapping

from .schema import COLUMN_NAMES, NO_LABEL

try:
    from importlib.metadata import version as _version

    NCST_VERSION = _version("ncst")
except Exception:  # running from a source tree that is not installed
    NCST_VERSION = "0+unknown"


def now_utc() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def real_row(
    *,
    utt_id: str,
    corpus: str,
    path: str,
    speaker: str = "",
    language: str = "",
    split: str = "",
    text: str | None = None,
    extra: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict:
    """A source-manifest row for bona fide audio (label 0). Audio facts go in ``fields``."""
    row = dict(
        utt_id=utt_id,
        source_utt_id=utt_id,
        corpus=corpus,
        speaker=speaker,
        language=language,
        split=split,
        text=text,
        path=path,
        sample_rate=None,
        num_samples=None,
        duration_s=None,
        sha256=None,
        is_fake=False,
        label=0,
        label_name="real",
        domain="real",
        codec="",
        variant="",
        codec_sample_rate=None,
        bitrate_kbps=None,
        n_codebooks=None,
        vq="real",
        aux="real",
        decoder="real",
        weights_id="",
        status="ok",
        error="",
        extra=json.dumps(dict(extra or {}), sort_keys=True, ensure_ascii=False),
        ncst_version=NCST_VERSION,
        created_at=now_utc(),
    )
    row.update(fields)
    return row


def external_spoof_row(*, attack: str, **kwargs: Any) -> dict:
    """A source row for spoofed audio from outside the ST classes (an ASVspoof attack, an ALM output)."""
    row = real_row(**kwargs)
    row.update(
        is_fake=True,
        label=NO_LABEL,
        label_name=attack,
        domain="external",
        vq="unknown",
        aux="unknown",
        decoder="unknown",
    )
    return row


def failed(row: dict, error: str) -> dict:
    """A copy of ``row`` marked failed with ``error`` (the run goes on; nothing is lost)."""
    out = dict(row)
    out.update(status="failed", error=error)
    return out


def ordered(row: Mapping[str, Any]) -> dict:
    """Row with columns in schema order (missing ones raise KeyError naming the column)."""
    return {name: row[name] for name in COLUMN_NAMES}
