"""Any folder of audio files plus a labels table: the way in for corpora without a reader
(ALM outputs such as Moshi or VALL-E samples, a lab's own recordings, ...).

Layout::

    <folder>/labels.csv (or .tsv)    file,label[,speaker,split,language,text,utt_id,...]
    <folder>/<any sub-path>/x.wav    ``file`` is relative to the folder holding the labels file

``label`` decides the row kind: ``real``, ``bonafide``, ``bona-fide`` or ``bona fide`` (any case)
-> real row; anything else -> external-spoof row with ``label_name`` = that label (e.g.
``moshi``). Columns other than the known ones go to ``extra``. The separator is a tab for
``.tsv`` files and a comma otherwise.

Utterance ids are the ``utt_id`` column when given, else ``<corpus>-<file without extension>``
with ``/`` replaced by ``-``. A labels line whose file is missing (or whose label is empty) is a
failed row; an audio file that no line mentions has no known label and is a failed row too.

Hostile tables are refused row by row (failed rows that say why; nothing is dropped silently):

- a ``file`` outside the folder (``../x.wav``, ``/abs/x.wav``) is refused unless
  ``allow_outside_root``;
- spoof labels must be declared: the real spellings, the corpus name (``--name moshi`` for a
  folder of Moshi outputs, case and ``-``/``_`` ignored) and every label of ``declared_labels``
  (``--label``); any other label (a typo such as ``bonafied``) fails its row unless
  ``allow_new_labels``. ``df.attrs["label_counts"]`` (and a warning) give each label's count;
- one file listed with different labels: every such line fails, naming the lines and labels
  (the same label twice: the later lines fail as duplicates);
- a broken symbolic link or a directory with an audio name is a failed row saying so.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from manifests import external_spoof_row, real_row

from .common import Collected, CorpusError, check_max_rows, check_root, finish, list_audio, rel_path

REAL_LABELS = ("real", "bonafide", "bona-fide", "bona fide")
LABEL_FILES = ("labels.csv", "labels.tsv", "meta.csv", "metadata.csv")
KNOWN = ("file", "label", "speaker", "split", "language", "text", "utt_id")


def read_labels(path: Path) -> pd.DataFrame:
    """The labels table as strings (column names stripped and lower-cased)."""
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    df.columns = [c.strip().lower() for c in df.columns]
    if "file" not in df.columns and "path" in df.columns:
        df = df.rename(columns={"path": "file"})
    missing = [c for c in ("file", "label") if c not in df.columns]
    if missing:
        raise CorpusError(f"{path}: labels table lacks columns {missing} (has {list(df.columns)})")
    return df


def prepare_labelled_folder(
    corpus_dir: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    corpus: str | None = None,
    language: str = "",
    num_jobs: int = 1,
    max_rows: int | None = None,
    seed: int = 0,
    declared_labels: tuple[str, ...] | list[str] = (),
    allow_new_labels: bool = False,
    allow_outside_root: bool = False,
) -> pd.DataFrame:
    """Source manifest of a folder of audio described by a labels CSV/TSV.

    Args:
        corpus_dir: the folder; file paths in the table are relative to it.
        labels: the labels file (default: the first of labels.csv, labels.tsv, meta.csv,
            metadata.csv in ``corpus_dir``); a relative path is taken under ``corpus_dir``.
        corpus: value of the ``corpus`` column (default: the folder's name).
        language: language for rows whose table has no ``language`` value.
        num_jobs: threads probing and hashing files.
        max_rows: keep a seeded sample of this many ok rows (None: all); failed rows are kept
            besides (see :mod:`pipeline.corpora.common`).
        seed: the sample's seed (same listing, max_rows and seed -> same rows).
        declared_labels: spoof labels the table may use besides the corpus name (see the module notes).
        allow_new_labels: accept undeclared labels as new spoof classes.
        allow_outside_root: accept ``file`` values that point outside ``corpus_dir``.

    Returns:
        A source-manifest frame. Paths are relative to ``corpus_dir``: write with
        ``root=corpus_dir``.
    """
    check_max_rows(max_rows)
    root = check_root(corpus_dir, "labelled_folder")
    corpus = corpus or root.name
    if labels is None:
        found = [root / n for n in LABEL_FILES if (root / n).is_file()]
        if not found:
            raise CorpusError(f"{corpus}: no labels file in {root} (looked for {', '.join(LABEL_FILES)})")
        labels_path = found[0]
    else:
        labels_path = Path(labels)
        labels_path = labels_path if labels_path.is_absolute() else root / labels_path
        if not labels_path.is_file():
            raise CorpusError(f"{corpus}: labels file not found: {labels_path}")
    table = read_labels(labels_path)
    known = {_label_key(x) for x in (*REAL_LABELS, corpus, *declared_labels)}
    records = table.to_dict("records")
    labels_of: dict[Path, list[tuple[int, str]]] = {}
    for n, rec in enumerate(records, start=2):
        labels_of.setdefault(Path(os.path.normpath(root / rec["file"].strip())), []).append((n, rec["label"].strip()))
    col = Collected()
    listed: set[Path] = set()
    counts: dict[str, int] = {}
    for n, rec in enumerate(records, start=2):
        name = rec["file"].strip()
        label = rec["label"].strip()
        audio = Path(os.path.normpath(root / name))  # same spelling as list_audio's paths
        listed.add(audio)
        counts[label] = counts.get(label, 0) + 1
        stem = os.path.splitext(name)[0].replace("\\", "/").strip("/").replace("/", "-")
        extra = {k: v for k, v in rec.items() if k not in KNOWN and v != ""}
        extra["label"] = label
        fields = dict(
            utt_id=rec.get("utt_id", "").strip() or f"{corpus}-{stem}",
            corpus=corpus,
            path=rel_path(audio, root),
            speaker=rec.get("speaker", "").strip(),
            language=rec.get("language", "").strip() or language,
            split=rec.get("split", "").strip(),
            text=rec.get("text") or None,
            extra=extra,
        )
        is_real = label.lower() in REAL_LABELS
        row = real_row(**fields) if is_real or not label else external_spoof_row(attack=label, **fields)
        error = ""
        others = labels_of[audio]
        outside = not _inside(audio, root)
        if not label:
            error = f"{labels_path}: line {n}: empty label for {name}"
        elif outside and not allow_outside_root:
            error = (f"{labels_path}: line {n}: {name!r} points outside the corpus folder {root} (refused; "
                     f"allow with --allow-outside-root)")
        elif len({lab for _, lab in others}) > 1:
            error = (f"{labels_path}: line {n}: {name} has conflicting labels: "
                     + ", ".join(f"{lab!r} (line {m})" for m, lab in others) + "; every such line fails")
        elif audio.is_symlink() and not audio.exists():
            error = f"{audio}: broken symbolic link (its target {os.readlink(audio)} does not exist; line {n})"
        elif audio.is_dir():
            error = f"{audio}: a directory, not an audio file (listed in {labels_path.name} line {n})"
        elif not audio.is_file():
            error = f"{audio}: audio file missing (listed in {labels_path.name} line {n})"
        elif _label_key(label) not in known and not allow_new_labels:
            error = (f"{labels_path}: line {n}: unknown label {label!r} for {name} (declared: "
                     f"{', '.join(sorted(known))}); declare it with --label {label} or pass --allow-new-labels")
        if outside and allow_outside_root:
            row["path"] = audio.as_posix()  # absolute: the manifest must not point at root/../x
        col.add(row, audio, error)
    col.warn("labels: " + ", ".join(f"{lab or '(empty)'} {k}" for lab, k in sorted(counts.items())))
    for audio in list_audio(root, include_broken=True):
        if audio not in listed:
            rel = rel_path(audio, root)
            stem = os.path.splitext(rel)[0].replace("/", "-")
            row = real_row(utt_id=f"{corpus}-{stem}", corpus=corpus, path=rel, language=language)
            col.add(row, audio, f"{audio}: not listed in {labels_path.name}; label unknown")
    df = finish(col, num_jobs, corpus, max_rows=max_rows, seed=seed)
    df.attrs["label_counts"] = dict(sorted(counts.items()))
    return df


def _label_key(label: str) -> str:
    """Labels compare without case and with ``-``, ``_`` and spaces alike (``bona-fide`` = ``Bona fide``)."""
    return label.strip().lower().replace("-", " ").replace("_", " ")


def _inside(path: Path, root: Path) -> bool:
    """``path`` (already normalised) lies under ``root``."""
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False
