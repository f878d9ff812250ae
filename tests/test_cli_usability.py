"""CLI usability: --version, `ncst codecs` at 80 columns, user errors as one line with a hint."""
from __future__ import annotations

from typer.testing import CliRunner

from codec_wrappers import catalog as cat


def _app():
    from pipeline.cli import app

    return app


def test_version():
    from importlib.metadata import version

    result = CliRunner().invoke(_app(), ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"ncst {version('ncst')}"


def test_codecs_fits_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(_app(), ["codecs"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.output  # nothing cut short
    rows = {line.split()[0] for line in lines if line.strip()}
    assert set(cat.load_catalog()) <= rows  # every variant id, whole, on its own row
    wide = CliRunner().invoke(_app(), ["codecs"], env={"COLUMNS": "200"})
    assert "implemented" in wide.output and "condition" in wide.output


def test_codecs_bad_role_is_one_line():
    result = CliRunner().invoke(_app(), ["codecs", "--role", "oodd"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "did you mean ood?" in result.output and len(result.output.strip().splitlines()) == 1
    fam = CliRunner().invoke(_app(), ["codecs", "--family", "encodek"])
    assert fam.exit_code == 2 and "did you mean encodec" in fam.output
