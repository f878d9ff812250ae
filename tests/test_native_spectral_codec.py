"""Spectral Codec (NeMo mel codec) native implementation: NeMo v2.1.0 fixtures (22 and 44 kHz), the mel front
end against upstream's buffers and spectrogram, the FSQ index mapping, the .nemo checkpoint layouts, lengths that
are not a hop multiple, batching, random weights."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import torch

from codec_wrappers.base import ResolvedWeights
from codec_wrappers.catalog import get_variant
from codec_wrappers.spectral_codec import (
    FSQ,
    SpectralCodecCodec,
    SpectralCodecConfig,
    SpectralCodecModel,
    build_model,
    config_from_options,
    load_official_checkpoint,
    official_state_dict,
)
from native_fixtures import (
    assert_close_to_reference,
    check_resynthesize_at_raw_lengths,
    filled_state_dict,
    load_fixture,
)

VARIANTS = ("spectral_codec_22k", "spectral_codec_44k")
FRONT = ("audio_encoder.mel_processor.preprocessor.featurizer.window",
         "audio_encoder.mel_processor.preprocessor.featurizer.fb")
_cache: dict[str, tuple] = {}


def _fixture_state(meta: dict) -> dict:
    """The fixture's weights: fill_state_dict over the key list, with the FSQ's integer buffers (which
    fill_state_dict copies unchanged, so the json lists their values rather than a zero placeholder) set."""
    state = filled_state_dict(meta)
    ints = meta["integer_buffer_values"]
    for key in state:
        for name in ("num_levels", "dim_base_index"):
            if key.endswith("." + name):
                state[key] = torch.tensor(ints[f"vector_quantizer.fsqs.<g>.{name}"], dtype=torch.int32).view(ints["shape"])
    return state


def _nemo_tar(path, state: dict) -> None:
    """A .nemo archive as NeMo writes it: model_config.yaml + model_weights.ckpt (the whole AudioCodecModel
    state dict, discriminator and loss buffers included)."""
    full = {**state, "discriminator.discriminators.0.convs.0.weight": torch.zeros(2, 1, 3),
            "mel_loss_fn.mel_loss_fns.0.mel_fn.fb": torch.zeros(1, 5, 17)}
    buf = io.BytesIO()
    torch.save(full, buf)
    with tarfile.open(path, "w") as tar:
        for name, data in (("./model_config.yaml", b"target: AudioCodecModel\n"), ("./model_weights.ckpt", buf.getvalue())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _fixture_codec(variant: str, tmp_path_factory):
    if variant not in _cache:
        from codec_wrappers.registry import load_codec

        meta, ref = load_fixture(variant)
        folder = tmp_path_factory.mktemp(variant)
        path = folder / get_variant(variant).checkpoint["files"][0]
        _nemo_tar(path, _fixture_state(meta))
        codec = load_codec(variant, str(folder))
        path.unlink()
        _cache[variant] = (codec, meta, ref)
    return _cache[variant]


def _upstream_path(model: SpectralCodecModel):
    """The fixture-verified model path on an unpadded (1, 1, n) item: NeMo encode + decode, ceil(n/hop)*hop samples."""
    return lambda x: model(x[:, 0]).unsqueeze(1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_catalog_options_give_fixture_configs(variant):
    meta, _ = load_fixture(variant)
    hp = meta["hyperparameters"]
    cfg = config_from_options(get_variant(variant))
    assert cfg == SpectralCodecConfig(sample_rate=hp["sample_rate"], win_length=hp["win_length"],
                                      hop_length=hp["hop_length"], up_sample_rates=tuple(hp["up_sample_rates"]))
    assert cfg.fsq_levels == tuple(hp["vector_quantizer"]["num_levels_per_group"])
    assert (cfg.n_codebooks, cfg.codebook_size, round(cfg.frame_rate, 1)) == (8, 1000, 86.1)
    v = get_variant(variant)
    assert v.native and (v.taxonomy.vq, v.taxonomy.aux, v.taxonomy.decoder) == ("SQ", "none", "frequency")
    assert abs(v.bitrate_kbps - meta["bitrate_kbps"]) < 0.05 and v.n_codebooks == 8
    with pytest.raises(ValueError, match="multiply"):
        SpectralCodecConfig(up_sample_rates=(8, 8, 2))


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_keys_shapes_dtypes_and_order_match_upstream(variant):
    meta, _ = load_fixture(variant)
    state = SpectralCodecModel(config_from_options(get_variant(variant))).state_dict()
    own = [(k, list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in state.items()]
    assert own == [tuple(e) for e in meta["state_dict"]]
    ints = meta["integer_buffer_values"]
    for g in range(8):
        for name in ("num_levels", "dim_base_index"):
            assert state[f"vector_quantizer.fsqs.{g}.{name}"].view(-1).tolist() == ints[f"vector_quantizer.fsqs.<g>.{name}"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_mel_front_end_matches_upstream(variant):
    """Our window and filterbank equal the ones NeMo constructs (torch hann, librosa mel with norm=None), and the
    log-mel of the test signal equals upstream's MelSpectrogramProcessor output."""
    _, ref = load_fixture(variant)
    model = SpectralCodecModel(config_from_options(get_variant(variant))).eval()
    state = model.state_dict()
    np.testing.assert_array_equal(state[FRONT[0]].numpy(), ref["buffer_window"])
    np.testing.assert_allclose(state[FRONT[1]].numpy(), ref["buffer_fb"], rtol=0, atol=1e-7)
    with torch.inference_mode():
        mel = model.audio_encoder.mel_processor(torch.from_numpy(ref["input"])[:, 0])
    assert mel.shape == ref["mel_true_frontend"].shape
    np.testing.assert_allclose(mel.numpy(), ref["mel_true_frontend"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixture_codes_and_waveform(variant, tmp_path_factory):
    codec, meta, ref = _fixture_codec(variant, tmp_path_factory)
    assert isinstance(codec, SpectralCodecCodec) and codec.weights.weights_id.startswith("sha256:")
    x = torch.from_numpy(ref["input"])
    n = x.shape[-1]
    with torch.inference_mode():
        codes = codec.model.encode(x[:, 0])
        out = codec.model.decode(codes)
    assert codes.dtype == torch.int32
    np.testing.assert_array_equal(codes.numpy(), ref["codes"])
    assert_close_to_reference(out, ref["output"])
    assert_close_to_reference(codec.resynthesize(x, torch.tensor([n]))[0], ref["output"][:, :n])
    np.testing.assert_array_equal(torch.stack(codec.encode_codes(x), 1).numpy(), ref["codes"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixture_at_a_length_that_is_not_a_hop_multiple(variant, tmp_path_factory):
    """Upstream zero-pads to whole hops and returns ceil(n/hop)*hop samples; resynthesize cuts them to n."""
    codec, meta, ref = _fixture_codec(variant, tmp_path_factory)
    n = meta["fixture"]["n_odd"]
    assert n % codec.model.cfg.hop_length
    x = torch.from_numpy(ref["input"][..., :n].copy())
    with torch.inference_mode():
        codes = codec.model.encode(x[:, 0])
        out = codec.model.decode(codes)
    np.testing.assert_array_equal(codes.numpy(), ref["codes_odd"])
    assert_close_to_reference(out, ref["output_odd"])
    assert ref["output_odd"].shape[-1] == meta["fixture"]["odd_output_samples"]
    assert_close_to_reference(codec.resynthesize(x, torch.tensor([n]))[0], ref["output_odd"][:, :n])


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixture_with_the_computed_front_end(variant, tmp_path_factory):
    """The fixture's weights with our own window and filterbank (not the checkpoint's noise) reproduce upstream's
    run with its constructed front end: the real mel path end to end."""
    codec, meta, ref = _fixture_codec(variant, tmp_path_factory)
    model = SpectralCodecModel(codec.model.cfg).eval()
    own = model.state_dict()
    state = _fixture_state(meta)
    state.update({k: own[k] for k in FRONT})
    model.load_state_dict(state, strict=True)
    with torch.inference_mode():
        codes = model.encode(torch.from_numpy(ref["input"])[:, 0])
        out = model.decode(codes)
    np.testing.assert_array_equal(codes.numpy(), ref["codes_true_frontend"])
    assert len(np.unique(ref["codes_true_frontend"])) > 20  # many distinct codes: the encoder path is exercised
    assert_close_to_reference(out, ref["output_true_frontend"])


def test_fsq_index_mapping_round_trips_every_code():
    """Every index 0..999 decodes to a grid point that encodes back to the same index; the grid is [-1, 1] per
    dimension with 8, 5, 5, 5 levels (mixed radix, first dimension fastest)."""
    fsq = FSQ((8, 5, 5, 5))
    idx = torch.arange(1000, dtype=torch.int32).view(1, 1000)
    grid = fsq.decode(idx)
    assert grid.shape == (1, 4, 1000)
    assert [sorted(set(grid[0, d].tolist())) for d in range(4)][1] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert grid[0, 0].min() == -1.0 and grid[0, 0].max() == 0.75  # even level count: offset grid
    assert torch.equal(grid[0, :, 1], torch.tensor([-0.75, -1.0, -1.0, -1.0]))  # index 1 = first digit 1
    # inputs that FSQ's tanh bounding maps just inside each grid point (0.98 x the digit: rounds back to it)
    levels = fsq.num_levels.double()
    scale = (levels - 1) / 2 * (1 - fsq.eps)
    offset = torch.where(levels % 2 == 0, 0.5, 0.0).double()
    target = 0.98 * grid.double() * (levels // 2)
    x = torch.atanh((target + offset) / scale) - (offset / scale).tan()
    assert torch.equal(fsq.encode(x.float()), idx)


def test_resynthesize_equals_upstream_at_raw_lengths_alone_and_batched(tmp_path_factory):
    codec, _, ref = _fixture_codec("spectral_codec_22k", tmp_path_factory)
    hop = codec.model.cfg.hop_length
    lengths = [9 * hop + 1, 6 * hop + hop - 1, 5 * hop]
    check_resynthesize_at_raw_lengths(codec, _upstream_path(codec.model), torch.from_numpy(ref["input"]), lengths,
                                      out_samples=lambda n: -(-n // hop) * hop)


def test_batched_equals_one_by_one(tmp_path_factory):
    """Two items share a padded length (one call of batch 2), two run alone; each equals its own run (float
    rounding of a batch-2 conv aside)."""
    codec, _, ref = _fixture_codec("spectral_codec_22k", tmp_path_factory)
    full = torch.from_numpy(ref["input"])[0, 0]
    lengths = [2300, 1500, 2300, 1100]
    batch = torch.zeros(len(lengths), 1, max(lengths))
    for i, n in enumerate(lengths):
        batch[i, 0, :n] = full[500 * i: 500 * i + n]
    out = codec.resynthesize(batch, torch.tensor(lengths))
    for i, n in enumerate(lengths):
        assert_close_to_reference(out[i, :, :n], codec.resynthesize(batch[i: i + 1, :, :n], torch.tensor([n]))[0], rel=1e-5)
        assert torch.all(out[i, :, n:] == 0)


def test_items_shorter_than_four_hops_are_padded_to_four_hops(tmp_path_factory):
    """NeMo fails below 4 frames (reflect padding of the decoder's k7 input conv); such items run zero-padded."""
    codec, _, ref = _fixture_codec("spectral_codec_22k", tmp_path_factory)
    hop = codec.model.cfg.hop_length
    with pytest.raises(RuntimeError):
        codec.model(torch.from_numpy(ref["input"])[:, 0, : 3 * hop])
    full = torch.from_numpy(ref["input"])[0, 0]
    lengths = [100, 3 * hop + 5]
    batch = torch.zeros(2, 1, 3 * hop + 5)
    for i, n in enumerate(lengths):
        batch[i, 0, :n] = full[700 * i: 700 * i + n]
    out = codec.resynthesize(batch, torch.tensor(lengths))
    for i, n in enumerate(lengths):
        with torch.inference_mode():
            direct = codec.model(torch.nn.functional.pad(batch[i, :, :n], (0, 4 * hop - n)))
        assert direct.abs().max() > 0
        assert_close_to_reference(out[i, :, :n], direct[:, :n])
        assert torch.all(out[i, :, n:] == 0)


def test_checkpoint_layouts_and_errors(tmp_path):
    """The extracted model_weights.ckpt, a Lightning-style {'state_dict'} and newer NeMo's parametrization keys all
    load strictly; a missing key or a .nemo without weights is an error naming the file."""
    cfg = SpectralCodecConfig(sample_rate=8000, win_length=64, hop_length=16, up_sample_rates=(4, 4), base_channels=32,
                              hidden_channels=16, filters=16, encoder_layers=1)
    ref = SpectralCodecModel(cfg)
    state = ref.state_dict()
    new_style = {}
    for k, v in state.items():
        for old, new in ((".weight_g", ".parametrizations.weight.original0"), (".weight_v", ".parametrizations.weight.original1")):
            k = k.replace(old, new)
        new_style[k] = v
    assert official_state_dict(new_style).keys() == state.keys()
    torch.save({"state_dict": {**new_style, "discriminator.x": torch.zeros(1)}}, tmp_path / "model_weights.ckpt")
    model = load_official_checkpoint(SpectralCodecModel(cfg), str(tmp_path / "model_weights.ckpt"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    broken = dict(state)
    broken.pop("audio_decoder.post_conv.conv.bias")
    _nemo_tar(tmp_path / "broken.nemo", broken)
    with pytest.raises(ValueError, match="broken.nemo"):
        load_official_checkpoint(SpectralCodecModel(cfg), str(tmp_path / "broken.nemo"))
    with tarfile.open(tmp_path / "empty.nemo", "w") as tar:
        info = tarfile.TarInfo("model_config.yaml")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match=r"empty\.nemo.*model_weights\.ckpt"):
        load_official_checkpoint(SpectralCodecModel(cfg), str(tmp_path / "empty.nemo"))


def test_random_weights_deterministic_finite_and_input_dependent():
    cfg = SpectralCodecConfig(sample_rate=8000, win_length=64, hop_length=16, up_sample_rates=(4, 4), base_channels=64,
                              hidden_channels=16, filters=16, encoder_layers=2)
    a = build_model(cfg, ResolvedWeights(kind="random", seed=5))
    b = build_model(cfg, ResolvedWeights(kind="random", seed=5))
    c = build_model(cfg, ResolvedWeights(kind="random", seed=6))
    assert torch.equal(a.state_dict()[FRONT[1]], SpectralCodecModel(cfg).state_dict()[FRONT[1]])  # front end kept
    g = torch.Generator().manual_seed(0)
    x1, x2 = 0.3 * torch.randn(2, 1, 800, generator=g)
    with torch.inference_mode():
        y1, y1b, y1c, y2 = a(x1), b(x1), c(x1), a(x2)
        codes1, codes2 = a.encode(x1), a.encode(x2)
    assert y1.shape == (1, 800) and torch.equal(y1, y1b)
    assert torch.isfinite(y1).all() and y1.abs().max() > 1e-3
    assert not torch.allclose(y1, y1c) and not torch.allclose(y1, y2)
    assert codes1.shape == (1, 8, 50) and not torch.equal(codes1, codes2)
    assert int(codes1.min()) >= 0 and int(codes1.max()) < 1000


def test_random_weights_through_registry():
    from codec_wrappers.registry import load_codec

    codec = load_codec("spectral_codec_22k", "random:0")
    x = 0.3 * torch.randn(2, 1, 3000, generator=torch.Generator().manual_seed(1))
    y = codec.resynthesize(x, torch.tensor([3000, 2222]))
    assert torch.isfinite(y).all() and y[0].abs().max() > 1e-3 and torch.all(y[1, :, 2222:] == 0)
    codes = codec.encode_codes(x[:1, :, :2816])
    assert len(codes) == 8 and all(c.shape == (1, 11) for c in codes)
