"""CodecFake+ as published (ResponsibleGenAI/CodecFake-Plus-Dataset audio; metadata of
ResponsibleGenAI/CodecFake-Source-Tracing).

Layout::

    all_data_16k/<utt>_<codec>.{flac,wav} and <utt>.{flac,wav}   CoRS (codec re-synthesis) + reals
    SLMdemos_16k/<SYSTEM>/<file>.{flac,wav}                      CoSG (codec-based speech generation systems)
    metadata/training/{train,dev,test}_mult_learn[_bal_dec|_bal_vq].txt
        <spk> <file> - <AUX> <DEC> <VQ> bonafide|spoof       (reals: REAL REAL REAL; 31 codecs)
    metadata/evaluation/CoRS_ALL.txt   <spk> <file> - - bonafide|spoof   (30 codecs: all but Encodec_24b24k)
    metadata/evaluation/CoSG_ALL.txt   <SYSTEM> <file> - [-] bonafide|spoof  (4 or 5 fields, 17 systems)
    metadata/evaluation/CoSG_SEEN.txt  <SYSTEM> <file> - <VQ|REAL> bonafide|spoof  (a subset of CoSG_ALL)

Listed names carry no suffix; like the authors' loader, ``<name>.flac`` is used when present,
else ``<name>.wav``. Codec names may hold dots (``SemantiCodec_0.35kbps_16k``): only a real audio
suffix is ever stripped from a name.

The published label ``spoofs`` (a typo in CoRS_ALL) is read as ``spoof`` with a warning.
AUX Trad/SEM/Disent -> none/semantic/disentangle, DEC TIME/FREQ -> time/frequency, VQ as is.
Codecs that are ST classes get their ST label (:data:`ST_OF_CODEC`), others label -1. A fake's
taxonomy is its line's (training lists), else the one the training lists give its codec, else
:data:`CFP_TAXONOMY` (the published taxonomy of every codec, so CoRS rows have one without
the training lists).

Subsets: train/dev/eval_id from the training lists (``balance`` picks the plain, ``bal_dec`` or
``bal_vq`` lists), ``cors`` from CoRS_ALL, ``alm`` from CoSG_ALL (condition = system). CoSG fakes
carry their system's published taxonomy (:data:`COSG_TAXONOMY`; the VQ that CoSG_SEEN publishes
wins), and every CoSG row records ``extra["cosg_seen"]`` (listed in CoSG_SEEN) and, when listed
there, ``extra["published_vq"]``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from manifests import external_spoof_row, real_row

from pipeline.corpora.common import check_root

from .common import Rows, fake_fields, finish_release, label_lines, listed_audio, require, speaker_language, strip_audio_suffix

RELEASE = "codecfake-plus"
AUX = {"trad": "none", "sem": "semantic", "disent": "disentangle"}
DEC = {"time": "time", "freq": "frequency"}
VQ = {"mvq": "MVQ", "svq": "SVQ", "sq": "SQ"}
LABELS = {"bonafide": False, "spoof": True, "spoofs": True}
# The authors' loader tries these in this order for a listed name.
LISTED_EXTENSIONS = (".flac", ".wav")
# CodecFake+ codec name -> (our catalog variant, ST label).
ST_OF_CODEC = {
    "mini": ("mimi_24k_8q", 1),
    "SpeechTokenizer_hubert_avg": ("speechtokenizer_16k", 2),
    "FunCodec_zh_en-general-16k-nq32ds320": ("funcodec_16k_ds320_time", 3),
    "FunCodec_en-libritts-16k-gr1nq32ds320": ("funcodec_16k_ds320_freq", 3),
    "Encodec_6b24k": ("encodec_24k_6kbps", 4),
    "Encodec_24b24k": ("encodec_24k_24kbps", 4),
    "FACodec_encodec-decoder-v2_16k": ("facodec_16k", 5),
    "snac_24khz": ("snac_24k", 6),
    "snac_44khz": ("snac_44k", 6),
    "wavtokenizer_small_320_24k_4096": ("wavtokenizer_24k_75tps", 7),
    "HiFi_Codec_16k_320d_large_universal": ("hificodec_16k_320d", 8),
    "DAC24": ("dac_24k", 9),
    "audiodec_24k_320d": ("audiodec_24k_320d", 10),
}
# Published (AUX, DEC, VQ) of all 31 codecs of the training lists, in our vocabulary.
CFP_TAXONOMY = {
    "mini": ("semantic", "time", "MVQ"),
    "SpeechTokenizer_hubert_avg": ("semantic", "time", "MVQ"),
    "FunCodec_zh_en-general-16k-nq32ds320": ("none", "time", "MVQ"),
    "FunCodec_en-libritts-16k-gr1nq32ds320": ("none", "frequency", "MVQ"),
    "Encodec_6b24k": ("none", "time", "MVQ"),
    "Encodec_24b24k": ("none", "time", "MVQ"),
    "FACodec_encodec-decoder-v2_16k": ("disentangle", "time", "MVQ"),
    "snac_24khz": ("none", "time", "MVQ"),
    "snac_44khz": ("none", "time", "MVQ"),
    "wavtokenizer_small_320_24k_4096": ("none", "frequency", "SVQ"),
    "HiFi_Codec_16k_320d_large_universal": ("none", "time", "MVQ"),
    "DAC24": ("none", "time", "MVQ"),
    "audiodec_24k_320d": ("none", "frequency", "MVQ"),
    "SemantiCodec_0.35kbps_16k": ("semantic", "frequency", "MVQ"),
    "SemantiCodec_0.70kbps_16k": ("semantic", "frequency", "MVQ"),
    "SemantiCodec_1.40kbps_16k": ("semantic", "frequency", "MVQ"),
    "bigcodec": ("none", "time", "SVQ"),
    "hilcodec_speech": ("none", "time", "MVQ"),
    "languagecodec": ("none", "frequency", "MVQ"),
    "llm_codec": ("semantic", "time", "MVQ"),
    "socodec_16384x4_120ms_16khz_chinese": ("disentangle", "frequency", "MVQ"),
    "spectralcodecs": ("none", "frequency", "SQ"),
    "sqcodec50dim9": ("none", "time", "SQ"),
    "ticodec_1g1r": ("disentangle", "time", "SVQ"),
    "ticodec_1g2r": ("disentangle", "time", "MVQ"),
    "ticodec_1g4r": ("disentangle", "time", "MVQ"),
    "vocos_encodec_12": ("none", "frequency", "MVQ"),
    "vocos_encodec_6": ("none", "frequency", "MVQ"),
    "wavtokenizer_medium_320_24k_4096": ("none", "frequency", "SVQ"),
    "xcodec_hubert_libirispeech": ("semantic", "time", "MVQ"),
    "xocdec_hubert_general_audio": ("semantic", "time", "MVQ"),
}
# The authors' (AUX, DEC, VQ) of each CoSG system, in our vocabulary.
COSG_TAXONOMY = {
    **{s: ("none", "time", "MVQ") for s in ("ELLAV", "VALLE", "GPST", "UNIAUDIO", "TACOLM", "SPEECHX", "RALLE", "VIOLA", "NS2")},
    "CLAMTTS": ("none", "frequency", "MVQ"),
    "MASKGCT": ("none", "frequency", "MVQ"),
    "NS3": ("disentangle", "time", "MVQ"),
    "USLM": ("semantic", "time", "MVQ"),
    "SIMPLESPEECH1": ("none", "time", "SQ"),
    "SIMPLESPEECH2": ("none", "time", "SQ"),
    "TI1G1R": ("disentangle", "time", "SVQ"),
    "SINGLECODEC": ("disentangle", "frequency", "SVQ"),
}
TRAIN_LISTS = {"train": "train", "dev": "dev", "test": "eval_id"}
BALANCE = ("", "bal_dec", "bal_vq")
UNPACK = "Download CodecFake+ (all_data_16k/, SLMdemos_16k/) and the metadata/ folder of CodecFake-Source-Tracing into this folder."


def _codec_of(file_stem: str, spk: str) -> str:
    """``p225_001_snac_24khz`` -> ``snac_24khz`` (utterance = speaker + one more ``_`` field)."""
    parts = file_stem.split("_")
    n = 2 if parts and parts[0] == spk else 1
    return "_".join(parts[n:])


def _taxonomy(aux: str, dec: str, vq: str) -> tuple[str, str, str] | None:
    a, d, v = AUX.get(aux.lower()), DEC.get(dec.lower()), VQ.get(vq.lower())
    return (a, d, v) if a and d and v else None


def _missing(wav: Path, name: str, where: str) -> str:
    """Error of a listed file that is not there ('' when it is), naming what was looked for."""
    if wav.is_file():
        return ""
    tried = f"{wav.parent / name}{' or '.join(LISTED_EXTENSIONS)}" if strip_audio_suffix(name) == name else str(wav)
    return f"{tried}: audio file missing (listed in {where})"


def _cosg_seen(path: Path, rows: Rows) -> dict[tuple[str, str], tuple[str, str]]:
    """``(system, file) -> (published VQ, label)`` of CoSG_SEEN; malformed lines are warnings."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    if not path.is_file():
        rows.warn(f"{path} not found: CoSG rows have no seen/unseen mark")
        return seen
    for n, parts in label_lines(path):
        if len(parts) != 5:
            rows.warn(f"{path} line {n}: expected 5 fields (system file - VQ label), got {len(parts)}; line ignored")
            continue
        seen[(parts[0], strip_audio_suffix(parts[1]))] = (parts[3], parts[4])
    return seen


def prepare_codecfake_plus(root: str | os.PathLike, metadata_dir: str | os.PathLike | None = None,
                           balance: str = "", num_jobs: int = 1) -> pd.DataFrame:
    """Protocol frame of CodecFake+ (training lists, CoRS_ALL, CoSG_ALL + CoSG_SEEN); failed rows included."""
    if balance not in BALANCE:
        raise ValueError(f"balance must be one of {BALANCE}, got {balance!r}")
    root = check_root(root, RELEASE)
    meta = Path(metadata_dir).resolve() if metadata_dir else root / "metadata"
    require(root, RELEASE, ["all_data_16k"], UNPACK)
    if not meta.is_dir():
        require(meta.parent, RELEASE, [meta.name], UNPACK)
    rows = Rows()
    audio = root / "all_data_16k"
    learned: dict[str, tuple[str, str, str]] = {}
    untaxed: set[str] = set()  # codecs already noted as having no taxonomy (one note each)
    suffix = f"_{balance}" if balance else ""

    def add(lf: Path, n: int, parts: list[str], subset: str, spk: str, tax_fields: tuple[str, str, str] | None) -> None:
        where = f"{lf} line {n}"
        raw = parts[-1]
        stem = strip_audio_suffix(parts[1])
        wav = listed_audio(audio, parts[1], LISTED_EXTENSIONS)
        codec = _codec_of(stem, spk)
        is_fake = LABELS.get(raw.lower())
        _, lang = speaker_language(stem)
        uid = f"cfp-cors-{stem}" if subset == "cors" else f"cfp-{stem}"
        base = dict(utt_id=uid, corpus=RELEASE, path=str(wav), speaker=spk, language=lang, split=subset,
                    extra={"label_file": lf.name, "line": n, "release_label": raw, "codec": codec})
        error = ""
        if raw.lower() == "spoofs":
            rows.warn(f"{where}: label 'spoofs' read as 'spoof' (typo in the release)")
        if is_fake is None:
            row = external_spoof_row(attack="unknown", **base)
            error = f"{where}: unknown label {raw!r} for {parts[1]} (expected bonafide or spoof)"
        elif not is_fake:
            row = real_row(**base)
        elif codec in ST_OF_CODEC:
            vid, label = ST_OF_CODEC[codec]
            row = real_row(**base)
            row.update(fake_fields(label, vid))
        else:
            row = external_spoof_row(attack=codec, **base)
            row["codec"] = codec
        if is_fake:
            tax = tax_fields or learned.get(codec) or CFP_TAXONOMY.get(codec)
            if tax is not None:  # the release's own taxonomy label wins for its rows
                row.update(aux=tax[0], decoder=tax[1], vq=tax[2])
            elif codec not in untaxed:
                untaxed.add(codec)
                rows.warn(f"{where}: codec {codec!r} has no published taxonomy; its rows' vq/aux/decoder are unknown")
            src = stem[: -len(codec) - 1] if codec and stem.endswith("_" + codec) else stem
            row["source_utt_id"] = f"cfp-cors-{src}" if subset == "cors" else f"cfp-{src}"
        rows.add(row, wav, subset, codec or row["label_name"], error or _missing(wav, parts[1], where))

    for stem, subset in TRAIN_LISTS.items():
        lf = meta / "training" / f"{stem}_mult_learn{suffix}.txt"
        if not lf.is_file():
            rows.warn(f"{lf} not found: {subset} has no rows")
            continue
        for n, parts in label_lines(lf):
            if len(parts) != 7:
                wav = listed_audio(audio, parts[1] if len(parts) > 1 else parts[0], LISTED_EXTENSIONS)
                row = real_row(utt_id=f"cfp-{lf.stem}-line{n}", corpus=RELEASE, path=str(wav))
                rows.add(row, wav, subset, "malformed", f"{lf} line {n}: expected 7 fields (spk file - AUX DEC VQ label), got {len(parts)}")
                continue
            spk, name, _, aux, dec, vq, raw = parts
            tax = None if aux.upper() == "REAL" else _taxonomy(aux, dec, vq)
            if aux.upper() != "REAL" and tax is None:
                wav = listed_audio(audio, name, LISTED_EXTENSIONS)
                row = external_spoof_row(attack="unknown", utt_id=f"cfp-{strip_audio_suffix(name)}", corpus=RELEASE, path=str(wav))
                rows.add(row, wav, subset, "unknown", f"{lf} line {n}: unknown taxonomy labels {aux} {dec} {vq}")
                continue
            if tax is not None:
                learned.setdefault(_codec_of(strip_audio_suffix(name), spk), tax)
            add(lf, n, parts, subset, spk, tax)
    ev = meta / "evaluation"
    cors = ev / "CoRS_ALL.txt"
    if cors.is_file():
        for n, parts in label_lines(cors):
            if len(parts) != 5:
                wav = listed_audio(audio, parts[1] if len(parts) > 1 else parts[0], LISTED_EXTENSIONS)
                rows.add(real_row(utt_id=f"cfp-cors-line{n}", corpus=RELEASE, path=str(wav)), wav, "cors", "malformed",
                         f"{cors} line {n}: expected 5 fields (spk file - - label), got {len(parts)}")
                continue
            add(cors, n, parts, "cors", parts[0], None)
    else:
        rows.warn(f"{cors} not found: cors has no rows")
    cosg = ev / "CoSG_ALL.txt"
    if cosg.is_file():
        seen = _cosg_seen(ev / "CoSG_SEEN.txt", rows)
        listed: set[tuple[str, str]] = set()
        for n, parts in label_lines(cosg):
            folder = root / "SLMdemos_16k" / parts[0]
            wav = listed_audio(folder, parts[1] if len(parts) > 1 else "", LISTED_EXTENSIONS)
            if len(parts) not in (4, 5):
                rows.add(real_row(utt_id=f"cfp-cosg-line{n}", corpus=RELEASE, path=str(wav)), wav, "alm", "malformed",
                         f"{cosg} line {n}: expected 4 or 5 fields (system file - [-] label), got {len(parts)}")
                continue
            listed.add((parts[0], strip_audio_suffix(parts[1])))
            _add_cosg(rows, cosg, n, parts, wav, seen)
        for system, name in sorted(set(seen) - listed):
            rows.warn(f"{ev / 'CoSG_SEEN.txt'}: {system} {name} is not in CoSG_ALL; not read")
    else:
        rows.warn(f"{cosg} not found: alm (CoSG) has no rows")
    # CoRS ids carry "cors-": the same file may also sit in a training list. A file listed twice
    # within the training lists becomes a failed "#dup" row.
    return finish_release(rows, RELEASE, num_jobs)


def _add_cosg(rows: Rows, lf: Path, n: int, parts: list[str], wav: Path,
              seen: dict[tuple[str, str], tuple[str, str]]) -> None:
    """One CoSG_ALL line: a real or a fake of ``system`` with its published taxonomy and seen mark."""
    where = f"{lf} line {n}"
    system, raw = parts[0], parts[-1]
    stem = strip_audio_suffix(parts[1])
    published = seen.get((system, stem))
    extra = {"label_file": lf.name, "line": n, "release_label": raw, "system": system, "cosg_seen": published is not None}
    if published is not None:
        extra["published_vq"] = published[0]
        if published[1].lower() != raw.lower():
            rows.warn(f"{where}: {system} {stem} is {raw!r} here but {published[1]!r} in CoSG_SEEN; CoSG_ALL's label kept")
    base = dict(utt_id=f"cfp-{system}-{stem}", corpus=RELEASE, path=str(wav), split="alm", extra=extra)
    is_fake = LABELS.get(raw.lower())
    error = ""
    if is_fake is None:
        row = external_spoof_row(attack="unknown", **base)
        error = f"{where}: unknown label {raw!r} for {parts[1]} (expected bonafide or spoof)"
    elif not is_fake:
        row = real_row(**base)
    else:
        row = external_spoof_row(attack=system, **base)
        tax = COSG_TAXONOMY.get(system)
        vq = VQ.get(published[0].lower()) if published else None
        if tax is None:
            rows.warn(f"{where}: CoSG system {system!r} has no published taxonomy; vq/aux/decoder unknown")
        else:
            if vq and vq != tax[2]:
                rows.warn(f"{where}: CoSG_SEEN gives {system} VQ {vq}, the authors' table {tax[2]}; CoSG_SEEN's kept")
            row.update(aux=tax[0], decoder=tax[1], vq=vq or tax[2])
        if tax is None and vq:
            row["vq"] = vq
    rows.add(row, wav, "alm", system, error or _missing(wav, parts[1], where))
