"""SoundStream (AcademiCodec) native implementation: shared fixture, checkpoint layouts, lengths, batching."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codec_wrappers.base import ResolvedWeights
from codec_wrappers.catalog import get_variant
from codec_wrappers.soundstream import (
    SoundStreamCodec,
    SoundStreamConfig,
    SoundStreamModel,
    build_model,
    config_from_options,
    load_official_checkpoint,
)
from native_fixtures import assert_close_to_reference, filled_state_dict, load_fixture, needs_fixtures

VARIANT = "soundstream_16k_4kbps"


@pytest.fixture(scope="module")
def fixture_codec(tmp_path_factory):
    """The codec loaded through the registry from a DDP training checkpoint holding the fixture weights."""
    from codec_wrappers.registry import load_codec

    meta, ref = load_fixture(VARIANT)
    folder = tmp_path_factory.mktemp("soundstream")
    state = {f"module.{k}": v for k, v in filled_state_dict(meta).items()}  # main3_ddp.py layout
    torch.save({"soundstream": state, "epoch": 3}, folder / "soundstream_16k_4kbps.pth")
    codec = load_codec(VARIANT, str(folder))
    return codec, meta, ref


def test_catalog_options_give_fixture_config():
    cfg = config_from_options(get_variant(VARIANT))
    assert cfg == SoundStreamConfig()
    assert (cfg.hop_length, cfg.frame_rate, cfg.n_q, cfg.n_q_at(4.0), cfg.n_q_at(1.0)) == (320, 50, 8, 8, 2)
    with pytest.raises(ValueError, match="hop_length"):
        config_from_options(options={"hop_length": 240, "ratios": [8, 5, 4, 2]})


@needs_fixtures
def test_state_dict_keys_shapes_and_order_match_upstream():
    meta, _ = load_fixture(VARIANT)
    state = SoundStreamModel().state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == [(k, tuple(s)) for k, s, _ in meta["state_dict"]]


@needs_fixtures
def test_fixture_codes_and_waveform(fixture_codec):
    codec, _, ref = fixture_codec
    assert isinstance(codec, SoundStreamCodec) and codec.weights.weights_id.startswith("sha256:")
    x = torch.from_numpy(ref["input"])
    with torch.inference_mode():
        codes = codec.model.encode(x)
        out = codec.model.decode(codes)
    np.testing.assert_array_equal(codes.numpy(), ref["codes"])
    assert_close_to_reference(out, ref["output"])
    y = codec.resynthesize(x, torch.tensor([x.shape[-1]]))
    assert_close_to_reference(y, ref["output"])


@needs_fixtures
def test_unaligned_lengths_batched_equals_one_by_one(fixture_codec):
    codec, _, ref = fixture_codec
    full = torch.from_numpy(ref["input"])[0, 0]
    lengths = [4001, 2897, 4800]  # none a multiple of the 320-sample hop except the last
    batch = torch.zeros(3, 1, max(lengths))
    for i, n in enumerate(lengths):
        batch[i, 0, :n] = full[1000 * i: 1000 * i + n]
    batch[0, 0, 4001:] = 0.7  # junk in the padding must not matter
    out = codec.resynthesize(batch, torch.tensor(lengths))
    assert out.shape == batch.shape
    for i, n in enumerate(lengths):
        alone = codec.resynthesize(batch[i: i + 1, :, :n], torch.tensor([n]))
        assert alone.shape == (1, 1, n)
        torch.testing.assert_close(out[i, :, :n], alone[0], rtol=0, atol=1e-5)
        assert torch.all(out[i, :, n:] == 0)
        with torch.inference_mode():  # upstream runs the raw length: ceil(n/320)*320 samples, cut here
            direct = codec.model(batch[i: i + 1, :, :n])
        assert direct.shape[-1] == -(-n // 320) * 320
        torch.testing.assert_close(alone[0, :, :n], direct[0, :, :n], rtol=0, atol=1e-5)
    again = codec.resynthesize(batch, torch.tensor(lengths))
    assert torch.equal(out, again)


@needs_fixtures
def test_strict_loading_names_the_file(tmp_path):
    meta, _ = load_fixture(VARIANT)
    state = filled_state_dict(meta)
    state.pop("decoder.model.15.conv.conv.bias")
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="broken.pth"):
        load_official_checkpoint(SoundStreamModel(), str(path))


def test_random_weights_deterministic_finite_and_input_dependent():
    cfg = SoundStreamConfig(n_filters=8, D=32, bins=64)  # small; same layout
    a = build_model(cfg, ResolvedWeights(kind="random", seed=5))
    b = build_model(cfg, ResolvedWeights(kind="random", seed=5))
    c = build_model(cfg, ResolvedWeights(kind="random", seed=6))
    g = torch.Generator().manual_seed(0)
    x1, x2 = 0.3 * torch.randn(2, 1, 1, 3000, generator=g)
    with torch.inference_mode():
        y1, y1b, y1c, y2 = a(x1), b(x1), c(x1), a(x2)
    assert torch.equal(y1, y1b)
    assert torch.isfinite(y1).all() and y1.abs().max() > 1e-3
    assert not torch.allclose(y1, y1c) and not torch.allclose(y1, y2)
    with torch.inference_mode():
        codes1, codes2 = a.encode(x1), a.encode(x2)
    assert codes1.shape == (cfg.n_q, 1, 10) and not torch.equal(codes1, codes2)


def test_random_weights_through_registry():
    from codec_wrappers.registry import load_codec

    codec = load_codec(VARIANT, "random:0")
    x = 0.3 * torch.randn(2, 1, 8000, generator=torch.Generator().manual_seed(1))
    y = codec.resynthesize(x, torch.tensor([8000, 5555]))
    assert torch.isfinite(y).all() and y[0].abs().max() > 1e-3 and torch.all(y[1, :, 5555:] == 0)
