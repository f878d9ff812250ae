"""ASVspoof 2019 Logical Access: VCTK-based bona fide speech and TTS/VC spoofs (attacks A01-A19).

Layout (``LA.zip``)::

    LA/ASVspoof2019_LA_train/flac/LA_T_1138215.flac
    LA/ASVspoof2019_LA_dev/flac/LA_D_1047731.flac
    LA/ASVspoof2019_LA_eval/flac/LA_E_2834763.flac
    LA/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.train.trn.txt
    LA/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.dev.trl.txt
    LA/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.eval.trl.txt

A protocol line is ``SPEAKER UTT - ATTACK KEY``: ``LA_0079 LA_T_1138215 - - bonafide`` or
``LA_0079 LA_T_1004644 - A01 spoof``. ``corpus_dir`` may be the folder holding ``LA/`` or
``LA/`` itself. Bona fide lines become real rows; spoof lines become external-spoof rows named
by their attack (``label_name="A01"``, label -1, taxonomy "unknown").

Utterance ids are the protocol's (``LA_T_1138215``). A protocol line whose flac is missing is a
failed row. A flac that no protocol line mentions has no known label, so it is a failed row too.
A split whose protocol file is missing is skipped with a warning; no protocol at all is an error.

The partitions (``splits``) matter for ST-Codecfake: its "unseen real" set is the bona fide rows
of the **eval** partition only (7,355), and its "OOD other fake type" set the eval spoofs
(63,882), so read ``splits=("eval",)`` (``ncst ingest asvspoof2019_la <LA> --partition eval``)
and let the protocol take bona fide rows for ``unseen_real`` and spoofs for ``ood_other``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from manifests import external_spoof_row, real_row

from .common import Collected, CorpusError, check_max_rows, check_root, finish, list_audio, read_text_file, rel_path

CORPUS = "asvspoof2019_la"
SPLITS = ("train", "dev", "eval")
PROTOCOLS = {
    "train": "ASVspoof2019.LA.cm.train.trn.txt",
    "dev": "ASVspoof2019.LA.cm.dev.trl.txt",
    "eval": "ASVspoof2019.LA.cm.eval.trl.txt",
}
BONAFIDE = "bonafide"


def _la_root(root: Path) -> Path:
    return root / "LA" if (root / "LA").is_dir() else root


def parse_protocol_line(line: str) -> tuple[str, str, str, str] | None:
    """``SPEAKER UTT - ATTACK KEY`` -> (speaker, utt, attack, key); None for a malformed line."""
    parts = line.split()
    if len(parts) != 5 or parts[4] not in (BONAFIDE, "spoof"):
        return None
    spk, utt, _, attack, key = parts
    return spk, utt, attack, key


def prepare_asvspoof2019_la(
    corpus_dir: str | os.PathLike,
    splits: tuple[str, ...] = SPLITS,
    bonafide_only: bool = False,
    num_jobs: int = 1,
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Source manifest of ASVspoof 2019 LA (one row per protocol line, plus unlisted flacs).

    Args:
        corpus_dir: folder holding ``LA/`` (or ``LA/`` itself).
        splits: the partitions to read, any of ``train``, ``dev``, ``eval``.
        bonafide_only: keep only bona fide lines (the "unseen real" set of ST-Codecfake).
        num_jobs: threads probing and hashing files.
        max_rows: keep a seeded sample of this many ok rows (None: all); failed rows are kept
            besides (see :mod:`pipeline.corpora.common`).
        seed: the sample's seed (same listing, max_rows and seed -> same rows).

    Returns:
        A source-manifest frame; language ``en``; ``extra`` holds ``attack`` ('-' for bona fide)
        and ``key``. Paths are relative to ``corpus_dir``: write with ``root=corpus_dir``.
    """
    for s in splits:
        if s not in SPLITS:
            raise ValueError(f"unknown ASVspoof2019 LA split {s!r}; expected one of {SPLITS}")
    check_max_rows(max_rows)
    root = check_root(corpus_dir, CORPUS)
    la = _la_root(root)
    proto_dir = la / "ASVspoof2019_LA_cm_protocols"
    if not any((proto_dir / PROTOCOLS[s]).is_file() for s in splits):
        raise CorpusError(f"{CORPUS}: no CM protocol file under {proto_dir} (expected {[PROTOCOLS[s] for s in splits]})")
    col = Collected()
    for split in splits:
        proto = proto_dir / PROTOCOLS[split]
        flac_dir = la / f"ASVspoof2019_LA_{split}" / "flac"
        if not proto.is_file():
            col.warn(f"{proto}: missing; split {split!r} skipped")
            continue
        if not flac_dir.is_dir():
            col.warn(f"{flac_dir}: missing; every line of {proto.name} is a failed row")
        listed: set[Path] = set()
        for n, line in enumerate(read_text_file(proto).splitlines(), start=1):
            if not line.strip():
                continue
            parsed = parse_protocol_line(line)
            if parsed is None:
                col.warn(f"{proto}: line {n}: not 'SPEAKER UTT - ATTACK bonafide|spoof': {line.strip()!r}")
                continue
            spk, utt, attack, key = parsed
            flac = flac_dir / f"{utt}.flac"
            listed.add(flac)
            if bonafide_only and key != BONAFIDE:
                continue
            fields = dict(
                utt_id=utt,
                corpus=CORPUS,
                path=rel_path(flac, root),
                speaker=spk,
                language="en",
                split=split,
                extra={"attack": attack, "key": key},
            )
            row = real_row(**fields) if key == BONAFIDE else external_spoof_row(attack=attack, **fields)
            error = "" if flac.is_file() else f"{flac}: audio file missing (listed in {proto.name} line {n})"
            col.add(row, flac, error)
        for flac in list_audio(flac_dir, (".flac",)):
            if flac in listed:
                continue
            row = real_row(utt_id=flac.stem, corpus=CORPUS, path=rel_path(flac, root), language="en", split=split)
            col.add(row, flac, f"{flac}: not listed in {proto.name}; label unknown")
    return finish(col, num_jobs, CORPUS, max_rows=max_rows, seed=seed)
