"""WavTokenizer native implementation: shared fixtures (75 and 40 tokens/s), Lightning .ckpt layout,
lengths, batching, random weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codec_wrappers.base import ResolvedWeights
from codec_wrappers.catalog import get_variant
from codec_wrappers.wavtokenizer import (
    WavTokenizerCodec,
    WavTokenizerConfig,
    WavTokenizerModel,
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

FILES = {"wavtokenizer_24k_75tps": "WavTokenizer_small_320_24k_4096.ckpt",
         "wavtokenizer_24k_40tps": "WavTokenizer_small_600_24k_4096.ckpt"}
_cache: dict[str, tuple] = {}


def _fixture_codec(variant: str, tmp_path_factory):
    """The codec loaded through the registry from a Lightning-layout .ckpt holding the fixture weights."""
    if variant not in _cache:
        from codec_wrappers.registry import load_codec

        meta, ref = load_fixture(variant)
        state = dict(filled_state_dict(meta))
        # training-only entries of the Lightning module, dropped by the loader as upstream does
        state["multiperioddisc.discriminators.0.convs.0.weight"] = torch.zeros(2, 1, 5, 1)
        state["melspec_loss.mel_spec.mel_scale.fb"] = torch.zeros(3, 4)
        folder = tmp_path_factory.mktemp(variant)
        path = folder / FILES[variant]
        torch.save({"state_dict": state, "epoch": 1, "global_step": 10, "pytorch-lightning_version": "1.8.6"}, path)
        codec = load_codec(variant, str(folder))
        path.unlink()  # 300+ MB; the model is loaded
        _cache[variant] = (codec, meta, ref)
    return _cache[variant]


def test_catalog_options_give_fixture_configs():
    assert config_from_options(get_variant("wavtokenizer_24k_75tps")) == WavTokenizerConfig()
    cfg40 = config_from_options(get_variant("wavtokenizer_24k_40tps"))
    assert cfg40 == WavTokenizerConfig(downsamples=(6, 5, 5, 4))
    assert (cfg40.hop_length, cfg40.istft_n_fft, cfg40.frame_rate, cfg40.decoder_ratios) == (600, 2400, 40.0, (8, 5, 4, 2))
    with pytest.raises(ValueError, match="hop_length"):
        config_from_options(options={"hop_length": 320, "downsamples": [6, 5, 5, 4]})


@pytest.mark.parametrize("variant", sorted(FILES))
def test_state_dict_keys_shapes_and_order_match_upstream(variant):
    meta, _ = load_fixture(variant)
    state = WavTokenizerModel(config_from_options(get_variant(variant))).state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == [(k, tuple(s)) for k, s, _ in meta["state_dict"]]


@pytest.mark.parametrize("variant", sorted(FILES))
def test_fixture_codes_and_waveform(variant, tmp_path_factory):
    codec, _, ref = _fixture_codec(variant, tmp_path_factory)
    assert isinstance(codec, WavTokenizerCodec) and codec.weights.weights_id.startswith("sha256:")
    x = torch.from_numpy(ref["input"])
    with torch.inference_mode():
        codes = codec.model.encode(x)
        out = codec.model.decode(codec.model.codes_to_features(codes))
    np.testing.assert_array_equal(codes.numpy(), ref["codes"])
    assert_close_to_reference(out[:, 0], ref["output"])
    y = codec.resynthesize(x, torch.tensor([x.shape[-1]]))
    assert_close_to_reference(y[:, 0], ref["output"])


def test_window_is_taken_from_the_checkpoint(tmp_path_factory):
    codec, meta, _ = _fixture_codec("wavtokenizer_24k_75tps", tmp_path_factory)
    expected = filled_state_dict(meta)["head.istft.window"]
    assert torch.equal(codec.model.head.istft.window, expected)
    assert not torch.allclose(expected, torch.hann_window(1280))


@pytest.mark.parametrize("variant", sorted(FILES))
def test_resynthesize_equals_upstream_at_raw_lengths(variant, tmp_path_factory):
    """Upstream feeds the raw length (reflect padding, the LSTM and attention see the real end) and returns
    ceil(n/hop)*hop samples; resynthesize cuts that to n, alone and inside a padded batch."""
    codec, meta, ref = _fixture_codec(variant, tmp_path_factory)
    hop = meta["hop_length"]
    lengths = [5003, 3701]  # a multiple of neither hop

    def upstream(x):
        return codec.model.decode(codec.model.codes_to_features(codec.model.encode(x)))

    check_resynthesize_at_raw_lengths(codec, upstream, torch.from_numpy(ref["input"]), lengths,
                                      out_samples=lambda n: -(-n // hop) * hop)


def test_strict_loading_names_the_file(tmp_path):
    meta, _ = load_fixture("wavtokenizer_24k_40tps")
    state = {k: v for k, v in filled_state_dict(meta).items() if not k.startswith("feature_extractor.encodec.decoder.")}
    path = tmp_path / "no_decoder.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(ValueError, match="no_decoder.ckpt"):
        load_official_checkpoint(WavTokenizerModel(WavTokenizerConfig(downsamples=(6, 5, 5, 4))), str(path))


def test_random_weights_deterministic_finite_and_input_dependent():
    cfg = WavTokenizerConfig(downsamples=(4, 4), decoder_ratios=(4, 4), codebook_size=64, dimension=32, n_filters=8,
                             backbone_dim=64, intermediate_dim=96, num_layers=2)  # small; same layout
    a = build_model(cfg, ResolvedWeights(kind="random", seed=5))
    b = build_model(cfg, ResolvedWeights(kind="random", seed=5))
    c = build_model(cfg, ResolvedWeights(kind="random", seed=6))
    assert torch.equal(a.head.istft.window, torch.hann_window(64))  # a real window when not loaded
    g = torch.Generator().manual_seed(0)
    x1, x2 = 0.3 * torch.randn(2, 1, 1, 1000, generator=g)
    with torch.inference_mode():
        y1, y1b, y1c, y2 = a(x1), b(x1), c(x1), a(x2)
        codes1, codes2 = a.encode(x1), a.encode(x2)
    assert y1.shape == (1, 1, 1008) and torch.equal(y1, y1b)
    assert torch.isfinite(y1).all() and y1.abs().max() > 1e-3
    assert not torch.allclose(y1, y1c) and not torch.allclose(y1, y2)
    assert not torch.equal(codes1, codes2)


def test_random_weights_through_registry():
    from codec_wrappers.registry import load_codec

    codec = load_codec("wavtokenizer_24k_40tps", "random:0")
    x = 0.3 * torch.randn(2, 1, 7000, generator=torch.Generator().manual_seed(1))
    y = codec.resynthesize(x, torch.tensor([7000, 4321]))
    assert torch.isfinite(y).all() and y[0].abs().max() > 1e-3 and torch.all(y[1, :, 4321:] == 0)
