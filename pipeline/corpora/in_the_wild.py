"""In-the-Wild (Müller et al., Interspeech 2022): 37.9 h of bona fide and deepfake audio of 58
public figures, collected from the web.

Layout (``release_in_the_wild.zip``)::

    release_in_the_wild/meta.csv     file,speaker,label   e.g. 0.wav,Alec Guinness,spoof
    release_in_the_wild/0.wav ... 31778.wav

``label`` is ``bona-fide`` or ``spoof``. ``corpus_dir`` may be ``release_in_the_wild/`` or the
folder holding it. The corpus has no split (``split=""``) and does not name the spoofing systems,
so spoof rows are external spoofs with ``label_name="unknown"``. ST-Codecfake uses all of it: the
19,963 bona fide files as "unseen real", the 11,816 spoofs as "OOD other fake type" (one manifest
read without ``bonafide_only`` serves both protocol subsets).

Utterance ids are ``in_the_wild-<file stem>`` (the stems are bare numbers). A meta.csv line
whose wav is missing is a failed row; a wav that meta.csv does not mention has no known label and
is a failed row too. A missing meta.csv is an error.
"""
from __future__ import annotations

import os

import pandas as pd

from manifests import external_spoof_row, real_row

from .common import Collected, CorpusError, check_max_rows, check_root, finish, list_audio, rel_path

CORPUS = "in_the_wild"
REAL_LABELS = ("bona-fide", "bonafide", "bona fide")
SPOOF_ATTACK = "unknown"


def prepare_in_the_wild(
    corpus_dir: str | os.PathLike,
    bonafide_only: bool = False,
    num_jobs: int = 1,
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Source manifest of In-the-Wild (one row per meta.csv line, plus unlisted wavs).

    Args:
        corpus_dir: ``release_in_the_wild/`` or its parent.
        bonafide_only: keep only bona fide lines (the "unseen real" set of ST-Codecfake).
        num_jobs: threads probing and hashing files.
        max_rows: keep a seeded sample of this many ok rows (None: all); failed rows are kept
            besides (see :mod:`pipeline.corpora.common`).
        seed: the sample's seed (same listing, max_rows and seed -> same rows).

    Returns:
        A source-manifest frame; language ``en``; ``extra`` holds the original ``label``.
        Paths are relative to ``corpus_dir``: write with ``root=corpus_dir``.
    """
    check_max_rows(max_rows)
    root = check_root(corpus_dir, CORPUS)
    data = root / "release_in_the_wild" if (root / "release_in_the_wild").is_dir() else root
    meta_path = data / "meta.csv"
    if not meta_path.is_file():
        raise CorpusError(f"{CORPUS}: {meta_path} not found (columns file,speaker,label)")
    meta = pd.read_csv(meta_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    meta.columns = [c.strip().lower() for c in meta.columns]
    missing = [c for c in ("file", "label") if c not in meta.columns]
    if missing:
        raise CorpusError(f"{CORPUS}: {meta_path} lacks columns {missing} (has {list(meta.columns)})")
    col = Collected()
    listed = set()
    for n, rec in enumerate(meta.to_dict("records"), start=2):
        name, label = rec["file"].strip(), rec["label"].strip()
        wav = data / name
        listed.add(wav)
        is_real = label.lower() in REAL_LABELS
        if bonafide_only and not is_real:
            continue
        fields = dict(
            utt_id=f"{CORPUS}-{os.path.splitext(name)[0]}",
            corpus=CORPUS,
            path=rel_path(wav, root),
            speaker=rec.get("speaker", "").strip(),
            language="en",
            split="",
            extra={"label": label},
        )
        row = real_row(**fields) if is_real else external_spoof_row(attack=SPOOF_ATTACK, **fields)
        error = ""
        if label.lower() not in (*REAL_LABELS, "spoof"):
            error = f"{meta_path}: line {n}: unknown label {label!r} for {name} (expected bona-fide or spoof)"
        elif not wav.is_file():
            error = f"{wav}: audio file missing (listed in {meta_path.name} line {n})"
        col.add(row, wav, error)
    for wav in list_audio(data):
        if wav not in listed:
            row = real_row(utt_id=f"{CORPUS}-{wav.stem}", corpus=CORPUS, path=rel_path(wav, root), language="en")
            col.add(row, wav, f"{wav}: not listed in {meta_path.name}; label unknown")
    return finish(col, num_jobs, CORPUS, max_rows=max_rows, seed=seed)
