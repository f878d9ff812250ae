"""Recipe mistakes: one line (exit 2) naming the file and key path, with a difflib hint."""
from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from manifests.recipe_schema import RECIPE_SECTIONS, check_keys
from pipeline.cli import app

runner = CliRunner()


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    for needle in needles:
        assert needle in result.output, result.output


def _recipe(tmp_path, doc):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_study_key_typo(tmp_path):
    path = _recipe(tmp_path, {"name": "t", "output_dir": "out", "study": {"modles": ["a"]}})
    _one_line_error(runner.invoke(app, ["study", str(path)]), str(path), "unknown keys in 'study'",
                    "['modles']", "did you mean 'models'?")


@pytest.mark.parametrize("command", ["generate", "protocol", "study", "train"])
def test_unknown_top_level_section(tmp_path, command):
    path = _recipe(tmp_path, {"name": "t", "output_dir": "out", "protocol": {"real": ["x.parquet"]},
                              "generate": {"sources": ["x.parquet"], "variants": ["toy_mulaw_16k"]}, "stduy": {}})
    args = [command, "--recipe", str(path)] if command == "train" else [command, str(path)]
    _one_line_error(runner.invoke(app, args), str(path), "unknown top-level section(s) ['stduy']",
                    "did you mean 'study'?")


def test_nested_key_paths_and_hints(tmp_path):
    path = _recipe(tmp_path, {"name": "t", "output_dir": "out", "protocol": {
        "real": ["x.parquet"], "diff_source": {"sources": ["s.parquet"], "variant": ["mimi_24k_8q"]}}})
    _one_line_error(runner.invoke(app, ["protocol", str(path)]), "unknown keys in 'protocol.diff_source'",
                    "['variant']", "did you mean 'variants'?")
    path = _recipe(tmp_path, {"name": "t", "output_dir": "out",
                              "generate": {"sources": ["x.parquet"], "variants": [{"id": "toy_mulaw_16k", "batchsize": 2}]}})
    _one_line_error(runner.invoke(app, ["generate", str(path)]), "unknown keys in 'variant toy_mulaw_16k'",
                    "did you mean 'batch_size'?")
    path = _recipe(tmp_path, {"name": "t", "output_dir": "out", "train": {"epoch": 2}})
    _one_line_error(runner.invoke(app, ["train", "--recipe", str(path)]), "unknown keys in 'train'",
                    "did you mean 'epochs'?")


def test_check_keys_is_a_json_schema():
    # Typed properties go through jsonschema too: the message names the key path.
    with pytest.raises(ValueError, match=r"r.yaml: study.seed: 'x' is not of type 'integer'"):
        check_keys({"seed": "x"}, {"seed"}, "r.yaml", "study", properties={"seed": {"type": "integer"}})
    check_keys({"seed": 3}, {"seed"}, "r.yaml", "study", properties={"seed": {"type": "integer"}})
    assert {"generate", "protocol", "train", "study"} <= set(RECIPE_SECTIONS)
