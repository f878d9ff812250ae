"""feature_cache: a W2V2-AASIST training epoch on cached frozen features vs recomputing them.

Both sides run the trainer's own parts (``train.data.AudioDataset`` + ``make_loader``,
``train.features.W2V2FrontEnd`` / ``FeatureCache`` / ``CachedFeatureDataset``,
``train.models.W2V2AASIST``, Adam, cross-entropy) over the same FLAC files, alternating epochs:

- recompute: decode + resample each file, run the frozen front end on every batch, train step;
- cached: read fp16 features from the memory-mapped cache, train step.

The front end has XLS-R 300m's architecture (hidden 1024, 16 heads, FFN 4096, conv stack 512 x 7,
stable layer norm) with seeded RANDOM weights, built with only the 5 transformer layers that
``hidden_states[5]`` needs; clips are the paper's 64600 samples (4.04 s at 16 kHz). A second,
informative measurement times the full 24-layer model against the cut one on the same clips and
checks that both return the same ``hidden_states[5]``.

Goal: recompute / cached >= 10.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import soundfile as sf
import torch
import torch.nn.functional as F

from bench.common import BenchOptions, BenchResult, alternate, set_threads, start_result, timed

GOAL = (">=", 10.0)


def xlsr_config(layers: int, quick: bool):
    """XLS-R 300m's architecture (``layers`` transformer layers), or a tiny one for ``quick``."""
    from transformers import Wav2Vec2Config

    if quick:
        return Wav2Vec2Config(
            hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
            conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
            feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
    return Wav2Vec2Config(
        hidden_size=1024, num_hidden_layers=layers, num_attention_heads=16, intermediate_size=4096,
        feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)


def make_clips(folder, n: int, num_samples: int, seed: int) -> pd.DataFrame:
    """``n`` 16 kHz FLAC files of noise-excited tones (content does not matter to the cost)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    t = np.arange(num_samples) / 16000
    for i in range(n):
        wav = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) + 0.05 * rng.standard_normal(num_samples)
        path = folder / f"utt{i:04d}.flac"
        sf.write(path, wav.astype(np.float32), 16000, subtype="PCM_16")
        rows.append({"utt_id": f"utt{i:04d}", "path": str(path), "label": i % 7})
    return pd.DataFrame(rows)


def run(opts: BenchOptions) -> BenchResult:
    from transformers import Wav2Vec2Model

    from train.data import AudioDataset, make_loader
    from train.features import CachedFeatureDataset, FeatureCache, W2V2FrontEnd, cache_identity, ensure_features
    from train.models import build_model

    set_threads(opts.threads)
    res = start_result("feature_cache", opts)
    quick = opts.quick
    n_clips, batch, num_samples, rounds = (4, 2, 8000, 1) if quick else (16, 8, 64600, 2)
    res.params.update(clips=n_clips, batch_size=batch, num_samples=num_samples, rounds=rounds,
                      frontend="tiny wav2vec2 (quick)" if quick else
                      "XLS-R 300m architecture, first 5 layers, random weights (seed 0)")

    df = make_clips(opts.workdir / "clips", n_clips, num_samples, opts.seed)
    classes = list(range(7))
    ds = AudioDataset(df, classes, num_samples=num_samples, sample_rate=16000)

    torch.manual_seed(opts.seed)
    fe = W2V2FrontEnd(Wav2Vec2Model(xlsr_config(5, quick)), layer=5, normalize=True, identity="bench-random-xlsr")
    cache = FeatureCache(opts.workdir / "cache", cache_identity(fe, sample_rate=16000, num_samples=num_samples))
    build_s, stats = timed(lambda: ensure_features(fe, cache, ds, batch_size=batch))
    frames = fe.num_frames(num_samples)
    cached_ds = CachedFeatureDataset(ds, cache, frames, fe.hidden_size)
    on_disk = sum(p.stat().st_size for p in cache.dir.glob("shard-*.npy"))

    torch.manual_seed(opts.seed)
    model = build_model("w2v2_aasist", len(classes), ssl_dim=fe.hidden_size)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, weight_decay=5e-4)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        logits, _ = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    epoch_no = [0]

    def epoch(dataset, features) -> int:
        epoch_no[0] += 1
        seen = 0
        for b in make_loader(dataset, batch_size=batch, shuffle=True, seed=opts.seed, epoch=epoch_no[0]):
            x = features(b)[b["ok"]]  # a fresh tensor, as the trainer's x[keep] (autograd-usable)
            step(x, b["target"][b["ok"]])
            seen += len(x)
        return seen

    recompute = lambda: epoch(ds, lambda b: fe(b["wav"]))  # noqa: E731
    cached = lambda: epoch(cached_ds, lambda b: b["feat"])  # noqa: E731
    # warm both paths on one batch (allocator, first-call dispatch), then alternate whole epochs
    first = next(iter(make_loader(ds, batch_size=batch, shuffle=False)))
    step(fe(first["wav"])[first["ok"]], first["target"])
    t = alternate({"recompute": recompute, "cached": cached}, rounds=rounds, warmup=0)
    ratio = t.ratio("recompute", "cached")
    res.add("epoch: recompute / cached features", ratio, "x", GOAL, median_ratio=round(t.median_ratio("recompute", "cached"), 3),
            timings=t.summary())
    res.add("cached epoch throughput", n_clips / t.best("cached"), "clips/s")
    res.add("recompute epoch throughput", n_clips / t.best("recompute"), "clips/s")
    res.add("cache build (once)", n_clips / build_s, "clips/s", build_s=round(build_s, 3), **stats)
    res.add("cache size per clip", on_disk / n_clips / 2**20, "MiB", dtype=str(cache.dtype), frames=frames, dim=fe.hidden_size)

    # The cut front end against the full 24-layer model: same hidden_states[5], less work.
    del fe
    torch.manual_seed(opts.seed + 1)
    full = Wav2Vec2Model(xlsr_config(24, quick)).eval()
    cut_model = Wav2Vec2Model(xlsr_config(5, quick))
    missing, _ = cut_model.load_state_dict(full.state_dict(), strict=False)
    assert not missing, missing
    cut = W2V2FrontEnd(cut_model, layer=5, normalize=False)
    x = torch.from_numpy(np.stack([ds.load(i)[0] for i in range(min(2, n_clips))]))

    def run_full():
        with torch.inference_mode():
            return full(x, output_hidden_states=True).hidden_states[5]

    outs = {}
    tl = alternate({"full_24_layers": run_full, "first_5_layers": lambda: cut(x)}, rounds=2 if not quick else 1,
                   warmup=0, after=lambda n, o: outs.__setitem__(n, o))
    equal = bool(torch.equal(outs["full_24_layers"], outs["first_5_layers"]))
    res.add("front end: 24 layers / first 5 layers", tl.ratio("full_24_layers", "first_5_layers"), "x",
            hidden_states_5_equal=equal, clips=len(x), timings=tl.summary())
    if not equal:
        res.notes.append("WARNING: the cut front end did not return the full model's hidden_states[5]")
    res.notes.append(f"front end: {res.params['frontend']}; {n_clips} clips x {num_samples} samples, batch {batch}, "
                     f"{opts.threads} torch thread(s), best of {rounds} alternated epochs")
    return res
