"""FunCodec native implementation: shared reference fixtures, lengths, batching, checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from codec_wrappers.base import ResolvedWeights
from codec_wrappers.catalog import get_variant
from codec_wrappers.funcodec import (
    FREQ_DS320,
    FunCodecCodec,
    FunCodecConfig,
    FunCodecModel,
    config_from_options,
    config_from_yaml,
    load_official_state_dict,
)
from native_fixtures import (
    assert_close_to_reference,
    check_resynthesize_at_raw_lengths,
    expected_shapes,
    filled_state_dict,
    load_fixture,
)

VARIANTS = ["funcodec_16k_ds320_time", "funcodec_16k_ds320_freq"]


def _reference(variant: str):
    """(json, npz arrays, filled upstream-layout state dict with every listed key)."""
    meta, ref = load_fixture(variant)
    return meta, ref, filled_state_dict(meta)


def _fixture_config(variant: str) -> FunCodecConfig:
    return FunCodecConfig(**FREQ_DS320) if variant.endswith("freq") else FunCodecConfig()


def _tiny(domain: str = "time") -> FunCodecConfig:
    base = dict(FREQ_DS320) if domain == "freq" else {"ratios": (4, 2)}
    return FunCodecConfig(**{**base, "n_filters": 4, "dimension": 8, "n_codebooks": 4, "codebook_size": 16,
                             "lstm_layers": 1, "bit_width": None})


def _random_model(cfg: FunCodecConfig, seed: int = 0) -> FunCodecModel:
    from codec_wrappers.weights import seeded_state_dict

    model = FunCodecModel(cfg).eval()
    model.load_state_dict(seeded_state_dict(model, seed))
    return model


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixture_keys_codes_and_waveform(variant):
    meta, ref, filled = _reference(variant)
    model = FunCodecModel(_fixture_config(variant)).eval()
    expected = {k: s for k, s in expected_shapes(meta).items() if not k.startswith(("discriminator.", "mel_spec_transforms."))}
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    load_official_state_dict(model, filled, "filled")  # drops the training-only keys, strict
    x = torch.from_numpy(ref["input"])
    with torch.inference_mode():
        for n_q, codes_key, out_key in ((32, "codes", "output"), (8, "codes_q8", "output_q8")):
            out = model(x, n_q)
            assert out["codes"].dtype == torch.int64
            np.testing.assert_array_equal(out["codes"].numpy(), ref[codes_key][0])
            assert_close_to_reference(out["output"], ref[out_key])


@pytest.mark.parametrize("variant", VARIANTS)
def test_resynthesize_equals_upstream_at_raw_lengths(variant):
    """Upstream runs the raw length (RMS, reflect padding and GroupNorm over the real item); resynthesize cuts
    its output to n (time: ceil(n/320)*320 samples; freq: the ISTFT's (2 ceil(F/2) - 1) * 160 for
    F = 1 + n // 160 STFT frames, zero-filled), alone and inside a padded batch."""
    meta, ref, filled = _reference(variant)
    model = FunCodecModel(_fixture_config(variant)).eval()
    load_official_state_dict(model, filled, "filled")
    codec = FunCodecCodec(get_variant(variant), ResolvedWeights(kind="random", seed=0, source="fixture"), model)

    def upstream(x):
        latent, scale = model.encode(x)
        _, quantized = model.quantizer(latent, model.config.n_quantizers)
        return model.decode(quantized, scale)

    def out_samples(n):
        if variant.endswith("freq"):
            return (2 * -(-(1 + n // 160) // 2) - 1) * 160
        return -(-n // 320) * 320

    check_resynthesize_at_raw_lengths(codec, upstream, torch.from_numpy(ref["input"]), [4001, 2897, 4800],
                                      out_samples=out_samples)
    if variant.endswith("time"):  # one masked forward honours every item's raw length too
        codec.batch_mode = "masked"
        check_resynthesize_at_raw_lengths(codec, upstream, torch.from_numpy(ref["input"]), [4001, 2897, 4800])


def test_bit_width_selects_quantizers_like_upstream():
    cfg = FunCodecConfig()
    assert cfg.bits_per_quantizer == 500.0
    for bw, n in ((16000, 32), (8000, 16), (4000, 8), (999, 1), (100, 1), (64000, 32), (None, 32)):
        assert FunCodecConfig(bit_width=bw).n_quantizers == n
    ds640 = config_from_options(get_variant("funcodec_16k_ds640_3kbps").options)
    assert (ds640.hop_length, ds640.n_quantizers) == (640, 12)
    freq = config_from_options(get_variant("funcodec_16k_ds320_freq").options)
    assert (freq.domain, freq.hop_length, freq.n_quantizers) == ("freq", 320, 32)
    with pytest.raises(ValueError, match="n_quantizers"):
        config_from_options({"ratios": [8, 5, 4, 2], "bit_width": 3000, "n_quantizers": 12})


@pytest.mark.parametrize("domain", ["time", "freq"])
def test_lengths_batching_determinism(domain):
    cfg = _tiny(domain)
    variant = get_variant("funcodec_16k_ds320_time" if domain == "time" else "funcodec_16k_ds320_freq")
    weights = ResolvedWeights(kind="random", seed=0, source="random")
    codec = FunCodecCodec(variant, weights, _random_model(cfg))
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([1001, 777, 1001, 485])  # 485: FreqCodec ISTFT gives 480 samples (tail zeros)
    audio = torch.zeros(4, 1, 1001)
    for i, n in enumerate(lengths.tolist()):
        audio[i, 0, :n] = 0.3 * torch.randn(n, generator=g)
    audio[1, 0, 777:] = 0.5  # garbage past an item's length must not matter
    out = codec.resynthesize(audio, lengths)
    assert out.shape == audio.shape and torch.isfinite(out).all()
    for i, n in enumerate(lengths.tolist()):
        one = codec.resynthesize(audio[i : i + 1, :, :n], lengths[i : i + 1])
        assert one.shape[-1] == n  # output length == input length, not a multiple of the hop
        torch.testing.assert_close(out[i, :, :n], one[0], rtol=0, atol=1e-5)
        assert out[i, :, n:].abs().sum() == 0
        assert one.abs().max() > 0
    torch.testing.assert_close(codec.resynthesize(audio, lengths), out, rtol=0, atol=0)
    # input-dependent and scale-following (RMS normalisation, output times the RMS)
    assert not torch.allclose(out[0], out[2])
    louder = codec.resynthesize(audio[:1] * 4, lengths[:1])
    torch.testing.assert_close(louder, 4 * out[:1], rtol=1e-4, atol=1e-5)


def test_random_weights_through_registry_are_seeded_and_finite():
    from codec_wrappers.registry import load_codec as registry_load

    codec = registry_load("funcodec_16k_ds640_3kbps", "random:5")
    assert codec.model.config.n_quantizers == 12 and codec.hop_length == 640
    x = 0.1 * torch.randn(1, 1, 2000, generator=torch.Generator().manual_seed(0))
    a = codec.resynthesize(x, torch.tensor([2000]))
    b = registry_load("funcodec_16k_ds640_3kbps", "random:5").resynthesize(x, torch.tensor([2000]))
    assert torch.equal(a, b) and torch.isfinite(a).all() and a.abs().max() > 1e-4
    with torch.inference_mode():
        codes = codec.model(x)["codes"]
    assert codes.shape == (12, 1, 4) and len(set(codes.flatten().tolist())) > 1


def _yaml_for(meta) -> dict:
    hp = meta["hyperparameters"]
    return {"model": hp["model"], "encoder": hp["encoder"], "decoder": hp["decoder"],
            "encoder_conf": hp["encoder_resolved_kwargs"], "decoder_conf": hp["decoder_resolved_kwargs"],
            "quantizer_conf": hp["quantizer_conf_from_yaml"], "model_conf": hp["model_resolved_kwargs"]}


def test_official_layout_checkpoint_loads_strictly(tmp_path):
    """A model.pth in upstream's flat layout (discriminator included) + config.yaml, via the registry."""
    from codec_wrappers.registry import load_codec as registry_load

    variant = "funcodec_16k_ds320_time"
    meta, ref, filled = _reference(variant)
    torch.save(filled, tmp_path / "model.pth")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_yaml_for(meta)))
    assert config_from_yaml(_yaml_for(meta)) == FunCodecConfig()
    codec = registry_load(variant, str(tmp_path))
    x = torch.from_numpy(ref["input"])
    out = codec.resynthesize(x, torch.tensor([x.shape[-1]]))
    assert np.abs(out.numpy() - ref["output"]).max() <= 1e-4 * np.abs(ref["output"]).max()
    assert codec.weights.weights_id.startswith("sha256:")
    # a checkpoint of another shape fails loudly, naming the file
    bad = dict(filled)
    bad["quantizer.rq.model.embed"] = bad["quantizer.rq.model.embed"][:16]
    torch.save(bad, tmp_path / "model.pth")
    with pytest.raises(ValueError, match="model.pth"):
        registry_load(variant, str(tmp_path))


def test_freq_config_yaml_group_ratios_change_shapes():
    conf = {"model": "freq_codec", "encoder": "encodec_seanet_encoder_2d",
            "encoder_conf": {"ratios": [[4, 1], [4, 1], [4, 2], [4, 1]], "n_filters": 8, "conv_group_ratio": 2,
                             "norm": "time_group_norm", "dilation_base": 1, "seq_layer_num": 1},
            "decoder_conf": {"tr_conv_group_ratio": 2, "conv_group_ratio": 1},
            "quantizer_conf": {"num_quantizers": 4, "codebook_size": 32}, "model_conf": {"odim": 16}}
    cfg = config_from_yaml(conf, bit_width=None)
    assert (cfg.domain, cfg.conv_group_ratio, cfg.decoder_conv_group_ratio, cfg.tr_conv_group_ratio) == ("freq", 2, 1, 2)
    model = _random_model(cfg)
    sd = model.state_dict()
    assert sd["encoder.model.3.conv.conv.weight"].shape[1] == 8 // (8 // 2 // 2)  # grouped
    assert sd["decoder.model.5.block.1.conv.conv.weight"].shape[1] == 64 // (32 // 2 // 1)  # decoder's own ratio
    conf["encoder_conf"]["seq_model"] = "transformer"
    with pytest.raises(ValueError, match="LSTM"):
        config_from_yaml(conf)
    x = 0.1 * torch.randn(1, 1, 1280, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        y = model(x)["output"]
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_padded_batch_mode_runs_one_forward():
    variant = get_variant("funcodec_16k_ds320_time")
    codec = FunCodecCodec(variant, ResolvedWeights(kind="random", seed=0, source="random"), _random_model(_tiny()))
    codec.batch_mode = "padded"
    audio = 0.2 * torch.randn(2, 1, 900, generator=torch.Generator().manual_seed(2))
    lengths = torch.tensor([900, 610])
    calls = []
    handle = codec.model.register_forward_hook(lambda m, a, o: calls.append(a[0].shape))
    out = codec.resynthesize(audio, lengths)
    handle.remove()
    assert calls == [torch.Size([2, 1, 904])]  # one call, padded to a multiple of the hop (8)
    assert out.shape == audio.shape and torch.isfinite(out).all() and out[1, :, 610:].abs().sum() == 0
    codec.batch_mode = "fast"
    with pytest.raises(ValueError, match="batch_mode"):
        codec.resynthesize(audio, lengths)


def test_freq_clips_shorter_than_the_stft_window():
    variant = get_variant("funcodec_16k_ds320_freq")
    codec = FunCodecCodec(variant, ResolvedWeights(kind="random", seed=0, source="random"), _random_model(_tiny("freq")))
    audio = 0.2 * torch.randn(3, 1, 300, generator=torch.Generator().manual_seed(4))
    lengths = torch.tensor([300, 100, 1])
    out = codec.resynthesize(audio, lengths)
    assert out.shape == audio.shape and torch.isfinite(out).all()
    assert out[1, :, :100].abs().max() > 0 and out[1, :, 100:].abs().sum() == 0


def test_masked_batch_mode_equals_exact():
    """One forward for the whole batch with per-item RMS, reflect padding and GroupNorm statistics."""
    variant = get_variant("funcodec_16k_ds320_time")
    weights = ResolvedWeights(kind="random", seed=0, source="random")
    model = _random_model(_tiny())
    exact, masked = FunCodecCodec(variant, weights, model), FunCodecCodec(variant, weights, model)
    masked.batch_mode = "masked"
    g = torch.Generator().manual_seed(6)
    lengths = torch.tensor([1001, 777, 485, 640])
    audio = torch.zeros(4, 1, 1001)
    for i, n in enumerate(lengths.tolist()):
        audio[i, 0, :n] = 0.3 * torch.randn(n, generator=g)
    audio[2, 0, 485:] = 0.4  # garbage past the item
    calls = []
    handle = model.encoder.register_forward_hook(lambda m, a, o: calls.append(1))
    a, b = exact.resynthesize(audio, lengths), masked.resynthesize(audio, lengths)
    handle.remove()
    assert len(calls) == 4  # exact ran each length alone; masked used forward_masked (no encoder __call__)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-5 * float(a.abs().max()))
    with torch.inference_mode():
        batch = model.forward_masked(audio, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = model(audio[i : i + 1, :, :n])
            assert torch.equal(batch["codes"][:, i, : int(batch["frames"][i])], alone["codes"][:, 0])
    # an item too short to reflect-pad at the deepest layer: the batch falls back to exact
    short = torch.tensor([1001, 5])
    torch.testing.assert_close(masked.resynthesize(audio[:2], short), exact.resynthesize(audio[:2], short), rtol=0, atol=0)


def test_masked_path_reproduces_the_fixture():
    _, ref, filled = _reference("funcodec_16k_ds320_time")
    model = FunCodecModel(FunCodecConfig()).eval()
    load_official_state_dict(model, filled, "filled")
    x = torch.from_numpy(ref["input"])
    with torch.inference_mode():
        out = model.forward_masked(x, torch.tensor([x.shape[-1]]))
    np.testing.assert_array_equal(out["codes"].numpy(), ref["codes"][0])
    assert np.abs(out["output"].numpy() - ref["output"]).max() <= 1e-4 * np.abs(ref["output"]).max()
