"""Codecfake as published (xieyuankun/Codecfake; CC BY-NC-ND 4.0). Zenodo records, as its README
of 2024-09-28 lists them: training set 13838106 (train_split.zip + .z01-.z05, and the labels),
13841652 (.z06-.z10) and 13853860 (.z11-.z16); dev 13841216 (dev_split.zip + .z01-.z02); test
13838823 (C1-C6, A1-A3); unseen codec test 11125029 (C7).

Layout::

    label/<part>.txt     lines: <file> real|fake [type]   (part: train, dev, C1..C7, A1..A3 or L1..L3, C3-1, ...)
    train/*.wav dev/*.wav                                  fakes prefixed F01_..F06_
    test/C1..C7/*.wav                                      fakes prefixed F01_..F06_ as well
    test/A1..A3/*.wav (or L1..L3)                          ALM sets; A1/A2 fakes prefixed L1_/L2_ (L1_p275_117.wav)
    test/C3-1..C3-4, C4-1..C4-3 where present              configuration sets; fakes prefixed C3-1_ ...

The ALM sets are A1..A3 in the README and L1..L3 in the published result files: either name is
read (label file and folder), the condition is the README's (A1..A3) and ``extra["set"]`` keeps
the name found. A fake's ``F0n_`` / ``C3-1_`` / ``L1_`` prefix is cut to find its source utterance,
speaker and language (VCTK ``p225_001`` en, AISHELL-3 ``SSB00050001`` zh).

Codec of each set, in our reading of the release paper's order (one table, :data:`CODECS`, that a
caller may override with ``codecs=``): F01/C1 SoundStream, F02/C2 SpeechTokenizer, F03/C3 FunCodec,
F04/C4 EnCodec, F05/C5 AudioDec, F06/C6 AcademiCodec, C7 DAC (unseen in training). Configuration
sets Cn-k carry the catalog variant whose ``condition`` is Cn-k when its ST class is Cn's (the
ST-Codecfake sets of the same names). A1..A3 are the ALM test sets: label -1, is_fake for
``fake`` lines.

Protocol subsets: train, dev; C1..C6 -> eval_id; C7 -> eval_ood; Cn-k -> diff_config; A* -> alm.
The training and dev archives are split zips (train_split.zip + .z01..z16, dev_split.zip +
.z01..z02): common unzip tools fail on them; unpack with ``7z x train_split.zip`` as the
maintainer advises.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import pandas as pd

from manifests import external_spoof_row, real_row

from pipeline.corpora.common import check_root, list_audio

from .common import Rows, config_variant, fake_fields, finish_release, label_lines, require, speaker_language, strip_audio_suffix

RELEASE = "codecfake"
CODECS = {"C1": 11, "C2": 2, "C3": 3, "C4": 4, "C5": 10, "C6": 8, "C7": 9}  # set -> ST label
# ALM set: README name -> name in the published result files.
ALM_SETS = {"A1": "L1", "A2": "L2", "A3": "L3"}
ALM_OF = {**{a: a for a in ALM_SETS}, **{lname: a for a, lname in ALM_SETS.items()}}
UNPACK = ("Unpack the split archives with 7z (common unzip tools fail on them): `7z x train_split.zip`, "
          "`7z x dev_split.zip`, then `7z x C1.zip` ... into test/.")
REAL, FAKE = ("real", "bonafide", "bona-fide"), ("fake", "spoof")
# <tag>_<source utterance>: F01 (codec of train/dev/C1-C6), C3-1 (configuration set), L1/A1 (ALM set).
_TAGGED = re.compile(r"^(?P<tag>F\d\d|C\d+(?:-\d+)?|[AL]\d+)_(?P<source>.+)$")


def _audio_dir(root: Path, part: str) -> Path:
    """Folder of a set; an ALM set may sit under either of its names (test/A1 or test/L1)."""
    if part in ("train", "dev"):
        return root / part
    folder = root / "test" / part
    if part in ALM_OF and not folder.is_dir():
        canon = ALM_OF[part]
        other = root / "test" / (ALM_SETS[canon] if part == canon else canon)
        if other.is_dir():
            return other
    return folder


def _codec_key(tag: str | None, base_set: str) -> str:
    """Set whose codec made a fake: ``F03`` -> C3, ``C3-1`` -> C3, else the label file's set."""
    if tag and tag.startswith("F"):
        return f"C{int(tag[1:])}"
    if tag and tag.startswith("C"):
        return tag.split("-")[0]
    return base_set


def prepare_codecfake(root: str | os.PathLike, codecs: Mapping[str, int] | None = None, num_jobs: int = 1) -> pd.DataFrame:
    """Protocol frame of the Codecfake release; every label line and every unlisted wav is a row."""
    root = check_root(root, RELEASE)
    require(root, RELEASE, ["label", "train", "dev", "test"], UNPACK)
    codecs = dict(CODECS if codecs is None else codecs)
    rows = Rows()
    label_files = sorted((root / "label").glob("*.txt"))
    parts_found = {lf.stem for lf in label_files}
    for canon, lname in ALM_SETS.items():
        if canon in parts_found and lname in parts_found:
            rows.warn(f"label/{canon}.txt and label/{lname}.txt name the same ALM set: files in both are failed duplicates")
    for lf in label_files:
        part = lf.stem
        set_name = ALM_OF.get(part, part)
        base_set = part.split("-")[0]
        variant = None
        if part in ("train", "dev"):
            subset, cond = part, ""
        elif part in ALM_OF:
            subset, cond = "alm", set_name
        elif re.fullmatch(r"C\d+-\d+", part):
            subset, cond = "diff_config", part
            if base_set in codecs:
                variant = config_variant(part, int(codecs[base_set]))
                if variant is None:
                    rows.warn(f"{lf}: no catalog variant of class {codecs[base_set]} has condition {part!r}; "
                              f"its fakes carry the class's ID variant")
        elif part in codecs:
            subset, cond = ("eval_ood" if part == "C7" else "eval_id"), part
        else:
            rows.warn(f"{lf}: part {part!r} is not a known Codecfake set; rows kept with subset {part!r}")
            subset, cond = part, part
        folder = _audio_dir(root, part)
        if not folder.is_dir():
            rows.warn(f"{folder} not found (for {lf.name}): its rows are failed")
        elif folder.name != part:
            rows.warn(f"{lf.name}: audio read from {folder.relative_to(root).as_posix()}/ (the set's other name)")
        listed: set[Path] = set()
        for n, parts in label_lines(lf):
            where = f"{lf} line {n}"
            name = parts[0]
            stem = strip_audio_suffix(name)
            wav = folder / (name if stem != name else f"{name}.wav")
            listed.add(wav)
            tag = parts[1].lower() if len(parts) > 1 else ""
            m = _TAGGED.match(stem)
            src = m.group("source") if m else stem
            spk, lang = speaker_language(src)
            extra = {"label_file": lf.name, "line": n, "release_label": tag, "type": parts[2] if len(parts) > 2 else ""}
            if set_name != part:
                extra["set"] = part
            base = dict(utt_id=f"codecfake-{set_name}-{stem}", corpus=RELEASE, path=str(wav), speaker=spk, language=lang,
                        split=set_name, extra=extra)
            error = ""
            if tag in REAL:
                row = real_row(**base)
            elif tag in FAKE and subset == "alm":
                row = external_spoof_row(attack=set_name, **base)
            elif tag in FAKE:
                key = _codec_key(m.group("tag") if m else None, base_set)
                if key not in codecs:
                    row = external_spoof_row(attack="unknown", **base)
                    error = f"{where}: fake file {name} of unknown codec ({key!r} not in {sorted(codecs)})"
                else:
                    row = real_row(**base)
                    row.update(fake_fields(int(codecs[key]), variant if key == base_set else None))
            else:
                row = external_spoof_row(attack="unknown", **base)
                error = f"{where}: unknown label {parts[1] if len(parts) > 1 else ''!r} for {name} (expected real or fake)"
            row["source_utt_id"] = f"codecfake-{set_name}-{src}"
            if not error and not wav.is_file():
                error = f"{wav}: audio file missing (listed in {where})"
            rows.add(row, wav, subset, cond or row["label_name"], error)
        for wav in list_audio(folder):
            if wav not in listed:
                row = real_row(utt_id=f"codecfake-{set_name}-{wav.stem}", corpus=RELEASE, path=str(wav), split=set_name)
                rows.add(row, wav, subset, "unlisted", f"{wav}: not listed in {lf}; label unknown")
    for expect in ("train", "dev", *codecs, *ALM_SETS):
        names = [expect] + ([ALM_SETS[expect]] if expect in ALM_SETS else [])
        if not parts_found & set(names):
            shown = " or ".join(str(root / "label" / f"{x}.txt") for x in names)
            rows.warn(f"{shown} not found: set {expect} has no rows")
    return finish_release(rows, RELEASE, num_jobs)
