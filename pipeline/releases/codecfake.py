"""Codecfake as published (xieyuankun/Codecfake, Zenodo 11171708/11171720/11171724 train,
11169872 dev, 11169781 C1-C6 + A1-A3, 11125029 C7; CC BY-NC-ND 4.0).

Layout::

    label/<part>.txt     lines: <file> real|fake [type]   (part: train, dev, C1..C7, A1..A3, ...)
    train/*.wav dev/*.wav                                  fakes prefixed F01_..F06_
    test/C1..C7/*.wav test/A1..A3/*.wav (and C3-x / C4-x configuration sets where present)

Codec of each set, in our reading of the release paper's order (one table, :data:`CODECS`, that a
caller may override with ``codecs=``): F01/C1 SoundStream, F02/C2 SpeechTokenizer, F03/C3 FunCodec,
F04/C4 EnCodec, F05/C5 AudioDec, F06/C6 AcademiCodec, C7 DAC (unseen in training). A1..A3 are the
ALM test sets: label -1, is_fake for ``fake`` lines, condition A1..A3.

Protocol subsets: train, dev; C1..C6 -> eval_id; C7 -> eval_ood; Cn-k -> diff_config; A* -> alm.
The training archives are split zips (train_split.zip + .z01..z19): common unzip tools fail on
them; unpack with ``7z x train_split.zip`` as the maintainer advises.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import pandas as pd

from manifests import external_spoof_row, real_row

from pipeline.corpora.common import check_root, list_audio

from .common import Rows, fake_fields, finish_release, label_lines, require, speaker_language

RELEASE = "codecfake"
CODECS = {"C1": 11, "C2": 2, "C3": 3, "C4": 4, "C5": 10, "C6": 8, "C7": 9}  # set -> ST label
UNPACK = ("Unpack the split archives with 7z (common unzip tools fail on them): `7z x train_split.zip`, "
          "`7z x dev_split.zip`, then `7z x C1.zip` ... into test/.")
REAL, FAKE = ("real", "bonafide", "bona-fide"), ("fake", "spoof")


def _audio_dir(root: Path, part: str) -> Path:
    return root / part if part in ("train", "dev") else root / "test" / part


def prepare_codecfake(root: str | os.PathLike, codecs: Mapping[str, int] | None = None, num_jobs: int = 1) -> pd.DataFrame:
    """Protocol frame of the Codecfake release; every label line and every unlisted wav is a row."""
    root = check_root(root, RELEASE)
    require(root, RELEASE, ["label", "train", "dev", "test"], UNPACK)
    codecs = dict(CODECS if codecs is None else codecs)
    rows = Rows()
    for lf in sorted((root / "label").glob("*.txt")):
        part = lf.stem
        base_set = part.split("-")[0]
        if part in ("train", "dev"):
            subset, cond = part, ""
        elif part.startswith("A"):
            subset, cond = "alm", part
        elif re.fullmatch(r"C\d+-\d+", part):
            subset, cond = "diff_config", part
        elif part in codecs:
            subset, cond = ("eval_ood" if part == "C7" else "eval_id"), part
        else:
            rows.warn(f"{lf}: part {part!r} is not a known Codecfake set; rows kept with subset {part!r}")
            subset, cond = part, part
        folder = _audio_dir(root, part)
        if not folder.is_dir():
            rows.warn(f"{folder} not found (for {lf.name}): its rows are failed")
        listed: set[Path] = set()
        for n, parts in label_lines(lf):
            where = f"{lf} line {n}"
            name = parts[0]
            wav = folder / (name if Path(name).suffix else f"{name}.wav")
            listed.add(wav)
            tag = parts[1].lower() if len(parts) > 1 else ""
            stem = Path(name).stem
            m = re.match(r"^F(\d\d)_(.+)$", stem)
            src = m.group(2) if m else stem
            spk, lang = speaker_language(src)
            base = dict(utt_id=f"codecfake-{part}-{stem}", corpus=RELEASE, path=str(wav), speaker=spk, language=lang,
                        split=part, extra={"label_file": lf.name, "line": n, "release_label": tag,
                                           "type": parts[2] if len(parts) > 2 else ""})
            error = ""
            if tag in REAL:
                row = real_row(**base)
            elif tag in FAKE and subset == "alm":
                row = external_spoof_row(attack=part, **base)
            elif tag in FAKE:
                key = f"C{int(m.group(1))}" if m else base_set
                if key not in codecs:
                    row = external_spoof_row(attack="unknown", **base)
                    error = f"{where}: fake file {name} of unknown codec ({key!r} not in {sorted(codecs)})"
                else:
                    row = real_row(**base)
                    row.update(fake_fields(int(codecs[key])))
            else:
                row = external_spoof_row(attack="unknown", **base)
                error = f"{where}: unknown label {parts[1] if len(parts) > 1 else ''!r} for {name} (expected real or fake)"
            row["source_utt_id"] = f"codecfake-{part}-{src}"
            if not error and not wav.is_file():
                error = f"{wav}: audio file missing (listed in {where})"
            rows.add(row, wav, subset, cond or row["label_name"], error)
        for wav in list_audio(folder):
            if wav not in listed:
                row = real_row(utt_id=f"codecfake-{part}-{wav.stem}", corpus=RELEASE, path=str(wav), split=part)
                rows.add(row, wav, subset, "unlisted", f"{wav}: not listed in {lf}; label unknown")
    sets = {p.stem for p in (root / "label").glob("*.txt")}
    for expect in ("train", "dev", *codecs, "A1", "A2", "A3"):
        if expect not in sets:
            rows.warn(f"{root / 'label' / (expect + '.txt')} not found: set {expect} has no rows")
    return finish_release(rows, RELEASE, num_jobs)
