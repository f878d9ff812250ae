"""Where protocol files live, so that standard readers open the folders as they are.

A protocol folder (``<run>/protocol/``)::

    README.md            dataset card with the Hugging Face YAML header: one split per subset
    subsets/<subset>.parquet   the study subsets, parquet only, one schema (kind ``protocol``)
    summary.csv, protocol.json the builder's reports
    sources/<split>.parquet    real rows of each split (kind ``source``, another schema)
    failed.parquet       release readers: rows that failed to probe (not a study subset)

so ``pd.read_parquet("protocol/subsets")``, ``pyarrow.dataset``, ``ray.data.read_parquet`` give
every subset's rows once (the ``subset`` column says which), and
``datasets.load_dataset("protocol")`` gives one split per subset. Protocol folders written before
this layout (``<subset>.parquet`` beside the reports) are still read.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

SUBSETS_DIR = "subsets"


def protocol_subset_path(protocol_dir: str | os.PathLike, subset: str) -> Path:
    """The file of ``subset``: ``subsets/<subset>.parquet``, or an older folder's ``<subset>.parquet``."""
    d = Path(protocol_dir)
    new, old = d / SUBSETS_DIR / f"{subset}.parquet", d / f"{subset}.parquet"
    return old if not new.exists() and old.exists() else new


def protocol_subset_names(protocol_dir: str | os.PathLike) -> list[str]:
    """Names of the subsets a protocol folder holds (either layout), sorted."""
    d = Path(protocol_dir)
    folder = d / SUBSETS_DIR if (d / SUBSETS_DIR).is_dir() else d
    return sorted(p.stem for p in folder.glob("*.parquet") if p.stem != "failed" and not p.name.startswith((".", "_")))


def hf_yaml_header(splits: Iterable[tuple[str, str]], *, pretty_name: str, license: str = "other",
                   task: str = "audio-classification", extra: dict | None = None) -> str:
    """A Hugging Face dataset-card YAML header: one ``default`` config with ``(split, file)`` pairs.

    ``license: other`` because a corpus made from several source corpora carries each one's
    licence; the card's body names them.
    """
    lines = ["---", f"pretty_name: {_yaml_str(pretty_name)}", f"license: {license}", "task_categories:",
             f"- {task}", "tags:", "- audio", "- codec-source-tracing", "- ncst"]
    for key, value in (extra or {}).items():
        lines.append(f"{key}: {_yaml_str(str(value))}")
    lines += ["configs:", "- config_name: default", "  data_files:"]
    for split, path in splits:
        lines += [f"  - split: {split}", f"    path: {_yaml_str(path)}"]
    lines.append("---")
    return "\n".join(lines) + "\n"


def _yaml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
