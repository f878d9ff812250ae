"""Registry (lazy family modules, status, errors), the toy codec, and the codec CLI commands."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from codec_wrappers import catalog as cat
from codec_wrappers import registry
from codec_wrappers.base import Codec


@pytest.fixture(autouse=True)
def _clean(monkeypatch, tmp_path):
    monkeypatch.delenv(cat.CATALOG_PATH_ENV, raising=False)
    monkeypatch.setenv("NCST_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    cat.clear_cache()


def test_toy_codec_roundtrip_and_weights_id():
    codec = registry.load_codec("toy_mulaw_16k")
    assert isinstance(codec, Codec) and codec.weights.weights_id == "none"
    assert registry.load_codec("toy_mulaw_16k", "random:4").weights.weights_id == "random:4"
    x = 0.5 * torch.sin(torch.linspace(0, 60, 1600)).view(1, 1, -1).repeat(2, 1, 1)
    lengths = torch.tensor([1600, 1000])
    y = codec.resynthesize(x, lengths)
    assert y.shape == x.shape and torch.all(y[1, :, 1000:] == 0)
    assert 0 < (y[0] - x[0]).abs().max() < 0.02  # 8-bit mu-law: small but real error
    codes = codec.encode(x)
    assert codes.min() >= 0 and codes.max() <= 255 and len(torch.unique(codes)) > 50


def test_builtin_families_and_missing_modules(monkeypatch):
    assert registry.family_status("encodec_24k_6kbps") == "built-in"
    assert registry.is_implemented("toy_mulaw_16k")
    monkeypatch.setitem(registry.BUILTIN_FAMILIES, "wavtokenizer", "codec_wrappers.not_written_yet")
    status = registry.family_status("wavtokenizer_24k_75tps")
    assert status.startswith("not implemented") and not registry.is_implemented("wavtokenizer_24k_75tps")
    with pytest.raises(registry.FamilyNotImplemented, match="wavtokenizer_24k_75tps"):
        registry.load_codec("wavtokenizer_24k_75tps", "random:0")
    # A module that exists but fails to import is reported, not raised, by the status functions.
    monkeypatch.setitem(registry.BUILTIN_FAMILIES, "wavtokenizer", "tests.no_such_pkg.module")
    assert registry.family_status("wavtokenizer_24k_75tps").startswith(("broken", "not implemented"))


def test_loader_must_return_a_codec():
    registry.register_family("toy", lambda v, w, device="cpu": object())
    try:
        with pytest.raises(TypeError, match="not a Codec"):
            registry.load_codec("toy_mulaw_16k")
    finally:
        registry.unregister_family("toy")
    assert registry.family_status("toy_mulaw_16k") == "built-in"


def test_missing_official_weights_is_a_clear_error():
    from codec_wrappers.weights import WeightsNotFound

    with pytest.raises(WeightsNotFound, match="kyutai/mimi"):
        registry.load_codec("mimi_24k_8q")


# ------------------------------------------------------------------------------------------ CLI


def _app():
    from pipeline.cli import app

    return app


def test_cli_codecs_table():
    result = CliRunner().invoke(_app(), ["codecs"], env={"COLUMNS": "200"})  # the wide table
    assert result.exit_code == 0, result.output
    for text in ("encodec_24k_6kbps", "wavtokenizer_small40", "MVQ/semantic/time", "toy_mulaw_16k"):
        assert text in result.output
    result = CliRunner().invoke(_app(), ["codecs", "--role", "ood"])
    assert "dac_44k" in result.output and "snac_24k" not in result.output


def test_cli_weights(tmp_path, monkeypatch):
    d = tmp_path / "w" / "snac_24k"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    monkeypatch.setenv("NCST_WEIGHTS_DIR", str(tmp_path / "w"))
    result = CliRunner().invoke(_app(), ["weights", "snac_24k"])
    assert result.exit_code == 0, result.output
    assert "hubertsiuzdak/snac_24khz" in result.output
    assert f"[found]   NCST_WEIGHTS_DIR: {d / 'config.json'}" in result.output
    assert "sha256 44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" in result.output
    assert "[missing] NCST_WEIGHTS_DIR" in result.output and "pytorch_model.bin" in result.output


def test_cli_resynth_any_rate(tmp_path):
    sr_in = 44100
    t = np.arange(int(0.25 * sr_in)) / sr_in
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), sr_in)
    out = tmp_path / "out.wav"
    result = CliRunner().invoke(_app(), ["resynth", "toy_mulaw_16k", str(tmp_path / "in.wav"), str(out)])
    assert result.exit_code == 0, result.output
    y, sr = sf.read(out)
    assert sr == 16000 and abs(len(y) - 4000) <= 1 and np.abs(y).max() > 0.2

    out2 = tmp_path / "out2.flac"
    result = CliRunner().invoke(_app(), ["resynth", "encodec_24k_6kbps", str(tmp_path / "in.wav"), str(out2),
                                         "--weights", "random:0", "--out-sr", "16000"])
    assert result.exit_code == 0, result.output
    assert "random:0" in result.output
    y, sr = sf.read(out2)
    assert sr == 16000 and abs(len(y) - 4000) <= 2

    result = CliRunner().invoke(_app(), ["resynth", "mimi_24k_8q", str(tmp_path / "in.wav"), str(out)])
    assert result.exit_code == 2 and "kyutai/mimi" in result.output
    result = CliRunner().invoke(_app(), ["resynth", "encodec_6k", str(tmp_path / "in.wav"), str(out)])
    assert result.exit_code == 2 and "did you mean" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("variant_id", sorted(cat.load_catalog()))
def test_every_implemented_variant_meets_the_contract(variant_id):
    """All catalog variants, native ones included: random weights, lengths that are not hop multiples."""
    if not registry.is_implemented(variant_id):
        pytest.skip(f"{variant_id}: {registry.family_status(variant_id)}")
    codec = registry.load_codec(variant_id, "random:0")
    sr = codec.sample_rate
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([int(0.3 * sr) + 3, int(0.21 * sr) + 7])
    x = 0.1 * torch.randn(2, 1, int(lengths[0]), generator=g)
    x[1, :, lengths[1]:] = 0
    y = codec.resynthesize(x, lengths)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert torch.all(y[1, :, lengths[1]:] == 0)
    assert y[0].abs().max() > 1e-3
    alone = codec.resynthesize(x[1:, :, : lengths[1]], lengths[1:])
    assert (alone[0] - y[1, :, : lengths[1]]).abs().max() <= 1e-4 * max(1.0, y.abs().max().item())
