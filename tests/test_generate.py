"""Generation: the Predictor in-process, the local executor against Ray Data, failed-row capture."""
from __future__ import annotations

import pytest
import soundfile as sf
import yaml

from manifests import read_manifest, sha256_file
from pipeline.audio_io import load_audio
from pipeline.generate import actor_concurrency, run_generation
from pipeline.plan import make_plan
from pipeline.predictor import Predictor, length_buckets
from pipeline.recipe import GenerateConfig, VariantSpec

from gen_helpers import RAY_IP, make_source, ray_temp_dir

TOY24 = {
    "variants": [{
        "id": "toy_mulaw6_24k", "family": "toy", "codec": "Toy mu-law 6 bit", "sample_rate": 24000,
        "bitrate_kbps": 144, "n_codebooks": 1, "taxonomy": {"vq": "SQ", "aux": "none", "decoder": "time"},
        "st_label": None, "st_role": "extra", "options": {"bits": 6, "mu": 63},
    }]
}


@pytest.fixture
def toy24(tmp_path, monkeypatch):
    """A second toy variant at 24 kHz from a local catalog file (forwarded to Ray workers)."""
    from codec_wrappers import catalog

    path = tmp_path / "local_catalog.yaml"
    path.write_text(yaml.safe_dump(TOY24))
    monkeypatch.setenv("NCST_CATALOG_PATH", str(path))
    yield "toy_mulaw6_24k"
    if hasattr(catalog, "clear_cache"):
        catalog.clear_cache()


def test_length_buckets():
    lengths = [100, 10, 50, 12, 400, 11]
    buckets = length_buckets(lengths, max_samples=120)
    assert sorted(i for b in buckets for i in b) == list(range(6))  # every item exactly once
    for b in buckets:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 120
    assert buckets[0] == [1, 5, 3]  # shortest first, similar lengths together
    assert [4] in buckets  # longer than the budget: alone


def test_predictor_in_process_retries_one_by_one(tmp_path):
    src = make_source(tmp_path, n=5, corrupt=1)
    plan = make_plan([src], ["toy_mulaw_16k"], tmp_path / "ds", sample_rate=8000)
    pred = Predictor("toy_mulaw_16k", "random:0", max_batch_seconds=100.0)
    poison = plan["source_utt_id"].iat[2]
    real = pred.codec.resynthesize
    poison_len = len(load_audio(plan["src_path"].iat[2], 16000)[0])

    def flaky(audio, lengths):  # fails whenever the poisoned item is in the batch
        if poison_len in lengths.tolist():
            raise RuntimeError("boom")
        return real(audio, lengths)

    pred.codec.resynthesize = flaky
    batch = {c: plan[c].to_numpy() for c in ("utt_id", "src_path", "out_path", "output_sample_rate", "codec_sample_rate")}
    out = pred(batch)
    status = dict(zip(out["utt_id"], out["status"]))
    errors = dict(zip(out["utt_id"], out["error"]))
    assert status.pop(f"toy_mulaw_16k__{poison}") == "failed"
    assert "boom" in errors[f"toy_mulaw_16k__{poison}"] and plan["src_path"].iat[2] in errors[f"toy_mulaw_16k__{poison}"]
    bad = "toy_mulaw_16k__tiny_bad0"
    assert status.pop(bad) == "failed" and "tiny_bad0.wav" in errors[bad] and "decode" in errors[bad]
    assert set(status.values()) == {"ok"}  # the neighbours of both bad items succeeded
    assert pred.forward_calls == 1 + 5  # one failed padded batch, then each decodable item alone
    for uid, path, sha, sr, ok in zip(out["utt_id"], plan["out_path"], out["sha256"], out["sample_rate"], out["status"]):
        if ok == "ok":
            assert sha256_file(path) == sha and sf.info(path).samplerate == sr == 8000


def _config(src, variants, **kw):
    return GenerateConfig(sources=(src,), variants=tuple(VariantSpec(v) for v in variants), weights="random:0",
                          batch_size=3, node_ip=RAY_IP, num_cpus=2, **kw)


@pytest.mark.ray
def test_local_equals_ray_and_failed_rows(tmp_path, toy24):
    src = make_source(tmp_path, n=8, corrupt=1)
    variants = ["toy_mulaw_16k", toy24]
    local = run_generation(_config(src, variants), tmp_path / "local", executor="local", quiet=True)
    on_ray = run_generation(_config(src, variants, split_io=True, temp_dir=ray_temp_dir()), tmp_path / "ray",
                            executor="ray", quiet=True)
    for s in (local, on_ray):
        assert (s.planned, s.done, s.failed, s.skipped, s.missing) == (18, 16, 2, 0, 0)
    a = read_manifest(local.manifest, validate=True)
    b = read_manifest(on_ray.manifest, validate=True)
    assert a.attrs["kind"] == "fake" and a.attrs["root"] == str(local.dataset_dir)
    assert list(a["utt_id"]) == list(b["utt_id"]) and a["utt_id"].is_unique
    assert list(a["sha256"]) == list(b["sha256"])  # same bytes, item by item
    ok = a[a["status"] == "ok"]
    assert len(ok) == 16 and ok["sha256"].notna().all()
    for row in ok.itertuples():
        path = local.dataset_dir / row.path
        assert sha256_file(path) == row.sha256
        info = sf.info(path)
        assert info.samplerate == row.sample_rate == row.codec_sample_rate and info.frames == row.num_samples
        assert row.weights_id == "random:0"
    assert set(ok["codec_sample_rate"]) == {16000, 24000}
    bad = a[a["status"] == "failed"]
    assert sorted(bad["source_utt_id"]) == ["tiny_bad0", "tiny_bad0"]
    assert all("tiny_bad0.wav" in e for e in bad["error"])
    card = (local.dataset_dir / "README.md").read_text()
    assert "seeded random codec weights" in card and "Failed rows" in card


def test_output_sample_rate_and_lengths(tmp_path):
    src = make_source(tmp_path, n=4)
    s = run_generation(_config(src, ["toy_mulaw_16k"], sample_rate=22050, audio_format="wav"), tmp_path / "o",
                       executor="local", quiet=True)
    df = read_manifest(s.manifest)
    srcdf = read_manifest(src)
    assert (df["sample_rate"] == 22050).all() and (df["codec_sample_rate"] == 16000).all()
    assert df["path"].str.endswith(".wav").all()
    for row in df.itertuples():
        d_src = float(srcdf.set_index("utt_id").loc[row.source_utt_id, "duration_s"])
        assert abs(row.duration_s - d_src) < 2e-3  # trimmed to the source length, no codec padding left
        assert sf.info(s.dataset_dir / row.path).samplerate == 22050


def test_actor_concurrency_leaves_cpus_for_input_stages():
    cpu = VariantSpec("v")
    assert actor_concurrency(cpu, {"CPU": 2}, split_io=False) == 1
    assert actor_concurrency(cpu, {"CPU": 8}, split_io=False) == (1, 7)
    assert actor_concurrency(cpu, {"CPU": 8}, split_io=True) == (1, 6)
    assert actor_concurrency(VariantSpec("v", num_gpus=0.5), {"CPU": 16, "GPU": 2}, split_io=True) == (1, 4)
    assert actor_concurrency(VariantSpec("v", concurrency=(1, 2)), {"CPU": 64}, split_io=False) == (1, 2)


def test_cli_generate_local_limit_and_errors(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    from gen_helpers import write_recipe

    src = make_source(tmp_path, n=5)
    recipe = write_recipe(tmp_path / "r.yaml", [src], executor="local")
    res = CliRunner().invoke(app, ["generate", str(recipe), "--limit", "2", "--weights", "random:5"])
    assert res.exit_code == 0, res.output
    df = read_manifest(tmp_path / "out" / "dataset" / "manifests" / "fake.parquet")
    assert len(df) == 2 and set(df["weights_id"]) == {"random:5"} and "done 2, skipped 0" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\noutput_dir: o\ngenerate: {sources: [nope.parquet], variants: [toy_mulaw_16k]}\n")
    res = CliRunner().invoke(app, ["generate", str(bad), "--executor", "local"])
    assert res.exit_code == 2 and "nope.parquet" in res.output
    bad.write_text(f"name: x\noutput_dir: o\ngenerate: {{sources: [{src}], variants: [no_such_codec]}}\n")
    res = CliRunner().invoke(app, ["generate", str(bad), "--executor", "local"])
    assert res.exit_code == 2 and "no_such_codec" in res.output


def test_example_recipe_parses_and_names_catalog_variants():
    from pathlib import Path

    from codec_wrappers.catalog import get_variant
    from pipeline.recipe import load_recipe

    r = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "generate_example.yaml")
    assert r.generate is not None and r.generate.weights is None  # official weights by default
    labels = sorted(get_variant(v.id).st_label for v in r.generate.variants)
    assert labels == [1, 2, 3, 4, 5, 6]


def test_missing_weights_stop_before_any_work(tmp_path):
    from pipeline.generate import GenerateError

    src = make_source(tmp_path, n=2)
    config = GenerateConfig(sources=(src,), variants=(VariantSpec("mimi_24k_8q"),), weights=None)  # official: not here
    with pytest.raises(GenerateError, match="mimi_24k_8q"):
        run_generation(config, tmp_path / "o", executor="local", quiet=True)
    assert not (tmp_path / "o" / "dataset" / "audio").exists()


def test_variant_that_cannot_load_fails_its_rows_and_others_go_on(tmp_path, monkeypatch, toy24):
    import pipeline.generate as gen

    real = gen.Predictor

    def broken(**kw):
        if kw["variant"] == toy24:
            raise RuntimeError("CUDA error: out of memory")
        return real(**kw)

    monkeypatch.setattr(gen, "Predictor", broken)
    src = make_source(tmp_path, n=3)
    s = run_generation(_config(src, [toy24, "toy_mulaw_16k"]), tmp_path / "o", executor="local", quiet=True)
    assert (s.done, s.failed, s.missing) == (3, 3, 0)
    df = read_manifest(s.manifest, validate=True)
    bad = df[df["variant"] == toy24]
    assert (bad["status"] == "failed").all() and bad["error"].str.contains("could not run: RuntimeError: CUDA error").all()
    assert (df.loc[df["variant"] == "toy_mulaw_16k", "status"] == "ok").all()
