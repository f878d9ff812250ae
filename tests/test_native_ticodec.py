"""TiCodec native implementation: upstream fixtures of the three CodecFake+ configurations (1g1r, 1g2r,
1g4r), official 3-part checkpoint layout, the time-invariant codes, raw lengths, batching, random weights."""
from __future__ import annotations

import pytest
import torch
import numpy as np

from codec_wrappers.base import ResolvedWeights
from codec_wrappers.catalog import get_variant
from codec_wrappers.ticodec import (
    TiCodecCodec,
    TiCodecConfig,
    TiCodecModel,
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

LAYERS = {"ticodec_24k_1g1r": 1, "ticodec_24k_1g2r": 2, "ticodec_24k_1g4r": 4}
VARIANTS = sorted(LAYERS)
_cache: dict[str, tuple] = {}


def _official_layout(state: dict) -> dict:
    """``{'generator': sd, 'encoder': sd, 'quantizer': sd}`` as upstream train.py saves it."""
    return {part: {k[len(part) + 1:]: v for k, v in state.items() if k.startswith(part + ".")}
            for part in ("generator", "encoder", "quantizer")}


def _fixture_codec(variant: str, tmp_path_factory):
    """The codec through the registry, its weights from a file in the official layout (strict load)."""
    if variant not in _cache:
        from codec_wrappers.registry import load_codec

        meta, ref = load_fixture(variant)
        path = tmp_path_factory.mktemp(variant) / "g_00300000"
        torch.save({**_official_layout(filled_state_dict(meta)), "steps": 300000}, path)
        codec = load_codec(variant, str(path))
        path.unlink()
        _cache[variant] = (codec, meta, ref)
    return _cache[variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_catalog_options_give_the_fixture_config(variant):
    meta, _ = load_fixture(variant)
    hp = meta["hyperparameters"]
    cfg = config_from_options(get_variant(variant))
    assert cfg == TiCodecConfig(residual_layers=LAYERS[variant])
    assert (cfg.sample_rate, cfg.hop_length, cfg.n_codebooks) == (hp["sampling_rate"], meta["hop_length"],
                                                                   hp["residul_layer"])
    assert (list(cfg.global_feature_conv), cfg.global_code_num) == (hp["global_feature_conv"], hp["global_code_num"])
    assert list(cfg.upsample_rates) == hp["upsample_rates"] and cfg.n_code_groups == hp["n_code_groups"]


def test_configs_upstream_cannot_build_are_refused():
    with pytest.raises(ValueError, match="1, 2 or 4"):
        config_from_options(options={"residul_layer": 3})  # upstream's Quantizer has no codebooks for 3
    with pytest.raises(ValueError, match="n_code_groups"):
        config_from_options(options={"n_code_groups": 2})
    with pytest.raises(ValueError, match="resblock"):
        config_from_options(options={"resblock": "2"})
    with pytest.raises(ValueError, match="global_feature_conv"):
        config_from_options(options={"global_feature_conv": [64, 64, 128, 3, 1]})


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_keys_shapes_and_order_match_upstream(variant):
    meta, _ = load_fixture(variant)
    state = TiCodecModel(config_from_options(get_variant(variant))).state_dict()
    ours = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]
    assert ours == [(k, tuple(s), d) for k, s, d in meta["state_dict"]]


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixture_codes_time_invariant_codes_and_waveform(variant, tmp_path_factory):
    """Full 1 s signal through encode/decode; also the encoder's latent and global vector (float, the
    fixture's codes hardly depend on the input, these do check the encoder path)."""
    codec, _, ref = _fixture_codec(variant, tmp_path_factory)
    assert isinstance(codec, TiCodecCodec) and codec.weights.weights_id.startswith("sha256:")
    model = codec.model
    x = torch.from_numpy(ref["input"])
    with torch.inference_mode():
        latent, glob = model.encoder(x)
        codes, gcodes = model.quantizer.encode(latent), model.quantizer.encode_global(glob)
        out = model.decode(codes, gcodes)
    assert_close_to_reference(latent, ref["latent"])
    assert_close_to_reference(glob, ref["global_features"])
    assert codes.shape == (1, 75, LAYERS[variant]) and gcodes.shape == (1, 1, 8)
    np.testing.assert_array_equal(codes.numpy(), ref["codes"])
    np.testing.assert_array_equal(gcodes.numpy(), ref["global_codes"])
    assert_close_to_reference(out, ref["output"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixture_at_a_length_that_is_not_a_hop_multiple(variant, tmp_path_factory):
    """7000 samples (21 frames + 280): upstream gives 6720 samples; resynthesize zero-fills to 7000."""
    codec, meta, ref = _fixture_codec(variant, tmp_path_factory)
    x = torch.from_numpy(ref["input_short"])
    n = meta["fixture"]["short_input_samples"]
    assert x.shape[-1] == n and n % 320
    streams = codec.encode_codes(x)
    assert len(streams) == LAYERS[variant] + 1
    np.testing.assert_array_equal(torch.stack(streams[:-1], -1).numpy(), ref["codes_short"])
    np.testing.assert_array_equal(streams[-1].numpy(), ref["global_codes_short"][:, 0, :])
    out = codec.resynthesize(x, torch.tensor([n]))
    assert out.shape == (1, 1, n) and torch.all(out[..., n // 320 * 320:] == 0)
    assert_close_to_reference(out[..., : n // 320 * 320], ref["output_short"])


def test_resynthesize_equals_upstream_at_raw_lengths_alone_and_batched(tmp_path_factory):
    """Each item at its raw length (GroupNorm and the global vector's time mean run over the whole
    item): alone and inside one right-padded batch of unequal lengths."""
    codec, _, ref = _fixture_codec("ticodec_24k_1g2r", tmp_path_factory)
    lengths = [3 * 320 + 319, 2 * 320 + 1, 3 * 320 + 319]  # two of equal length share a forward call
    check_resynthesize_at_raw_lengths(codec, lambda x: codec.model.decode(*codec.model.encode(x)),
                                      torch.from_numpy(ref["input"]), lengths, out_samples=lambda n: n // 320 * 320)


def test_padding_would_change_the_output(tmp_path_factory):
    """Why items run at their raw length: the same audio with 300 zeros after it decodes differently."""
    codec, _, ref = _fixture_codec("ticodec_24k_1g1r", tmp_path_factory)
    x = torch.from_numpy(ref["input"])[..., 2000:2000 + 3 * 320]
    with torch.inference_mode():
        plain = codec.model.encoder(x)[1]
        padded = codec.model.encoder(torch.nn.functional.pad(x, (0, 300)))[1]
    assert (plain - padded).abs().max() > 1e-6


def test_items_shorter_than_one_hop_are_padded_to_one_hop(tmp_path_factory):
    codec, _, ref = _fixture_codec("ticodec_24k_1g1r", tmp_path_factory)
    full = torch.from_numpy(ref["input"])[0, 0]
    lengths = [100, 319, 1000]
    batch = torch.zeros(3, 1, 1000)
    for i, n in enumerate(lengths):
        batch[i, 0, :n] = full[1000 * i: 1000 * i + n]
    out = codec.resynthesize(batch, torch.tensor(lengths))
    for i, n in enumerate(lengths[:2]):
        with torch.inference_mode():
            direct = codec.model(torch.nn.functional.pad(batch[i: i + 1, :, :n], (0, 320 - n)))
        assert direct.abs().max() > 0
        assert_close_to_reference(out[i, :, :n], direct[0, :, :n])
        assert torch.all(out[i, :, n:] == 0)


def test_old_checkpoint_naming_is_refused_with_the_file_name(tmp_path):
    """Older upstream checkpoints stored the global codebooks as quantizer_modules3.<j> (ckpt_change.ipynb
    renames them); loading one unconverted must fail strictly, naming the file."""
    meta, _ = load_fixture("ticodec_24k_1g2r")
    parts = _official_layout(filled_state_dict(meta))
    q = parts["quantizer"]
    for j in range(8):
        q[f"quantizer_modules3.{j}.embedding.weight"] = q.pop(f"quantizer_modules_globaltokens.{j}.embedding.weight")
    path = tmp_path / "g_00250000"
    torch.save(parts, path)
    with pytest.raises(ValueError, match="g_00250000"):
        load_official_checkpoint(TiCodecModel(TiCodecConfig(residual_layers=2)), str(path))


def test_random_weights_deterministic_finite_and_input_dependent():
    cfg = TiCodecConfig(upsample_rates=(4, 2), upsample_kernel_sizes=(8, 4), upsample_initial_channel=64,
                        resblock_kernel_sizes=(3, 5), resblock_dilation_sizes=((1, 3), (1, 3)), n_codes=32,
                        latent_dim=128, residual_layers=2, global_feature_conv=(64, 16, 32, 3, 1))  # small
    a = build_model(cfg, ResolvedWeights(kind="random", seed=5))
    b = build_model(cfg, ResolvedWeights(kind="random", seed=5))
    c = build_model(cfg, ResolvedWeights(kind="random", seed=6))
    g = torch.Generator().manual_seed(0)
    x1, x2 = 0.3 * torch.randn(2, 1, 1, 800, generator=g)
    with torch.inference_mode():
        y1, y1b, y1c, y2 = a(x1), b(x1), c(x1), a(x2)
        (codes1, g1), (codes2, g2) = a.encode(x1), a.encode(x2)
    assert y1.shape == (1, 1, 800) and torch.equal(y1, y1b)
    assert torch.isfinite(y1).all() and y1.abs().max() > 1e-3
    assert not torch.allclose(y1, y1c) and not torch.allclose(y1, y2)
    assert codes1.shape == (1, 100, 2) and g1.shape == (1, 1, 8) and not torch.equal(codes1, codes2)


def test_random_weights_through_registry():
    from codec_wrappers.registry import load_codec

    codec = load_codec("ticodec_24k_1g1r", "random:0")
    x = 0.3 * torch.randn(2, 1, 1500, generator=torch.Generator().manual_seed(1))
    y = codec.resynthesize(x, torch.tensor([1500, 1111]))
    assert torch.isfinite(y).all() and y[0].abs().max() > 1e-3 and torch.all(y[1, :, 1111:] == 0)
    streams = codec.encode_codes(x[:1, :, :1280])
    assert [tuple(s.shape) for s in streams] == [(1, 4), (1, 8)]
