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
from native_fixtures import (
    assert_close_to_reference,
    check_resynthesize_at_raw_lengths,
    filled_state_dict,
    load_fixture,
)

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


def test_state_dict_keys_shapes_and_order_match_upstream():
    meta, _ = load_fixture(VARIANT)
    state = SoundStreamModel().state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == [(k, tuple(s)) for k, s, _ in meta["state_dict"]]


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


def test_resynthesize_equals_upstream_at_raw_lengths(fixture_codec):
    """Upstream runs the raw length (reflect padding and the LSTM see the real end): ceil(n/320)*320
    samples, cut to n here, alone and inside a padded batch."""
    codec, _, ref = fixture_codec
    check_resynthesize_at_raw_lengths(codec, lambda x: codec.model.decode(codec.model.encode(x)),
                                      torch.from_numpy(ref["input"]), [4001, 2897, 4800],
                                      out_samples=lambda n: -(-n // 320) * 320)


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
