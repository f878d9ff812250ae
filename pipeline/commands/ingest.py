"""``ncst ingest <corpus> <path> -o manifest.parquet`` and ``ncst demo-corpus <dir>``.

Both only parse arguments and call the library (``pipeline.corpora.READERS[corpus]`` and
``pipeline.demo_corpus.make_demo_corpus``); everything they do is scriptable from Python.

Every file is decoded in full (NaN, infinite, truncated audio fail with the position; ``--header-only``
trusts headers instead) and rows shorter than ``--min-seconds`` fail. ``--partition`` reads part of a corpus (the reader's ``splits`` or ``subsets``), e.g. the LA eval
partition; ``--max-rows N --seed S`` keeps a seeded sample of N ok rows, chosen once at ingest so
that every later stage (generation, protocol) sees the same subset (see
:mod:`pipeline.corpora.common` for how failed rows are kept).
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Optional

import typer

CORPORA = ("vctk", "aishell3", "ncssd", "asvspoof2019_la", "in_the_wild", "labelled_folder")
# --partition is each reader's own word for a part of the corpus: split folders or subsets.
PARTITION_PARAMS = {"asvspoof2019_la": "splits", "aishell3": "splits", "ncssd": "subsets"}
RELEASE_NAMES = ("st-codecfake", "codecfake", "codecfake-plus", "mlaad")  # pipeline.releases.RELEASES
# Probing and hashing are I/O and decoder bound: threads help up to a few per core; 8 keeps a
# shared disk from thrashing.
DEFAULT_JOBS = min(os.cpu_count() or 1, 8)


def refuse_existing(path: Path, force: bool, what: str = "output") -> None:
    """One-line error (exit 2) when ``path`` exists and ``--force`` was not given."""
    if Path(path).exists() and not force:
        typer.secho(f"error: {what} {path} exists; pass --force to overwrite it", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)


def print_release_counts(df, output: Path | None = None, protocol_dir: Path | None = None, max_errors: int = 20,
                         max_warnings: int = 20) -> None:
    """Rich table of a release's rows per subset x condition x label (ok / failed), errors, warnings."""
    from rich.console import Console
    from rich.table import Table

    from pipeline.releases import counts

    console = Console(soft_wrap=True)
    ok = int((df["status"] == "ok").sum())
    table = Table(title=f"{df.attrs.get('release', '')}: {ok} ok, {len(df) - ok} failed")
    for name in ("subset", "condition", "label", "label_name", "ok", "failed"):
        table.add_column(name, justify="right" if name in ("label", "ok", "failed") else "left")
    for rec in counts(df).to_dict("records"):
        table.add_row(rec["subset"], rec["condition"], str(rec["label"]), rec["label_name"], str(rec["ok"]), str(rec["failed"]))
    console.print(table)
    bad = df[df["status"] != "ok"]
    if len(bad):
        console.print(f"[red]errors (first {min(max_errors, len(bad))} of {len(bad)}):[/red]")
        for e in bad["error"].head(max_errors):
            console.print(f"  {e}", markup=False, highlight=False)
    warnings = df.attrs.get("warnings", [])
    if warnings:
        console.print(f"[yellow]notes ({min(max_warnings, len(warnings))} of {len(warnings)}):[/yellow]")
        for w in warnings[:max_warnings]:
            console.print(f"  {w}", markup=False, highlight=False)
    if output is not None:
        console.print(f"protocol manifest: {output}", markup=False, highlight=False)
    if protocol_dir is not None:
        console.print(f"protocol subsets: {protocol_dir}", markup=False, highlight=False)


def ingest_release(release: str, path: Path, output: Path, protocol_dir: Path | None, jobs: int, force: bool,
                   options: dict, max_errors: int) -> None:
    """``ncst ingest st-codecfake|codecfake|codecfake-plus|mlaad``: read a release into protocol rows."""
    from manifests import write_manifest
    from pipeline.corpora import CorpusError
    from pipeline.releases import RELEASES, write_release_protocol

    reader = RELEASES[release]
    accepted = inspect.signature(reader).parameters
    wrong = [k for k, v in options.items() if v not in (None, (), []) and k not in accepted]
    if wrong:
        raise typer.BadParameter(f"{', '.join('--' + k.replace('_', '-') for k in wrong)} does not apply to {release}",
                                 param_hint="options")
    given = {k: v for k, v in options.items() if k in accepted and v not in (None, (), [])}
    refuse_existing(output, force, "manifest")
    try:
        df = reader(path, num_jobs=jobs, **given)
    except (CorpusError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    write_manifest(df, output, kind="protocol")
    pdir = None
    if protocol_dir is not None:
        write_release_protocol(df, protocol_dir)
        pdir = Path(protocol_dir) / "protocol"
    print_release_counts(df, output, pdir, max_errors=max_errors)
    if not (df["status"] == "ok").any():
        typer.secho("error: no usable audio (0 ok rows)", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)


def print_summary(summary, output: Path | None = None, max_warnings: int = 20) -> None:
    """Rich tables of a :class:`pipeline.corpora.Summary`: per split ok/failed/speakers, errors, warnings."""
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    table = Table(title=f"{summary.corpus}: {summary.ok} ok, {summary.failed} failed, {summary.duration_s / 60:.1f} min of ok audio")
    for name in ("split", "ok", "failed", "speakers", "minutes"):
        table.add_column(name, justify="left" if name == "split" else "right")
    for rec in summary.per_split.to_dict("records"):
        table.add_row(rec["split"] or "(none)", str(rec["ok"]), str(rec["failed"]), str(rec["speakers"]), f"{rec['duration_s'] / 60:.2f}")
    console.print(table)
    if summary.errors:
        console.print(f"[red]errors (first {len(summary.errors)} of {summary.failed}):[/red]")
        for e in summary.errors:
            console.print(f"  {e}", markup=False, highlight=False)
    if summary.warnings:
        shown = summary.warnings[:max_warnings]
        console.print(f"[yellow]warnings ({len(shown)} of {len(summary.warnings)}):[/yellow]")
        for w in shown:
            console.print(f"  {w}", markup=False, highlight=False)
    if output is not None:
        console.print(f"manifest: {output}", markup=False, highlight=False)


def ingest(
    corpus: str = typer.Argument(..., help=f"corpus reader: {', '.join(CORPORA)}; or a release: {', '.join(RELEASE_NAMES)}"),
    path: Path = typer.Argument(..., help="corpus root folder"),
    output: Path = typer.Option(..., "--output", "-o", help="source manifest to write (.parquet)"),
    jobs: int = typer.Option(DEFAULT_JOBS, "--jobs", "-j", min=1, help="threads probing and hashing files (default: CPU count, at most 8)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing --output manifest"),
    mic: Optional[str] = typer.Option(None, help="vctk: mic1, mic2 or both (default mic1)"),
    labels: Optional[Path] = typer.Option(None, help="labelled_folder: labels CSV/TSV (default: labels.csv in the folder)"),
    name: Optional[str] = typer.Option(None, "--name", help="labelled_folder: corpus name (default: folder name)"),
    language: Optional[str] = typer.Option(None, help="ncssd, labelled_folder: language code for the rows"),
    split: Optional[str] = typer.Option(None, help="vctk: value of the split column"),
    bonafide_only: bool = typer.Option(False, "--bonafide-only", help="asvspoof2019_la, in_the_wild: keep only bona fide rows"),
    partition: Optional[list[str]] = typer.Option(None, "--partition", help="read only this partition (repeatable): asvspoof2019_la train|dev|eval, aishell3 train|test, ncssd a subset folder (R-ZH, R-EN, C-ZH, C-EN)"),
    max_rows: Optional[int] = typer.Option(None, "--max-rows", min=1, help="keep a seeded sample of this many ok rows (failed rows are kept besides; the rest is not read)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="seed of the --max-rows sample (default 0)"),
    header_only: bool = typer.Option(False, "--header-only", help="trust each file's header (fast); by default every file is decoded in full, so NaN, infinite and truncated audio fail here"),
    min_seconds: Optional[float] = typer.Option(None, "--min-seconds", min=0.0, help="rows shorter than this fail (default 0.02 s, one codec frame)"),
    label: Optional[list[str]] = typer.Option(None, "--label", help="labelled_folder: a spoof label the table may use besides the corpus name (repeatable); other labels fail their rows"),
    allow_new_labels: bool = typer.Option(False, "--allow-new-labels", help="labelled_folder: accept undeclared labels as new spoof classes"),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help="labelled_folder: accept files outside the corpus folder (../x.wav, /abs/x.wav)"),
    max_errors: int = typer.Option(20, help="errors to print"),
    protocol_dir: Optional[Path] = typer.Option(None, "--protocol-dir", help="releases: also write <DIR>/protocol/subsets/<subset>.parquet + summary.csv (for ncst train / ncst study)"),
    unseen_real: Optional[list[Path]] = typer.Option(None, "--unseen-real", help="st-codecfake, mlaad: source manifests whose bona fide rows join unseen_real (repeatable)"),
    lists_dir: Optional[Path] = typer.Option(None, "--lists-dir", help="mlaad: folder of the protocol's train.csv, dev.csv, eval.csv (default: the MLAAD root)"),
    metadata_dir: Optional[Path] = typer.Option(None, "--metadata-dir", help="codecfake-plus: metadata folder (default <root>/metadata)"),
    balance: Optional[str] = typer.Option(None, "--balance", help="codecfake-plus: training lists: bal_dec or bal_vq (default: plain)"),
) -> None:
    """Read a corpus into a source manifest (or a release into protocol rows); print counts and errors."""
    if corpus in RELEASE_NAMES:
        ingest_release(corpus, path, output, protocol_dir, jobs, force,
                       dict(unseen_real=tuple(unseen_real or ()), metadata_dir=metadata_dir, lists_dir=lists_dir, balance=balance,
                            mic=mic, labels=labels, corpus=name, language=language, split=split,
                            bonafide_only=bonafide_only or None, partition=tuple(partition or ()),
                            max_rows=max_rows, seed=seed), max_errors)
        return
    if protocol_dir or unseen_real or metadata_dir or balance or lists_dir:
        raise typer.BadParameter("--protocol-dir, --unseen-real, --metadata-dir, --balance and --lists-dir apply to releases only",
                                 param_hint="options")
    from manifests import write_manifest
    from pipeline.corpora import READERS, CorpusError, summarize
    from pipeline.corpora.common import read_options

    if corpus not in READERS:
        raise typer.BadParameter(f"unknown corpus {corpus!r}; choose one of {', '.join(READERS)}", param_hint="CORPUS")
    reader = READERS[corpus]
    if seed is not None and max_rows is None:
        raise typer.BadParameter("--seed needs --max-rows (it seeds that sample)", param_hint="--seed")
    if partition and corpus not in PARTITION_PARAMS:
        raise typer.BadParameter(f"--partition does not apply to {corpus} (partitions exist for "
                                 f"{', '.join(PARTITION_PARAMS)})", param_hint="--partition")
    given = dict(mic=mic, labels=labels, corpus=name, language=language, split=split,
                 bonafide_only=bonafide_only or None, max_rows=max_rows,
                 seed=None if max_rows is None else (seed or 0), declared_labels=tuple(label) if label else None,
                 allow_new_labels=allow_new_labels or None, allow_outside_root=allow_outside_root or None)
    if partition:
        given[PARTITION_PARAMS[corpus]] = tuple(partition)
    given = {k: v for k, v in given.items() if v is not None}
    accepted = inspect.signature(reader).parameters
    wrong = [k for k in given if k not in accepted]
    if wrong:
        flags = ", ".join({"corpus": "--name", "declared_labels": "--label"}.get(k, f"--{k.replace('_', '-')}") for k in wrong)
        raise typer.BadParameter(f"{flags} does not apply to {corpus}", param_hint="options")
    checks = {"header_only": header_only} if min_seconds is None else {"header_only": header_only, "min_seconds": min_seconds}
    refuse_existing(output, force, "manifest")  # after the argument checks, before any reading
    try:
        with read_options(**checks):
            df = reader(path, num_jobs=jobs, **given)
    except (CorpusError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    write_manifest(df, output, root=path)
    summary = summarize(df, max_errors=max_errors)
    print_summary(summary, output)
    if summary.ok == 0:
        typer.secho("error: no usable audio (0 ok rows)", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)


def demo_corpus(
    out_dir: Path = typer.Argument(..., help="folder to write vctk/ and aishell3/ into"),
    seed: int = typer.Option(0, help="random seed (same seed, same bytes)"),
    vctk_speakers: int = typer.Option(4, min=0),
    aishell3_speakers: int = typer.Option(3, min=0),
    utterances: int = typer.Option(6, "--utterances", min=1, help="utterances per speaker"),
    corrupt: bool = typer.Option(False, help="also write one deliberately broken file (tests only)"),
    ncssd_dialogues: int = typer.Option(0, "--ncssd-dialogues", min=0, help="also write an NCSSD tree of this many dialogues"),
    asvspoof2019_la: int = typer.Option(0, "--asvspoof2019-la", min=0, help="also write an ASVspoof 2019 LA tree: eval partition of N bona fide + N spoofs"),
    in_the_wild: int = typer.Option(0, "--in-the-wild", min=0, help="also write an In-the-Wild tree of N bona fide + N spoofs"),
    ingest: bool = typer.Option(False, "--ingest", help="also write <dir>/manifests/<corpus>.parquet"),
    jobs: int = typer.Option(DEFAULT_JOBS, "--jobs", "-j", min=1, help="threads probing and hashing files (with --ingest; default: CPU count, at most 8)"),
) -> None:
    """Write the seeded synthetic demo corpus (VCTK and AISHELL-3 layouts, optionally NCSSD,
    ASVspoof 2019 LA and In-the-Wild), optionally ingest it."""
    from pipeline.corpora import summarize
    from pipeline.demo_corpus import ingest_demo_corpus, make_demo_corpus

    demo = make_demo_corpus(out_dir, seed=seed, vctk_speakers=vctk_speakers, aishell3_speakers=aishell3_speakers,
                            utterances_per_speaker=utterances, corrupt=corrupt, ncssd_dialogues=ncssd_dialogues,
                            asvspoof2019_la_utterances=asvspoof2019_la, in_the_wild_utterances=in_the_wild)
    typer.echo(f"vctk:     {demo.vctk_dir} ({demo.n_vctk} utterances)")
    typer.echo(f"aishell3: {demo.aishell3_dir} ({demo.n_aishell3} utterances)")
    for name, folder, n in (("ncssd", demo.ncssd_dir, demo.n_ncssd),
                            ("asvspoof2019_la", demo.asvspoof2019_la_dir, demo.n_asvspoof2019_la),
                            ("in_the_wild", demo.in_the_wild_dir, demo.n_in_the_wild)):
        if folder is not None:
            typer.echo(f"{name}: {folder} ({n} files)")
    typer.echo(f"audio:    {demo.duration_s:.1f} s")
    for p in demo.corrupt_files:
        typer.echo(f"corrupt:  {p}")
    if ingest:
        for path, df in ingest_demo_corpus(demo, out_dir / "manifests", num_jobs=jobs).values():
            print_summary(summarize(df), path)


COMMANDS = [("ingest", ingest), ("demo-corpus", demo_corpus)]
