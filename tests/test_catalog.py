"""The variant catalog against DESIGN.md's codec facts table and the native codec fixtures."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from codec_wrappers import catalog as cat
from codec_wrappers.base import Taxonomy

# DESIGN.md "Codec facts": ST id -> (sample rate, kbps, codebooks, VQ, AUX, DEC, family).
DESIGN_TABLE = {
    1: (24000, 1.1, 8, "MVQ", "semantic", "time", "mimi"),
    2: (16000, 4.0, 8, "MVQ", "semantic", "time", "speechtokenizer"),
    3: (16000, 16.0, 32, "MVQ", "none", "time", "funcodec"),
    4: (24000, 6.0, 8, "MVQ", "none", "time", "encodec"),
    5: (16000, 4.8, 6, "MVQ", "disentangle", "time", "facodec"),
    6: (24000, 0.98, 3, "MVQ", "none", "time", "snac"),
    7: (24000, 0.9, 1, "SVQ", "none", "frequency", "wavtokenizer"),
    8: (24000, 3.0, 4, "MVQ", "none", "time", "hificodec"),
    9: (44100, 8.0, 9, "MVQ", "none", "time", "dac"),
    10: (24000, 6.4, 8, "MVQ", "none", "frequency", "audiodec"),
    11: (16000, 4.0, 8, "MVQ", "none", "time", "soundstream"),
}
FIXTURES = Path("/work/shared/ref/codecs")


@pytest.fixture(autouse=True)
def _fresh_catalog(monkeypatch):
    monkeypatch.delenv(cat.CATALOG_PATH_ENV, raising=False)
    cat.clear_cache()
    yield
    cat.clear_cache()


@pytest.mark.parametrize("label", sorted(DESIGN_TABLE))
def test_protocol_variant_matches_design_table(label):
    sr, kbps, q, vq, aux, dec, family = DESIGN_TABLE[label]
    v = cat.st_variant(label)
    assert (v.sample_rate, v.bitrate_kbps, v.n_codebooks) == (sr, kbps, q)
    assert v.taxonomy == Taxonomy(vq, aux, dec)
    assert v.family == family
    assert v.st_role == ("id" if label <= 6 else "ood")


def test_exactly_one_protocol_variant_per_label():
    roles = [(v.st_label, v.st_role) for v in cat.load_catalog().values() if v.st_role in ("id", "ood")]
    assert sorted(label for label, _ in roles) == list(range(1, 12))


def test_conditions_of_the_robustness_sets():
    by_cond = {v.condition: v for v in cat.load_catalog().values() if v.condition}
    assert sorted(by_cond) == ["C3-1", "C3-2", "C3-3", "C3-4", "C4-1", "C4-2", "C4-3", "wavtokenizer_small40"]
    for c in ("C3-1", "C3-2", "C3-3", "C3-4"):
        assert by_cond[c].st_label == 3 and by_cond[c].family == "funcodec" and by_cond[c].st_role == "diff_config"
    assert [by_cond[c].options["bandwidth"] for c in ("C4-1", "C4-2", "C4-3")] == [3.0, 12.0, 24.0]
    assert all(by_cond[c].st_label == 4 for c in ("C4-1", "C4-2", "C4-3"))
    small40 = by_cond["wavtokenizer_small40"]
    assert (small40.id, small40.st_label, small40.st_role) == ("wavtokenizer_24k_40tps", 7, "ood_config")


def test_config_variants_requested_by_design_exist():
    ids = set(cat.load_catalog())
    for vid in ("dac_16k", "dac_24k", "dac_44k", "snac_24k", "snac_32k", "snac_44k", "funcodec_16k_ds320_freq",
                "encodec_24k_1p5kbps", "encodec_24k_3kbps", "encodec_24k_6kbps", "encodec_24k_12kbps",
                "encodec_24k_24kbps", "toy_mulaw_16k", "hificodec_16k_320d"):
        assert vid in ids
    assert cat.get_variant("funcodec_16k_ds320_freq").taxonomy.decoder == "frequency"
    toy = cat.get_variant("toy_mulaw_16k")
    assert (toy.st_label, toy.st_role, toy.taxonomy.vq) == (None, "extra", "SQ")


def test_encodec_bitrate_matches_codebooks():
    # 75 frames/s x 10 bit per codebook: a catalog slip between bandwidth and codebooks shows here.
    for v in cat.variants_by(family="encodec"):
        assert v.options["bandwidth"] == v.bitrate_kbps
        assert v.n_codebooks == round(v.bitrate_kbps * 1000 / 750)


def test_audiodec_and_soundstream_notes():
    assert "frequency" in cat.get_variant("audiodec_24k_320d").notes
    ss = cat.get_variant("soundstream_16k_4kbps")
    assert ss.checkpoint["available"] is False


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared/ref/codecs fixtures not present on this machine")
def test_native_variants_match_fixture_jsons():
    natives = {v.id: v for v in cat.load_catalog().values() if v.native and v.family != "toy"}
    fixture_ids = {p.stem for p in FIXTURES.glob("*.json")}
    assert fixture_ids <= set(natives)
    for vid in fixture_ids:
        ref = json.loads((FIXTURES / f"{vid}.json").read_text())
        v = natives[vid]
        assert v.sample_rate == ref["sample_rate"], vid
        assert v.bitrate_kbps == pytest.approx(ref["bitrate_kbps"]), vid
        assert v.n_codebooks == ref["n_codebooks"], vid
        assert v.options["hop_length"] == ref["hop_length"], vid
        ck = ref["official_checkpoint"]
        if "hf_repo" in ck:
            assert v.checkpoint["hf_repo"] == ck["hf_repo"], vid


def test_get_variant_suggests_close_ids():
    with pytest.raises(KeyError, match="encodec_24k_6kbps"):
        cat.get_variant("encodec_24k_6kbp")


def test_variants_by_filters():
    ood = cat.variants_by(st_role="ood")
    assert {v.st_label for v in ood} == {7, 8, 9, 10, 11}
    assert {v.id for v in cat.variants_by(family="snac")} == {"snac_24k", "snac_32k", "snac_44k"}
    with pytest.raises(ValueError):
        cat.variants_by(st_role="nope")


def _entry(**kw):
    base = dict(id="local_toy_8k", family="toy", codec="Toy", sample_rate=8000, bitrate_kbps=64,
                n_codebooks=1, taxonomy={"vq": "SQ", "aux": "none", "decoder": "time"},
                st_label=None, st_role="extra", checkpoint={"needs_weights": False}, options={"bits": 8})
    base.update(kw)
    return base


def test_extra_catalog_from_env(tmp_path, monkeypatch):
    import yaml

    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump({"variants": [_entry()]}))
    monkeypatch.setenv(cat.CATALOG_PATH_ENV, str(tmp_path))
    assert cat.get_variant("local_toy_8k").sample_rate == 8000


def test_duplicate_and_bad_entries_name_their_source(tmp_path, monkeypatch):
    import yaml

    dup = tmp_path / "dup.yaml"
    dup.write_text(yaml.safe_dump({"variants": [_entry(id="snac_24k")]}))
    monkeypatch.setenv(cat.CATALOG_PATH_ENV, str(dup))
    with pytest.raises(cat.CatalogError, match="duplicate variant id 'snac_24k'.*dup.yaml"):
        cat.load_catalog()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"variants": [_entry(taxonomy={"vq": "XVQ", "aux": "none", "decoder": "time"})]}))
    monkeypatch.setenv(cat.CATALOG_PATH_ENV, str(bad))
    cat.clear_cache()
    with pytest.raises(cat.CatalogError, match="bad.yaml.*taxonomy.vq"):
        cat.load_catalog()
    with pytest.raises(cat.CatalogError, match="needs an st_label"):
        cat.parse_variant(_entry(st_role="id"))


def test_variants_are_hashable_and_picklable():
    import pickle

    v = cat.get_variant("snac_24k")
    assert {v: 1}[cat.get_variant("snac_24k")] == 1
    assert pickle.loads(pickle.dumps(v)) == v
