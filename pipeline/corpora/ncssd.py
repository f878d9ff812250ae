"""NCSSD (Liu et al., ACM MM 2024, "Generative Expressive Conversational Speech Synthesis"):
236 h of two-party conversational speech, Chinese and English, in four subsets: recorded
(R-ZH, R-EN) and collected from TV shows (C-ZH, C-EN). ST-Codecfake uses it as unseen real
speech and as the source of its "different source" fakes, both from one seeded 10,000-turn
subset: ingest it once with a cap (``ncst ingest ncssd <NCSSD> --max-rows 10000 --seed 688``) and
point generation and the protocol at that one manifest, so the fakes and the unseen-real rows come
from the same turns. ``subsets`` (``--partition``) narrows the read to some of R-ZH/R-EN/C-ZH/C-EN.

The release's exact layout is not documented; this reader follows what the authors' collection
pipeline writes (walker-hyf/NCSSD, ``pipeline/step-6.py``), one folder per dialogue::

    <subset>/<dialogue>/metadata.json       {"dialog": 12, "utterents": {"0": {"index": 0,
                                              "duration": 2.31, "speaker": 0, "text": "...",
                                              "sample_rate": 16000}, ...}}
    <subset>/<dialogue>/0_0_d12.wav         <turn index>_<speaker 0|1>_d<dialogue>.wav
    <subset>/<dialogue>/0_0_d12.lab         the turn's transcript

Assumptions (stated because the layout is inferred, and kept tolerant):
- Every folder below ``corpus_dir`` that holds a ``metadata.json`` or audio files is a
  dialogue; its parent's path relative to ``corpus_dir`` is the subset ('' when the dialogues sit
  directly under ``corpus_dir``). The dialogue id is the JSON ``dialog`` value, else the name.
- The language comes from the subset name (a ``ZH``/``CN`` token -> ``zh``, ``EN`` -> ``en``),
  unless ``language`` is given; otherwise it is ''.
- ``metadata.json`` may spell its utterance map ``utterents`` (as written upstream) or
  ``utterances``, as a dict or a list; a turn's wav is the file named ``<index>_<speaker>_*``
  (or the entry's ``file``/``wav`` key). The ``.lab`` text wins over the JSON text.
- Speakers are numbered 0/1 within each dialogue, so the speaker id is made global as
  ``<subset>_d<dialogue>_<speaker>``; the per-dialogue number is kept in ``extra``.

Utterance ids are ``ncssd-<subset>-<wav stem>`` (``ncssd-<wav stem>`` without a subset). A JSON
turn without its wav is a failed row; a wav the JSON does not mention is kept (status ok) with a
warning; an unreadable ``metadata.json`` is a warning and its folder is read from the files alone.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd

from manifests import real_row

from .common import Collected, check_max_rows, check_root, finish, list_audio, read_text_file, rel_path

CORPUS = "ncssd"
_STEM_RE = re.compile(r"^(?P<index>\d+)_(?P<speaker>\d+)_d(?P<dialog>[^_]+)$")


def subset_language(subset: str) -> str:
    """'zh' / 'en' from tokens of a subset name such as ``C-ZH`` or ``NCSSD_R_EN``; else ''."""
    tokens = {t.upper() for t in re.split(r"[-_/ .]+", subset) if t}
    if tokens & {"ZH", "CN", "CHINESE", "MANDARIN"}:
        return "zh"
    if tokens & {"EN", "ENG", "ENGLISH"}:
        return "en"
    return ""


def _turns(meta: dict) -> list[dict]:
    turns = meta.get("utterents", meta.get("utterances", meta.get("utterance", [])))
    if isinstance(turns, dict):
        turns = [dict(v, _key=k) for k, v in turns.items() if isinstance(v, dict)]
    return [t for t in turns if isinstance(t, dict)] if isinstance(turns, list) else []


def _find_wav(folder: Path, wavs: list[Path], turn: dict) -> Path | None:
    for key in ("file", "wav", "path", "audio"):
        if isinstance(turn.get(key), str):
            return folder / turn[key]
    index = turn.get("index", turn.get("_key"))
    if index is None:
        return None
    speaker = turn.get("speaker")
    prefixes = [f"{index}_{speaker}_"] if speaker is not None else []
    prefixes.append(f"{index}_")
    for prefix in prefixes:
        hits = [w for w in wavs if w.name.startswith(prefix)]
        if hits:
            return hits[0]
    return None


def _subset_of(folder: Path, root: Path) -> str:
    """A dialogue folder's subset: its parent relative to ``root`` ('' for dialogues at the root)."""
    subset = rel_path(folder.parent, root) if folder != root else ""
    return "" if subset == "." else subset


def _keep_subsets(folders: set[Path], root: Path, subsets: tuple[str, ...]) -> set[Path]:
    """The dialogue folders inside one of ``subsets`` (a subset path or a folder above it)."""
    if isinstance(subsets, str):
        subsets = (subsets,)
    wanted = [s.strip("/") for s in subsets]
    found = sorted({_subset_of(f, root) for f in folders})

    def inside(subset: str, name: str) -> bool:
        return subset == name or subset.startswith(name + "/")

    missing = [w for w in wanted if not any(inside(s, w) for s in found)]
    if missing:
        raise ValueError(f"{CORPUS}: subset(s) {missing} not found under {root}; subsets found: {found}")
    return {f for f in folders if any(inside(_subset_of(f, root), w) for w in wanted)}


def prepare_ncssd(
    corpus_dir: str | os.PathLike,
    language: str | None = None,
    subsets: tuple[str, ...] | None = None,
    num_jobs: int = 1,
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Source manifest of an NCSSD tree (one row per dialogue turn).

    Args:
        corpus_dir: the NCSSD root (holding subset folders) or one subset or one dialogue.
        language: force this language code for every row (default: from subset names).
        subsets: read only these subsets (partitions), e.g. ``("R-EN", "C-EN")``: the folders
            directly under ``corpus_dir`` (or deeper subset paths); None reads every dialogue.
            A subset with no dialogue folder is an error naming the subsets found.
        num_jobs: threads probing and hashing files.
        max_rows: keep a seeded sample of this many ok rows (None: all); failed rows are kept
            besides (see :mod:`pipeline.corpora.common`).
        seed: the sample's seed (same listing, max_rows and seed -> same rows).

    Returns:
        A source-manifest frame; split ''; ``extra`` holds subset, dialog, turn and
        dialog_speaker. Paths are relative to ``corpus_dir``: write with ``root=corpus_dir``.
    """
    check_max_rows(max_rows)
    root = check_root(corpus_dir, CORPUS)
    col = Collected()
    folders = {p.parent for p in root.rglob("metadata.json")}
    all_audio = list_audio(root)
    folders |= {p.parent for p in all_audio}
    by_folder: dict[Path, list[Path]] = {}
    for p in all_audio:
        by_folder.setdefault(p.parent, []).append(p)
    if subsets is not None:
        folders = _keep_subsets(folders, root, subsets)
    if not folders:
        col.warn(f"{root}: no dialogue folder (metadata.json or audio) found")

    for folder in sorted(folders):
        wavs = sorted(by_folder.get(folder, []))
        subset = _subset_of(folder, root)
        lang = language if language is not None else subset_language(subset or root.name)
        meta: dict = {}
        meta_path = folder / "metadata.json"
        if meta_path.is_file():
            try:
                loaded = json.loads(read_text_file(meta_path))
                meta = loaded if isinstance(loaded, dict) else {}
                if not meta:
                    col.warn(f"{meta_path}: not a JSON object; folder read from its files alone")
            except json.JSONDecodeError as exc:
                col.warn(f"{meta_path}: unreadable JSON ({exc}); folder read from its files alone")
        dialog = str(meta.get("dialog", folder.name))

        def row_for(wav: Path, turn: dict) -> dict:
            m = _STEM_RE.match(wav.stem)
            spk_local = turn.get("speaker", m.group("speaker") if m else "")
            spk_local = "" if spk_local is None else str(spk_local)
            index = turn.get("index", m.group("index") if m else None)
            lab = wav.with_suffix(".lab")
            text = read_text_file(lab).strip() if lab.is_file() else turn.get("text")
            extra = {"subset": subset, "dialog": dialog, "dialog_speaker": spk_local}
            if index is not None:
                extra["turn"] = int(index) if str(index).isdigit() else index
            if turn.get("sample_rate"):
                extra["declared_sample_rate"] = turn["sample_rate"]
            speaker = "_".join(x for x in (subset.replace("/", "-"), f"d{dialog}", spk_local) if x)
            prefix = f"{CORPUS}-{subset.replace('/', '-')}-" if subset else f"{CORPUS}-"
            return real_row(
                utt_id=f"{prefix}{wav.stem}" if m else f"{prefix}{folder.name}-{wav.stem}",
                corpus=CORPUS,
                path=rel_path(wav, root),
                speaker=speaker if spk_local else "",
                language=lang,
                split="",
                text=text or None,
                extra=extra,
            )

        used: set[Path] = set()
        turns = _turns(meta)
        if meta and not turns:
            col.warn(f"{meta_path}: no 'utterents'/'utterances' entries")
        for turn in turns:
            wav = _find_wav(folder, wavs, turn)
            if wav is None or not wav.is_file():
                idx = turn.get("index", turn.get("_key", "?"))
                expected = wav or folder / f"{idx}_{turn.get('speaker', 'X')}_d{dialog}.wav"
                row = row_for(expected, turn)
                col.add(row, expected, f"{expected}: audio file missing (turn {idx} of {meta_path})")
                continue
            used.add(wav)
            col.add(row_for(wav, turn), wav)
        for wav in wavs:
            if wav in used:
                continue
            if turns:
                col.warn(f"{wav}: not in {meta_path}; row kept (text from .lab if any)")
            col.add(row_for(wav, {}), wav)
        if wavs and not meta_path.is_file():
            col.warn(f"{folder}: no metadata.json; {len(wavs)} files read from their names and .lab files")
    return finish(col, num_jobs, CORPUS, max_rows=max_rows, seed=seed)
