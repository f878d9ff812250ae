"""AISHELL-3 (OpenSLR 93): ~85 h of read Mandarin from 218 speakers, 44.1 kHz, with pinyin.

Layout (``data_aishell3.tgz``)::

    spk-info.txt                    '#' comment lines, then: speaker, age group (A-D), gender, accent
    train/content.txt               SSB00050001.wav<TAB>广 guang3 州 zhou1 ... (char, pinyin pairs)
    train/wav/SSB0005/SSB00050001.wav
    test/content.txt
    test/wav/SSB0009/SSB00090001.wav
    (train/label_train-set.txt: prosody labels; not read here)

Utterance ids are lhotse's (``prepare_aishell3``): the wav stem, ``SSB00050001``; the speaker is
the ``wav/`` sub-folder (the first 7 characters of the id). ``text`` keeps the characters joined
without spaces; the tone-numbered pinyin goes to ``extra["pinyin"]`` (space separated). Unlike
lhotse, a line of ``content.txt`` whose wav is missing becomes a failed row, and a wav that no
``content.txt`` line mentions is kept (status ok, text None) with a warning.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from manifests import real_row

from .common import Collected, CorpusError, check_max_rows, check_root, finish, list_audio, read_text_file, rel_path

CORPUS = "aishell3"
SPLITS = ("train", "test")
AGE_GROUPS = {"A": "<14", "B": "14-25", "C": "26-40", "D": ">40"}


def parse_speaker_info(path: Path) -> dict[str, dict]:
    """``spk-info.txt`` -> {speaker: {age_group, gender, accent}} (comment lines skipped)."""
    out: dict[str, dict] = {}
    for line in read_text_file(path).splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        out[parts[0]] = {
            "age_group": parts[1] if len(parts) > 1 else "",
            "gender": parts[2] if len(parts) > 2 else "",
            "accent": parts[3] if len(parts) > 3 else "",
        }
    return out


def parse_content_line(line: str) -> tuple[str, str, str, str]:
    """One ``content.txt`` line -> (wav name, characters, pinyin, problem or '').

    The transcript alternates a character and its pinyin: ``广 guang3 州 zhou1``.
    """
    name, _, rest = line.strip().partition("\t")
    if not rest:  # tolerate a space instead of a tab after the file name
        name, _, rest = line.strip().partition(" ")
    tokens = rest.split()
    chars, pinyin = tokens[0::2], tokens[1::2]
    problem = ""
    if len(tokens) % 2:
        problem = f"odd number of char/pinyin tokens ({len(tokens)})"
    return name.strip(), "".join(chars), " ".join(pinyin), problem


def prepare_aishell3(
    corpus_dir: str | os.PathLike,
    splits: tuple[str, ...] = SPLITS,
    num_jobs: int = 1,
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Source manifest of an AISHELL-3 tree (one row per wav of the chosen splits).

    Args:
        corpus_dir: folder holding ``spk-info.txt``, ``train/`` and ``test/``.
        splits: which of ``train``/``test`` to read; a missing split folder is a warning.
        num_jobs: threads probing and hashing files.
        max_rows: keep a seeded sample of this many ok rows (None: all); failed rows are kept
            besides (see :mod:`pipeline.corpora.common`).
        seed: the sample's seed (same listing, max_rows and seed -> same rows).

    Returns:
        A source-manifest frame; language ``zh``; split ``train``/``test``; ``extra`` holds
        pinyin, age_group, gender, accent. ``df.attrs["warnings"]`` lists metadata problems.
        Paths are relative to ``corpus_dir``: write with ``root=corpus_dir``.
    """
    check_max_rows(max_rows)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown AISHELL-3 split(s) {unknown}; expected some of {SPLITS}")
    root = check_root(corpus_dir, CORPUS)
    if not any((root / s).is_dir() for s in splits):
        raise CorpusError(f"{CORPUS}: none of the split folders {list(splits)} found under {root}")
    col = Collected()
    info_path = root / "spk-info.txt"
    if info_path.is_file():
        speakers = parse_speaker_info(info_path)
    else:
        speakers = {}
        col.warn(f"{info_path}: missing; no age group/gender/accent for any speaker")
    missing_speakers: set[str] = set()

    def row_for(split: str, wav: Path, text: str | None, pinyin: str | None) -> dict:
        spk = wav.parent.name
        meta = speakers.get(spk)
        if meta is None and spk not in missing_speakers:
            missing_speakers.add(spk)
            col.warn(f"speaker {spk}: not in spk-info.txt; no age group/gender/accent")
        extra = {k: v for k, v in (meta or {}).items() if v}
        if pinyin:
            extra["pinyin"] = pinyin
        return real_row(
            utt_id=wav.stem,
            corpus=CORPUS,
            path=rel_path(wav, root),
            speaker=spk,
            language="zh",
            split=split,
            text=text,
            extra=extra,
        )

    for split in splits:
        part = root / split
        if not part.is_dir():
            col.warn(f"{part}: split folder missing; skipped")
            continue
        wav_root = part / "wav"
        on_disk = list_audio(wav_root, (".wav",))
        listed: set[Path] = set()
        content = part / "content.txt"
        if content.is_file():
            for n, line in enumerate(read_text_file(content).splitlines(), start=1):
                if not line.strip():
                    continue
                name, chars, pinyin, problem = parse_content_line(line)
                if problem:
                    col.warn(f"{content}: line {n} ({name}): {problem}")
                stem = name[:-4] if name.lower().endswith(".wav") else name
                wav = wav_root / stem[:7] / f"{stem}.wav"
                listed.add(wav)
                row = row_for(split, wav, chars, pinyin)
                error = "" if wav.is_file() else f"{wav}: audio file missing (listed in {content} line {n})"
                col.add(row, wav, error)
        else:
            col.warn(f"{content}: missing; rows of split {split!r} have text None")
        for wav in on_disk:
            if wav in listed:
                continue
            if content.is_file():
                col.warn(f"{wav}: not listed in {content}; row kept with text None")
            col.add(row_for(split, wav, None, None), wav)
    return finish(col, num_jobs, CORPUS, max_rows=max_rows, seed=seed)
