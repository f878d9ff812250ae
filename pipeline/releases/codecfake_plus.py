"""CodecFake+ as published (ResponsibleGenAI/CodecFake-Plus-Dataset audio; metadata of
ResponsibleGenAI/CodecFake-Source-Tracing).

Layout::

    all_data_16k/<utt>_<codec>.wav and <utt>.wav     CoRS (codec re-synthesis) + reals
    SLMdemos_16k/<SYSTEM>/<file>.wav                 CoSG (codec-based speech generation systems)
    metadata/training/{train,dev,test}_mult_learn[_bal_dec|_bal_vq].txt
        <spk> <file> - <AUX> <DEC> <VQ> bonafide|spoof       (reals: REAL REAL REAL)
    metadata/evaluation/CoRS_ALL.txt   <spk> <file> - - bonafide|spoof   (31 codecs)
    metadata/evaluation/CoSG_ALL.txt   <SYSTEM> <file> - [-] bonafide|spoof  (4 or 5 fields)
    metadata/evaluation/CoSG_SEEN.txt  <SYSTEM> <file> - <VQ> bonafide|spoof

The published label ``spoofs`` (a typo in CoRS_ALL) is read as ``spoof`` with a warning.
AUX Trad/SEM/Disent -> none/semantic/disentangle, DEC TIME/FREQ -> time/frequency, VQ as is.
Codecs that are ST classes get their ST label (:data:`ST_OF_CODEC`), others label -1 with the
taxonomy of the line. Subsets: train/dev/eval_id from the training lists (``balance`` picks the
plain, ``bal_dec`` or ``bal_vq`` lists), ``cors`` from CoRS_ALL, ``alm`` from CoSG_ALL (condition
= system). :data:`CFP_TAXONOMY` is the published taxonomy of the codecs we share with our catalog.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from manifests import external_spoof_row, real_row

from pipeline.corpora.common import check_root

from .common import Rows, fake_fields, finish_release, label_lines, require, speaker_language

RELEASE = "codecfake-plus"
AUX = {"trad": "none", "sem": "semantic", "disent": "disentangle"}
DEC = {"time": "time", "freq": "frequency"}
VQ = {"mvq": "MVQ", "svq": "SVQ", "sq": "SQ"}
LABELS = {"bonafide": False, "spoof": True, "spoofs": True}
# CodecFake+ codec name -> (our catalog variant, ST label). Published AUX/DEC/VQ in CFP_TAXONOMY.
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
# Published (AUX, DEC, VQ) of those codecs, as the training lists give them, in our vocabulary.
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


def prepare_codecfake_plus(root: str | os.PathLike, metadata_dir: str | os.PathLike | None = None,
                           balance: str = "", num_jobs: int = 1) -> pd.DataFrame:
    """Protocol frame of CodecFake+ (training lists, CoRS_ALL, CoSG_ALL); failed rows included."""
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
    suffix = f"_{balance}" if balance else ""

    def add(lf: Path, n: int, parts: list[str], subset: str, condition: str | None, wav: Path, spk: str,
            tax_fields: tuple[str, str, str] | None, cosg: bool) -> None:
        where = f"{lf} line {n}"
        name = parts[1]
        raw = parts[-1]
        stem = Path(name).stem
        codec = "" if cosg else _codec_of(stem, spk)
        is_fake = LABELS.get(raw.lower())
        sp, lang = speaker_language(stem)
        uid = f"cfp-{parts[0]}-{stem}" if cosg else (f"cfp-cors-{stem}" if subset == "cors" else f"cfp-{stem}")
        base = dict(utt_id=uid, corpus=RELEASE, path=str(wav),
                    speaker=spk if not cosg else "", language=lang, split=subset,
                    extra={"label_file": lf.name, "line": n, "release_label": raw, "codec": codec})
        error = ""
        if raw.lower() == "spoofs":
            rows.warn(f"{where}: label 'spoofs' read as 'spoof' (typo in the release)")
        if is_fake is None:
            row = external_spoof_row(attack="unknown", **base)
            error = f"{where}: unknown label {raw!r} for {name} (expected bonafide or spoof)"
        elif not is_fake:
            row = real_row(**base)
        elif cosg:
            row = external_spoof_row(attack=parts[0], **base)
        elif codec in ST_OF_CODEC:
            vid, label = ST_OF_CODEC[codec]
            row = real_row(**base)
            row.update(fake_fields(label, vid))
        else:
            row = external_spoof_row(attack=codec, **base)
            row["codec"] = codec
        if is_fake and not cosg:
            tax = tax_fields or learned.get(codec)
            if tax is not None:  # the release's own taxonomy label wins for its rows
                row.update(aux=tax[0], decoder=tax[1], vq=tax[2])
            src = stem[: -len(codec) - 1] if codec and stem.endswith("_" + codec) else stem
            row["source_utt_id"] = f"cfp-cors-{src}" if subset == "cors" else f"cfp-{src}"
        if not error and not wav.is_file():
            error = f"{wav}: audio file missing (listed in {where})"
        rows.add(row, wav, subset, condition or (codec or row["label_name"]), error)

    for stem, subset in TRAIN_LISTS.items():
        lf = meta / "training" / f"{stem}_mult_learn{suffix}.txt"
        if not lf.is_file():
            rows.warn(f"{lf} not found: {subset} has no rows")
            continue
        for n, parts in label_lines(lf):
            if len(parts) != 7:
                wav = audio / f"{parts[1] if len(parts) > 1 else parts[0]}.wav"
                row = real_row(utt_id=f"cfp-{lf.stem}-line{n}", corpus=RELEASE, path=str(wav))
                rows.add(row, wav, subset, "malformed", f"{lf} line {n}: expected 7 fields (spk file - AUX DEC VQ label), got {len(parts)}")
                continue
            spk, name, _, aux, dec, vq, raw = parts
            tax = None if aux.upper() == "REAL" else _taxonomy(aux, dec, vq)
            if aux.upper() != "REAL" and tax is None:
                wav = audio / f"{name}.wav"
                row = external_spoof_row(attack="unknown", utt_id=f"cfp-{name}", corpus=RELEASE, path=str(wav))
                rows.add(row, wav, subset, "unknown", f"{lf} line {n}: unknown taxonomy labels {aux} {dec} {vq}")
                continue
            if tax is not None:
                learned.setdefault(_codec_of(name, spk), tax)
            add(lf, n, parts, subset, None, audio / f"{name}.wav", spk, tax, False)
    ev = meta / "evaluation"
    cors = ev / "CoRS_ALL.txt"
    if cors.is_file():
        for n, parts in label_lines(cors):
            if len(parts) != 5:
                wav = audio / f"{parts[1] if len(parts) > 1 else parts[0]}.wav"
                rows.add(real_row(utt_id=f"cfp-cors-line{n}", corpus=RELEASE, path=str(wav)), wav, "cors", "malformed",
                         f"{cors} line {n}: expected 5 fields (spk file - - label), got {len(parts)}")
                continue
            p = list(parts)
            add(cors, n, p, "cors", None, audio / f"{p[1]}.wav", p[0], None, False)
    else:
        rows.warn(f"{cors} not found: cors has no rows")
    cosg = ev / "CoSG_ALL.txt"
    if cosg.is_file():
        for n, parts in label_lines(cosg):
            wav = root / "SLMdemos_16k" / parts[0] / f"{parts[1] if len(parts) > 1 else ''}.wav"
            if len(parts) not in (4, 5):
                rows.add(real_row(utt_id=f"cfp-cosg-line{n}", corpus=RELEASE, path=str(wav)), wav, "alm", "malformed",
                         f"{cosg} line {n}: expected 4 or 5 fields (system file - [-] label), got {len(parts)}")
                continue
            add(cosg, n, parts, "alm", parts[0], wav, "", None, True)
    else:
        rows.warn(f"{cosg} not found: alm (CoSG) has no rows")
    # CoRS ids carry "cors-": the same file may also sit in a training list. A file listed twice
    # within the training lists becomes a failed "#dup" row.
    return finish_release(rows, RELEASE, num_jobs)
