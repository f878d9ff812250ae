"""The five packaged codec families with seeded random weights at their official sizes.

Every packaged variant: output shape and per-item length, zero tail, finite and non-silent,
input-dependent, deterministic, and batched == one-by-one on each item's valid region. Plus the
bitrate checks (EnCodec bandwidth, codebooks used) and loading real-layout checkpoint files.
"""
from __future__ import annotations

import json

import pytest
import torch

from codec_wrappers.base import Taxonomy, Variant
from codec_wrappers.catalog import variants_by
from codec_wrappers.registry import load_codec
from codec_wrappers.weights import seeded_state_dict

PACKAGED = [v.id for fam in ("encodec", "dac", "snac", "speechtokenizer", "mimi") for v in variants_by(family=fam)]


def _batch(sr: int, seed: int = 1):
    """Two items of 0.3 s and ~0.21 s (not hop multiples), speech-like level, right zero-padded."""
    g = torch.Generator().manual_seed(seed)
    n1, n2 = int(0.3 * sr) + 3, int(0.21 * sr) + 7
    t = torch.arange(n1) / sr
    x = 0.1 * torch.randn(2, 1, n1, generator=g) + 0.2 * torch.sin(2 * torch.pi * 220 * t)
    x[1, :, n2:] = 0
    return x, torch.tensor([n1, n2])


@pytest.mark.parametrize("variant_id", PACKAGED)
def test_random_weight_codec_contract(variant_id):
    codec = load_codec(variant_id, "random:0")
    assert codec.weights.weights_id == "random:0"
    assert not codec.model.training
    sr = codec.sample_rate
    x, lengths = _batch(sr)
    y = codec.resynthesize(x, lengths)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert torch.all(y[1, :, lengths[1]:] == 0)
    for i in range(2):
        assert y[i, :, : lengths[i]].pow(2).mean().sqrt() > 1e-3, "silent output"
    # Deterministic, and batched == one-by-one on each item's valid region.
    assert torch.equal(codec.resynthesize(x, lengths), y)
    scale = y.abs().max().item()
    for i in range(2):
        n = int(lengths[i])
        alone = codec.resynthesize(x[i : i + 1, :, :n], lengths[i : i + 1])
        assert alone.shape == (1, 1, n)
        assert (alone[0] - y[i, :, :n]).abs().max() <= 1e-4 * max(scale, 1.0), f"item {i}: batched != alone"
    # Input-dependent: another signal gives another output.
    x2, _ = _batch(sr, seed=2)
    y2 = codec.resynthesize(x2 * 0.5, lengths)
    assert (y2 - y).abs().max() > 1e-3


def test_same_seed_same_model_other_seed_other_model():
    x, lengths = _batch(24000)
    a = load_codec("encodec_24k_6kbps", "random:0").resynthesize(x, lengths)
    b = load_codec("encodec_24k_6kbps", "random:0").resynthesize(x, lengths)
    c = load_codec("encodec_24k_6kbps", "random:1").resynthesize(x, lengths)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_encodec_honours_bandwidth():
    x, lengths = _batch(24000)
    outs = {}
    for v in variants_by(family="encodec"):
        codec = load_codec(v, "random:0")
        assert codec.model.bandwidth == v.options["bandwidth"] == v.bitrate_kbps
        codes = codec.encode(x)
        assert codes.shape[1] == v.n_codebooks
        outs[v.bitrate_kbps] = codec.resynthesize(x, lengths)
    # A wrapper that ignored the bandwidth would give the same (1.5 kbps) output everywhere.
    assert not torch.allclose(outs[1.5], outs[6.0], atol=1e-4)
    assert not torch.allclose(outs[6.0], outs[24.0], atol=1e-4)


@pytest.mark.parametrize(
    "variant_id,expected",
    [("dac_44k", 9), ("dac_16k", 12), ("mimi_24k_8q", 8), ("speechtokenizer_16k", 8), ("snac_24k", 3)],
)
def test_codebooks_used(variant_id, expected):
    codec = load_codec(variant_id, "random:0")
    x = torch.randn(1, 1, codec.hop_length * 2) * 0.1
    codes = codec.encode(x)
    if isinstance(codes, list):  # SNAC: one tensor per scale
        assert len(codes) == expected
    elif variant_id == "speechtokenizer_16k":
        assert codes.shape[0] == expected
    else:
        assert codes.shape[1] == expected


def _variant(family: str, options: dict, sr: int, q: int, files: list[str]) -> Variant:
    return Variant(id=f"tiny_{family}", family=family, codec=family, sample_rate=sr, bitrate_kbps=1.0,
                   n_codebooks=q, taxonomy=Taxonomy("MVQ", "none", "time"), st_label=None, st_role="extra",
                   checkpoint={"files": files}, options=options)


def test_encodec_loads_official_layout_checkpoint(tmp_path):
    """A plain state-dict torch pickle under the official file name, found via NCST_WEIGHTS_DIR."""
    ref = load_codec("encodec_24k_6kbps", "random:7")
    folder = tmp_path / "encodec_24k_6kbps"
    folder.mkdir()
    torch.save(ref.model.state_dict(), folder / "encodec_24khz-d7cc33bc.th")
    codec = load_codec("encodec_24k_6kbps", str(folder / "encodec_24khz-d7cc33bc.th"))
    assert codec.weights.kind == "files" and len(codec.weights.sha256[0]) == 64
    x, lengths = _batch(24000)
    assert torch.equal(codec.resynthesize(x, lengths), ref.resynthesize(x, lengths))


def test_dac_loads_official_layout_checkpoint(tmp_path):
    """DAC's {'state_dict', 'metadata': {'kwargs'}} file, read with weights_only=True; kwargs checked."""
    from dac.model.dac import DAC

    config = dict(encoder_dim=8, encoder_rates=[2, 4], decoder_dim=32, decoder_rates=[4, 2], n_codebooks=2,
                  codebook_size=16, codebook_dim=4, sample_rate=8000)
    variant = _variant("dac", {"config": config, "n_quantizers": 2}, 8000, 2, ["weights.pth"])
    model = DAC(**config)
    model.load_state_dict(seeded_state_dict(model, 3))
    torch.save({"state_dict": model.state_dict(), "metadata": {"kwargs": config}}, tmp_path / "weights.pth")
    codec = load_codec(variant, str(tmp_path))
    x = torch.randn(1, 1, 800) * 0.1
    z, *_ = model.eval().encode(x, 2)
    assert torch.allclose(codec.resynthesize(x, torch.tensor([800])), model.decode(z).detach()[..., :800], atol=1e-6)
    torch.save({"state_dict": model.state_dict(), "metadata": {"kwargs": {**config, "n_codebooks": 3}}},
               tmp_path / "weights.pth")
    with pytest.raises(ValueError, match="n_codebooks"):
        load_codec(variant, str(tmp_path))


def test_snac_speechtokenizer_mimi_load_config_plus_weights(tmp_path):
    from safetensors.torch import save_file
    from transformers import MimiConfig

    # SNAC: config.json + pytorch_model.bin (HF layout).
    snac_ref = load_codec("snac_24k", "random:2")
    d = tmp_path / "snac"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(dict(snac_ref.variant.options["config"])))
    torch.save(snac_ref.model.state_dict(), d / "pytorch_model.bin")
    x, lengths = _batch(24000)
    assert torch.equal(load_codec("snac_24k", str(d)).resynthesize(x, lengths), snac_ref.resynthesize(x, lengths))

    # SpeechTokenizer: tiny config (same code path as the official config.json + SpeechTokenizer.pt).
    st_cfg = dict(n_filters=4, strides=[2, 2], dimension=16, semantic_dimension=8, bidirectional=True,
                  dilation_base=2, residual_kernel_size=3, n_residual_layers=1, lstm_layers=1,
                  activation="ELU", codebook_size=8, n_q=2, sample_rate=8000)
    v = _variant("speechtokenizer", {"config": st_cfg, "n_q": 2}, 8000, 2, ["config.json", "SpeechTokenizer.pt"])
    ref = load_codec(v, "random:1")
    d = tmp_path / "st"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(st_cfg))
    torch.save(ref.model.state_dict(), d / "SpeechTokenizer.pt")
    x = torch.randn(1, 1, 400) * 0.1
    assert torch.equal(load_codec(v, str(d)).resynthesize(x, torch.tensor([400])), ref.resynthesize(x, torch.tensor([400])))
    (d / "config.json").write_text(json.dumps({**st_cfg, "dimension": 32}))
    with pytest.raises(ValueError, match="dimension"):
        load_codec(v, str(d))

    # Mimi: config.json + model.safetensors (transformers layout), tiny config.
    cfg = MimiConfig(hidden_size=32, num_filters=4, num_residual_layers=1, upsampling_ratios=[4, 2],
                     codebook_size=16, codebook_dim=16, num_quantizers=4, num_semantic_quantizers=1,
                     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, head_dim=16,
                     intermediate_size=64, sliding_window=8, sampling_rate=800, upsample_groups=32,
                     vector_quantization_hidden_dimension=16)
    d = tmp_path / "mimi"
    d.mkdir()
    cfg.to_json_file(str(d / "config.json"))
    from transformers import MimiModel

    model = MimiModel(cfg)
    model.load_state_dict(seeded_state_dict(model, 5))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "model.safetensors"))
    hop = int(round(cfg.sampling_rate / cfg.frame_rate))
    v = _variant("mimi", {"num_quantizers": 2}, 800, 2, ["config.json", "model.safetensors"])
    codec = load_codec(v, str(d))
    x = torch.randn(1, 1, hop * 3) * 0.1
    expected = model.eval().decode(model.encode(x, num_quantizers=2).audio_codes).audio_values
    assert torch.allclose(codec.resynthesize(x, torch.tensor([hop * 3])), expected.detach()[..., : hop * 3], atol=1e-5)


@pytest.mark.parametrize("variant_id", ["dac_24k", "snac_32k"])
def test_masked_batch_equals_one_by_one_at_awkward_lengths(variant_id):
    """DAC 24 kHz decodes a few samples short of its input; SNAC 32 kHz has windowed attention.

    One padded forward with per-layer length masks must still equal each item run alone, also for
    lengths just below a hop multiple and with three items of very different lengths.
    """
    codec = load_codec(variant_id, "random:3")
    assert codec.length_mask is not None  # one forward per batch, not one per item
    hop = codec.hop_length
    lengths = torch.tensor([hop * 2 - 3, hop - 1, 700]) if hop > 4000 else torch.tensor(
        [hop * 20 - 3, hop * 13 - 2, hop * 7 + 1])
    g = torch.Generator().manual_seed(4)
    x = 0.1 * torch.randn(3, 1, int(lengths.max()), generator=g)
    y = codec.resynthesize(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = codec.resynthesize(x[i : i + 1, :, :n], lengths[i : i + 1])
        assert (alone[0] - y[i, :, :n]).abs().max() <= 1e-4, f"item {i} (length {n})"
        assert torch.all(y[i, :, n:] == 0)


def test_padded_batch_mode_is_one_forward_and_differs_only_near_item_ends():
    codec = load_codec("speechtokenizer_16k", "random:0")
    x, lengths = _batch(16000)
    exact = codec.resynthesize(x, lengths)
    calls = []
    forward = codec._forward
    codec._forward = lambda a: calls.append(a.shape[0]) or forward(a)
    codec.batch_mode = "padded"
    fast = codec.resynthesize(x, lengths)
    assert calls == [2]  # the whole batch in one call
    assert torch.allclose(fast[0], exact[0], atol=1e-4)  # the longest item has no extra padding
    assert torch.all(fast[1, :, lengths[1]:] == 0)
    codec.batch_mode = "bogus"
    with pytest.raises(ValueError, match="batch_mode"):
        codec.resynthesize(x, lengths)


def test_mimi_checkpoint_with_wrong_keys_is_an_error_not_random_weights(tmp_path):
    from safetensors.torch import save_file
    from transformers import MimiConfig, MimiModel

    cfg = MimiConfig(hidden_size=32, num_filters=4, num_residual_layers=1, upsampling_ratios=[4, 2],
                     codebook_size=16, codebook_dim=16, num_quantizers=4, num_semantic_quantizers=1,
                     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, head_dim=16,
                     intermediate_size=64, sliding_window=8, sampling_rate=800, upsample_groups=32,
                     vector_quantization_hidden_dimension=16)
    cfg.to_json_file(str(tmp_path / "config.json"))
    state = seeded_state_dict(MimiModel(cfg), 1)
    first = sorted(state)[0]
    state["renamed." + first] = state.pop(first)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    v = _variant("mimi", {"num_quantizers": 2}, 800, 2, ["config.json", "model.safetensors"])
    with pytest.raises(ValueError, match="does not fit MimiModel"):
        load_codec(v, str(tmp_path))
