"""HiFi-Codec (AcademiCodec) native implementation: shared fixtures (24k/16k), encoder check against the
fixture's latent statistics, official 3-part checkpoint layout, lengths, batching, random weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codec_wrappers.base import ResolvedWeights
from codec_wrappers.catalog import get_variant
from codec_wrappers.hificodec import (
    HiFiCodecCodec,
    HiFiCodecConfig,
    HiFiCodecModel,
    build_model,
    config_from_options,
    load_official_checkpoint,
)
from native_fixtures import (
    assert_close_to_reference,
    check_resynthesize_at_raw_lengths,
    filled_state_dict,
    load_fixture,
)

FILES = {"hificodec_24k_320d": "HiFi-Codec-24k-320d", "hificodec_16k_320d": "HiFi-Codec-16k-320d"}
_cache: dict[str, tuple] = {}


def _official_layout(state: dict) -> dict:
    """``{'generator': sd, 'encoder': sd, 'quantizer': sd}`` as upstream train.py saves it."""
    return {part: {k[len(part) + 1:]: v for k, v in state.items() if k.startswith(part + ".")}
            for part in ("generator", "encoder", "quantizer")}


def _fixture_codec(variant: str, tmp_path_factory):
    if variant not in _cache:
        from codec_wrappers.registry import load_codec

        meta, ref = load_fixture(variant)
        folder = tmp_path_factory.mktemp(variant)
        path = folder / FILES[variant]
        torch.save({**_official_layout(filled_state_dict(meta)), "steps": 5}, path)
        codec = load_codec(variant, str(folder))
        path.unlink()
        _cache[variant] = (codec, meta, ref)
    return _cache[variant]


def test_catalog_options_give_fixture_configs():
    for variant, sr in (("hificodec_24k_320d", 24000), ("hificodec_16k_320d", 16000)):
        cfg = config_from_options(get_variant(variant))
        assert cfg == HiFiCodecConfig(sample_rate=sr)
        assert (cfg.hop_length, cfg.n_codebooks) == (320, 4)
    with pytest.raises(ValueError, match="resblock"):
        config_from_options(options={"resblock": "2"})


@pytest.mark.parametrize("variant", sorted(FILES))
def test_state_dict_keys_shapes_and_order_match_upstream(variant):
    meta, _ = load_fixture(variant)
    state = HiFiCodecModel(config_from_options(get_variant(variant))).state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == [(k, tuple(s)) for k, s, _ in meta["state_dict"]]


@pytest.mark.parametrize("variant", sorted(FILES))
def test_fixture_codes_and_waveform(variant, tmp_path_factory):
    codec, _, ref = _fixture_codec(variant, tmp_path_factory)
    assert isinstance(codec, HiFiCodecCodec) and codec.weights.weights_id.startswith("sha256:")
    x = torch.from_numpy(ref["input"])
    with torch.inference_mode():
        codes = codec.model.encode(x)
        out = codec.model.decode(codes)
    np.testing.assert_array_equal(codes.numpy(), ref["codes"])
    assert_close_to_reference(out, ref["output"])
    assert_close_to_reference(codec.resynthesize(x, torch.tensor([x.shape[-1]])), ref["output"])


@pytest.mark.parametrize("variant", sorted(FILES))
def test_encoder_latent_matches_fixture_statistics(variant, tmp_path_factory):
    """The fixture's codes hardly depend on the input; its recorded latent statistics do check the encoder
    (slopes, GroupNorm placement, the plain final conv): the latent's offset from the latent of silence and
    its spread over time."""
    codec, meta, ref = _fixture_codec(variant, tmp_path_factory)
    stats = meta["fixture"]["encoder_latent_stats"]
    x = torch.from_numpy(ref["input"])
    with torch.inference_mode():
        lat, silent = codec.model.encoder(x), codec.model.encoder(torch.zeros_like(x))
    assert lat.shape == (1, 512, x.shape[-1] // 320)
    np.testing.assert_allclose(float(lat.abs().mean()), stats["mean_abs_latent"], rtol=1e-5)
    np.testing.assert_allclose(float((lat - silent).abs().mean()), stats["mean_abs_latent_minus_latent_of_silence"], rtol=1e-3)
    np.testing.assert_allclose(float(lat.std(-1).mean()), stats["mean_temporal_std_of_latent"], rtol=1e-4)


@pytest.mark.parametrize("variant", sorted(FILES))
def test_resynthesize_equals_upstream_at_raw_lengths(variant, tmp_path_factory):
    """Upstream feeds the raw length and drops the partial last frame: floor(n/320)*320 samples out. Padding
    to the hop instead would move every frame (GroupNorm over the whole item), far past the bound."""
    codec, _, ref = _fixture_codec(variant, tmp_path_factory)
    lengths = [9 * 320 + 319, 5 * 320 + 1]  # last partial frame: 319 and 1 samples
    check_resynthesize_at_raw_lengths(codec, lambda x: codec.model.decode(codec.model.encode(x)),
                                      torch.from_numpy(ref["input"]), lengths, out_samples=lambda n: n // 320 * 320)


def test_items_shorter_than_one_hop_are_padded_to_one_hop(tmp_path_factory):
    """Upstream gives no frame (and fails) below 320 samples; such items run zero-padded to one hop."""
    codec, _, ref = _fixture_codec("hificodec_16k_320d", tmp_path_factory)
    full = torch.from_numpy(ref["input"])[0, 0]
    lengths = [100, 319, 4001]
    batch = torch.zeros(3, 1, 4001)
    for i, n in enumerate(lengths):
        batch[i, 0, :n] = full[1000 * i: 1000 * i + n]
    out = codec.resynthesize(batch, torch.tensor(lengths))
    for i, n in enumerate(lengths[:2]):
        with torch.inference_mode():
            direct = codec.model(torch.nn.functional.pad(batch[i: i + 1, :, :n], (0, 320 - n)))
        assert direct.abs().max() > 0
        assert_close_to_reference(out[i, :, :n], direct[0, :, :n])
        assert torch.all(out[i, :, n:] == 0)
    assert torch.equal(out, codec.resynthesize(batch, torch.tensor(lengths)))


def test_strict_loading_names_the_file(tmp_path):
    meta, _ = load_fixture("hificodec_16k_320d")
    parts = _official_layout(filled_state_dict(meta))
    parts["encoder"]["conv_post.weight_g"] = parts["encoder"].pop("conv_post.weight")  # wrong: a plain conv upstream
    path = tmp_path / "HiFi-Codec-broken"
    torch.save(parts, path)
    with pytest.raises(ValueError, match="HiFi-Codec-broken"):
        load_official_checkpoint(HiFiCodecModel(), str(path))


def test_random_weights_deterministic_finite_and_input_dependent():
    cfg = HiFiCodecConfig(upsample_rates=(4, 2), upsample_kernel_sizes=(8, 4), upsample_initial_channel=32,
                          resblock_kernel_sizes=(3, 5), resblock_dilation_sizes=((1, 3), (1, 3)), n_codes=32,
                          latent_dim=128)  # small; same layout
    a = build_model(cfg, ResolvedWeights(kind="random", seed=5))
    b = build_model(cfg, ResolvedWeights(kind="random", seed=5))
    c = build_model(cfg, ResolvedWeights(kind="random", seed=6))
    g = torch.Generator().manual_seed(0)
    x1, x2 = 0.3 * torch.randn(2, 1, 1, 800, generator=g)
    with torch.inference_mode():
        y1, y1b, y1c, y2 = a(x1), b(x1), c(x1), a(x2)
        codes1, codes2 = a.encode(x1), a.encode(x2)
    assert y1.shape == (1, 1, 800) and torch.equal(y1, y1b)
    assert torch.isfinite(y1).all() and y1.abs().max() > 1e-3
    assert not torch.allclose(y1, y1c) and not torch.allclose(y1, y2)
    assert codes1.shape == (1, 100, 4) and not torch.equal(codes1, codes2)


def test_random_weights_through_registry():
    from codec_wrappers.registry import load_codec

    codec = load_codec("hificodec_16k_320d", "random:0")
    x = 0.3 * torch.randn(2, 1, 4000, generator=torch.Generator().manual_seed(1))
    y = codec.resynthesize(x, torch.tensor([4000, 2222]))
    assert torch.isfinite(y).all() and y[0].abs().max() > 1e-3 and torch.all(y[1, :, 2222:] == 0)
