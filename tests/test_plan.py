"""Recipe parsing and the work plan: ids, paths, labels, taxonomy columns, only usable rows."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from codec_wrappers.catalog import get_variant
from manifests import real_row, write_manifest, external_spoof_row
from manifests.rows import failed
from pipeline.plan import PlanError, item_id, item_path, make_plan
from pipeline.recipe import RecipeError, load_recipe


def _source(tmp_path, name="tiny", rows=None):
    rows = rows or [
        real_row(utt_id="a1", corpus=name, path="spk1/a1.wav", speaker="spk1", language="en", split="train",
                 text="hello", sample_rate=16000, num_samples=32000, duration_s=2.0, extra={"accent": "x"}),
        real_row(utt_id="a2", corpus=name, path="spk2/a2.wav", speaker="spk/2", language="en", split="test",
                 sample_rate=16000, num_samples=8000, duration_s=0.5),
        failed(real_row(utt_id="a3", corpus=name, path="spk1/a3.wav", speaker="spk1"), "bad file"),
        external_spoof_row(attack="A01", utt_id="a4", corpus=name, path="spk1/a4.wav", speaker="spk1"),
    ]
    path = tmp_path / f"{name}.parquet"
    write_manifest(rows, path, root=tmp_path / "audio")
    return path


def test_plan_ids_paths_labels_taxonomy(tmp_path):
    src = _source(tmp_path)
    plan = make_plan([src], ["mimi_24k_8q", "wavtokenizer_24k_75tps", "toy_mulaw_16k"], tmp_path / "ds",
                     sample_rate=16000)
    # only ok, real rows: a1 and a2, for each of 3 variants
    assert len(plan) == 6
    assert set(plan["source_utt_id"]) == {"a1", "a2"}
    assert plan.attrs["skipped"] == {"not_ok": 1, "fake": 1}
    row = plan.set_index("utt_id").loc["mimi_24k_8q__a1"]
    assert row["path"] == "audio/mimi_24k_8q/spk1/a1.flac"
    assert row["out_path"] == str((tmp_path / "ds" / "audio/mimi_24k_8q/spk1/a1.flac").resolve())
    assert row["src_path"] == str(tmp_path / "audio" / "spk1/a1.wav")
    assert (row["label"], row["label_name"], row["domain"]) == (1, "Mimi", "id")
    assert (row["vq"], row["aux"], row["decoder"]) == ("MVQ", "semantic", "time")
    assert (row["codec_sample_rate"], row["output_sample_rate"], row["n_codebooks"]) == (24000, 16000, 8)
    assert row["is_fake"] and row["corpus"] == "tiny" and row["text"] == "hello" and row["split"] == "train"
    assert json.loads(row["extra"]) == {"accent": "x"}
    wt = plan.set_index("utt_id").loc["wavtokenizer_24k_75tps__a2"]
    assert (wt["label"], wt["domain"], wt["vq"], wt["decoder"]) == (7, "ood", "SVQ", "frequency")
    assert wt["path"] == "audio/wavtokenizer_24k_75tps/spk_2/a2.flac"  # unsafe '/' in speaker made safe
    toy = plan.set_index("utt_id").loc["toy_mulaw_16k__a1"]
    assert (toy["label"], toy["label_name"], toy["domain"], toy["vq"]) == (-1, "Toy mu-law", "external", "SQ")
    # sorted by variant (given order), then duration: a2 (0.5 s) before a1 (2 s)
    assert list(plan["utt_id"][:2]) == ["mimi_24k_8q__a2", "mimi_24k_8q__a1"]
    # same inputs, same plan
    again = make_plan([src], ["mimi_24k_8q", "wavtokenizer_24k_75tps", "toy_mulaw_16k"], tmp_path / "ds", sample_rate=16000)
    pd.testing.assert_frame_equal(plan, again)


def test_plan_native_rate_condition_limit_and_wav(tmp_path):
    src = _source(tmp_path)
    v = get_variant("encodec_24k_3kbps")
    plan = make_plan([src], [v], tmp_path / "ds", audio_format="wav", limit=1)
    assert len(plan) == 1 and plan["utt_id"].iat[0] == "encodec_24k_3kbps__a1"
    assert plan["output_sample_rate"].iat[0] == 24000 and plan["path"].iat[0].endswith(".wav")
    assert v.condition == "C4-1"
    assert json.loads(plan["extra"].iat[0]) == {"accent": "x", "codec_condition": "C4-1"}


def test_plan_errors(tmp_path):
    src = _source(tmp_path)
    other = _source(tmp_path, name="other")  # same utt ids a1/a2 in another corpus
    with pytest.raises(PlanError, match="appears in"):
        make_plan([src, other], ["toy_mulaw_16k"], tmp_path / "ds")
    with pytest.raises(PlanError, match="not found"):
        make_plan([tmp_path / "nope.parquet"], ["toy_mulaw_16k"], tmp_path / "ds")
    with pytest.raises(PlanError, match="more than once"):
        make_plan([src], ["toy_mulaw_16k", "toy_mulaw_16k"], tmp_path / "ds")
    assert item_id("v", "u") == "v__u" and item_path("v", "", "u") == "audio/v/_/u.flac"


def test_recipe_generate_section(tmp_path):
    (tmp_path / "r").mkdir()
    recipe = tmp_path / "r" / "rec.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "demo", "output_dir": "../out",
        "generate": {"sources": ["../src.parquet"], "variants": ["toy_mulaw_16k", {"id": "mimi_24k_8q", "batch_size": 4,
                     "num_gpus": 0.5, "concurrency": [1, 3], "weights": "random"}],
                     "sample_rate": 16000, "seed": 3, "node_ip": "127.0.0.2"},
        "train": {"whatever": 1}, "study": {"x": 2},  # other stages' sections are ignored here
    }))
    r = load_recipe(recipe)
    g = r.generate
    assert r.name == "demo" and r.output_dir == (tmp_path / "out").resolve() and r.dataset_dir == r.output_dir / "dataset"
    assert g.sources == ((tmp_path / "src.parquet").resolve(),)
    assert g.variants[1].concurrency == (1, 3) and g.variants[1].num_gpus == 0.5
    assert g.weights_for(g.variants[1]) == "random:3" and g.weights_for(g.variants[0]) is None
    assert g.batch_size_for(g.variants[1]) == 4 and g.batch_size_for(g.variants[0]) == 16
    assert g.output_rate(24000) == 16000 and g.node_ip == "127.0.0.2" and g.executor == "ray"


@pytest.mark.parametrize(
    "generate, message",
    [
        ({"variants": ["toy_mulaw_16k"]}, "sources"),
        ({"sources": ["s.parquet"], "variants": []}, "variants"),
        ({"sources": ["s.parquet"], "variants": ["toy_mulaw_16k"], "batchsize": 3}, "unknown key"),
        ({"sources": ["s.parquet"], "variants": [{"id": "toy_mulaw_16k", "gpus": 1}]}, "unknown key"),
        ({"sources": ["s.parquet"], "variants": [{"id": "toy_mulaw_16k", "concurrency": [3, 1]}]}, "min <= max"),
        ({"sources": ["s.parquet"], "variants": ["toy_mulaw_16k"], "sample_rate": "fast"}, "sample_rate"),
        ({"sources": ["s.parquet"], "variants": ["toy_mulaw_16k"], "audio_format": "mp3"}, "audio_format"),
        ({"sources": ["s.parquet"], "variants": ["toy_mulaw_16k"], "batch_size": 0}, "batch_size"),
        ({"sources": ["s.parquet"], "variants": ["toy_mulaw_16k", "toy_mulaw_16k"]}, "more than once"),
    ],
)
def test_recipe_errors_name_file_and_key(tmp_path, generate, message):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(yaml.safe_dump({"name": "x", "output_dir": "o", "generate": generate}))
    with pytest.raises(RecipeError, match=message) as info:
        load_recipe(recipe)
    assert str(recipe) in str(info.value)


def test_recipe_without_output_dir_or_generate(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: x\n")
    with pytest.raises(RecipeError, match="output_dir"):
        load_recipe(recipe)
    recipe.write_text("name: x\noutput_dir: o\ntrain: {}\n")
    assert load_recipe(recipe).generate is None
