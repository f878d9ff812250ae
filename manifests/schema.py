"""The manifest schema: one row per audio file, the contract every stage writes and reads.

Three kinds of manifest share these columns:
- *source* manifests (pipeline corpus readers): real or externally labelled audio;
- *fake* manifests (generation): one row per (source utterance x codec variant);
- *protocol* manifests (protocol builder): rows of the other two, assigned to a study ``subset``
  and ``condition``; their ``path`` values are absolute once read (stored relative to the file's
  folder when the audio is in the same tree, see :mod:`manifests.paths`), so one protocol can mix
  several roots.

Two kinds of split, two names: ``split`` is always the **source corpus's own** split (AISHELL-3
train/test, ASVspoof 2019 LA train/dev/eval, '' for VCTK), carried unchanged through generation
and protocols; the **protocol's** split of a row is its ``subset`` (train, dev, eval_id, ...), and
``protocol/sources/<name>.parquet`` files are named after the protocol's train/dev/eval real
splits while their rows keep the corpus's ``split``. Exports (:mod:`pipeline.export`) call the
corpus's split ``corpus_split`` so that it cannot be read as the HF split / lhotse part.

Taxonomy and labels live in columns so that training never needs the codec catalog.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = "1.0"

# Allowed values. "unknown" is for externally labelled spoofs (ASVspoof attacks, ALM outputs)
# whose codec taxonomy is not known.
VQ_VALUES = ("real", "MVQ", "SVQ", "SQ", "unknown")
AUX_VALUES = ("real", "none", "semantic", "disentangle", "unknown")
DECODER_VALUES = ("real", "time", "frequency", "unknown")
DOMAIN_VALUES = ("real", "id", "ood", "external")
STATUS_VALUES = ("ok", "failed")
KIND_VALUES = ("source", "fake", "protocol")

# ST-Codecfake labels (paper Table 2 order). -1: not an ST class (e.g. an ASVspoof attack).
ST_LABELS = {
    0: "real",
    1: "Mimi",
    2: "SpeechTokenizer",
    3: "FunCodec",
    4: "EnCodec",
    5: "FACodec",
    6: "SNAC",
    7: "WavTokenizer",
    8: "AcademiCodec",
    9: "DAC",
    10: "AudioDec",
    11: "SoundStream",
}
ID_LABELS = tuple(range(0, 7))
OOD_LABELS = tuple(range(7, 12))
NO_LABEL = -1


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    nullable: bool
    doc: str
    allowed: tuple | None = None


COLUMNS: tuple[Column, ...] = (
    Column("utt_id", pa.string(), False, "unique id of this audio file within the manifest"),
    Column("source_utt_id", pa.string(), False, "id of the real utterance it came from (== utt_id for sources)"),
    Column("corpus", pa.string(), False, "corpus of the source utterance, e.g. vctk, aishell3"),
    Column("speaker", pa.string(), False, "speaker id as the corpus spells it ('' if unknown)"),
    Column("language", pa.string(), False, "ISO 639-1 code, e.g. en, zh ('' if unknown)"),
    Column("split", pa.string(), False, "the source corpus's own split (train/test/dev/...; '' if none), never the protocol's (that is `subset`)"),
    Column("text", pa.string(), True, "transcript, if the corpus has one"),
    Column("path", pa.string(), False, "audio path, relative to the manifest root (protocols: absolute once read)"),
    Column("sample_rate", pa.int32(), True, "sample rate of the file on disk"),
    Column("num_samples", pa.int64(), True, "length in samples of the file on disk"),
    Column("duration_s", pa.float64(), True, "num_samples / sample_rate, kept for pandas convenience"),
    Column("sha256", pa.string(), True, "sha256 of the file bytes"),
    Column("is_fake", pa.bool_(), False, "True for any spoofed/resynthesised audio"),
    Column("label", pa.int16(), False, "ST-Codecfake label 0..11, -1 if not an ST class", tuple([NO_LABEL, *ST_LABELS])),
    Column("label_name", pa.string(), False, "'real', the ST codec name, or the external attack/system name"),
    Column("domain", pa.string(), False, "real | id | ood | external", DOMAIN_VALUES),
    Column("codec", pa.string(), False, "codec family display name ('' for real)"),
    Column("variant", pa.string(), False, "codec variant id from the catalog ('' for real)"),
    Column("codec_sample_rate", pa.int32(), True, "native sample rate of the codec"),
    Column("bitrate_kbps", pa.float32(), True, "codec bitrate"),
    Column("n_codebooks", pa.int16(), True, "codebooks used"),
    Column("vq", pa.string(), False, "vector quantiser taxonomy", VQ_VALUES),
    Column("aux", pa.string(), False, "auxiliary objective taxonomy", AUX_VALUES),
    Column("decoder", pa.string(), False, "decoder domain taxonomy", DECODER_VALUES),
    Column("weights_id", pa.string(), False, "'random:<seed>' or 'sha256:<...>' of the codec weights ('' for real)"),
    Column("status", pa.string(), False, "ok | failed", STATUS_VALUES),
    Column("error", pa.string(), False, "what went wrong when status == failed, else ''"),
    Column("extra", pa.string(), False, "JSON object of corpus-specific fields (accent, gender, mic, pinyin, ...)"),
    Column("ncst_version", pa.string(), False, "ncst version that wrote the row"),
    Column("created_at", pa.timestamp("s", tz="UTC"), False, "when the row was written"),
)

# Extra columns of protocol manifests.
PROTOCOL_COLUMNS: tuple[Column, ...] = (
    Column("subset", pa.string(), False, "the protocol's split (study subset; the HF split of a protocol folder): train, dev, eval_id, eval_ood, unseen_real, diff_config, diff_source, ood_config, alm, ..."),
    Column("condition", pa.string(), False, "finer condition within the subset, e.g. C3-1, NCSSD-mimi, asvspoof2019_la"),
)

COLUMN_NAMES = tuple(c.name for c in COLUMNS)
COLUMNS_BY_NAME = {c.name: c for c in COLUMNS + PROTOCOL_COLUMNS}


def arrow_schema(kind: str = "source") -> pa.Schema:
    """The pyarrow schema of a manifest of ``kind`` (protocol manifests have two more columns)."""
    if kind not in KIND_VALUES:
        raise ValueError(f"unknown manifest kind {kind!r}; expected one of {KIND_VALUES}")
    cols = COLUMNS + (PROTOCOL_COLUMNS if kind == "protocol" else ())
    return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in cols])


REAL_TAXONOMY = {"vq": "real", "aux": "real", "decoder": "real"}
