"""Machinery shared by the release readers: root checks, label files, ST codec facts, protocol output.

A release reader returns a *protocol* frame (manifest columns + ``subset`` + ``condition``, ``path``
absolute): every file the release lists or holds becomes one row; a missing file, an unknown label
or an audio file no label file mentions is a failed row whose ``error`` names the label file and
line. ``df.attrs["warnings"]`` holds what was found where release and README disagree.
:func:`write_release_protocol` writes it exactly like the protocol builder
(``<output_dir>/protocol/subsets/<subset>.parquet``, ``README.md`` + ``summary.csv`` + ``protocol.json``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from manifests import SUBSETS_DIR, clear_stale_subsets, to_frame, write_manifest, write_protocol_card
from manifests.schema import ST_LABELS
from pipeline.corpora.common import (
    AUDIO_EXTENSIONS,
    CorpusError,
    Pending,
    dedupe_ids,
    map_rows,
    read_pending,
    read_text_file,
)
from pipeline.corpora.ncssd import subset_language

ARCHIVE_SUFFIXES = (".zip", ".7z", ".tar", ".tar.gz", ".tgz", ".rar")
STUDY_SUBSETS = ("train", "dev", "eval_id", "eval_ood", "unseen_real", "diff_config", "diff_source", "ood_config", "alm")

# ALM -> ST label of its codec back end (ST-Codecfake's Table 6 reading).
ALM_BACKENDS = {"moshi": 1, "speechgpt-gen": 2, "valle": 4, "mini-omni": 6}

# Fallback when the codec catalog cannot be loaded: ST label -> (codec, variant id, vq, aux, decoder).
# tests/test_releases.py checks that it agrees with codec_wrappers.catalog.
ST_CODECS = {
    1: ("Mimi", "mimi_24k_8q", "MVQ", "semantic", "time"),
    2: ("SpeechTokenizer", "speechtokenizer_16k", "MVQ", "semantic", "time"),
    3: ("FunCodec", "funcodec_16k_ds320_time", "MVQ", "none", "time"),
    4: ("EnCodec", "encodec_24k_6kbps", "MVQ", "none", "time"),
    5: ("FACodec", "facodec_16k", "MVQ", "disentangle", "time"),
    6: ("SNAC", "snac_24k", "MVQ", "none", "time"),
    7: ("WavTokenizer", "wavtokenizer_24k_75tps", "SVQ", "none", "frequency"),
    8: ("AcademiCodec (HiFi-Codec)", "hificodec_24k_320d", "MVQ", "none", "time"),
    9: ("DAC", "dac_44k", "MVQ", "none", "time"),
    10: ("AudioDec", "audiodec_24k_320d", "MVQ", "none", "frequency"),
    11: ("SoundStream", "soundstream_16k_4kbps", "MVQ", "none", "time"),
}


# Robustness-set name -> (catalog variant, ST label), used when the catalog cannot be loaded (the
# catalog's ``condition`` field is the reference; tests/test_releases.py checks that they agree).
CONFIG_VARIANTS = {
    "C3-1": ("funcodec_16k_ds640_3kbps", 3),
    "C3-2": ("funcodec_16k_ds640_6kbps", 3),
    "C3-3": ("funcodec_16k_ds640_8kbps", 3),
    "C3-4": ("funcodec_16k_ds320_libritts", 3),
    "C4-1": ("encodec_24k_3kbps", 4),
    "C4-2": ("encodec_24k_12kbps", 4),
    "C4-3": ("encodec_24k_24kbps", 4),
    "wavtokenizer_small40": ("wavtokenizer_24k_40tps", 7),
}

# NCSSD utterance as ST-Codecfake names it: <subset>_<turn>_<speaker 0|1>_d<dialogue>, e.g.
# R-EN_6_0_d195; resynthesised and ALM files put one tag in front (mimi_R-ZH_0_0_d2289).
_NCSSD_RE = re.compile(r"(?:^|_)(?P<subset>[RC]-[A-Z]{2})_(?P<turn>\d+)_(?P<speaker>\d+)_d(?P<dialog>[^_]+)$")
_VCTK_RE = re.compile(r"^(?P<speaker>[ps]\d+)_")


class ReleaseError(CorpusError):
    """A release root that cannot be read (missing, incomplete, or still packed)."""


def codec_facts(label: int, variant_id: str | None = None) -> dict:
    """Row fields of ST class ``label`` (1..11): codec, variant, taxonomy, rate, bitrate, codebooks.

    From the codec catalog (``variant_id`` if given, else the class's protocol variant); the
    :data:`ST_CODECS` table when the catalog is not importable.
    """
    try:
        from codec_wrappers.catalog import get_variant, st_variant

        v = get_variant(variant_id) if variant_id else st_variant(label)
        return dict(codec=v.codec, variant=v.id, vq=v.taxonomy.vq, aux=v.taxonomy.aux, decoder=v.taxonomy.decoder,
                    codec_sample_rate=v.sample_rate, bitrate_kbps=v.bitrate_kbps, n_codebooks=v.n_codebooks)
    except Exception:  # noqa: BLE001 - catalog absent or variant unknown: the table below
        codec, vid, vq, aux, dec = ST_CODECS[label]
        return dict(codec=codec, variant=variant_id or vid, vq=vq, aux=aux, decoder=dec)


def config_variant(condition: str, label: int | None = None) -> str | None:
    """Catalog variant whose ``condition`` is ``condition`` (``C3-1``, ``wavtokenizer_small40``) and,
    if ``label`` is given, whose ST class is ``label``; None if there is not exactly one.

    From the codec catalog; :data:`CONFIG_VARIANTS` when the catalog is not importable.
    """
    try:
        from codec_wrappers.catalog import load_catalog

        found = [(v.id, v.st_label) for v in load_catalog().values() if v.condition == condition]
    except Exception:  # noqa: BLE001 - catalog absent: the table above
        found = [CONFIG_VARIANTS[condition]] if condition in CONFIG_VARIANTS else []
    found = [vid for vid, st in found if label is None or st == label]
    return found[0] if len(found) == 1 else None


def fake_fields(label: int, variant_id: str | None = None) -> dict:
    """Fields turning a ``real_row`` into a fake row of ST class ``label``."""
    domain = "id" if label <= 6 else "ood"
    return dict(is_fake=True, label=label, label_name=ST_LABELS[label], domain=domain, **codec_facts(label, variant_id))


def archives_in(root: Path) -> list[Path]:
    """Archive files (zip, split zip parts, 7z, tar) in ``root`` and its immediate sub-folders."""
    out = []
    for folder in [root, *sorted(d for d in root.iterdir() if d.is_dir())]:
        for f in folder.iterdir():
            name = f.name.lower()
            if f.is_file() and (name.endswith(ARCHIVE_SUFFIXES) or _split_part(name)):
                out.append(f)
    return sorted(out)


def _split_part(name: str) -> bool:
    """``x.z01``, ``x.zip.001``, ``x.7z.001`` style parts of a split archive."""
    stem, _, ext = name.rpartition(".")
    return bool(stem) and ((ext[:1] == "z" and ext[1:].isdigit()) or (ext.isdigit() and stem.endswith((".zip", ".7z"))))


def require(root: Path, release: str, needed: Iterable[str], unpack_hint: str) -> None:
    """Raise :class:`ReleaseError` naming every missing folder/file of ``needed`` and any archives."""
    missing = [n for n in needed if not (root / n).exists()]
    if not missing:
        return
    packed = archives_in(root)
    msg = f"{release}: {root} is incomplete: missing {', '.join(missing)}."
    if packed:
        shown = ", ".join(p.relative_to(root).as_posix() for p in packed[:8])
        more = f" (+{len(packed) - 8} more)" if len(packed) > 8 else ""
        msg += f" It still holds archives ({shown}{more}): unpack them first. {unpack_hint}"
    else:
        msg += f" Download the missing parts. {unpack_hint}"
    raise ReleaseError(msg)


def strip_audio_suffix(name: str) -> str:
    """``name`` less a real audio suffix (``.wav``, ``.flac``, ...); dotted names such as
    ``p225_001_SemantiCodec_0.35kbps_16k`` stay whole (``Path.stem`` would cut them at the dot)."""
    lower = name.lower()
    for ext in AUDIO_EXTENSIONS:
        if lower.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return name


def listed_audio(folder: Path, name: str, extensions: Iterable[str] = (".wav",)) -> Path:
    """The audio file a label line names: ``name`` itself when it carries an audio suffix, else the
    first of ``name + ext`` (``extensions`` in order) that exists, else ``name`` + the first one."""
    if strip_audio_suffix(name) != name:
        return folder / name
    candidates = [folder / f"{name}{ext}" for ext in extensions]
    return next((c for c in candidates if c.is_file()), candidates[0])


def label_lines(path: Path) -> list[tuple[int, list[str]]]:
    """``(line number, whitespace-separated fields)`` of a label file, blank lines skipped."""
    out = []
    for n, line in enumerate(read_text_file(path).splitlines(), start=1):
        parts = line.split()
        if parts:
            out.append((n, parts))
    return out


def speaker_language(stem: str) -> tuple[str, str]:
    """Speaker and language of a VCTK (``p225_001``, ``s5_180``) or AISHELL-3 (``SSB00050353``) utterance id."""
    if stem.startswith("SSB") and len(stem) >= 7:
        return stem[:7], "zh"
    m = _VCTK_RE.match(stem)
    if m:
        return m.group("speaker"), "en"
    return "", ""


def utterance_of(stem: str, tagged: bool) -> tuple[str, str, str]:
    """``(source utterance, speaker, language)`` a release file name carries; ``''`` where it carries none.

    ``tagged``: the name starts with one ``<tag>_`` field (codec, ALM or set name: ``mimi_``,
    ``valle_``, ``C3-1_``, ``L1_``) in front of the source utterance. NCSSD utterances
    (``R-EN_6_0_d195``) give the speaker id of :mod:`pipeline.corpora.ncssd`
    (``<subset>_d<dialogue>_<speaker>``) and the subset's language; VCTK and AISHELL-3 ids give
    theirs (:func:`speaker_language`).
    """
    m = _NCSSD_RE.search(stem)
    if m and (m.start() == 0 or tagged):
        source = stem[m.start():].lstrip("_")
        speaker = f"{m.group('subset')}_d{m.group('dialog')}_{m.group('speaker')}"
        return source, speaker, subset_language(m.group("subset"))
    source = stem.split("_", 1)[1] if tagged and "_" in stem else ("" if tagged else stem)
    speaker, language = speaker_language(source)
    return (source if speaker else ""), speaker, language


@dataclass
class Rows:
    """Pending rows with their protocol subset/condition, plus warnings."""

    pending: list[Pending] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, row: dict, audio: Path, subset: str, condition: str, error: str = "") -> None:
        self.pending.append(Pending(dict(row, subset=subset, condition=condition), audio, error))

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def finish_release(rows: Rows, release: str, num_jobs: int = 1) -> pd.DataFrame:
    """Probe every pending file; the protocol frame with ``attrs`` warnings and release name."""
    done = map_rows(read_pending, rows.pending, num_jobs)
    done = dedupe_ids(done)
    df = to_frame(done, "protocol")
    if len(df):
        for col in ("sample_rate", "num_samples"):
            df[col] = df[col].astype("Int64")
        df["duration_s"] = df["duration_s"].astype("float64")
        df["label"] = df["label"].astype("int16")
    df.attrs["warnings"] = list(rows.warnings)
    df.attrs["corpus"] = release
    df.attrs["release"] = release
    return df


def counts(df: pd.DataFrame) -> pd.DataFrame:
    """Rows per subset x condition x label: ok and failed (what ``ncst ingest`` prints)."""
    if not len(df):
        return pd.DataFrame(columns=["subset", "condition", "label", "label_name", "ok", "failed"])
    g = df.assign(ok=df["status"] == "ok", failed=df["status"] != "ok")
    table = g.groupby(["subset", "condition", "label", "label_name"], sort=False)[["ok", "failed"]].sum().reset_index()
    order = {s: i for i, s in enumerate(STUDY_SUBSETS)}
    table["_o"] = table["subset"].map(order).fillna(len(order))
    return table.sort_values(["_o", "subset", "condition", "label"], kind="stable").drop(columns="_o").reset_index(drop=True)


def write_release_protocol(df: pd.DataFrame, output_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``<output_dir>/protocol/subsets/<subset>.parquet`` (ok rows), ``README.md``, ``summary.csv``, ``protocol.json``.

    Same files and columns as :func:`pipeline.protocol.build_protocol`, so ``ncst train
    --protocol-dir`` and ``ncst study`` read them unchanged. Failed rows go to
    ``protocol/failed.parquet`` (not a study subset) so nothing is lost.
    """
    from pipeline.protocol import summarize_protocol

    pdir = Path(output_dir).resolve() / "protocol"
    pdir.mkdir(parents=True, exist_ok=True)
    ok = df[df["status"] == "ok"]
    written: dict[str, Path] = {}
    subsets: dict[str, pd.DataFrame] = {}
    names = sorted(set(ok["subset"]), key=lambda s: (STUDY_SUBSETS.index(s) if s in STUDY_SUBSETS else 99, s))
    clear_stale_subsets(pdir, names)
    for name in names:
        part = ok[ok["subset"] == name].sort_values(["condition", "label", "utt_id"], kind="stable").reset_index(drop=True)
        subsets[name] = part
        written[name] = write_manifest(part, pdir / SUBSETS_DIR / f"{name}.parquet", kind="protocol")
    write_protocol_card(subsets, pdir, title=f"ncst protocol: {df.attrs.get('release', 'release')}")
    bad = df[df["status"] != "ok"]
    if len(bad):
        written["failed"] = write_manifest(bad.reset_index(drop=True), pdir / "failed.parquet", kind="protocol")
    summarize_protocol(subsets).to_csv(pdir / "summary.csv", index=False)
    info: dict[str, Any] = {
        "release": df.attrs.get("release", ""),
        "rows": {k: len(v) for k, v in subsets.items()},
        "failed_rows": int(len(bad)),
        "warnings": list(df.attrs.get("warnings", [])),
    }
    (pdir / "protocol.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    written["summary"] = pdir / "summary.csv"
    return written
