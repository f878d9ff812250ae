"""Generation: plan -> resynthesis (Ray Data actor pools, or in-process) -> parquet manifests.

Layout written under ``<output_dir>/dataset``::

    audio/<variant>/<speaker>/<source_utt_id>.flac
    manifests/fake.parquet                 the merged fake manifest (kind "fake"), the folder's only file
    README.md                              the dataset card
    .ncst/shards/<time_ns>-<pid>-<n>.parquet   rows as they finish (resume state; see pipeline.shards)
    .ncst/attempts.jsonl                   items handed to the in-process model (AttemptLog)

How a run goes (:func:`run_generation`):

1. plan every (usable source utterance x variant) item (:func:`pipeline.plan.make_plan`);
2. with ``resume``, skip items whose newest shard row is ``ok``, whose file exists with the size the
   row records (``verify``: hashes to the recorded sha256), at the planned sample rate, with compatible weights and the same run
   options (precision, batch mode, executor, thread count); items the plan refused (too long,
   too short, outside the root, changed) become failed rows without running; in-process, items
   that were in the model when a process died run one at a time, and fail after
   :data:`MAX_ATTEMPTS` deaths (:class:`AttemptLog`);
3. for each variant, run the rest through :class:`pipeline.predictor.Predictor`: on Ray, as one
   Ray Data pipeline per variant (``from_arrow`` blocks of ``batch_size`` items sorted by length
   -> optional decode stage -> actor pool -> optional write stage), or in-process
   (``executor="local"``) over the same batches. The driver only sees manifest rows (never
   audio) and appends them to a new parquet shard every ``shard_rows`` rows, atomically, so a
   killed run loses at most one shard of rows (their files are simply redone). On Ray, a batch
   whose actor dies is retried a bounded number of times; then the items left run one per task
   (:func:`run_ray_isolated`), so an item that kills its worker fails alone;
4. merge the shards one variant at a time (newest row per item wins), stream ``fake.parquet``
   and the compacted shard through ``ParquetWriter``, write the card, print a summary.

Two drivers must not write the same dataset folder at the same time.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from manifests import write_card
from pipeline.allocator import malloc_env, tune_malloc
from pipeline.plan import make_plan
from pipeline.predictor import Predictor, decode_batch, write_batch
from pipeline.recipe import GenerateConfig, Recipe, VariantSpec, load_recipe
from pipeline.shards import (  # noqa: F401  (resume-state names, re-exported for callers and tests)
    MAX_ATTEMPTS,
    RESUME_COLUMNS,
    AttemptLog,
    ShardWriter,
    VariantCounts,
    completed,
    file_bytes_of,
    merge_shards,
    migrate_old_layout,
    newest_rows,
    precision_of,
    read_shards,
    remove_stale_temp_files,
    run_options_of,
    shards_dir,
    work_dir,
)

log = logging.getLogger(__name__)

BATCH_COLUMNS = ("utt_id", "src_path", "out_path", "output_sample_rate", "codec_sample_rate")
ENV_FORWARD = ("NCST_CATALOG_PATH", "NCST_WEIGHTS_DIR", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TORCH_HOME")


class GenerateError(RuntimeError):
    """Generation cannot start (unknown variant, codec family missing, weights missing...)."""


# ----------------------------------------------------------------------------- summary
@dataclass
class GenerateSummary:
    """What a run did. ``done``/``failed``/``audio_s`` count this run only; ``skipped`` were resumed."""

    dataset_dir: Path
    manifest: Path
    card: Path
    executor: str
    planned: int
    skipped: int
    done: int
    failed: int
    missing: int  # planned items with no row at all (a variant that could not run)
    audio_s: float
    total_ok: int  # ok rows in the merged manifest
    total_audio_s: float
    elapsed_s: float  # resynthesis phase, wall clock
    per_variant: dict[str, VariantCounts] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # first few errors of this run

    @property
    def items_per_s(self) -> float:
        return (self.done + self.failed) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def audio_s_per_s(self) -> float:
        """Audio seconds written per wall-clock second (x real time)."""
        return self.audio_s / self.elapsed_s if self.elapsed_s > 0 else 0.0


def print_summary(summary: GenerateSummary, console: Any = None) -> None:
    """A rich table per variant, totals, throughput and where things were written."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(soft_wrap=True)
    table = Table(title=f"generation ({summary.executor})")
    for name in ("variant", "planned", "skipped", "done", "failed", "audio min"):
        table.add_column(name, justify="left" if name == "variant" else "right")
    for vid, c in summary.per_variant.items():
        table.add_row(vid, str(c.planned), str(c.skipped), str(c.done), str(c.failed), f"{c.audio_s / 60:.2f}")
    table.add_row("[b]total", str(summary.planned), str(summary.skipped), str(summary.done), str(summary.failed),
                  f"{summary.audio_s / 60:.2f}")
    console.print(table)
    console.print(
        f"done {summary.done}, skipped {summary.skipped}, failed {summary.failed}, missing {summary.missing}; "
        f"{summary.audio_s / 3600:.4f} audio-hours in {summary.elapsed_s:.1f} s: "
        f"{summary.audio_s_per_s:.1f} audio-s/s (x real time), {summary.items_per_s:.2f} items/s",
        highlight=False,
    )
    console.print(f"manifest: {summary.manifest} ({summary.total_ok} ok rows, {summary.total_audio_s / 3600:.4f} h)",
                  markup=False, highlight=False)
    if summary.errors:
        console.print(f"[red]errors (first {len(summary.errors)}):[/red]")
        for e in summary.errors:
            console.print(f"  {e}", markup=False, highlight=False)


# ----------------------------------------------------------------------------- executors
def _batches(df: pd.DataFrame, batch_size: int) -> Iterator[dict]:
    for start in range(0, len(df), batch_size):
        chunk = df.iloc[start : start + batch_size]
        yield {c: chunk[c].to_numpy() for c in BATCH_COLUMNS}


def _predictor_kwargs(config: GenerateConfig, spec: VariantSpec, stages: str) -> dict:
    return dict(
        variant=spec.id,
        weights=config.weights_for(spec),
        device=config.device,
        max_batch_seconds=config.max_batch_seconds,
        stages=stages,
        audio_format=config.audio_format,
        seed=config.seed,
        precision=config.precision_for(spec),
        num_threads=config.num_threads,
        batch_mode=spec.batch_mode,
        chunk_seconds=config.chunk_seconds,
        chunk_overlap_seconds=config.chunk_overlap_seconds,
    )


def run_local(todo: pd.DataFrame, config: GenerateConfig, spec: VariantSpec, progress: Callable[[int], None] | None = None,
              attempts: AttemptLog | None = None) -> Iterator[dict]:
    """In-process executor: the same :class:`Predictor` over the same batches, no Ray.

    The model runs in this thread; decoding the next batches and writing the finished ones run in
    a pool of ``config.io_threads_for_local()`` threads meanwhile (soundfile, soxr, hashlib and
    torch release the GIL), at most that many + 1 batches ahead and behind, so memory stays
    bounded. With 0 I/O threads the stages run in turn. Result batches come in plan order.
    ``attempts`` (an :class:`AttemptLog`) records each batch handed to the model and its return.
    """
    def model(fn, batch):
        if attempts is not None:
            attempts.start(batch["utt_id"])
        out = fn(batch)
        if attempts is not None:
            attempts.done(batch["utt_id"])
        return out

    tune_malloc()
    threads = config.io_threads_for_local()
    batches = _batches(todo, config.batch_size_for(spec))
    if threads == 0:
        predictor = Predictor(**_predictor_kwargs(config, spec, "all"))
        for batch in batches:
            out = model(predictor, batch)
            if progress:
                progress(len(out["utt_id"]))
            yield out
        return
    predictor = Predictor(**_predictor_kwargs(config, spec, "model"))
    window = threads + 1
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ncst-io") as pool:
        decoding: deque = deque()
        writing: deque = deque()

        def read_ahead() -> None:
            while len(decoding) < window:
                batch = next(batches, None)
                if batch is None:
                    return
                decoding.append(pool.submit(decode_batch, batch, sample_rate=predictor.sample_rate))

        read_ahead()
        while decoding or writing:
            if decoding:
                decoded = decoding.popleft().result()
                read_ahead()
                writing.append(pool.submit(write_batch, model(predictor.model_stage, decoded), audio_format=config.audio_format))
            # Hand back finished writes in order; wait only when the window is full or the model is done.
            while writing and (writing[0].done() or len(writing) > window or not decoding):
                out = writing.popleft().result()
                if progress:
                    progress(len(out["utt_id"]))
                yield out


def split_io_for(config: GenerateConfig, spec: VariantSpec) -> bool:
    """Decode and write in their own Ray stages? ``auto``: when the actors hold GPUs."""
    return bool(spec.num_gpus > 0) if config.split_io == "auto" else bool(config.split_io)


def actor_concurrency(spec: VariantSpec, resources: Mapping[str, float], split_io: bool) -> int | tuple[int, int]:
    """Ray Data ``concurrency`` of a variant's actor pool.

    Explicit values are kept. Otherwise an elastic pool ``(1, n)`` sized to the cluster's GPUs
    (GPU actors) or to its CPUs minus what the input/output tasks need (one CPU, two with
    ``split_io``), so that the pool can never hold every CPU its own input stage waits for.
    The size is taken from the resources the cluster has *now*: on an autoscaling cluster that
    starts without GPU workers, set ``concurrency`` in the recipe (e.g. ``[1, 8]``).
    """
    if spec.concurrency is not None:
        return spec.concurrency
    if spec.num_gpus > 0:
        n = int(resources.get("GPU", 0) // spec.num_gpus)
    else:
        reserve = 2 if split_io else 1
        n = int(max(0.0, resources.get("CPU", 1) - reserve) // max(spec.num_cpus, 1e-9))
    n = max(1, n)
    return (1, n) if n > 1 else 1


def init_ray(config: GenerateConfig, address: str | None = None) -> bool:
    """Connect to ``address`` or start Ray on this machine; True when this call started it.

    ``node_ip`` (None = Ray's default) is this driver's node address; ``num_cpus`` and
    ``temp_dir`` apply to a Ray started here. Catalog/weights environment variables are
    forwarded to the workers.
    """
    import ray

    if ray.is_initialized():
        return False
    env = {**malloc_env(), **{k: os.environ[k] for k in ENV_FORWARD if k in os.environ}}
    kwargs: dict[str, Any] = dict(runtime_env={"env_vars": env} if env else None, log_to_driver=True)
    if config.node_ip:
        kwargs["_node_ip_address"] = config.node_ip
    address = address or config.address
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=config.num_cpus, include_dashboard=False, _temp_dir=config.temp_dir, **kwargs)
    return True


def run_ray(todo: pd.DataFrame, config: GenerateConfig, spec: VariantSpec, codec_rate: int) -> Iterator[dict]:
    """One Ray Data pipeline for one variant; yields result batches (manifest columns, no audio)."""
    import pyarrow as pa
    import ray

    bs = config.batch_size_for(spec)
    split = split_io_for(config, spec)
    tables = [
        pa.table({c: todo[c].iloc[s : s + bs].to_numpy() for c in BATCH_COLUMNS}) for s in range(0, len(todo), bs)
    ]
    ds = ray.data.from_arrow(tables)
    if split:
        ds = ds.map_batches(decode_batch, fn_kwargs={"sample_rate": int(codec_rate)}, batch_format="numpy", batch_size=bs)
    gpu = {"num_gpus": spec.num_gpus} if spec.num_gpus > 0 else {}
    resources = ray.cluster_resources()
    concurrency = actor_concurrency(spec, resources, split)
    most = concurrency[1] if isinstance(concurrency, tuple) else concurrency
    if spec.num_gpus == 0 and most * spec.num_cpus > resources.get("CPU", 0) - 1:
        log.warning("%s: %s actors x %s CPUs leave no CPU for the input/output tasks of %s CPUs in the cluster; "
                    "the pool may starve its own input stage", spec.id, most, spec.num_cpus, resources.get("CPU", 0))
    ds = ds.map_batches(
        Predictor,
        fn_constructor_kwargs=_predictor_kwargs(config, spec, "model" if split else "all"),
        concurrency=concurrency,
        batch_size=bs,
        num_cpus=spec.num_cpus,
        batch_format="numpy",
        # Ray Data retries a task whose actor died without end: a batch holding an item that kills
        # its process would loop. A bounded retry ends the pipeline instead (see run_ray_isolated).
        max_restarts=-1,
        max_task_retries=MAX_ATTEMPTS - 1,
        **gpu,
    )
    if split:
        ds = ds.map_batches(write_batch, fn_kwargs={"audio_format": config.audio_format}, batch_format="numpy", batch_size=bs)
    yield from ds.iter_batches(batch_size=None, batch_format="numpy")


def _predict_once(kwargs: dict, batch: dict) -> dict:
    return Predictor(**kwargs)(batch)


def died_with_process(exc: BaseException) -> bool:
    """Did a Ray pipeline end because a worker process died (out of memory, a crash)?"""
    names = ("WorkerCrashedError", "ActorDiedError", "RayActorError", "ActorUnavailableError", "OutOfMemoryError")
    seen, e = set(), exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__name__ in names or any(n in str(e) for n in names):
            return True
        e = e.__cause__ or e.__context__
    return False


def run_ray_isolated(todo: pd.DataFrame, config: GenerateConfig, spec: VariantSpec) -> Iterator[dict]:
    """Each item in its own Ray task (a predictor per task), after a worker died in the pipeline:
    the culprit dies alone, :data:`MAX_ATTEMPTS` times, and becomes a failed row; its batch-mates
    finish. Slow (a codec load per item), so only the items left when the pipeline died run here."""
    import ray

    kwargs = _predictor_kwargs(config, spec, "all")
    gpu = {"num_gpus": spec.num_gpus} if spec.num_gpus > 0 else {}
    task = ray.remote(num_cpus=spec.num_cpus, max_retries=MAX_ATTEMPTS - 1, **gpu)(_predict_once)
    batches = list(_batches(todo, 1))
    refs = [task.remote(kwargs, b) for b in batches]
    for ref, batch in zip(refs, batches):
        try:
            yield ray.get(ref)
        except Exception as exc:
            why = (f"killed the process that ran it in {MAX_ATTEMPTS} attempts (out of memory? a crash?); its "
                   f"batch-mates were run without it" if died_with_process(exc) else f"{type(exc).__name__}: {exc}")
            yield failed_result(batch["utt_id"], [f"{p}: {why}" for p in batch["src_path"]])


# ----------------------------------------------------------------------------- the run
def _preflight(config: GenerateConfig, check_weights: bool):
    """Resolve every variant and check its family loads (and its weights, when local).

    Returns ``(variants, weights_ids)``: catalog variants in section order and, for variants whose
    weights were resolved here, the weights id the run will record (checkpoint sha256)."""
    from codec_wrappers.catalog import get_variant
    from codec_wrappers.registry import family_status, is_implemented
    from codec_wrappers.weights import resolve_weights

    variants, problems, ids = [], [], {}
    for spec in config.variants:
        try:
            v = get_variant(spec.id)
        except Exception as exc:
            problems.append(f"{spec.id}: {exc}")
            continue
        if not is_implemented(v):
            problems.append(f"{spec.id}: codec family {v.family!r} is {family_status(v)}")
        elif check_weights:
            try:
                ids[spec.id] = resolve_weights(v, config.weights_for(spec)).weights_id
            except Exception as exc:
                problems.append(f"{spec.id}: {exc}")
        variants.append(v)
    if problems:
        raise GenerateError("cannot generate:\n  " + "\n  ".join(problems))
    return variants, ids


def threads_for(config: GenerateConfig, spec: VariantSpec, executor: str) -> int:
    """Torch intra-op threads a variant's predictor will run with (recorded in each row's extra):
    ``num_threads`` when set, else a Ray actor's ``num_cpus`` or this process's torch setting."""
    if config.num_threads:
        return int(config.num_threads)
    if executor == "ray":
        return max(1, int(math.ceil(spec.num_cpus)))  # Ray starts an actor with OMP_NUM_THREADS = num_cpus
    import torch

    return int(torch.get_num_threads())


def plan_generation(config: GenerateConfig, variants: list, dataset_dir: Path, limit: int | None = None,
                    executor: str | None = None) -> pd.DataFrame:
    """The plan of a generate section: variants that share source manifests are planned together.

    Returns one frame in the section's variant order (see :func:`pipeline.plan.make_plan`). Each
    row's ``extra`` records the run options, the executor and the thread count.
    """
    executor = executor or config.executor
    groups: dict[tuple[Path, ...], list] = {}
    for spec, variant in zip(config.variants, variants):
        groups.setdefault(config.sources_for(spec), []).append(variant)
    options = {spec.id: {"precision": config.precision_for(spec), "batch_mode": spec.batch_mode, "executor": executor,
                         "num_threads": str(threads_for(config, spec, executor))} for spec in config.variants}
    parts = [
        make_plan(sources, group, dataset_dir, audio_format=config.audio_format,
                  sample_rate=config.sample_rate, limit=limit, run_options=options,
                  max_item_seconds=config.max_item_seconds, min_item_seconds=config.min_item_seconds,
                  allow_outside_root=config.allow_outside_root, verify_sources=config.verify_sources,
                  chunk_seconds=config.chunk_seconds, chunk_overlap_seconds=config.chunk_overlap_seconds)
        for sources, group in groups.items()
    ]
    if len(parts) == 1:
        return parts[0]
    order = {spec.id: i for i, spec in enumerate(config.variants)}
    plan = pd.concat(parts, ignore_index=True)
    plan = plan.assign(_o=plan["variant"].map(order)).sort_values("_o", kind="stable").drop(columns="_o")
    plan = plan.reset_index(drop=True)
    skipped: dict[str, int] = {}
    for part in parts:
        for key, n in part.attrs.get("skipped", {}).items():
            skipped[key] = skipped.get(key, 0) + n
    plan.attrs.update(dataset_dir=str(dataset_dir), skipped=skipped)
    return plan


def run_generation(
    config: GenerateConfig,
    output_dir: str | os.PathLike,
    *,
    name: str = "ncst dataset",
    resume: bool = True,
    executor: str | None = None,
    address: str | None = None,
    limit: int | None = None,
    console: Any = None,
    quiet: bool = False,
) -> GenerateSummary:
    """Generate (or complete) the fake dataset of ``config`` under ``<output_dir>/dataset``.

    Args:
        config: the recipe's ``generate:`` section (:class:`pipeline.recipe.GenerateConfig`).
        output_dir: the recipe's output folder.
        name: dataset title (card).
        resume: skip items already done (see :func:`completed`); False redoes every item.
        executor: ``"ray"`` or ``"local"``; None = ``config.executor``.
        address: Ray cluster address (overrides ``config.address``); None = a Ray started here.
        limit: only the first ``limit`` usable source utterances (per variant).
        console: a ``rich.console.Console`` for progress and the summary.
        quiet: print nothing.
    Returns:
        :class:`GenerateSummary`; the manifest is ``summary.manifest``.
    """
    from rich.console import Console

    console = console or Console(soft_wrap=True, quiet=quiet)
    executor = executor or config.executor
    if executor not in ("ray", "local"):
        raise GenerateError(f"executor must be 'ray' or 'local', got {executor!r}")
    address = address or config.address
    dataset_dir = (Path(output_dir) / "dataset").resolve()
    variants, weights_ids = _preflight(config, check_weights=not (executor == "ray" and address))
    by_id = {v.id: v for v in variants}
    plan = plan_generation(config, variants, dataset_dir, limit=limit, executor=executor)
    refused = (plan["plan_error"].fillna("") != "").to_numpy(dtype=bool)
    skipped_src = plan.attrs.get("skipped", {})
    if any(skipped_src.values()):
        console.print(f"source rows not planned: {skipped_src['not_ok']} not ok, {skipped_src['fake']} not real audio",
                      highlight=False)
    moved = migrate_old_layout(dataset_dir)
    if moved:
        console.print(f"moved the work state of an older layout into {work_dir(dataset_dir)}: {len(moved)} file(s)",
                      markup=False, highlight=False)
    shards_dir(dataset_dir).mkdir(parents=True, exist_ok=True)
    weights = {s.id: config.weights_for(s) for s in config.variants}
    if resume:
        done_mask = completed(plan, read_shards(dataset_dir, RESUME_COLUMNS), weights, expected_ids=weights_ids,
                              verify=config.verify) & ~refused
    else:
        done_mask = np.zeros(len(plan), dtype=bool)
    removed = remove_stale_temp_files(dataset_dir)
    if removed:
        log.info("removed %d temporary files of an interrupted run", removed)
    attempts = AttemptLog(dataset_dir)
    if not resume:
        attempts.clear()
    unanswered = attempts.unanswered()
    died = np.array([unanswered.get(u, 0) for u in plan["utt_id"]], dtype=np.int64)
    killed = (died >= MAX_ATTEMPTS) & ~done_mask & ~refused
    todo = plan[~done_mask & ~refused & ~killed]
    writer = ShardWriter(plan, dataset_dir, config.shard_rows)
    if killed.any():  # died with its process MAX_ATTEMPTS times: failed, never tried again
        bad = plan[killed]
        writer.add(failed_result(bad["utt_id"].to_numpy(), [
            f"{p}: killed the process that ran it in {n} attempts (out of memory? a crash?); not tried again "
            f"(delete {attempts.path} to retry)" for p, n in zip(bad["src_path"], died[killed])]))
    if refused.any():  # refused at plan time (too long, too short, outside the root, changed): no model runs
        bad = plan[refused]
        writer.add(failed_result(bad["utt_id"].to_numpy(), bad["plan_error"].tolist()))
    counts: dict[str, VariantCounts] = {}
    for spec in config.variants:
        in_plan = plan["variant"] == spec.id
        counts[spec.id] = VariantCounts(planned=int(in_plan.sum()), skipped=int((in_plan & done_mask).sum()))
    console.print(
        f"{len(plan)} items planned ({len(plan) - len(todo)} already done), {len(todo)} to make "
        f"with {len(config.variants)} variant(s) on {executor}",
        highlight=False,
    )

    started_ray = False
    if executor == "ray" and len(todo):
        started_ray = init_ray(config, address)
    t0 = time.perf_counter()
    try:
        for spec in config.variants:
            part = todo[todo["variant"] == spec.id]
            if not len(part):
                continue
            try:
                if executor == "local":
                    suspect = part["utt_id"].map(lambda u: unanswered.get(u, 0) > 0).to_numpy(dtype=bool)
                    _run_local_with_progress(part[~suspect], config, spec, writer, console, attempts)
                    if suspect.any():  # were in the model when a process died: one at a time, rows kept at once
                        alone = dataclasses.replace(spec, batch_size=1)
                        _run_local_with_progress(part[suspect], config, alone, writer, console, attempts, flush_each=True)
                else:
                    try:
                        for result in run_ray(part, config, spec, by_id[spec.id].sample_rate):
                            writer.add(result)
                    except Exception as exc:
                        if not died_with_process(exc):
                            raise
                        left = part[~part["utt_id"].isin(writer.seen)]
                        console.print(f"{spec.id}: a worker died; running the {len(left)} items left one per task",
                                      highlight=False)
                        for result in run_ray_isolated(left, config, spec):
                            writer.add(result)
            except Exception as exc:  # a variant that cannot run: its unfinished items fail, others go on
                log.exception("variant %s failed", spec.id)
                left = part[~part["utt_id"].isin(writer.seen)]
                msg = f"codec {spec.id} could not run: {type(exc).__name__}: {exc}"
                if len(left):
                    writer.add(failed_result(left["utt_id"].to_numpy(), [f"{p}: {msg}" for p in left["src_path"]]))
        elapsed = time.perf_counter() - t0
    finally:
        writer.flush()
        if started_ray:
            import ray

            ray.shutdown()

    # Merge, one variant at a time: newest row per item; the manifest holds the plan's items in
    # plan order, the compacted shard every item the shards hold.
    plan_ids = {spec.id: plan.loc[plan["variant"] == spec.id, "utt_id"] for spec in config.variants}
    merged = merge_shards(dataset_dir, plan_ids, dataset_dir / "manifests" / "fake.parquet")
    manifest = merged.manifest
    card = write_card(merged.card_frame, dataset_dir, title=name)

    for vid, c in writer.counts.items():
        counts[vid].done, counts[vid].failed, counts[vid].audio_s = c.done, c.failed, c.audio_s
    summary = GenerateSummary(
        dataset_dir=dataset_dir,
        manifest=manifest,
        card=card,
        executor=executor,
        planned=len(plan),
        skipped=int(done_mask.sum()),
        done=sum(c.done for c in counts.values()),
        failed=sum(c.failed for c in counts.values()),
        missing=len(plan) - merged.rows,
        audio_s=sum(c.audio_s for c in counts.values()),
        total_ok=merged.ok,
        total_audio_s=merged.ok_audio_s,
        elapsed_s=elapsed,
        per_variant=counts,
        errors=writer.errors,
    )
    if not quiet:
        print_summary(summary, console)
    return summary


def failed_result(utt_ids: np.ndarray, errors: list[str]) -> dict:
    """A result batch (:data:`pipeline.predictor.RESULT_KEYS`) of failed items with these errors."""
    n = len(utt_ids)
    return {
        "utt_id": np.asarray(utt_ids, dtype=object), "sample_rate": np.full(n, -1), "num_samples": np.full(n, -1),
        "duration_s": np.full(n, np.nan), "sha256": np.full(n, "", dtype=object),
        "weights_id": np.full(n, "", dtype=object), "status": np.full(n, "failed", dtype=object),
        "error": np.asarray(errors, dtype=object), "created_at": np.full(n, time.time()),
        "file_bytes": np.full(n, -1, dtype=np.int64),
    }


def _run_local_with_progress(part: pd.DataFrame, config: GenerateConfig, spec: VariantSpec, writer: ShardWriter, console,
                             attempts: AttemptLog | None = None, flush_each: bool = False) -> None:
    if not len(part):
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=console.quiet) as bar:
        task = bar.add_task(spec.id, total=len(part))
        # Not a terminal (logs, batch jobs): a done/total line every 30 s instead of the bar.
        from manifests.progress import Progress as LineProgress

        lines = LineProgress(len(part), f"generate {spec.id}", enabled=not console.is_terminal, tty=False)

        def advance(n: int) -> None:
            bar.advance(task, n)
            lines.update(n)

        for result in run_local(part, config, spec, progress=advance, attempts=attempts):
            writer.add(result)
            if flush_each:
                writer.flush()
        lines.close()


def generate_from_recipe(
    recipe: str | os.PathLike | Recipe,
    *,
    resume: bool = True,
    executor: str | None = None,
    address: str | None = None,
    limit: int | None = None,
    console: Any = None,
    quiet: bool = False,
    **overrides: Any,
) -> GenerateSummary:
    """Run the ``generate:`` section of a recipe (what ``ncst generate recipe.yaml`` calls).

    ``overrides`` replace :class:`GenerateConfig` fields (None values are ignored), e.g.
    ``node_ip="127.0.0.2"``, ``temp_dir=...``; ``weights=...`` replaces the weights of every
    variant (per-variant weights in the recipe included), and so does ``precision=...``.
    """
    r = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    if r.generate is None:
        raise GenerateError(f"{r.path}: the recipe has no 'generate:' section")
    config = r.generate
    for key in ("weights", "precision"):  # a command-line value replaces the per-variant ones too
        if overrides.get(key) is not None:
            config = config.replace(variants=tuple(dataclasses.replace(v, **{key: None}) for v in config.variants))
    config = config.replace(**overrides)
    return run_generation(config, r.output_dir, name=r.name, resume=resume, executor=executor, address=address,
                          limit=limit, console=console, quiet=quiet)
