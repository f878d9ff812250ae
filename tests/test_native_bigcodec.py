"""BigCodec native implementation: the upstream fixture (Aria-K-Alethia/BigCodec 09845ab, full 159 M model,
1 s and a length that is not a hop multiple), state-dict keys for strict loading of bigcodec.pt, checkpoint
layouts and errors, upstream's padding, batching, random weights.

The two fixture tests run the full-size model on CPU (about 10-25 s each on two shared cores); every other test
uses a small config of the same architecture."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from codec_wrappers.base import ResolvedWeights
from codec_wrappers.bigcodec import (
    BigCodecCodec,
    BigCodecConfig,
    BigCodecModel,
    build_model,
    config_from_options,
    load_official_checkpoint,
    official_state_dict,
)
from codec_wrappers.catalog import get_variant
from native_fixtures import (
    assert_close_to_reference,
    check_resynthesize_at_raw_lengths,
    filled_state_dict,
    load_fixture,
    test_signal,
)

VARIANT = "bigcodec_16k"
SMALL = BigCodecConfig(ngf=4, latent_dim=16, decoder_channels=64, codebook_size=64, codebook_dim=4)
_cache: dict[str, tuple] = {}
FIXTURE_THREADS = 2  # meta["fixture"]["run"]


def _fixture_checkpoint(meta: dict) -> dict:
    """bigcodec.pt as upstream inference.py reads it, holding the fixture's weights (each part filled alone)."""
    return {"CodecEnc": filled_state_dict(meta, "encoder"), "generator": filled_state_dict(meta, "decoder")}


def _fixture_codec(tmp_path_factory):
    """The full model loaded through the registry from a bigcodec.pt in the official layout."""
    if VARIANT not in _cache:
        from codec_wrappers.registry import load_codec

        meta, ref = load_fixture(VARIANT)
        folder = tmp_path_factory.mktemp(VARIANT)
        path = folder / get_variant(VARIANT).checkpoint["files"][0]
        torch.save(_fixture_checkpoint(meta), path)
        codec = load_codec(VARIANT, str(folder))
        path.unlink()
        _cache[VARIANT] = (codec, meta, ref)
    return _cache[VARIANT]


def _small_codec(seed: int = 0, batch_mode: str = "exact") -> BigCodecCodec:
    codec = BigCodecCodec(get_variant(VARIANT), ResolvedWeights(kind="random", seed=seed),
                          build_model(SMALL, ResolvedWeights(kind="random", seed=seed)))
    codec.batch_mode = batch_mode
    return codec


def _run_at_fixture_threads(fn):
    """``fn()`` at the fixture's 2 intra-op threads (tests run single-threaded): see the fixture's notes,
    rounding differences between thread counts are amplified by the large activations of the fill."""
    threads = torch.get_num_threads()
    torch.set_num_threads(FIXTURE_THREADS)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def _assert_fixture_close(out, ref, what: str) -> None:
    """The bounds upstream itself meets between 1 and 2 threads, with margin (fixture notes): latent within 1e-3
    and pre-tanh within 5e-3 x max|reference| everywhere (a wrong layer is off by O(1)); the tanh output within
    1e-4 x max at all but 1 % of samples (upstream moves 0.25 % past it: sign flips at zero crossings)."""
    rel = {"latent": 1e-3, "pre_tanh": 5e-3}.get(what)
    if rel is None:
        assert_close_to_reference(out, ref, outside=0.01)
    else:
        assert_close_to_reference(out, ref, rel=rel)


def _capture(model: BigCodecModel) -> tuple[dict, list]:
    """Hooks recording the encoder latent, the codes and the input of the final tanh of the next forward."""
    seen: dict = {}
    handles = [
        model.encoder.register_forward_hook(lambda m, i, o: seen.__setitem__("latent", o.clone())),
        model.decoder.quantizer.register_forward_hook(lambda m, i, o: seen.__setitem__("codes", o[1].clone())),
        model.decoder.model[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("pre_tanh", i[0].clone())),
    ]
    return seen, handles


def test_catalog_entry_gives_the_fixture_config():
    meta, _ = load_fixture(VARIANT)
    hp = meta["hyperparameters"]
    v = get_variant(VARIANT)
    cfg = config_from_options(v)
    assert cfg == BigCodecConfig()
    assert (cfg.ngf, cfg.encoder_ratios, cfg.decoder_ratios, cfg.dilations) == (
        hp["ngf"], tuple(hp["encoder_up_ratios"]), tuple(hp["decoder_up_ratios"]), tuple(hp["dilations"]))
    assert (cfg.latent_dim, cfg.decoder_channels, cfg.lstm_layers) == (
        hp["latent_dim"], hp["upsample_initial_channel"], hp["rnn_num_layers"])
    assert (cfg.n_quantizers, cfg.codebook_size, cfg.codebook_dim) == (
        hp["vq_num_quantizers"], hp["codebook_size"], hp["codebook_dim"])
    assert (cfg.hop_length, cfg.frame_rate) == (meta["hop_length"], meta["frame_rate_hz"])
    assert v.native and (v.taxonomy.vq, v.taxonomy.aux, v.taxonomy.decoder) == ("SVQ", "none", "time")
    assert v.n_codebooks == meta["n_codebooks"] and v.st_label is None
    assert abs(v.bitrate_kbps - cfg.frame_rate * np.log2(cfg.codebook_size) / 1000) < 0.01
    assert v.checkpoint["hf_repo"] == meta["official_checkpoint"]["hf_repo"]
    assert list(v.checkpoint["files"]) == [meta["official_checkpoint"]["file"]]
    with pytest.raises(ValueError, match="different hops"):
        BigCodecConfig(decoder_ratios=(5, 5, 2, 2))
    with pytest.raises(ValueError, match="hop_length"):
        config_from_options(options={"hop_length": 320})


def test_state_dict_keys_shapes_dtypes_and_order_match_upstream():
    """Each part lists exactly upstream's state_dict entries, in registration order, so bigcodec.pt loads strictly."""
    meta, _ = load_fixture(VARIANT)
    state = BigCodecModel().state_dict()
    for part in ("encoder", "decoder"):
        own = [[k[len(part) + 1:], list(v.shape), str(v.dtype).replace("torch.", "")]
               for k, v in state.items() if k.startswith(part + ".")]
        assert own == [list(e) for e in meta["state_dict"][part]], part
    assert len(state) == sum(meta["n_state_dict_entries"].values())
    n_params = sum(p.numel() for p in BigCodecModel().parameters())
    assert n_params == meta["n_parameters"]["total"]


def test_fixture_codes_latent_and_waveform(tmp_path_factory):
    """1 s: upstream pads by a whole hop (16000 -> 16200 samples, 81 frames); codes exact, latent, pre-tanh and
    output within the bounds of :func:`_assert_fixture_close` (bit-exact on the fixture's machine)."""
    codec, meta, ref = _fixture_codec(tmp_path_factory)
    assert isinstance(codec, BigCodecCodec) and codec.weights.weights_id.startswith("sha256:")
    x = torch.from_numpy(ref["input"])
    n = x.shape[-1]
    assert codec.model.pad(x).shape[-1] == n + 200
    seen, handles = _capture(codec.model)
    try:
        with torch.inference_mode():
            out = _run_at_fixture_threads(lambda: codec.model(x))
    finally:
        for h in handles:
            h.remove()
    assert seen["codes"].dtype == torch.int64
    np.testing.assert_array_equal(seen["codes"].numpy(), ref["codes"])
    assert len(np.unique(ref["codes"])) > 20  # many distinct codes: the encoder path is exercised
    _assert_fixture_close(seen["latent"], ref["latent"], "latent")
    _assert_fixture_close(seen["pre_tanh"], ref["output_pre_tanh"], "pre_tanh")
    _assert_fixture_close(out, ref["output"], "output")
    assert tuple(out.shape) == tuple(meta["fixture"]["output_shape"])


def test_fixture_at_a_length_that_is_not_a_hop_multiple(tmp_path_factory):
    """0.73 s (11680 samples): padded by 120 to 11800 (59 frames); resynthesize == upstream's output cut to n,
    and the codes it decodes are upstream's."""
    codec, meta, ref = _fixture_codec(tmp_path_factory)
    n = meta["fixture"]["n_odd"]
    assert n % 200 and ref["output_odd"].shape[-1] == n + 200 - n % 200
    x = test_signal(16000, 0.73, 7)  # its own draw, not a prefix of the 1 s signal
    assert x.shape[-1] == n
    seen, handles = _capture(codec.model)
    try:
        out = _run_at_fixture_threads(lambda: codec.resynthesize(x, torch.tensor([n])))
    finally:
        for h in handles:
            h.remove()
    np.testing.assert_array_equal(seen["codes"].numpy(), ref["codes_odd"])
    _assert_fixture_close(seen["pre_tanh"], ref["output_pre_tanh_odd"], "pre_tanh")
    assert out.shape == (1, 1, n)
    _assert_fixture_close(out[0], ref["output_odd"][0, :, :n], "output")


def test_upstream_padding_rule():
    """hop - n % hop samples, a whole hop when n is a multiple; frames and output length follow."""
    cfg = BigCodecConfig()
    assert [cfg.padding(n) for n in (16000, 16001, 11680, 199, 1)] == [200, 199, 120, 1, 199]
    model = build_model(SMALL, ResolvedWeights(kind="random", seed=0))
    for n in (400, 401, 599):
        x = 0.1 * torch.randn(1, 1, n, generator=torch.Generator().manual_seed(n))
        with torch.inference_mode():
            _, codes = model.quantize(x)
            y = model(x)
        frames = n // 200 + 1
        assert codes.shape == (1, 1, frames) and y.shape == (1, 1, 200 * frames)


def test_resynthesize_equals_the_model_at_raw_lengths_alone_and_batched():
    codec = _small_codec()
    signal = 0.3 * torch.randn(1, 1, 3000, generator=torch.Generator().manual_seed(3))
    check_resynthesize_at_raw_lengths(codec, codec.model, signal, [1000, 1037, 1999, 333],
                                      out_samples=lambda n: n + 200 - n % 200)


def test_batched_equals_one_by_one_and_equal_lengths_share_a_call():
    codec = _small_codec()
    calls = []
    handle = codec.model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    g = torch.Generator().manual_seed(4)
    lengths = [1300, 800, 1300, 450]
    batch = 0.3 * torch.randn(len(lengths), 1, max(lengths), generator=g)
    try:
        out = codec.resynthesize(batch, torch.tensor(lengths))
    finally:
        handle.remove()
    assert sorted(calls) == [1, 1, 2]  # the two 1300-sample items ran together
    for i, n in enumerate(lengths):
        alone = codec.resynthesize(batch[i: i + 1, :, :n], torch.tensor([n]))
        assert_close_to_reference(out[i, :, :n], alone[0])  # batch-2 float rounding aside
        assert torch.all(out[i, :, n:] == 0)
    codes = codec.encode_codes(batch[:1, :, :1300])
    assert len(codes) == 1 and codes[0].shape == (1, 7) and codes[0].dtype == torch.int64


def test_padded_batch_mode_is_one_call():
    codec = _small_codec(batch_mode="padded")
    calls = []
    handle = codec.model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    batch = 0.3 * torch.randn(3, 1, 900, generator=torch.Generator().manual_seed(5))
    try:
        out = codec.resynthesize(batch, torch.tensor([900, 500, 700]))
    finally:
        handle.remove()
    assert calls == [torch.Size([3, 1, 900])]
    assert torch.isfinite(out).all() and torch.all(out[1, :, 500:] == 0)


def test_checkpoint_layouts_load_strictly(tmp_path):
    """bigcodec.pt ({'CodecEnc', 'generator'}), a Lightning checkpoint (discriminators dropped) and
    parametrization-style weight-norm keys all load with strict=True."""
    src = build_model(SMALL, ResolvedWeights(kind="random", seed=9))
    state = src.state_dict()
    enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    dec = {k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}
    new_style = {k.replace(".weight_g", ".parametrizations.weight.original0")
                  .replace(".weight_v", ".parametrizations.weight.original1"): v for k, v in dec.items()}
    lightning = {"state_dict": {**{f"model.CodecEnc.{k}": v for k, v in enc.items()},
                                **{f"model.generator.{k}": v for k, v in dec.items()},
                                "model.discriminator.convs.0.weight": torch.zeros(2),
                                "model.spec_discriminator.x": torch.zeros(1)}, "epoch": 3}
    for name, ckpt in (("bigcodec.pt", {"CodecEnc": enc, "generator": dec}),
                       ("new_style.pt", {"CodecEnc": enc, "generator": new_style}), ("last.ckpt", lightning)):
        torch.save(ckpt, tmp_path / name)
        model = load_official_checkpoint(BigCodecModel(SMALL), str(tmp_path / name))
        got = model.state_dict()
        assert got.keys() == state.keys() and all(torch.equal(got[k], v) for k, v in state.items()), name
    assert official_state_dict({"CodecEnc": enc, "generator": dec}).keys() == state.keys()


def test_checkpoint_errors_name_the_file(tmp_path):
    src = BigCodecModel(SMALL).state_dict()
    enc = {k[len("encoder."):]: v for k, v in src.items() if k.startswith("encoder.")}
    dec = {k[len("decoder."):]: v for k, v in src.items() if k.startswith("decoder.")}
    torch.save({"CodecEnc": enc}, tmp_path / "no_generator.pt")
    with pytest.raises(ValueError, match=r"no_generator\.pt.*'CodecEnc' and 'generator'"):
        load_official_checkpoint(BigCodecModel(SMALL), str(tmp_path / "no_generator.pt"))
    torch.save({"CodecEnc": enc, "generator": dec}, tmp_path / "small.pt")
    with pytest.raises(ValueError, match=r"small\.pt: not a BigCodec checkpoint for this config.*shape mismatches"):
        load_official_checkpoint(BigCodecModel(BigCodecConfig(ngf=8, latent_dim=16, decoder_channels=64,
                                                              codebook_size=64, codebook_dim=4)), str(tmp_path / "small.pt"))
    broken = dict(dec)
    broken.pop("model.8.bias")
    torch.save({"CodecEnc": enc, "generator": broken}, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"missing\.pt.*decoder\.model\.8\.bias"):
        load_official_checkpoint(BigCodecModel(SMALL), str(tmp_path / "missing.pt"))
    torch.save({"CodecEnc": enc, "generator": dec, "args": argparse.Namespace(lr=1)}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match=r"code\.pt: refused"):
        load_official_checkpoint(BigCodecModel(SMALL), str(tmp_path / "code.pt"))


def test_random_weights_deterministic_finite_and_input_dependent():
    a, b, c = (build_model(SMALL, ResolvedWeights(kind="random", seed=s)) for s in (5, 5, 6))
    g = torch.Generator().manual_seed(0)
    x1, x2 = 0.3 * torch.randn(2, 1, 1, 1000, generator=g)
    with torch.inference_mode():
        y1, y1b, y1c, y2 = a(x1), b(x1), c(x1), a(x2)
        _, codes1 = a.quantize(x1)
        _, codes2 = a.quantize(x2)
    assert y1.shape == (1, 1, 1200) and torch.equal(y1, y1b)
    assert torch.isfinite(y1).all() and 1e-3 < y1.abs().max() and (y1.abs() > 0.99).float().mean() < 0.5
    assert not torch.allclose(y1, y1c) and not torch.allclose(y1, y2)
    assert codes1.shape == (1, 1, 6) and not torch.equal(codes1, codes2)
    assert 0 <= int(codes1.min()) and int(codes1.max()) < SMALL.codebook_size
