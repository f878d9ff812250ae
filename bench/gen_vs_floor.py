"""gen_vs_floor: end-to-end generation throughput against the pure batched model forward.

For each codec variant, in the same process and alternating:

- e2e: the library call behind ``ncst generate`` (:func:`pipeline.generate.run_generation`)
  on a source manifest of 48 kHz FLAC files: plan, model load, decode + soxr resample, the same
  length-bucketed batches, resynthesis, resample/encode/write FLAC + sha256, manifest shards,
  merged manifest and card. Executor: ``local`` (the same :class:`pipeline.predictor.Predictor`
  Ray runs, in-process), so that the ratio isolates what the engine adds around the model; Ray's
  own cost is measured by ray_overhead.
- floor: ``codec.resynthesize`` alone over the same audio, pre-decoded at the codec rate and
  pre-padded into the batches the Predictor forms (plan order, ``batch_size`` items per call,
  :func:`pipeline.predictor.length_buckets` inside it).
- load: loading the codec (``load_codec``), which every e2e run also pays once; timed with
  each floor run, which loads its own instance (only one model is alive at any time: with two
  instances of a model in one process, glibc's heap made Mimi's forward ~1.6x slower here).

Goal row: floor time / (e2e time - model load), i.e. e2e throughput in steady state (a corpus
amortises the one-off load) as a share of the floor's: >= 0.9 on CPU. The whole-run ratio
(load included) is reported next to it. Each variant's share of audio is sized so that one
floor pass takes about ``FLOOR_TARGET_S`` (codecs run 0.4-20x real time on one CPU core).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch

from pipeline.predictor import default_batch_seconds
from bench.common import (BenchOptions, BenchResult, Timings, bench_device, check_summary, gen_config, generate,
                          make_sources, set_threads, start_result, subset_sources, synchronize, timed)

GOAL = (">=", 0.9)
GPU_GOAL = (">=", 0.8)
# One variant per ST class (the protocol's own configuration of each codec), packaged and native.
VARIANTS = (
    "encodec_24k_6kbps", "mimi_24k_8q", "snac_24k", "dac_44k", "speechtokenizer_16k",
    "funcodec_16k_ds320_time", "facodec_16k", "wavtokenizer_24k_75tps", "hificodec_24k_320d",
    "audiodec_24k_320d", "soundstream_16k_4kbps",
)
QUICK_VARIANTS = ("toy_mulaw_16k",)
FLOOR_TARGET_S = 1.5
BATCH_SIZE = 16  # items per Predictor call (the recipe default)
GPU_BATCH_SIZE = 64  # on a GPU (recipes/generate_example.yaml): more items for length buckets to fill


def selected_variants(quick: bool) -> list[str]:
    """``NCST_BENCH_VARIANTS`` (comma-separated) overrides the list; unimplemented ones are skipped."""
    from codec_wrappers.registry import is_implemented

    env = os.environ.get("NCST_BENCH_VARIANTS")
    ids = [v.strip() for v in env.split(",") if v.strip()] if env else list(QUICK_VARIANTS if quick else VARIANTS)
    return [v for v in ids if is_implemented(v)]


def floor_batches(audio: list[np.ndarray], batch_size: int, max_samples: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The padded ``(b, 1, T)`` batches + lengths the Predictor would run for items in plan order."""
    from pipeline.predictor import length_buckets

    order = sorted(range(len(audio)), key=lambda i: len(audio[i]))  # the plan sorts by duration
    out = []
    for s in range(0, len(order), batch_size):
        chunk = [audio[i] for i in order[s : s + batch_size]]
        for bucket in length_buckets([len(x) for x in chunk], max_samples):
            items = [chunk[j] for j in bucket]
            lengths = torch.tensor([len(x) for x in items], dtype=torch.int64)
            pad = torch.zeros(len(items), 1, int(lengths.max()))
            for j, x in enumerate(items):
                pad[j, 0, : len(x)] = torch.from_numpy(x)
            out.append((pad, lengths))
    return out


def pick_utterances(durations: dict[str, float], audio_s: float, seed: int) -> list[str]:
    """A seeded sample of utterances, in order, until ``audio_s`` seconds are reached (at least one)."""
    ids = sorted(durations)
    rng = np.random.default_rng(seed)
    rng.shuffle(ids)
    out, total = [], 0.0
    for u in ids:
        if out and total + durations[u] > audio_s:
            continue
        out.append(u)
        total += durations[u]
        if total >= audio_s:
            break
    return out


def bench_variant(vid: str, sources: Path, work: Path, opts: BenchOptions, res: BenchResult, rounds: int,
                  device: str = "cpu") -> None:
    from codec_wrappers.registry import load_codec
    from manifests import absolute_paths, read_manifest
    from pipeline.audio_io import load_audio
    from pipeline.predictor import Predictor

    src = read_manifest(sources)
    paths = dict(zip(src["utt_id"], absolute_paths(src, src.attrs.get("root"))))
    durations = dict(zip(src["utt_id"], src["duration_s"].astype(float)))

    load_s, codec = timed(lambda: load_codec(vid, "random:0", device=device))  # also imports the family's modules
    sr = codec.sample_rate
    # Calibrate: x real time of this codec here, from one forward of the shortest utterance.
    shortest = min(durations, key=durations.get)
    x0, _ = load_audio(paths[shortest], target_sr=sr)

    def one():
        codec.resynthesize(torch.from_numpy(x0)[None, None], torch.tensor([len(x0)]))
        synchronize(device)

    one()  # warm-up (CUDA kernels, allocator)
    t1, _ = timed(one)
    xrt = durations[shortest] / max(t1, 1e-6)
    chosen = pick_utterances(durations, max(FLOOR_TARGET_S * xrt, 1e-3), opts.seed)
    part = subset_sources(sources, chosen, work / f"{vid}.parquet")
    audio = [load_audio(paths[u], target_sr=sr)[0] for u in chosen]
    audio_s = sum(len(a) for a in audio) / sr

    batch_seconds = gen_config(part, vid).max_batch_seconds
    if batch_seconds is None and device == "cpu":  # the engine's own default, so the floor batches alike
        batch_seconds = default_batch_seconds("cpu")
    elif batch_seconds is None:  # GPU: what the engine's memory probe picks, given to both sides
        del codec
        batch_seconds = Predictor(vid, "random:0", device=device).max_batch_seconds
        import gc

        gc.collect()
        torch.cuda.empty_cache()
    max_samples = max(1, int(batch_seconds * sr))
    batch_size = BATCH_SIZE if device == "cpu" else GPU_BATCH_SIZE
    batches = floor_batches(audio, batch_size, max_samples)

    codec = None  # one model alive at a time: a second instance can slow the first (glibc heap; see README)
    runs = {"e2e": [], "floor": [], "load": []}

    def e2e() -> None:
        out = work / f"{vid}-run{len(runs['e2e'])}"
        explicit = {} if device == "cpu" else {"max_batch_seconds": batch_seconds}  # CPU: the engine's default (0)
        config = gen_config(part, vid, batch_size=batch_size, device=device, **explicit)
        dt, s = timed(lambda: generate(config, out, "local"))
        check_summary(s, len(chosen))
        shutil.rmtree(out, ignore_errors=True)
        runs["e2e"].append(dt)

    def floor() -> None:
        dl, c = timed(lambda: load_codec(vid, "random:0", device=device))

        def forward_all():
            with torch.inference_mode():
                for pad, lengths in batches:
                    c.resynthesize(pad, lengths).cpu()  # the engine also brings each output back
            synchronize(device)

        df, _ = timed(forward_all)
        runs["load"].append(dl)
        runs["floor"].append(df)

    for r in range(rounds):  # alternate: e2e floor, floor e2e, ...
        for f in ((e2e, floor) if r % 2 == 0 else (floor, e2e)):
            f()
    t = Timings(runs)
    e2e_s, floor_s, load_best = t.best("e2e"), t.best("floor"), t.best("load")
    steady = floor_s / max(e2e_s - load_best, 1e-9)
    common = dict(audio_s=round(audio_s, 2), utterances=len(chosen), batches=len(batches), codec_sr=sr,
                  floor_x_realtime=round(audio_s / floor_s, 3), e2e_x_realtime=round(audio_s / e2e_s, 3),
                  load_s=round(load_best, 3), timings=t.summary())
    res.add(f"{vid}: e2e / floor (steady)", steady, "x", GOAL if device == "cpu" else GPU_GOAL, device=device,
            max_batch_seconds=batch_seconds, **common)
    res.add(f"{vid}: e2e / floor (whole run, incl. load)", floor_s / e2e_s, "x")


def run(opts: BenchOptions) -> BenchResult:
    set_threads(opts.threads)
    res = start_result("gen_vs_floor", opts)
    device = bench_device()
    variants = selected_variants(opts.quick)
    rounds = 1 if opts.quick else 4
    # A GPU runs codecs 100-2500x real time: it needs far more audio for a 1.5 s floor.
    n_src, lo, hi = (6, 0.5, 1.0) if opts.quick else ((48, 1.5, 4.0) if device == "cpu" else (600, 2.0, 6.0))
    res.params.update(variants=variants, rounds=rounds, floor_target_s=FLOOR_TARGET_S, batch_size=BATCH_SIZE,
                      source_utterances=n_src, source_seconds=[lo, hi], executor="local", weights="random:0",
                      device=device)
    sources = make_sources(opts.workdir / "src", n_src, lo, hi, seed=opts.seed)
    # Warm the generation machinery once (imports, first parquet write) on the toy codec, untimed.
    warm = generate(gen_config(sources, "toy_mulaw_16k"), opts.workdir / "warm", "local")
    check_summary(warm, n_src)
    for vid in variants:
        print(f"   {vid}", flush=True)
        try:
            bench_variant(vid, sources, opts.workdir, opts, res, rounds, device)
        except Exception as exc:  # report and go on with the next codec
            res.add(f"{vid}: e2e / floor (steady)", float("nan"), "x", GOAL if device == "cpu" else GPU_GOAL,
                    error=f"{type(exc).__name__}: {exc}")
            res.notes.append(f"{vid} failed: {type(exc).__name__}: {exc}")
    res.notes.append(
        f"{device.upper()}, {opts.threads} torch thread(s) on both sides; sources: synthetic VCTK 48 kHz FLAC, {lo}-{hi} s; "
        f"each codec gets about {FLOOR_TARGET_S:g} s of floor work (see audio_s per row); best of {rounds} alternated "
        "runs; e2e = run_generation(executor='local'), steady = e2e minus the codec load measured alongside")
    return res
