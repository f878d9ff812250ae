"""Released corpora read as published: ST-Codecfake, Codecfake, CodecFake+ and the MLAAD source-tracing protocol.

Each reader ``prepare_<release>(root, ..., num_jobs=1) -> DataFrame`` returns *protocol* rows
(manifest columns + ``subset`` + ``condition``, absolute ``path``); failed rows included, with the
label file and line in ``error``; ``df.attrs["warnings"]`` says what was found where release and
README disagree. :func:`write_release_protocol` writes ``<output_dir>/protocol/subsets/<subset>.parquet``
and ``summary.csv`` like the protocol builder, for ``ncst train`` and ``ncst study``.
"""
from __future__ import annotations

from .codecfake import prepare_codecfake
from .codecfake_plus import prepare_codecfake_plus
from .mlaad import prepare_mlaad
from .common import ALM_BACKENDS, ReleaseError, counts, write_release_protocol
from .st_codecfake import add_unseen_real, prepare_st_codecfake

RELEASES = {
    "st-codecfake": prepare_st_codecfake,
    "codecfake": prepare_codecfake,
    "codecfake-plus": prepare_codecfake_plus,
    "mlaad": prepare_mlaad,
}

__all__ = ["RELEASES", "ALM_BACKENDS", "ReleaseError", "add_unseen_real", "counts", "prepare_codecfake",
           "prepare_codecfake_plus", "prepare_mlaad", "prepare_st_codecfake", "write_release_protocol"]
