"""precision: bf16 autocast against fp32, per codec: how far the output and the codes move, and the speed.

For each codec variant (gen_vs_floor's eleven, one per ST class; ``--quick``: the toy codec), on
a couple of the bench's synthetic utterances resampled to the codec rate and run as one padded
batch, :func:`codec_wrappers.precision.compare_precision` gives:

- the SNR (dB) of the bf16 output against the fp32 output over each item's valid samples (row:
  the worst item; ``inf`` when identical);
- the share of discrete code entries (all levels, each item encoded alone) that bf16 changes;
- the same two for ``bf16_fp32vq`` (bf16 with the quantiser modules kept in fp32);

and the two precisions are then timed alternating (fp32 bf16, bf16 fp32, ...; the comparison
run before serves as warm-up of both): row fp32 time / bf16 time, > 1 when bf16 is faster.

All rows are INFO: issue 14 asks for a report, not a threshold. Weights are seeded random
(``random:0``): a trained model's codes sit at other distances from their neighbours, so the
shares and SNRs say how sensitive each architecture's arithmetic is, not what a checkpoint does.
bf16 is meant for GPUs; on a CPU it is faster only where oneDNN has bf16 kernels (AVX512-BF16/AMX).
"""
from __future__ import annotations

import torch

from bench.common import (BenchOptions, BenchResult, alternate, bench_device, make_sources, set_threads, start_result,
                          synchronize)
from bench.gen_vs_floor import selected_variants


def _batch(audio: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Mono numpy arrays -> zero-padded ``(b, 1, T)`` float32 and lengths ``(b,)``."""
    lengths = torch.tensor([len(a) for a in audio], dtype=torch.int64)
    pad = torch.zeros(len(audio), 1, int(lengths.max()))
    for i, a in enumerate(audio):
        pad[i, 0, : len(a)] = torch.from_numpy(a)
    return pad, lengths


def bench_variant(vid: str, paths: list[str], res: BenchResult, rounds: int, device: str = "cpu") -> None:
    from codec_wrappers.precision import autocast, compare_precision
    from codec_wrappers.registry import load_codec
    from pipeline.audio_io import load_audio

    codec = load_codec(vid, "random:0", device=device)
    sr = codec.sample_rate
    pad, lengths = _batch([load_audio(p, target_sr=sr)[0] for p in paths])
    audio_s = float(lengths.sum()) / sr
    rep = compare_precision(codec, pad, lengths, "fp32", "bf16")

    def forward(precision: str):
        def call():
            with torch.inference_mode(), autocast(codec.device, precision):
                out = codec.resynthesize(pad, lengths)
            synchronize(device)
            return out
        return call

    t = alternate({"fp32": forward("fp32"), "bf16": forward("bf16")}, rounds=rounds, warmup=0)
    common = dict(audio_s=round(audio_s, 2), items=len(paths), codec_sr=sr)
    res.add(f"{vid}: bf16 SNR vs fp32 (min)", rep.snr_min_db, "dB", snr_db=[round(s, 2) for s in rep.snr_db],
            snr_mean_db=round(rep.snr_mean_db, 2), max_abs_diff=rep.max_abs_diff, **common)
    if rep.codes_changed_share is None:
        res.notes.append(f"{vid}: no discrete codes exposed (encode_codes not implemented); codes row left out")
    else:
        res.add(f"{vid}: codes changed by bf16", 100.0 * rep.codes_changed_share, "%", codes_changed=rep.codes_changed,
                codes_compared=rep.codes_compared, code_levels=rep.code_levels,
                level_changed_pct=[round(100.0 * x, 2) for x in rep.level_changed_shares], **common)
    res.add(f"{vid}: fp32 time / bf16 time", t.ratio("fp32", "bf16"), "x", median_ratio=round(t.median_ratio("fp32", "bf16"), 3),
            timings=t.summary(), x_real_time_fp32=round(audio_s / t.best("fp32"), 2), **common)
    # bf16 with the quantisers in fp32. Last: it patches this codec's quantiser modules for good.
    try:
        vq = compare_precision(codec, pad, lengths, "fp32", "bf16_fp32vq")
    except ValueError as exc:  # no quantiser modules (the toy codec)
        res.notes.append(f"{vid}: no bf16_fp32vq rows ({exc})")
        return
    res.add(f"{vid}: bf16_fp32vq SNR vs fp32 (min)", vq.snr_min_db, "dB", snr_db=[round(s, 2) for s in vq.snr_db], **common)
    if vq.codes_changed_share is not None:
        res.add(f"{vid}: codes changed by bf16_fp32vq", 100.0 * vq.codes_changed_share, "%",
                level_changed_pct=[round(100.0 * x, 2) for x in vq.level_changed_shares], **common)


def run(opts: BenchOptions) -> BenchResult:
    from manifests import absolute_paths, read_manifest

    set_threads(opts.threads)
    res = start_result("precision", opts)
    variants = selected_variants(opts.quick)
    rounds = 1 if opts.quick else 2
    n_src, lo, hi = (2, 0.3, 0.5) if opts.quick else (2, 1.2, 1.8)
    res.params.update(variants=variants, rounds=rounds, source_utterances=n_src, source_seconds=[lo, hi],
                      weights="random:0", precision_a="fp32", precision_b="bf16")
    sources = make_sources(opts.workdir / "src", n_src, lo, hi, seed=opts.seed, speakers=2)
    src = read_manifest(sources)
    paths = [str(p) for p in absolute_paths(src, src.attrs.get("root"))]
    for vid in variants:
        print(f"   {vid}", flush=True)
        try:
            bench_variant(vid, paths, res, rounds, bench_device())
        except Exception as exc:  # report and go on with the next codec
            res.add(f"{vid}: bf16 SNR vs fp32 (min)", float("nan"), "dB", error=f"{type(exc).__name__}: {exc}")
            res.notes.append(f"{vid} failed: {type(exc).__name__}: {exc}")
    res.notes.append(
        f"CPU, {opts.threads} torch thread(s); {n_src} synthetic utterances ({lo}-{hi} s) at each codec's rate in one "
        f"padded batch; seeded random weights; codes: each item encoded alone; time ratio: best of {rounds} "
        "alternated runs, > 1 means bf16 is faster")
    return res
