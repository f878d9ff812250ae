"""Performance levers of the generation engine (issue 14): pipelined local executor, precision flag,
intra-op threads, GPU batch sizing and out-of-memory back-off, allocator settings."""
from __future__ import annotations

import json
import sys
import threading

import numpy as np
import pytest
import torch

from manifests import read_manifest
from pipeline import allocator
from pipeline import generate as gen
from pipeline.generate import precision_of, run_generation
from pipeline.plan import make_plan
from pipeline.predictor import Predictor, batch_seconds_for_memory, is_out_of_memory
from pipeline.recipe import GenerateConfig, RecipeError, VariantSpec, load_recipe

from gen_helpers import make_source, write_recipe


def _config(src, **kw):
    base = dict(sources=(src,), variants=(VariantSpec("toy_mulaw_16k"),), weights="random:0", batch_size=2,
                executor="local")
    base.update(kw)
    return GenerateConfig(**base)


def _rows(summary):
    df = read_manifest(summary.manifest)
    return dict(zip(df["utt_id"], df["sha256"])), df


def test_pipelined_local_executor_equals_sequential_and_keeps_plan_order(tmp_path, monkeypatch):
    src = make_source(tmp_path, n=9, corrupt=1)
    threads_seen = set()
    real_decode = gen.decode_batch

    def spy(batch, **kw):
        threads_seen.add(threading.current_thread().name)
        return real_decode(batch, **kw)

    monkeypatch.setattr(gen, "decode_batch", spy)
    config = _config(src, io_threads=2)
    todo = make_plan([src], ["toy_mulaw_16k"], tmp_path / "plan")
    spec = config.variants[0]
    order = [u for out in gen.run_local(todo, config, spec) for u in out["utt_id"]]
    assert order == list(todo["utt_id"])  # results come back in plan order
    assert threads_seen and all(name.startswith("ncst-io") for name in threads_seen)  # decode ran off the model thread

    piped = run_generation(_config(src, io_threads=2), tmp_path / "piped", quiet=True)
    inturn = run_generation(_config(src, io_threads=0), tmp_path / "inturn", quiet=True)
    a, dfa = _rows(piped)
    b, _ = _rows(inturn)
    assert a == b and (piped.done, piped.failed) == (inturn.done, inturn.failed) == (9, 1)
    assert "tiny_bad0.wav" in dfa.loc[dfa["status"] == "failed", "error"].iat[0]


def test_pipelined_local_executor_reads_ahead_a_bounded_window(tmp_path, monkeypatch):
    src = make_source(tmp_path, n=12)
    config = _config(src, io_threads=1, batch_size=1)
    todo = make_plan([src], ["toy_mulaw_16k"], tmp_path / "plan")
    decoded, consumed = [0], [0]
    real_decode = gen.decode_batch

    def counting(batch, **kw):
        decoded[0] += 1
        return real_decode(batch, **kw)

    monkeypatch.setattr(gen, "decode_batch", counting)
    most_ahead = 0
    for _ in gen.run_local(todo, config, config.variants[0]):
        consumed[0] += 1
        most_ahead = max(most_ahead, decoded[0] - consumed[0])
    assert consumed[0] == 12
    # window = io_threads + 1 batches being decoded, plus the one in the model, plus writes in flight
    assert most_ahead <= 2 * (1 + 1) + 1


def test_precision_is_parsed_recorded_and_respected_on_resume(tmp_path):
    src = make_source(tmp_path, n=4)
    recipe = write_recipe(tmp_path / "r.yaml", [src], executor="local", precision="fp32",
                          variants=[{"id": "toy_mulaw_16k", "precision": "bf16"}])
    config = load_recipe(recipe).generate
    assert config.precision == "fp32" and config.precision_for(config.variants[0]) == "bf16"
    bad = write_recipe(tmp_path / "bad.yaml", [src], precision="fp16")
    with pytest.raises(RecipeError, match="precision"):
        load_recipe(bad)

    first = run_generation(config, tmp_path / "out", quiet=True)
    _, df = _rows(first)
    assert first.done == 4 and {precision_of(e) for e in df["extra"]} == {"bf16"}
    assert all(json.loads(e)["precision"] == "bf16" for e in df["extra"])
    again = run_generation(config, tmp_path / "out", quiet=True)
    assert (again.skipped, again.done) == (4, 0)  # same precision: resumed
    fp32 = config.replace(variants=(VariantSpec("toy_mulaw_16k"),))
    redo = run_generation(fp32, tmp_path / "out", quiet=True)
    assert (redo.skipped, redo.done) == (0, 4)  # bf16 rows do not stand for fp32 ones
    _, df = _rows(redo)
    assert {precision_of(e) for e in df["extra"]} == {"fp32"} and not any("precision" in e for e in df["extra"])


def test_bf16_predictor_runs_the_forward_under_autocast(monkeypatch):
    pred = Predictor("toy_mulaw_16k", "random:0", precision="bf16")
    seen = []
    real = pred.codec.resynthesize

    def spy(audio, lengths):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(audio, lengths)

    pred.codec.resynthesize = spy
    outs, errs = pred.resynthesize([np.zeros(1600, np.float32) + 0.1], ["a.wav"])
    assert seen == [True] and errs == [""] and outs[0].dtype == np.float32
    with pytest.raises(ValueError, match="precision"):
        Predictor("toy_mulaw_16k", "random:0", precision="half")


def test_num_threads_sets_torch_intra_op_threads():
    before = torch.get_num_threads()
    try:
        Predictor("toy_mulaw_16k", "random:0", num_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_batch_seconds_for_memory():
    gib = 2**30
    assert batch_seconds_for_memory(40 * gib, 0.1 * gib) == pytest.approx(200.0)  # half of 40 GiB / 0.1 GiB per s
    assert batch_seconds_for_memory(400 * gib, 0.1 * gib) == 320.0  # capped
    assert batch_seconds_for_memory(0.01 * gib, 1 * gib) == 1.0  # at least one second
    assert batch_seconds_for_memory(10 * gib, 0) == 320.0  # nothing measured: the cap


def test_out_of_memory_halves_the_batch_and_redoes_it():
    pred = Predictor("toy_mulaw_16k", "random:0", max_batch_seconds=100.0)
    real = pred.codec.resynthesize
    sizes = []

    def small_device(audio, lengths):
        sizes.append(audio.shape[0])
        if audio.shape[0] * audio.shape[-1] > 2 * 8000:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(audio, lengths)

    pred.codec.resynthesize = small_device
    rng = np.random.default_rng(0)
    items = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (4000, 5000, 6000, 7000, 7500, 8000)]
    outs, errs = pred.resynthesize(items, [f"f{i}.wav" for i in range(6)])
    assert errs == [""] * 6
    assert pred.max_batch_seconds < 100.0 and sizes[0] == 6 and max(sizes[1:]) < 6
    alone = Predictor("toy_mulaw_16k", "random:0")
    for x, y in zip(items, outs):
        ref, _ = alone.resynthesize([x], ["x.wav"])
        np.testing.assert_array_equal(y, ref[0])
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory")) and not is_out_of_memory(ValueError("bad"))


def test_allocator_settings_for_workers_and_this_process(monkeypatch):
    for k in allocator.MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    if sys.platform.startswith("linux"):
        assert allocator.malloc_env() == allocator.MALLOC_ENV
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    assert allocator.malloc_env() == {}  # the user's own setting wins
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert allocator.malloc_env() == {}
    monkeypatch.delenv("LD_PRELOAD")
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        pytest.skip("not glibc: mallopt is unavailable, tune_malloc does nothing here")
    assert allocator.tune_malloc() is True


def test_ray_workers_get_the_allocator_settings(monkeypatch, tmp_path):
    import ray

    for k in allocator.MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    seen = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw))
    src = make_source(tmp_path, n=1)
    assert gen.init_ray(_config(src, node_ip="127.0.0.2", num_cpus=1)) is True
    env = seen["runtime_env"]["env_vars"]
    if sys.platform.startswith("linux"):
        assert env["MALLOC_MMAP_THRESHOLD_"] == allocator.MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]
    assert seen["_node_ip_address"] == "127.0.0.2"


def test_resume_compares_the_checkpoint_id_when_it_is_known(tmp_path):
    from codec_wrappers.catalog import get_variant
    from pipeline.generate import completed, plan_generation, read_shards

    src = make_source(tmp_path, n=3)
    config = _config(src, weights=None)  # the toy codec needs no files: weights_id "none"
    first = run_generation(config, tmp_path / "o", quiet=True)
    assert first.done == 3
    plan = plan_generation(config, [get_variant("toy_mulaw_16k")], first.dataset_dir)
    rows = read_shards(first.dataset_dir)
    weights = {"toy_mulaw_16k": None}
    assert completed(plan, rows, weights, expected_ids={"toy_mulaw_16k": "none"}).all()
    # Other checkpoint files (another sha256) than the rows were made with: nothing counts as done.
    assert not completed(plan, rows, weights, expected_ids={"toy_mulaw_16k": "sha256:0123456789abcdef"}).any()
    assert completed(plan, rows, weights).all()  # unknown (remote workers): official rows count
    again = run_generation(config, tmp_path / "o", quiet=True)
    assert (again.skipped, again.done) == (3, 0)


def test_cli_precision_and_io_threads_override_the_recipe(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    src = make_source(tmp_path, n=2)
    recipe = write_recipe(tmp_path / "r.yaml", [src], executor="local",
                          variants=[{"id": "toy_mulaw_16k", "precision": "fp32"}])
    result = CliRunner().invoke(app, ["generate", str(recipe), "--precision", "bf16", "--io-threads", "0"])
    assert result.exit_code == 0, result.output
    df = read_manifest(tmp_path / "out" / "dataset" / "manifests" / "fake.parquet")
    assert {precision_of(e) for e in df["extra"]} == {"bf16"}  # the flag beat the variant's own fp32
    bad = CliRunner().invoke(app, ["generate", str(recipe), "--precision", "fp16"])
    assert bad.exit_code != 0 and "precision" in bad.output


def test_batch_mode_is_checked_set_on_the_codec_and_recorded(tmp_path):
    with pytest.raises(ValueError, match="masked"):
        Predictor("toy_mulaw_16k", "random:0", batch_mode="masked")  # not a mode the toy codec has
    pred = Predictor("toy_mulaw_16k", "random:0", batch_mode="padded")
    assert pred.codec.batch_mode == "padded"
    src = make_source(tmp_path, n=3)
    recipe = write_recipe(tmp_path / "r.yaml", [src], executor="local",
                          variants=[{"id": "toy_mulaw_16k", "batch_mode": "padded"}])
    config = load_recipe(recipe).generate
    first = run_generation(config, tmp_path / "o", quiet=True)
    _, df = _rows(first)
    assert first.done == 3 and all(json.loads(e)["batch_mode"] == "padded" for e in df["extra"])
    exact = run_generation(config.replace(variants=(VariantSpec("toy_mulaw_16k"),)), tmp_path / "o", quiet=True)
    assert (exact.skipped, exact.done) == (0, 3)  # rows made another way are redone
    bad = write_recipe(tmp_path / "bad.yaml", [src], variants=[{"id": "toy_mulaw_16k", "batch_mode": "fast"}])
    with pytest.raises(RecipeError, match="batch_mode"):
        load_recipe(bad)


@pytest.mark.parametrize("vid", ["funcodec_16k_ds320_time", "facodec_16k"])
def test_masked_batch_mode_matches_exact_for_the_codecs_that_offer_it(vid):
    rng = np.random.default_rng(1)
    items = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (3200, 4100, 4800)]
    exact = Predictor(vid, "random:0", max_batch_seconds=10.0)
    masked = Predictor(vid, "random:0", max_batch_seconds=10.0, batch_mode="masked")
    a, ea = exact.resynthesize(items, ["a", "b", "c"])
    b, eb = masked.resynthesize(items, ["a", "b", "c"])
    assert ea == eb == ["", "", ""] and masked.forward_calls == 1
    for x, y in zip(a, b):
        np.testing.assert_allclose(y, x, atol=1e-4 * float(np.abs(x).max()) + 1e-6)


def test_bf16_fp32vq_predictor_patches_the_quantisers_or_says_why_not():
    pred = Predictor("encodec_24k_6kbps", "random:0", precision="bf16_fp32vq")
    assert getattr(pred.codec.model.quantizer, "_ncst_fp32", False)
    outs, errs = pred.resynthesize([0.1 * np.ones(2400, np.float32)], ["a.wav"])
    assert errs == [""] and np.isfinite(outs[0]).all()
    with pytest.raises(ValueError, match="bf16_fp32vq"):
        Predictor("toy_mulaw_16k", "random:0", precision="bf16_fp32vq")
