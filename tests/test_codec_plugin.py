"""A codec family and its variants registered by an installed plugin (``ncst.codecs`` entry point)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

from codec_wrappers import catalog as cat
from codec_wrappers import registry

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """Install the fixture plugin the way pip would: a module plus a dist-info with entry_points.txt."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "ncst_toy_plugin.py").write_text((FIXTURES / "ncst_toy_plugin.py").read_text())
    dist = site / "ncst_toy_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ncst-toy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ncst.codecs]\nplugtoy = ncst_toy_plugin:load_codec\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv(cat.CATALOG_PATH_ENV, raising=False)
    importlib.invalidate_caches()
    cat.clear_cache()
    yield
    sys.modules.pop("ncst_toy_plugin", None)
    cat.clear_cache()


def test_plugin_family_and_catalog_entries(installed_plugin):
    assert "plugtoy" in [ep.name for ep in cat.plugin_entry_points()]
    v = cat.get_variant("plugtoy_mulaw4_8k")
    assert v.family == "plugtoy" and v.sample_rate == 8000
    assert registry.family_status(v) == "plugin" and registry.is_implemented(v.id)
    codec = registry.load_codec(v.id, "random:9")
    assert codec.weights.weights_id == "random:9" and codec.bits == 4
    x = torch.linspace(-0.5, 0.5, 800).view(1, 1, -1)
    y = codec.resynthesize(x, torch.tensor([800]))
    assert y.shape == x.shape and 0 < (y - x).abs().max() < 0.1  # coarse (4-bit) but close


def test_without_plugin_the_variant_is_unknown():
    cat.clear_cache()
    with pytest.raises(KeyError):
        cat.get_variant("plugtoy_mulaw4_8k")


def test_catalog_path_variant_with_registered_family(tmp_path, monkeypatch):
    import yaml

    from codec_wrappers.toy import ToyMuLawCodec

    entry = {"id": "local_mulaw6_16k", "family": "localtoy", "codec": "Local", "sample_rate": 16000,
             "bitrate_kbps": 96, "n_codebooks": 1, "taxonomy": {"vq": "SQ", "aux": "none", "decoder": "time"},
             "st_label": None, "st_role": "extra", "checkpoint": {"needs_weights": False}, "options": {"bits": 6}}
    (tmp_path / "local.yaml").write_text(yaml.safe_dump({"variants": [entry]}))
    monkeypatch.setenv(cat.CATALOG_PATH_ENV, str(tmp_path / "local.yaml"))
    cat.clear_cache()
    try:
        assert not registry.is_implemented("local_mulaw6_16k")
        with pytest.raises(registry.FamilyNotImplemented, match="localtoy"):
            registry.load_codec("local_mulaw6_16k")
        registry.register_family("localtoy", lambda v, w, device="cpu": ToyMuLawCodec(v, w, device))
        assert registry.family_status("local_mulaw6_16k") == "registered"
        assert registry.load_codec("local_mulaw6_16k").bits == 6
    finally:
        registry.unregister_family("localtoy")
        cat.clear_cache()
