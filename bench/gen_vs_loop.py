"""gen_vs_loop: the per-file loop of existing generation scripts against ``ncst generate``.

Same utterances, same codec, same thread count, alternating, in one process:

- loop: load the codec once, then per file: read (soundfile), resample (soxr) to the codec
  rate, encode + decode (``resynthesize`` of a batch of one), write a 16-bit FLAC;
- generate: :func:`pipeline.generate.run_generation` (``executor="local"``: the Predictor Ray
  runs, in-process, with decoding and writing in a thread pool around the model), which also
  hashes every file and writes the manifest and card;
- generate_inturn (INFO): the same with ``io_threads=0`` (decode, model, write in turn), which
  shows what the I/O pool is worth.

Both include loading the model once. Goal on CPU: never slower (loop / generate >= 1.0). On a GPU
the goal is 80% of the batching gain in DESIGN.md (>= 5x DAC, >= 40x EnCodec, Mimi,
SpeechTokenizer); on CPU the forward is compute-bound and batching gains little.
"""
from __future__ import annotations

import gc
import shutil
from pathlib import Path

import torch

from bench.common import (BenchOptions, BenchResult, alternate, bench_device, check_summary, gen_config, generate,
                          make_sources, set_threads, start_result, subset_sources, synchronize, timed)
from bench.gen_vs_floor import GPU_BATCH_SIZE, pick_utterances

GOAL = (">=", 1.0)
VARIANTS = ("encodec_24k_6kbps", "mimi_24k_8q", "speechtokenizer_16k", "snac_24k")
# On a GPU: 80 % of the batching gain DESIGN.md measured on an H100 (issue 14).
GPU_VARIANTS = ("dac_44k", "encodec_24k_6kbps", "mimi_24k_8q", "speechtokenizer_16k")
GPU_GOALS = {"dac_44k": 5.0, "encodec_24k_6kbps": 40.0, "mimi_24k_8q": 40.0, "speechtokenizer_16k": 40.0}
QUICK_VARIANTS = ("toy_mulaw_16k",)
LOOP_TARGET_S = 5.0  # seconds of loop work per codec: the engine's fixed cost per run (~0.04 s) stays under 1%


def bench_variant(vid: str, sources: Path, work: Path, opts: BenchOptions, res: BenchResult, rounds: int,
                  device: str = "cpu") -> None:
    from codec_wrappers.registry import load_codec
    from manifests import absolute_paths, read_manifest
    from pipeline.audio_io import load_audio, write_audio

    src = read_manifest(sources)
    paths = dict(zip(src["utt_id"], absolute_paths(src, src.attrs.get("root"))))
    durations = dict(zip(src["utt_id"], src["duration_s"].astype(float)))
    codec = load_codec(vid, "random:0", device=device)
    sr = codec.sample_rate
    shortest = min(durations, key=durations.get)
    x0, _ = load_audio(paths[shortest], target_sr=sr)

    def one():
        codec.resynthesize(torch.from_numpy(x0)[None, None], torch.tensor([len(x0)]))
        synchronize(device)

    one()  # warm-up
    t1, _ = timed(one)
    del codec
    chosen = pick_utterances(durations, max(LOOP_TARGET_S * durations[shortest] / max(t1, 1e-6), 1e-3), opts.seed)
    part = subset_sources(sources, chosen, work / f"{vid}.parquet")
    audio_s = sum(durations[u] for u in chosen)
    n = [0]

    def loop() -> None:
        n[0] += 1
        out = work / f"{vid}-loop{n[0]}"
        c = load_codec(vid, "random:0", device=device)
        for u in chosen:
            x, _ = load_audio(paths[u], target_sr=sr)
            with torch.inference_mode():
                y = c.resynthesize(torch.from_numpy(x)[None, None], torch.tensor([len(x)]))
            write_audio(out / f"{u}.flac", y[0, 0].cpu().numpy(), sr, "FLAC")
        del c
        gc.collect()
        shutil.rmtree(out, ignore_errors=True)

    def gen(**kw):
        def f() -> None:
            n[0] += 1
            out = work / f"{vid}-gen{n[0]}"
            batch = {} if device == "cpu" else {"batch_size": GPU_BATCH_SIZE}
            check_summary(generate(gen_config(part, vid, device=device, **batch, **kw), out, "local"), len(chosen))
            gc.collect()
            shutil.rmtree(out, ignore_errors=True)
        return f

    t = alternate({"loop": loop, "generate": gen(), "generate_inturn": gen(io_threads=0)}, rounds=rounds, warmup=0)
    goal = GOAL if device == "cpu" else (">=", GPU_GOALS.get(vid, 1.0))
    res.add(f"{vid}: loop / generate", t.ratio("loop", "generate"), "x", goal, device=device,
            median_ratio=round(t.median_ratio("loop", "generate"), 3), utterances=len(chosen), audio_s=round(audio_s, 2),
            generate_x_realtime=round(audio_s / t.best("generate"), 3), loop_x_realtime=round(audio_s / t.best("loop"), 3),
            timings=t.summary())
    res.add(f"{vid}: loop / generate (io_threads=0: stages in turn)", t.ratio("loop", "generate_inturn"), "x",
            median_ratio=round(t.median_ratio("loop", "generate_inturn"), 3))


def run(opts: BenchOptions) -> BenchResult:
    from codec_wrappers.registry import is_implemented

    set_threads(opts.threads)
    res = start_result("gen_vs_loop", opts)
    device = bench_device()
    variants = [v for v in (QUICK_VARIANTS if opts.quick else (VARIANTS if device == "cpu" else GPU_VARIANTS))
                if is_implemented(v)]
    rounds = 1 if opts.quick else 3
    # A GPU loop runs 28-104x real time: 5 s of it needs far more audio than a CPU's.
    n_src, lo, hi = (6, 0.5, 1.0) if opts.quick else ((48, 1.5, 4.0) if device == "cpu" else (300, 2.0, 6.0))
    res.params.update(variants=variants, rounds=rounds, loop_target_s=LOOP_TARGET_S, source_utterances=n_src,
                      source_seconds=[lo, hi], executor="local", weights="random:0", device=device)
    sources = make_sources(opts.workdir / "src", n_src, lo, hi, seed=opts.seed)
    check_summary(generate(gen_config(sources, "toy_mulaw_16k"), opts.workdir / "warm", "local"), n_src)
    for vid in variants:
        print(f"   {vid}", flush=True)
        try:
            bench_variant(vid, sources, opts.workdir, opts, res, rounds, device)
        except Exception as exc:
            res.add(f"{vid}: loop / generate", float("nan"), "x", GOAL, error=f"{type(exc).__name__}: {exc}")
            res.notes.append(f"{vid} failed: {type(exc).__name__}: {exc}")
    res.notes.append(f"{device.upper()}, {opts.threads} torch thread(s); synthetic VCTK 48 kHz FLAC {lo}-{hi} s; about "
                     f"{LOOP_TARGET_S:g} s of loop work per codec; best of {rounds} alternated runs, model load included "
                     "on both sides; generate = run_generation(executor='local')")
    return res
