"""AudioDec native implementation: shared reference fixture, official .pkl layout, lengths, batching."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from native_fixtures import (
    assert_close_to_reference,
    check_resynthesize_at_raw_lengths,
    expected_shapes,
    filled_state_dict,
    load_fixture,
)

from codec_wrappers.audiodec import (
    AudioDecCodec,
    AudioDecConfig,
    AudioDecModel,
    generator_state_dict,
    load_official_state_dicts,
)
from codec_wrappers.base import ResolvedWeights
from codec_wrappers.catalog import get_variant

VARIANT = "audiodec_24k_320d"
ENC = "exp/autoencoder/symAD_libritts_24000_hop300/checkpoint-500000steps.pkl"
VOC = "exp/vocoder/AudioDec_v1_symAD_libritts_24000_hop300_clean/checkpoint-500000steps.pkl"


def _filled(meta):
    return {part: filled_state_dict(meta, part) for part in ("encoder", "decoder")}


def _tiny() -> AudioDecConfig:
    return AudioDecConfig(encode_channels=4, code_dim=8, codebook_size=16, n_codebooks=3, voc_channels=32,
                          voc_resblock_kernel=3, warmup_samples=1000)


def _random(cfg: AudioDecConfig, seed: int = 0) -> AudioDecModel:
    from codec_wrappers.weights import seeded_state_dict

    model = AudioDecModel(cfg).eval()
    state = seeded_state_dict(model, seed)
    g = torch.Generator().manual_seed(seed)
    for k in state:  # non-zero pad buffers, as in the fixture, so the warm-up state matters
        if k.endswith("pad_buffer"):
            state[k] = 0.1 * torch.randn(state[k].shape, generator=g)
    model.load_state_dict(state)
    return model


@pytest.fixture(scope="module")
def fixture_codec(tmp_path_factory):
    """(json, npz, codec loaded through the registry from upstream-layout .pkl files of the fixture weights)."""
    from codec_wrappers.registry import load_codec

    meta, ref = load_fixture(VARIANT)
    sds = _filled(meta)
    folder = tmp_path_factory.mktemp("audiodec")
    for rel, sd in ((ENC, sds["encoder"]), (VOC, sds["decoder"])):
        (folder / rel).parent.mkdir(parents=True)
        torch.save({"model": {"generator": sd}, "steps": 500000}, folder / rel)  # upstream .pkl layout
    return meta, ref, load_codec(VARIANT, str(folder))


def test_fixture_through_official_checkpoint_files(fixture_codec):
    meta, ref, codec = fixture_codec
    expected = {f"autoencoder.{k}": s for k, s in expected_shapes(meta, "encoder").items()}
    expected.update({f"vocoder.{k}": s for k, s in expected_shapes(meta, "decoder").items()})
    assert {k: tuple(v.shape) for k, v in AudioDecModel().state_dict().items()} == expected
    assert isinstance(codec, AudioDecCodec) and codec.weights.weights_id.startswith("sha256:")
    x = torch.from_numpy(ref["input"])
    with torch.inference_mode():
        out = codec.model(x)
    np.testing.assert_array_equal(out["codes"][:, 0].numpy(), ref["codes"])
    assert_close_to_reference(out["output"], ref["output"])
    # through resynthesize, twice: the warm state is restored for every call
    for _ in range(2):
        assert_close_to_reference(codec.resynthesize(x, torch.tensor([x.shape[-1]])), ref["output"])


def test_resynthesize_equals_upstream_at_raw_lengths(fixture_codec):
    """Upstream runs the raw length (ceil(n/300) frames, output cut to n); resynthesize pads each item to
    whole frames, which a causal model cannot see: equal alone and inside a padded batch."""
    _, ref, codec = fixture_codec
    check_resynthesize_at_raw_lengths(codec, lambda x: codec.model(x)["output"], torch.from_numpy(ref["input"]),
                                      [7201, 5099], out_samples=lambda n: n)


def test_generator_state_dict_and_strict_loading():
    model = _random(_tiny())
    sd = model.state_dict()
    ae = {k[len("autoencoder."):]: v for k, v in sd.items() if k.startswith("autoencoder.")}
    voc = {k[len("vocoder."):]: v for k, v in sd.items() if k.startswith("vocoder.")}
    assert generator_state_dict({"model": {"generator": ae, "discriminator": {}}}) is ae
    with pytest.raises(ValueError, match="x.pkl"):
        generator_state_dict({"model": {}, "steps": 3}, "x.pkl")
    load_official_state_dicts(model, ae, voc, "tiny")
    ae.pop("decoder.conv2.conv.weight")
    with pytest.raises(ValueError, match="missing"):
        load_official_state_dicts(model, ae, voc, "tiny")


def test_lengths_batching_warm_state_determinism():
    model = _random(_tiny())
    codec = AudioDecCodec(get_variant(VARIANT), ResolvedWeights(kind="random", seed=0, source="random"), model)
    g = torch.Generator().manual_seed(5)
    lengths = torch.tensor([1500, 1111, 1500, 299])
    audio = torch.zeros(4, 1, 1500)
    for i, n in enumerate(lengths.tolist()):
        audio[i, 0, :n] = 0.3 * torch.randn(n, generator=g)
    audio[1, 0, 1111:] = 0.9  # padding garbage must not leak in
    out = codec.resynthesize(audio, lengths)
    assert out.shape == audio.shape and torch.isfinite(out).all()
    for i, n in enumerate(lengths.tolist()):
        one = codec.resynthesize(audio[i : i + 1, :, :n], lengths[i : i + 1])
        assert one.shape[-1] == n and one.abs().max() > 0
        torch.testing.assert_close(out[i, :, :n], one[0], rtol=0, atol=1e-5)
        assert out[i, :, n:].abs().sum() == 0
    assert torch.equal(codec.resynthesize(audio, lengths), out)
    assert not torch.allclose(out[0], out[2])
    # the warm-up state (not zeros) is what every call starts from
    with torch.inference_mode():
        warm = model(audio[:1])["output"]
        for m in model._streams(model).values():
            m.state = torch.zeros_like(m.pad_buffer)
        z = model.autoencoder.encode(audio[:1])
        cold = model.vocoder(model.autoencoder.lookup(model.autoencoder.quantize(z)))
    assert not torch.allclose(warm, cold[..., :1500])


def test_random_weights_via_registry():
    from codec_wrappers.registry import load_codec

    x = 0.2 * torch.randn(1, 1, 1800, generator=torch.Generator().manual_seed(0))
    codec = load_codec(VARIANT, "random:4")
    y = codec.resynthesize(x, torch.tensor([1800]))
    with torch.inference_mode():
        codes = codec.model(x)["codes"]
    assert codes.shape == (8, 1, 6) and codes[3].min() >= 3 * 1024 and codes[3].max() < 4 * 1024
    assert torch.isfinite(y).all() and y.abs().max() > 1e-4
    assert torch.equal(load_codec(VARIANT, "random:4").resynthesize(x, torch.tensor([1800])), y)
