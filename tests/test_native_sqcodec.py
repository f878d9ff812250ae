"""SQ-Codec (SimpleSpeech) native implementation: the upstream fixture (1 s and a length that is not a hop
multiple), state-dict keys/shapes/order, the shared PReLU quirk, the official zip layout (ckpt.pth + config.yaml),
lengths, batching, random weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from codec_wrappers.base import ResolvedWeights
from codec_wrappers.catalog import get_variant
from codec_wrappers.sqcodec import (
    SQCodecCodec,
    SQCodecConfig,
    SQCodecModel,
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

VARIANT = "sqcodec_16k_50dim_9"
SMALL = dict(init_channel=4, latent_hidden_dim=6, downsample_factors=(2, 2), downsample_kernel_sizes=(4, 4),
             upsample_factors=(2, 2), upsample_kernel_sizes=(4, 4), levels=3)  # hop 8
_cache: dict[str, tuple] = {}


def _generator_config(meta: dict) -> dict:
    """``generator.config`` of upstream's config.yaml for the fixture's architecture."""
    return {k: v for k, v in meta["hyperparameters"].items() if not k.startswith("_") and k != "levels"}


def _write_official(folder, state: dict, config: dict | None) -> None:
    """The unpacked 16k_50dim_9.zip: ckpt.pth ({'codec_model': state dict, ...}) and config.yaml."""
    sub = folder / "16k_50dim_9"
    sub.mkdir(parents=True, exist_ok=True)
    torch.save({"codec_model": state, "step": 5}, sub / "ckpt.pth")
    if config is not None:
        (sub / "config.yaml").write_text(yaml.safe_dump({"generator": {"config": config}}))


def _filled(meta: dict) -> dict:
    """The fixture's weights (filled once: 42M values); callers must not modify the tensors."""
    if "state" not in _cache:
        _cache["state"] = filled_state_dict(meta)
    return dict(_cache["state"])


def _fixture_codec(tmp_path_factory):
    if VARIANT not in _cache:
        from codec_wrappers.registry import load_codec

        meta, ref = load_fixture(VARIANT)
        folder = tmp_path_factory.mktemp(VARIANT)
        _write_official(folder, _filled(meta), _generator_config(meta))
        codec = load_codec(VARIANT, str(folder))
        _cache[VARIANT] = (codec, meta, ref)
    return _cache[VARIANT]


def test_catalog_options_give_the_fixture_config():
    meta, _ = load_fixture(VARIANT)
    v = get_variant(VARIANT)
    cfg = config_from_options(v)
    upstream = {k: x for k, x in meta["hyperparameters"].items() if not k.startswith("_")}
    assert cfg == config_from_options(options=upstream)
    assert (cfg.hop_length, cfg.frame_rate, cfg.latent_hidden_dim, cfg.n_values) == (320, 50.0, 50, 19)
    assert (v.n_codebooks, v.sample_rate) == (meta["n_codebooks"], meta["sample_rate"])
    assert v.bitrate_kbps == pytest.approx(cfg.bitrate_kbps, abs=0.005)
    assert v.bitrate_kbps == pytest.approx(meta["bitrate_kbps"])
    assert (v.taxonomy.vq, v.taxonomy.aux, v.taxonomy.decoder) == ("SQ", "none", "time") and v.native
    with pytest.raises(ValueError, match="hop_length"):
        config_from_options(options={**v.options, "hop_length": 640})
    with pytest.raises(ValueError, match="unknown"):
        config_from_options(options={"latent_dim": 50})
    with pytest.raises(ValueError, match="2 \\* stride"):
        SQCodecConfig(upsample_kernel_sizes=(9, 8, 8, 4))


def test_state_dict_keys_shapes_and_order_match_upstream():
    meta, _ = load_fixture(VARIANT)
    state = SQCodecModel(config_from_options(get_variant(VARIANT))).state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == [(k, tuple(s)) for k, s, _ in meta["state_dict"]]
    assert all(dt == "float32" for _, _, dt in meta["state_dict"])


@pytest.mark.parametrize("suffix", ["", "_odd"])
def test_fixture_codes_and_waveform(suffix, tmp_path_factory):
    """Codes exact and the waveform within 1e-4 x max|ref|, for 1 s and for 0.73 s (36.5 hops: upstream
    gives 37 frames and 11840 samples; resynthesize cuts them to the input's 11680)."""
    codec, _, ref = _fixture_codec(tmp_path_factory)
    assert isinstance(codec, SQCodecCodec) and codec.weights.weights_id.startswith("sha256:")
    x = torch.from_numpy(ref["input" + suffix])
    with torch.inference_mode():
        codes = codec.model.codes(x)
        out = codec.model.decode(codes)
    np.testing.assert_array_equal(codes.numpy(), ref["codes" + suffix])
    assert codes.shape[-1] == codec.model.cfg.frames(x.shape[-1])
    assert_close_to_reference(out, ref["output" + suffix])
    with torch.inference_mode():
        assert_close_to_reference(codec.model(x), ref["output" + suffix])
    n = x.shape[-1]
    assert_close_to_reference(codec.resynthesize(x, torch.tensor([n])), ref["output" + suffix][..., :n])
    levels = codec.encode_codes(x)
    assert len(levels) == 50 and all(c.shape == (1, codes.shape[-1]) for c in levels)
    assert torch.equal(torch.stack(levels, 1), codes) and int(codes.min()) == 0 and int(codes.max()) == 18


def test_encoder_blocks_share_one_prelu_left_at_the_last_value(tmp_path_factory):
    """Upstream's DownsampleLayer default-argument PReLU: one module for all encoder blocks, so loading
    leaves it at encoder.5's value; the fixture's codes depend on it."""
    codec, meta, ref = _fixture_codec(tmp_path_factory)
    state = _filled(meta)
    acts = [codec.model.encoder[i].down_conv.activation for i in range(2, 6)]
    assert all(a is acts[0] for a in acts)
    keys = [f"encoder.{i}.down_conv.activation.weight" for i in range(2, 6)]
    assert len({float(state[k]) for k in keys}) == 4  # the fixture's four values differ
    assert float(acts[0].weight.detach()) == pytest.approx(float(state[keys[-1]]))
    assert float(acts[0].weight.detach()) == pytest.approx(meta["fixture"]["checks"]["shared_prelu_value"])
    unshared = SQCodecModel(codec.model.cfg).eval()
    for i in range(2, 6):  # an implementation with four separate PReLUs gives other codes
        unshared.encoder[i].down_conv.activation = torch.nn.PReLU()
    unshared.load_state_dict(state)
    with torch.inference_mode():
        assert not torch.equal(unshared.codes(torch.from_numpy(ref["input"])), torch.from_numpy(ref["codes"]))


def test_resynthesize_equals_upstream_at_raw_lengths(tmp_path_factory):
    """Items at lengths that are not hop multiples, alone and in one padded batch with junk after them,
    equal the upstream path at the raw length (ceil frames, frames * 320 samples, cut to n)."""
    codec, _, ref = _fixture_codec(tmp_path_factory)
    lengths = [9 * 320 + 319, 5 * 320 + 1, 4001, 641]
    cfg = codec.model.cfg
    check_resynthesize_at_raw_lengths(codec, lambda x: codec.model(x), torch.from_numpy(ref["input"]), lengths,
                                      out_samples=lambda n: cfg.frames(n) * 320)


def test_batched_equals_one_by_one_including_tiny_items(tmp_path_factory):
    codec, _, ref = _fixture_codec(tmp_path_factory)
    full = torch.from_numpy(ref["input"])[0, 0]
    lengths = [1, 2, 319, 320, 3001]
    batch = torch.zeros(len(lengths), 1, max(lengths))
    for i, n in enumerate(lengths):
        batch[i, 0, :n] = full[500 * i: 500 * i + n]
    out = codec.resynthesize(batch, torch.tensor(lengths))
    for i, n in enumerate(lengths):
        alone = codec.resynthesize(batch[i: i + 1, :, :n], torch.tensor([n]))
        assert alone.abs().max() > 0
        assert_close_to_reference(out[i, :, :n], alone[0])
        assert torch.all(out[i, :, n:] == 0)
    with torch.inference_mode():  # one sample: run as if zero-padded to the pooling's 2 samples
        direct = codec.model(torch.nn.functional.pad(batch[:1, :, :1], (0, 1)))
    assert_close_to_reference(out[0, :, :1], direct[0, :, :1])


def test_padded_batch_mode_differs_only_by_the_look_ahead(tmp_path_factory):
    """Without the latent mask the decoder's look-ahead sees the next item's padding: the last frames move."""
    codec, _, ref = _fixture_codec(tmp_path_factory)
    x = torch.from_numpy(ref["input"]).repeat(2, 1, 1)
    lengths = torch.tensor([16000, 9000])
    exact = codec.resynthesize(x, lengths)
    codec.batch_mode = "padded"
    try:
        padded = codec.resynthesize(x, lengths)
    finally:
        codec.batch_mode = "exact"
    assert torch.allclose(padded[0], exact[0], atol=1e-5)
    assert torch.allclose(padded[1, :, :8000], exact[1, :, :8000], atol=1e-5)
    assert not torch.allclose(padded[1], exact[1], atol=1e-3)


def test_config_yaml_beside_the_checkpoint_builds_the_model(tmp_path):
    """Upstream builds the model from config.yaml: an official file of another width loads through it; one of
    another frame rate or latent size is refused naming the file; without a config.yaml the catalog's is used."""
    cat = config_from_options(get_variant(VARIANT))
    other = SQCodecConfig(init_channel=8, res_kernel_size=3, default_kernel_size=5, delay_kernel_size=3)
    model = build_model(other, ResolvedWeights(kind="random", seed=3))
    scalars = ("num_bands", "sample_rate", "causal", "num_samples", "latent_hidden_dim", "default_kernel_size",
               "delay_kernel_size", "init_channel", "res_kernel_size")
    lists = ("downsample_factors", "downsample_kernel_sizes", "upsample_factors", "upsample_kernel_sizes")
    gen = {f: getattr(other, f) for f in scalars} | {f: list(getattr(other, f)) for f in lists}
    _write_official(tmp_path, model.state_dict(), gen)
    ckpt = tmp_path / "16k_50dim_9" / "ckpt.pth"
    loaded = build_model(cat, ResolvedWeights(kind="files", files=(str(ckpt),)))
    assert loaded.cfg.init_channel == 8 and loaded.cfg.levels == 9
    x = 0.3 * torch.randn(1, 1, 3200, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))
    wrong = {"generator": {"config": gen | {"latent_hidden_dim": 32}}}
    (tmp_path / "16k_50dim_9" / "config.yaml").write_text(yaml.safe_dump(wrong))
    with pytest.raises(ValueError, match="config.yaml.*latent 32"):
        build_model(cat, ResolvedWeights(kind="files", files=(str(ckpt),)))
    (tmp_path / "16k_50dim_9" / "config.yaml").write_text("generator: {}\n")
    with pytest.raises(ValueError, match="config.yaml: not an SQ-Codec config"):
        build_model(cat, ResolvedWeights(kind="files", files=(str(ckpt),)))
    (tmp_path / "16k_50dim_9" / "config.yaml").unlink()
    with pytest.raises(ValueError, match="ckpt.pth: not a SQ-Codec checkpoint"):  # catalog widths: 64, not 8
        build_model(cat, ResolvedWeights(kind="files", files=(str(ckpt),)))


def test_strict_loading_names_the_file(tmp_path):
    meta, _ = load_fixture(VARIANT)
    state = _filled(meta)
    state["encoder.1.conv.weight_g"] = state.pop("encoder.1.conv.weight")  # a plain conv upstream
    path = tmp_path / "broken.pth"
    torch.save({"codec_model": state}, path)
    with pytest.raises(ValueError, match="broken.pth"):
        load_official_checkpoint(SQCodecModel(), str(path))
    torch.save({"optimizer": {}}, path)
    with pytest.raises(ValueError, match="codec_model"):
        load_official_checkpoint(SQCodecModel(), str(path))


def test_non_causal_config_runs_items_alone():
    """A non-causal configuration (symmetric padding, transposed-conv padding (k-s)/2) goes through grouped
    runs at the raw length; batched equals one-by-one, and frames() predicts the latent length."""
    from codec_wrappers.catalog import parse_variant

    cfg = SQCodecConfig(causal=False, **SMALL)
    model = build_model(cfg, ResolvedWeights(kind="random", seed=1))
    entry = dict(id="sq_small", family="sqcodec", codec="SQ", sample_rate=16000, bitrate_kbps=1, n_codebooks=6,
                 taxonomy={"vq": "SQ", "aux": "none", "decoder": "time"}, st_role="extra")
    codec = SQCodecCodec(parse_variant(entry), ResolvedWeights(kind="random", seed=1), model)
    g = torch.Generator().manual_seed(2)
    lengths = [37, 64, 101]
    x = 0.3 * torch.randn(3, 1, 101, generator=g)
    out = codec.resynthesize(x, torch.tensor(lengths))
    for i, n in enumerate(lengths):
        with torch.inference_mode():
            assert model.encode(x[i: i + 1, :, :n]).shape[-1] == cfg.frames(n)
        alone = codec.resynthesize(x[i: i + 1, :, :n], torch.tensor([n]))
        assert_close_to_reference(out[i, :, :n], alone[0])
        assert torch.all(out[i, :, n:] == 0)


def test_random_weights_deterministic_finite_and_input_dependent():
    cfg = SQCodecConfig(**SMALL)
    a = build_model(cfg, ResolvedWeights(kind="random", seed=5))
    b = build_model(cfg, ResolvedWeights(kind="random", seed=5))
    c = build_model(cfg, ResolvedWeights(kind="random", seed=6))
    g = torch.Generator().manual_seed(0)
    x1, x2 = 0.3 * torch.randn(2, 1, 1, 800, generator=g)
    with torch.inference_mode():
        y1, y1b, y1c, y2 = a(x1), b(x1), c(x1), a(x2)
        codes1, codes2 = a.codes(x1), a.codes(x2)
    assert y1.shape == (1, 1, 800) and torch.equal(y1, y1b)
    assert torch.isfinite(y1).all() and y1.abs().max() > 1e-3
    assert not torch.allclose(y1, y1c) and not torch.allclose(y1, y2)
    assert codes1.shape == (1, 6, 100) and not torch.equal(codes1, codes2)
    assert 0 <= int(codes1.min()) and int(codes1.max()) <= 6


def test_random_weights_through_registry():
    from codec_wrappers.registry import load_codec

    codec = load_codec(VARIANT, "random:0")
    x = 0.3 * torch.randn(2, 1, 4000, generator=torch.Generator().manual_seed(1))
    y = codec.resynthesize(x, torch.tensor([4000, 2222]))
    assert torch.isfinite(y).all() and y[0].abs().max() > 1e-3 and torch.all(y[1, :, 2222:] == 0)
    codes = codec.encode_codes(x)
    assert len(codes) == 50 and len({int(v) for c in codes for v in c.unique()}) > 3
