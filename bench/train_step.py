"""train_step: training samples per second of each baseline model (report only on CPU).

One step = forward, cross-entropy, backward, Adam update, on a batch of the paper's input:
64600-sample waveforms for ``mel_lcnn`` and ``aasist``; cached XLS-R layer-5 features
``(201, 1024)`` for the ``w2v2_aasist`` back end (its front end is measured by feature_cache).
Models are built by ``train.models.build_model`` with 7 classes (ST ID training); steps of the
three models alternate, best step time counts. No goal on CPU: numbers size training runs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.common import BenchOptions, BenchResult, alternate, set_threads, start_result

MODELS = ("mel_lcnn", "aasist", "w2v2_aasist")


def run(opts: BenchOptions) -> BenchResult:
    from train.models import build_model, count_parameters

    set_threads(opts.threads)
    res = start_result("train_step", opts)
    batch, num_samples, frames, rounds = (2, 16000, 50, 1) if opts.quick else (4, 64600, 201, 2)
    res.params.update(batch_size=batch, num_samples=num_samples, w2v2_frames=frames, rounds=rounds, n_classes=7)
    g = torch.Generator().manual_seed(opts.seed)
    wave = 0.1 * torch.randn(batch, num_samples, generator=g)
    feats = torch.randn(batch, frames, 1024, generator=g)
    y = torch.randint(0, 7, (batch,), generator=g)

    steps = {}
    params = {}
    for name in MODELS:
        torch.manual_seed(opts.seed)
        model = build_model(name, 7, num_samples=num_samples).train()
        opt = torch.optim.Adam(model.parameters(), lr=5e-4, weight_decay=5e-4)
        x = feats if name == "w2v2_aasist" else wave
        params[name] = count_parameters(model)

        def step(model=model, opt=opt, x=x):
            logits, _ = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps[name] = step
    t = alternate(steps, rounds=rounds, warmup=1)
    for name in MODELS:
        res.add(f"{name} train step", batch / t.best(name), "samples/s", params=params[name],
                input="features (B, %d, 1024)" % frames if name == "w2v2_aasist" else f"waveform (B, {num_samples})",
                timings=t.summary()[name])
    res.notes.append(f"CPU, {opts.threads} torch thread(s), batch {batch}, best of {rounds} alternated steps; "
                     "w2v2_aasist is the back end on cached features (front end: see feature_cache)")
    return res
