"""ST-Codecfake as published (Zenodo 14631091 main part, 14631085 open-set part; xieyuankun/ST-Codecfake).

Layout::

    label/train.txt dev.txt eval_id.txt eval_ood*.txt   lines: <file> <unused> <label 0..11>
    train/ dev/ eval_id/ eval_ood/                      <codec>_<utt>.wav; reals unprefixed
    ID_diff_config/C3-1..C3-4, C4-1..C4-3               FunCodec (3) / EnCodec (4) configurations: C3-1_<utt>.wav
    ID_diff_source/NCSSD-mimi, NCSSD-snac               NCSSD through Mimi (1) / SNAC (6): mimi_R-ZH_0_0_d2289.wav
    OOD_diff_source/NCSSD_wavtokenizer                  NCSSD through WavTokenizer (7)
    OOD_diff_config/wavtokenizer_small40                WavTokenizer 40 tokens/s (7)
    ALM/moshi, mini-omni (or mini-omni/A1-A2), speechgpt-gen, valle
                                                        moshi_R-EN_1_5_d644.wav, miniomni_R-ZH_..., valle_p299_134.wav, gen_2.wav
    ID_unseen_real/<name>/                              optional bona fide sets (e.g. 19LA, ITW, NCSSD: R-EN_6_0_d195.wav)

Different-configuration rows (ID_diff_config, OOD_diff_config) carry the catalog variant of
their condition (the variant whose ``condition`` is ``C3-1`` ... ``C4-3`` or
``wavtokenizer_small40``), not the class's ID variant; different-source rows keep the ID variant.

Speaker and language come from the utterance a file name carries: VCTK (``p225``, en),
AISHELL-3 (``SSB0005``, zh) or NCSSD (``R-EN_6_0_d195`` -> speaker ``R-EN_d195_0`` as
:mod:`pipeline.corpora.ncssd` names it, language of ``R-EN``/``R-ZH``); ``extra["source"]`` keeps
that utterance. For ALM rows (``moshi_R-EN_...``, ``valle_p299_134``) that utterance is, in our
reading, the ALM's input, so their speaker/language describe the input, not necessarily the
generated voice; SpeechGPT-Gen names (``gen_2``) carry none.

Protocol subsets: train, dev, eval_id, eval_ood (from the label files), diff_config, diff_source,
ood_config, alm (from the folders), unseen_real (from ID_unseen_real/ and/or source manifests of
the corpus readers passed as ``unseen_real``). ALM rows keep label -1 / is_fake True and carry
their back-end codec class in ``extra["backend_label"]`` (Moshi 1, SpeechGPT-Gen 2, VALL-E 4,
Mini-omni 6).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import pandas as pd

from manifests import external_spoof_row, real_row
from manifests.schema import ST_LABELS

from pipeline.corpora.common import check_root, list_audio

from .common import (
    ALM_BACKENDS,
    Rows,
    config_variant,
    fake_fields,
    finish_release,
    label_lines,
    require,
    speaker_language,
    strip_audio_suffix,
    utterance_of,
)

RELEASE = "st-codecfake"
MAIN_SETS = {"train": "train", "dev": "dev", "eval_id": "eval_id"}  # label file stem -> subset (= folder)
# Reals per set in the README; some copies of the release hold 10000 eval reals instead of 13228.
README_REALS = {"train": (10000,), "dev": (1000,), "eval_id": (13228, 10000)}
# C3-4 is FunCodec (3) although the README's tree says ID 4 (see the catalog's note).
DIFF_CONFIG = {"C3-1": 3, "C3-2": 3, "C3-3": 3, "C3-4": 3, "C4-1": 4, "C4-2": 4, "C4-3": 4}
DIFF_SOURCE = {("ID_diff_source", "NCSSD-mimi"): ("NCSSD-mimi", 1),
               ("ID_diff_source", "NCSSD-snac"): ("NCSSD-snac", 6),
               ("OOD_diff_source", "NCSSD_wavtokenizer"): ("NCSSD-wavtokenizer", 7)}
OOD_CONFIG = {"wavtokenizer_small40": ("wavtokenizer_small40", 7)}
ALM_SETS = ("moshi", "mini-omni", "speechgpt-gen", "valle")
# config.py of the anchor reads Mini-omni from ALM/mini-omni/A1-A2; the README shows ALM/mini-omni.
ALM_ALT = {"mini-omni": ("mini-omni/A1-A2",)}
UNPACK = ("Unzip the Zenodo archives (14631091: label, train, dev, eval_id, eval_ood; 14631085: "
          "ID_diff_config, ID_diff_source, OOD_diff_config, OOD_diff_source, ALM) into this folder: "
          "`7z x <archive>` or `unzip <archive>`.")


def _source_stem(stem: str, label: int) -> str:
    """Utterance part of ``<codec>_<utt>`` (fakes); the stem itself for reals."""
    return stem.split("_", 1)[1] if label and "_" in stem else stem


def _labelled_set(rows: Rows, label_file: Path, folder: Path, subset: str, set_name: str) -> set[Path]:
    listed: set[Path] = set()
    reals = 0
    for n, parts in label_lines(label_file):
        where = f"{label_file} line {n}"
        name = parts[0]
        stem = strip_audio_suffix(name)
        wav = folder / (name if stem != name else f"{name}.wav")
        listed.add(wav)
        raw = parts[-1] if len(parts) >= 2 else ""
        label = int(raw) if re.fullmatch(r"-?\d+", raw) else None
        src = _source_stem(stem, label or 0)
        spk, lang = speaker_language(src)
        base = dict(utt_id=f"st-{set_name}-{stem}", corpus=RELEASE, path=str(wav), speaker=spk, language=lang,
                    split=set_name, extra={"label_file": label_file.name, "line": n, "release_label": raw})
        row = real_row(**base)
        row["source_utt_id"] = f"st-{set_name}-{src}"
        error = ""
        if len(parts) != 3:
            error = f"{where}: expected 3 fields (file, unused, label), got {len(parts)}"
        if label is None or label not in ST_LABELS:
            error = error or f"{where}: unknown label {raw!r} for {name} (expected 0..11)"
            row.update(is_fake=True, label=-1, label_name="unknown", domain="external", vq="unknown", aux="unknown", decoder="unknown")
        elif label:
            row.update(fake_fields(label))
        else:
            reals += 1
        if not error and not wav.is_file():
            error = f"{wav}: audio file missing (listed in {where})"
        rows.add(row, wav, subset, row["label_name"], error)
    expected = README_REALS.get(set_name)
    if expected:
        found = "matches README" if reals in expected else "differs from README"
        rows.warn(f"{set_name}: {reals} real rows in {label_file.name} ({found}: {' or '.join(map(str, expected))})")
    return listed


def _unlisted(rows: Rows, folder: Path, listed: set[Path], label_files: list[Path], subset: str) -> None:
    """Audio files in ``folder`` that no label file lists: failed rows (label unknown)."""
    names = ", ".join(str(f) for f in label_files)
    for wav in list_audio(folder):
        if wav not in listed:
            row = real_row(utt_id=f"st-{subset}-{wav.stem}", corpus=RELEASE, path=str(wav), split=subset)
            rows.add(row, wav, subset, "unlisted", f"{wav}: not listed in {names}; label unknown")


def _folder_set(rows: Rows, folder: Path, subset: str, condition: str, label: int | None, set_name: str,
                variant: str | None = None, backend: int | None = None) -> int:
    """Every audio file under ``folder``: reals (label 0), fakes of ST class ``label`` (``variant``)
    or ALM outputs (label None); speaker/language from the utterance each name carries."""
    wavs = list_audio(folder)
    for wav in wavs:
        rel = wav.relative_to(folder).with_suffix("").as_posix().replace("/", "-")
        source, spk, lang = utterance_of(wav.stem, tagged=label != 0)
        extra = {"folder": folder.name, **({"source": source} if source else {}),
                 **({"backend_label": backend} if backend is not None else {})}
        base = dict(utt_id=f"st-{set_name}-{rel}", corpus=RELEASE, path=str(wav), split=set_name,
                    speaker=spk, language=lang, extra=extra)
        if label is None:  # ALM output: not an ST class
            row = external_spoof_row(attack=condition, **base)
        elif label == 0:
            row = real_row(**base)
        else:
            row = real_row(**base)
            row.update(fake_fields(label, variant))
        rows.add(row, wav, subset, condition)
    return len(wavs)


def _config_variant(rows: Rows, condition: str, label: int) -> str | None:
    """The catalog variant of robustness set ``condition`` (a warning and the ID variant if none)."""
    variant = config_variant(condition, label)
    if variant is None:
        rows.warn(f"no catalog variant of class {label} has condition {condition!r}: its rows carry the class's ID variant")
    return variant


def prepare_st_codecfake(
    root: str | os.PathLike,
    unseen_real: Sequence[str | os.PathLike | pd.DataFrame] = (),
    num_jobs: int = 1,
) -> pd.DataFrame:
    """Protocol frame of the ST-Codecfake release (every file a row; failed rows included).

    Args:
        root: the release folder (holding ``label/``, ``train/``, ...).
        unseen_real: source manifests (paths or frames from :mod:`pipeline.corpora` readers, e.g.
            ASVspoof 2019 LA, In-the-Wild, NCSSD); their bona fide ``ok`` rows join ``unseen_real``
            with condition = their corpus.
        num_jobs: threads probing and hashing files.
    """
    root = check_root(root, RELEASE)
    require(root, RELEASE, ["label", "train", "dev", "eval_id"], UNPACK)
    rows = Rows()
    labels = root / "label"
    for stem, subset in MAIN_SETS.items():
        lf = labels / f"{stem}.txt"
        if not lf.is_file():
            rows.warn(f"{lf} not found: subset {subset} has no rows")
            continue
        _unlisted(rows, root / subset, _labelled_set(rows, lf, root / subset, subset, stem), [lf], subset)
    ood_files = sorted(labels.glob("eval_ood*.txt"))
    if not ood_files:
        rows.warn(f"no {labels}/eval_ood*.txt: eval_ood has no rows")
    listed: set[Path] = set()
    for lf in ood_files:
        listed |= _labelled_set(rows, lf, root / "eval_ood", "eval_ood", "eval_ood")
    if ood_files:
        _unlisted(rows, root / "eval_ood", listed, ood_files, "eval_ood")
    # eval_ood rows are named by codec (condition = label name) like the protocol builder does.
    for name, label in DIFF_CONFIG.items():
        d = root / "ID_diff_config" / name
        if d.is_dir():
            _folder_set(rows, d, "diff_config", name, label, f"diff_config-{name}", _config_variant(rows, name, label))
        else:
            rows.warn(f"{d} not found: diff_config condition {name} has no rows")
    for (parent, name), (cond, label) in DIFF_SOURCE.items():
        d = root / parent / name
        if d.is_dir():
            _folder_set(rows, d, "diff_source", cond, label, f"diff_source-{cond}")
        else:
            rows.warn(f"{d} not found: diff_source condition {cond} has no rows")
    for name, (cond, label) in OOD_CONFIG.items():
        d = root / "OOD_diff_config" / name
        if d.is_dir():
            _folder_set(rows, d, "ood_config", cond, label, f"ood_config-{cond}", _config_variant(rows, name, label))
        else:
            rows.warn(f"{d} not found: ood_config condition {cond} has no rows")
    for name in ALM_SETS:
        candidates = [name, *ALM_ALT.get(name, ())]
        found = [c for c in candidates if (root / "ALM" / c).is_dir() and list_audio(root / "ALM" / c)]
        if not found:
            rows.warn(f"ALM/{name} not found (looked for {', '.join('ALM/' + c for c in candidates)}): alm condition {name} has no rows")
            continue
        # ALM/mini-omni is read recursively, so both layouts (flat, or A1-A2/ inside) are accepted.
        used = found[0]
        layout = ""
        if name in ALM_ALT:
            alt = ALM_ALT[name][0]
            layout = f" ({'config.py layout ALM/' + alt if (root / 'ALM' / alt).is_dir() else 'README layout, flat'})"
        rows.warn(f"alm {name}: read from ALM/{used}{layout}")
        _folder_set(rows, root / "ALM" / used, "alm", name, None, f"alm-{name}", backend=ALM_BACKENDS[name])
    ur = root / "ID_unseen_real"
    if ur.is_dir():
        for d in sorted(p for p in ur.iterdir() if p.is_dir()):
            _folder_set(rows, d, "unseen_real", d.name, 0, f"unseen_real-{d.name}")
    df = finish_release(rows, RELEASE, num_jobs)
    if unseen_real:
        df = add_unseen_real(df, unseen_real)
    return df


def add_unseen_real(df: pd.DataFrame, manifests: Sequence[str | os.PathLike | pd.DataFrame]) -> pd.DataFrame:
    """``df`` plus the bona fide ok rows of ``manifests`` as ``unseen_real`` (condition = corpus)."""
    from manifests import absolute_paths, read_manifest, to_frame

    frames = [df]
    for ref in manifests:
        src = ref.copy() if isinstance(ref, pd.DataFrame) else read_manifest(ref)
        if isinstance(ref, pd.DataFrame):
            src.attrs = dict(ref.attrs)
        src["path"] = [os.path.abspath(p) for p in absolute_paths(src)]
        src = src[(src["status"] == "ok") & ~src["is_fake"].astype(bool) & (src["label"] == 0)]
        frames.append(src.assign(subset="unseen_real", condition=src["corpus"]))
    out = to_frame(pd.concat(frames, ignore_index=True), "protocol")
    out.attrs = dict(df.attrs)
    return out
