"""CSTR VCTK Corpus 0.92: 110 English speakers with various accents, ~400 read sentences each.

Layout (the Edinburgh DataShare release, ``VCTK-Corpus-0.92.zip``)::

    speaker-info.txt                     ID AGE GENDER ACCENTS REGION COMMENTS (space aligned)
    txt/p225/p225_001.txt                one transcript per utterance
    wav48_silence_trimmed/p225/p225_001_mic1.flac   48 kHz FLAC, DPA 4035 omni microphone
    wav48_silence_trimmed/p225/p225_001_mic2.flac   48 kHz FLAC, Sennheiser MKH 800

Known quirks: p315 has audio but no ``txt/`` folder (kept, ``text`` None, one warning);
p280 has no mic2 recordings (one warning for the speaker instead of ~400 failed rows); a few
p362 transcripts have no audio (failed rows naming the missing file). The REGION column may hold
several words and the COMMENTS column, when present, is in parentheses.

Utterance ids are lhotse's (``prepare_vctk(..., use_edinburgh_vctk_url=True)``): the FLAC stem,
``p225_001_mic1``. Unlike lhotse, every FLAC of the chosen microphone(s) becomes a row whether or
not it has a transcript, and every transcript without audio becomes a failed row. The older
CREST release (``wav48/*.wav``, no microphone suffix) is not read: it raises ``CorpusError``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import pandas as pd

from manifests import real_row

from .common import Collected, CorpusError, check_max_rows, check_root, finish, list_audio, read_text_file, rel_path

CORPUS = "vctk"
AUDIO_DIR = "wav48_silence_trimmed"
MICS = ("mic1", "mic2")
_FLAC_RE = re.compile(r"^(?P<utt>(?P<spk>[^_]+)_(?P<num>[^_]+))_(?P<mic>mic[12])$")


def parse_speaker_info(path: Path) -> tuple[dict[str, dict], list[str]]:
    """``speaker-info.txt`` -> ({speaker: {age, gender, accent, region, comment}}, warnings).

    Speaker ids are taken as written in the 0.92 file (``p225``); bare numbers (older
    releases) get the ``p`` prefix. Ages are ints when they parse.
    """
    meta: dict[str, dict] = {}
    warnings: list[str] = []
    lines = [ln for ln in read_text_file(path).splitlines() if ln.strip()]
    if not lines or lines[0].split()[:1] != ["ID"]:
        warnings.append(f"{path}: no 'ID AGE GENDER ACCENTS REGION' header line; reading all lines as speakers")
    else:
        lines = lines[1:]
    for n, line in enumerate(lines, start=2):
        comment = ""
        m = re.search(r"\((.*)\)\s*$", line)
        if m:
            comment = m.group(1).strip()
            line = line[: m.start()]
        parts = line.split()
        if len(parts) < 3:
            warnings.append(f"{path}: line {n}: expected ID AGE GENDER [ACCENTS REGION], got {line.strip()!r}")
            continue
        spk = parts[0] if not parts[0].isdigit() else f"p{parts[0]}"
        age: int | str = int(parts[1]) if parts[1].isdigit() else parts[1]
        meta[spk] = {
            "age": age,
            "gender": parts[2],
            "accent": parts[3] if len(parts) > 3 else "",
            "region": " ".join(parts[4:]),
            "comment": comment,
        }
    return meta, warnings


def prepare_vctk(
    corpus_dir: str | os.PathLike,
    mic: Literal["mic1", "mic2", "both"] = "mic1",
    split: str = "",
    num_jobs: int = 1,
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Source manifest of a VCTK 0.92 tree (one row per FLAC of the chosen microphone).

    Args:
        corpus_dir: folder holding ``wav48_silence_trimmed/``, ``txt/`` and ``speaker-info.txt``.
        mic: ``"mic1"``, ``"mic2"`` or ``"both"`` (ids keep the ``_micN`` suffix either way).
        split: value of the ``split`` column (VCTK defines no split; protocols assign one).
        num_jobs: threads probing and hashing files.
        max_rows: keep a seeded sample of this many ok rows (None: all); failed rows are kept
            besides (see :mod:`pipeline.corpora.common`).
        seed: the sample's seed (same listing, max_rows and seed -> same rows).

    Returns:
        A source-manifest frame (schema of :mod:`manifests`); language ``en``; ``extra`` holds
        mic, age, gender, accent, region (and comment). ``df.attrs["warnings"]`` lists metadata
        problems. Paths are relative to ``corpus_dir``: write with ``root=corpus_dir``.
    """
    if mic not in ("mic1", "mic2", "both"):
        raise ValueError(f"mic must be 'mic1', 'mic2' or 'both', got {mic!r}")
    check_max_rows(max_rows)
    root = check_root(corpus_dir, CORPUS)
    mics = MICS if mic == "both" else (mic,)
    col = Collected()

    info_path = root / "speaker-info.txt"
    if info_path.is_file():
        speakers, warns = parse_speaker_info(info_path)
        col.warnings.extend(warns)
    else:
        speakers = {}
        col.warn(f"{info_path}: missing; no age/gender/accent for any speaker")

    audio_root = root / AUDIO_DIR
    if not audio_root.is_dir():
        older = " (this looks like the pre-0.92 wav48/ layout, which is not supported)" if (root / "wav48").is_dir() else ""
        raise CorpusError(f"{CORPUS}: {audio_root} not found{older}")
    # Transcripts: {utterance (p225_001): path}
    txt_root = root / "txt"
    transcripts = {p.stem: p for p in sorted(txt_root.rglob("*.txt"))} if txt_root.is_dir() else {}
    if not txt_root.is_dir():
        col.warn(f"{txt_root}: missing; every row has text None")

    # Audio of the chosen mics: {(utterance, mic): path}; other files under the audio root warn.
    audio: dict[tuple[str, str], Path] = {}
    for p in list_audio(audio_root):
        m = _FLAC_RE.match(p.stem)
        if not m:
            col.warn(f"{p}: name is not <speaker>_<number>_mic1|mic2; skipped")
            continue
        if m.group("mic") in mics:
            audio[(m.group("utt"), m.group("mic"))] = p

    spk_with_audio = {(u.split("_")[0], m) for u, m in audio}
    spk_with_text = {u.split("_")[0] for u in transcripts}
    all_speakers = sorted({u.split("_")[0] for u, _ in audio} | spk_with_text)
    for spk in all_speakers:
        if spk not in speakers:
            col.warn(f"speaker {spk}: not in speaker-info.txt; no age/gender/accent")
        if spk not in spk_with_text and any((spk, m) in spk_with_audio for m in mics):
            col.warn(f"speaker {spk}: no transcripts under txt/{spk}/; rows kept with text None")

    def row_for(utt: str, m: str, path: Path) -> dict:
        spk = utt.split("_")[0]
        meta = speakers.get(spk, {})
        extra = {"mic": m, **{k: v for k, v in meta.items() if v not in ("", None)}}
        return real_row(
            utt_id=f"{utt}_{m}",
            corpus=CORPUS,
            path=rel_path(path, root),
            speaker=spk,
            language="en",
            split=split,
            text=None,
            extra=extra,
        )

    keys = set(audio)
    for m in mics:
        keys |= {(u, m) for u in transcripts}
    for utt, m in sorted(keys):
        spk = utt.split("_")[0]
        tpath = transcripts.get(utt)
        apath = audio.get((utt, m))
        if apath is None:
            if (spk, m) not in spk_with_audio:
                continue  # whole speaker lacks this mic: one warning below, not a row per file
            expected = audio_root / spk / f"{utt}_{m}.flac"
            row = row_for(utt, m, expected)
            row["text"] = read_text_file(tpath).strip() if tpath else None
            col.add(row, expected, f"{expected}: audio file missing (transcript {tpath} has no {m} audio)")
            continue
        row = row_for(utt, m, apath)
        if tpath is not None:
            row["text"] = read_text_file(tpath).strip()
        elif spk in spk_with_text:
            col.warn(f"{apath}: no transcript txt/{spk}/{utt}.txt; row kept with text None")
        col.add(row, apath)
    for spk in sorted(spk_with_text):
        for m in mics:
            if (spk, m) not in spk_with_audio:
                n = sum(1 for u in transcripts if u.split("_")[0] == spk)
                col.warn(f"speaker {spk}: no {m} audio under {AUDIO_DIR}/{spk}/ ({n} transcripts without {m} audio)")
    return finish(col, num_jobs, CORPUS, max_rows=max_rows, seed=seed)
