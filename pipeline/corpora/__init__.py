"""Corpus readers: one module per corpus, each with one ``prepare_<corpus>(corpus_dir, ...,
num_jobs=1, max_rows=None, seed=0) -> pandas.DataFrame`` returning source-manifest rows (schema
of :mod:`manifests`). ``max_rows``/``seed`` keep a seeded sample of that many ok rows (see
:mod:`.common`); readers of partitioned corpora take ``splits`` (ASVspoof 2019 LA, AISHELL-3) or
``subsets`` (NCSSD).

Every reader returns the same shape: one row per audio file (failed rows included, with
``status="failed"`` and an ``error`` naming the file and the problem), paths relative to
``corpus_dir``, and ``df.attrs["warnings"]`` for metadata-only problems. Write the result with
``manifests.write_manifest(df, out, root=corpus_dir)``; :func:`summarize` counts it.
"""
from __future__ import annotations

from .aishell3 import prepare_aishell3
from .asvspoof2019_la import prepare_asvspoof2019_la
from .common import CorpusError, Summary, summarize
from .in_the_wild import prepare_in_the_wild
from .labelled_folder import prepare_labelled_folder
from .ncssd import prepare_ncssd
from .vctk import prepare_vctk

# CLI name -> reader. The CLI's `ncst ingest <name> <path>` calls READERS[name].
READERS = {
    "vctk": prepare_vctk,
    "aishell3": prepare_aishell3,
    "ncssd": prepare_ncssd,
    "asvspoof2019_la": prepare_asvspoof2019_la,
    "in_the_wild": prepare_in_the_wild,
    "labelled_folder": prepare_labelled_folder,
}

__all__ = [
    "READERS",
    "CorpusError",
    "Summary",
    "summarize",
    "prepare_aishell3",
    "prepare_asvspoof2019_la",
    "prepare_in_the_wild",
    "prepare_labelled_folder",
    "prepare_ncssd",
    "prepare_vctk",
]
