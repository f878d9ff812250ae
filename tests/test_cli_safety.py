"""Commands refuse to overwrite a user's work without --force; `protocol -o` moves outputs only."""
from __future__ import annotations

import shutil

import yaml
from typer.testing import CliRunner

from manifests import read_manifest, write_manifest
from pipeline.cli import app
from pipeline.commands.demo import DEMO_RECIPE
from test_protocol import fakes_of, reals

runner = CliRunner()


def test_ingest_refuses_existing_output_without_force(tmp_path):
    from pipeline.demo_corpus import make_demo_corpus

    demo = make_demo_corpus(tmp_path / "c", vctk_speakers=1, aishell3_speakers=0, utterances_per_speaker=1,
                            min_duration_s=0.3, max_duration_s=0.4)
    out = tmp_path / "v.parquet"
    out.write_bytes(b"mine")
    r = runner.invoke(app, ["ingest", "vctk", str(demo.vctk_dir), "-o", str(out)])
    assert r.exit_code == 2 and "exists; pass --force" in r.output and str(out) in r.output
    assert len(r.output.strip().splitlines()) == 1 and out.read_bytes() == b"mine"
    r = runner.invoke(app, ["ingest", "vctk", str(demo.vctk_dir), "-o", str(out), "--force"])
    assert r.exit_code == 0, r.output
    assert len(read_manifest(out)) == 1


def test_demo_refuses_edited_recipe_and_runs(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "recipe.yaml").write_text(DEMO_RECIPE.read_text() + "\n# my edit\n")
    r = runner.invoke(app, ["demo", str(out)])
    assert r.exit_code == 2 and "recipe.yaml differs" in r.output and "--force" in r.output
    assert "# my edit" in (out / "recipe.yaml").read_text() and not (out / "corpus").exists()
    shutil.copyfile(DEMO_RECIPE, out / "recipe.yaml")  # an unedited copy alone is fine; runs/ is not
    (out / "runs" / "aasist").mkdir(parents=True)
    (out / "runs" / "aasist" / "best.pt").write_bytes(b"x")
    r = runner.invoke(app, ["demo", str(out)])
    assert r.exit_code == 2 and "holds trained runs" in r.output
    assert (out / "runs" / "aasist" / "best.pt").exists() and not (out / "corpus").exists()
    r = runner.invoke(app, ["demo", str(out), "--model", "aasit"])
    assert r.exit_code == 2 and "aasit" in r.output


def test_protocol_output_dir_moves_outputs_not_inputs(tmp_path):
    src = reals("vctk", 4, 6, root=None)
    write_manifest(src, tmp_path / "data" / "vctk.parquet", root=tmp_path / "corpus")
    # The default fake manifest: <recipe output_dir>/dataset/manifests/fake.parquet.
    write_manifest(fakes_of(src, ("mimi_24k_8q",)), tmp_path / "run" / "dataset" / "manifests" / "fake.parquet",
                   root=tmp_path)
    recipe = {"name": "t", "output_dir": "run", "protocol": {
        "real": ["data/vctk.parquet"], "sizes": {"train": 12, "dev": 4, "eval": 8}, "seed": 1,
        "id_variants": ["mimi_24k_8q"]}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    elsewhere = tmp_path / "elsewhere"
    r = runner.invoke(app, ["protocol", str(tmp_path / "r.yaml"), "-o", str(elsewhere)])
    assert r.exit_code == 0, r.output
    ev = read_manifest(elsewhere / "protocol" / "subsets" / "eval_id.parquet")
    assert (ev["label"] == 1).sum() == 8  # the fakes were read from run/, not from elsewhere/
    assert not (tmp_path / "run" / "protocol").exists()
