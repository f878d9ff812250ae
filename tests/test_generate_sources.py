"""Per-variant source manifests: OOD/config variants can run on the eval reals only."""
from __future__ import annotations

from pathlib import Path

import yaml

from gen_helpers import make_source
from manifests import read_manifest
from pipeline.generate import run_generation
from pipeline.recipe import RecipeError, load_recipe


def _recipe(tmp_path: Path, variants) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({
        "name": "t", "output_dir": "out",
        "generate": {"sources": ["all/all.parquet"], "variants": variants, "weights": "random:0", "executor": "local"},
    }))
    return path


def test_variant_sources_restrict_its_items(tmp_path):
    make_source(tmp_path / "all", n=6, corpus="all")
    make_source(tmp_path / "few", n=2, corpus="few")
    recipe = load_recipe(_recipe(tmp_path, [
        "toy_mulaw_16k",
        {"id": "encodec_24k_6kbps", "sources": ["few/few.parquet"]},
    ]))
    spec = recipe.generate.variants[1]
    assert spec.sources == ((tmp_path / "few" / "few.parquet").resolve(),)
    assert recipe.generate.sources_for(recipe.generate.variants[0]) == recipe.generate.sources

    from pipeline.generate import plan_generation, _preflight

    variants, _ = _preflight(recipe.generate, check_weights=False)
    plan = plan_generation(recipe.generate, variants, tmp_path / "out" / "dataset")
    counts = plan.groupby("variant").size().to_dict()
    assert counts == {"toy_mulaw_16k": 6, "encodec_24k_6kbps": 2}
    # Section order is kept: all toy items first, then the variant with its own sources.
    assert list(plan["variant"].drop_duplicates()) == ["toy_mulaw_16k", "encodec_24k_6kbps"]
    assert set(plan.loc[plan["variant"] == "encodec_24k_6kbps", "source_utt_id"]) == {"few_000", "few_001"}


def test_variant_sources_generate_into_one_manifest(tmp_path):
    make_source(tmp_path / "all", n=3, corpus="all")
    make_source(tmp_path / "few", n=1, corpus="few")
    recipe = load_recipe(_recipe(tmp_path, [
        {"id": "toy_mulaw_16k", "sources": ["few/few.parquet"]},
    ]))
    summary = run_generation(recipe.generate, recipe.output_dir, quiet=True)
    df = read_manifest(summary.manifest, validate=True)
    assert list(df["source_utt_id"]) == ["few_000"]


def test_variant_sources_must_be_a_list(tmp_path):
    import pytest

    with pytest.raises(RecipeError, match="sources"):
        load_recipe(_recipe(tmp_path, [{"id": "toy_mulaw_16k", "sources": []}]))
