"""Exports of ncst manifests to the formats other toolkits read: lhotse and Hugging Face datasets.

What is exported (:func:`load_for_export`): a manifest file (source, fake or protocol), a dataset
folder (its ``manifests/fake.parquet``) or a protocol folder (every subset). Only ``status == ok``
rows. The groups become lhotse manifest parts / HF splits: a protocol's subsets, else one group
named after the manifest file (``fake`` for a dataset).

Both exports carry every ncst label: lhotse as the supervision's ``custom`` fields, HF as columns
(``label`` a ``ClassLabel`` with the ST-Codecfake class names; -1, "not an ST class", is HF's
"no label" value). The manifest's ``split`` column (the source corpus's own split) is exported as
``corpus_split`` so that it cannot be mistaken for the lhotse part / HF split (the protocol subset).

- :func:`export_lhotse`: ``<out>/ncst_{recordings,supervisions,cuts}_<group>.jsonl.gz``; recordings
  reference the audio files by absolute path (lhotse's own convention for local corpora).
- :func:`export_hf`: ``<out>/data/<group>-NNNNN.parquet`` + ``<out>/README.md`` (YAML header with
  the splits); ``audio`` is an HF ``Audio`` feature holding the file bytes (``embed=True``, the
  folder is self-contained) or the absolute path (``embed=False``).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from manifests import absolute_paths, protocol_subset_names, protocol_subset_path, read_manifest
from manifests.atomic import atomic_path, write_text_atomic
from manifests.layout import hf_yaml_header
from manifests.schema import ST_LABELS

# ncst columns carried as lhotse custom fields / HF columns besides the audio itself.
LABEL_FIELDS = ("label", "label_name", "is_fake", "domain", "corpus", "codec", "variant", "vq", "aux", "decoder",
                "weights_id", "source_utt_id", "subset", "condition", "corpus_split")
HF_ROWS_PER_FILE = 1000


class ExportError(ValueError):
    """What was asked to be exported cannot be (names the file and the problem)."""


def load_for_export(source: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """``{group: ok rows}``, each with absolute ``path`` and ``corpus_split`` (the corpus's split)."""
    src = Path(source)
    if src.is_dir():
        if (src / "manifests" / "fake.parquet").is_file():
            files = {"fake": src / "manifests" / "fake.parquet"}
        else:
            names = protocol_subset_names(src)
            if not names:
                raise ExportError(f"{src}: neither a dataset folder (manifests/fake.parquet) nor a protocol folder (subsets/*.parquet)")
            files = {n: protocol_subset_path(src, n) for n in names}
    elif src.is_file():
        files = {_group_name(src.stem): src}
    else:
        raise ExportError(f"{src}: no such file or folder")
    out = {}
    for group, path in files.items():
        df = read_manifest(path)
        df = df[df["status"] == "ok"].copy()
        df["path"] = absolute_paths(df).to_numpy()
        df["corpus_split"] = df["split"]
        for col in ("subset", "condition"):
            if col not in df.columns:
                df[col] = ""
        out[group] = df.reset_index(drop=True)
    return out


def _group_name(name: str) -> str:
    clean = re.sub(r"\W+", "_", name).strip("_")
    return clean or "data"


def _custom(row) -> dict:
    out = {}
    for k in LABEL_FIELDS:
        v = getattr(row, k)
        out[k] = bool(v) if k == "is_fake" else int(v) if k == "label" else ("" if pd.isna(v) else str(v))
    return out


def export_lhotse(source: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, dict[str, Path]]:
    """Write lhotse RecordingSet, SupervisionSet and CutSet per group; returns their paths.

    Each row is one recording and one supervision spanning it (speaker, language, text from the
    manifest; ncst labels in ``custom``). Sample counts come from the audio headers, so the
    manifests pass ``lhotse.validate(..., read_data=True)``.
    """
    from lhotse import AudioSource, CutSet, MonoCut, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, dict[str, Path]] = {}
    for group, df in load_for_export(source).items():
        recs, sups = [], []
        for row in df.itertuples(index=False):
            try:
                info = sf.info(row.path)
            except Exception as exc:  # noqa: BLE001 - name the file
                raise ExportError(f"{row.path}: cannot read audio header ({exc})") from exc
            recs.append(Recording(id=row.utt_id, sources=[AudioSource(type="file", channels=list(range(info.channels)),
                                                                       source=row.path)],
                                  sampling_rate=int(info.samplerate), num_samples=int(info.frames),
                                  duration=info.frames / info.samplerate))
            sups.append(SupervisionSegment(id=row.utt_id, recording_id=row.utt_id, start=0.0,
                                           duration=info.frames / info.samplerate, channel=0,
                                           text=None if pd.isna(row.text) else row.text,
                                           language=row.language or None, speaker=row.speaker or None,
                                           custom=_custom(row)))
        recordings, supervisions = RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups)
        # one cut per file with the file's id (CutSet.from_manifests would invent new ids)
        cuts = CutSet.from_cuts(MonoCut(id=r.id, start=0.0, duration=r.duration, channel=0, recording=r, supervisions=[s])
                                for r, s in zip(recs, sups))
        paths = {kind: out_dir / f"ncst_{kind}_{group}.jsonl.gz" for kind in ("recordings", "supervisions", "cuts")}
        recordings.to_file(paths["recordings"])
        supervisions.to_file(paths["supervisions"])
        cuts.to_file(paths["cuts"])
        written[group] = paths
    return written


def hf_features():
    """The HF ``Features`` of an export (the audio column given separately by :func:`export_hf`)."""
    from datasets import Audio, ClassLabel, Features, Value

    names = [ST_LABELS[i] for i in sorted(ST_LABELS)]
    feats = {"utt_id": Value("string"), "audio": Audio(decode=True), "label": ClassLabel(names=names)}
    for k in LABEL_FIELDS:
        if k not in feats:
            feats[k] = Value("bool") if k == "is_fake" else Value("string")
    for k in ("speaker", "language", "text"):
        feats[k] = Value("string")
    feats["duration_s"] = Value("float64")
    feats["sample_rate"] = Value("int32")
    return Features(feats)


def export_hf(source: str | os.PathLike, out_dir: str | os.PathLike, *, embed: bool = True) -> Path:
    """Write a folder that ``datasets.load_dataset(out_dir)`` opens: one split per group.

    ``embed=True`` stores the audio bytes in the parquet files (self-contained, movable);
    ``embed=False`` stores absolute audio paths (small, but tied to where the audio is).
    Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for old in data_dir.glob("*.parquet"):  # a re-export must not leave a previous one's files
        old.unlink()
    features = hf_features()
    schema = features.arrow_schema
    splits, counts = [], {}
    for group, df in load_for_export(source).items():
        counts[group] = len(df)
        for n, start in enumerate(range(0, max(len(df), 1), HF_ROWS_PER_FILE)):
            part = df.iloc[start:start + HF_ROWS_PER_FILE]
            cols = {k: part[k].astype(bool).tolist() if k == "is_fake" else part[k].fillna("").astype(str).tolist()
                    for k in LABEL_FIELDS if k != "label"}
            cols["label"] = part["label"].astype(int).tolist()
            for k in ("utt_id", "speaker", "language"):
                cols[k] = part[k].astype(str).tolist()
            cols["text"] = [None if pd.isna(t) else str(t) for t in part["text"]]
            cols["duration_s"] = part["duration_s"].astype(float).tolist()
            cols["sample_rate"] = part["sample_rate"].astype(int).tolist()
            cols["audio"] = [{"bytes": Path(p).read_bytes(), "path": f"{u}{Path(p).suffix}"} if embed
                             else {"bytes": None, "path": p} for p, u in zip(part["path"], part["utt_id"])]
            # Arrow directly (Audio's storage is struct<bytes, path>): datasets' own encoder would
            # need torchcodec for audio it only has to store.
            table = pa.Table.from_pydict(cols, schema=schema)
            with atomic_path(data_dir / f"{group}-{n:05d}.parquet") as tmp:
                pq.write_table(table, tmp)
        splits.append((group, f"data/{group}-*.parquet"))
    header = hf_yaml_header(splits, pretty_name=f"ncst export of {Path(source).name}")
    body = (f"# ncst export of `{Path(source).name}`\n\nAudio {'embedded' if embed else 'referenced by absolute path'}; "
            "`label` is the ST-Codecfake class (ClassLabel; -1: not an ST class), `corpus_split` the source "
            "corpus's own split, `subset` the protocol subset (= the split here).\n\n"
            + "\n".join(f"- {g}: {n} rows" for g, n in counts.items()) + "\n")
    write_text_atomic(out_dir / "README.md", header + body)
    write_text_atomic(out_dir / "ncst_export.json", json.dumps({"source": str(Path(source).resolve()), "embed": embed,
                                                               "rows": counts}, indent=2))
    return out_dir
