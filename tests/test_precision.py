"""bf16 vs fp32: the optional ``Codec.encode_codes`` contract, ``compare_precision`` and its bench.

Codecs run with seeded random weights (``random:0``) on 0.3 s of noise: the numbers mean nothing
about real checkpoints, but shapes, determinism, bounds and the fp32-vs-fp32 baseline do.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from codec_wrappers.base import Codec, ResolvedWeights, Variant, Taxonomy
from codec_wrappers.precision import PRECISIONS, autocast, compare_precision, snr_db
from codec_wrappers.registry import load_codec

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a top-level tool folder, not an installed package
    sys.path.insert(0, str(ROOT))

# One variant per family with discrete codes; loading + encoding 0.3 s takes < 1 s each on CPU.
CHEAP = ["toy_mulaw_16k", "encodec_24k_6kbps", "soundstream_16k_4kbps", "funcodec_16k_ds320_time",
         "funcodec_16k_ds320_freq", "wavtokenizer_24k_75tps", "audiodec_24k_320d", "hificodec_24k_320d",
         "facodec_16k", "snac_24k", "speechtokenizer_16k"]
# Large random inits or heavy imports (Mimi: ~3 s to build; DAC: ~2 s).
SLOW = ["mimi_24k_8q", "dac_16k", "dac_44k"]


def _noise(codec, seconds: float = 0.3, seed: int = 0) -> torch.Tensor:
    """``(1, 1, t)`` quiet noise, t = ``seconds`` rounded up to the codec's hop."""
    hop = max(1, int(getattr(codec, "hop_length", 1)))
    n = -(-int(seconds * codec.sample_rate) // hop) * hop
    return 0.1 * torch.randn(1, 1, n, generator=torch.Generator().manual_seed(seed))


def _check_codes(vid: str) -> None:
    codec = load_codec(vid, "random:0")
    x = _noise(codec)
    codes = codec.encode_codes(x)
    assert isinstance(codes, list) and len(codes) == codec.variant.n_codebooks
    for level in codes:
        assert isinstance(level, torch.Tensor) and not level.is_floating_point() and not level.is_complex()
        assert level.shape[0] == 1 and level.numel() >= 1  # batch first
    again = codec.encode_codes(x.clone())
    assert all(torch.equal(a, b) for a, b in zip(codes, again))  # deterministic
    other = codec.encode_codes(_noise(codec, seed=1))
    assert any(not torch.equal(a, b) for a, b in zip(codes, other))  # and input-dependent


@pytest.mark.parametrize("vid", CHEAP)
def test_encode_codes_integer_batch_first_deterministic(vid):
    _check_codes(vid)


@pytest.mark.slow
@pytest.mark.parametrize("vid", SLOW)
def test_encode_codes_slow_families(vid):
    _check_codes(vid)


def test_codes_are_what_resynthesize_decodes():
    toy = load_codec("toy_mulaw_16k", "random:0")
    x = _noise(toy)
    (c,) = toy.encode_codes(x)
    assert torch.equal(toy.decode(c[:, None]), toy.resynthesize(x, torch.tensor([x.shape[-1]])))

    enc = load_codec("encodec_24k_6kbps", "random:0")
    x = _noise(enc)
    codes = torch.stack(enc.encode_codes(x), dim=1)  # (1, 8, frames)
    with torch.inference_mode():
        y = enc.model.decode([(codes, None)])
    torch.testing.assert_close(y[..., : x.shape[-1]], enc.resynthesize(x, torch.tensor([x.shape[-1]])))

    ss = load_codec("soundstream_16k_4kbps", "random:0")
    x = _noise(ss)
    with torch.inference_mode():
        y = ss.model.decode(torch.stack(ss.encode_codes(x)))
    torch.testing.assert_close(y[..., : x.shape[-1]], ss.resynthesize(x, torch.tensor([x.shape[-1]])))


def test_audiodec_codes_index_each_codebook():
    codec = load_codec("audiodec_24k_320d", "random:0")
    size = codec.model.config.codebook_size
    for level in codec.encode_codes(_noise(codec)):
        assert int(level.min()) >= 0 and int(level.max()) < size


class _Identity(Codec):
    """A codec without discrete codes: returns its input."""

    def resynthesize(self, audio, lengths):
        mask = torch.arange(audio.shape[-1])[None, :] < lengths[:, None]
        return audio * mask[:, None, :]


def _identity() -> _Identity:
    v = Variant(id="identity_test", family="identity", codec="Identity", sample_rate=16000, bitrate_kbps=0.0,
                n_codebooks=0, taxonomy=Taxonomy("SQ", "none", "time"), st_label=None, st_role="extra")
    return _Identity(v, ResolvedWeights(kind="none"))


def test_default_encode_codes_raises_and_report_has_no_codes():
    codec = _identity()
    with pytest.raises(NotImplementedError, match="identity_test"):
        codec.encode_codes(torch.zeros(1, 1, 160))
    rep = compare_precision(codec, 0.1 * torch.randn(1, 1, 800), torch.tensor([800]))
    assert rep.snr_db == (math.inf,) and rep.codes_changed is None and rep.codes_changed_share is None
    assert rep.level_changed_shares is None and rep.to_dict()["level_changed"] is None


def test_snr_db_values():
    ref = torch.ones(100)
    assert snr_db(ref, ref.clone()) == math.inf
    assert snr_db(ref, 1.1 * ref) == pytest.approx(20.0)  # error power 1 % of signal power
    assert snr_db(torch.zeros(4), torch.ones(4)) == -math.inf


def _two_items(codec) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of 0.3 s and 0.2 s of noise (the second item padded with zeros)."""
    sr = codec.sample_rate
    n0, n1 = int(0.3 * sr), int(0.2 * sr)
    g = torch.Generator().manual_seed(3)
    audio = torch.zeros(2, 1, n0)
    audio[0, 0] = 0.1 * torch.randn(n0, generator=g)
    audio[1, 0, :n1] = 0.1 * torch.randn(n1, generator=g)
    return audio, torch.tensor([n0, n1])


def test_compare_precision_toy_and_fp32_baseline():
    toy = load_codec("toy_mulaw_16k", "random:0")
    audio, lengths = _two_items(toy)
    # The toy codec is elementwise (no matmul/conv): autocast leaves it in fp32, so bf16 changes nothing.
    rep = compare_precision(toy, audio, lengths)
    assert rep.precision_a == "fp32" and rep.precision_b == "bf16"
    assert rep.snr_db == (math.inf, math.inf) and rep.snr_min_db == math.inf and rep.max_abs_diff == 0.0
    assert rep.codes_changed == 0 and rep.codes_compared == sum(lengths.tolist()) and rep.code_levels == 1
    assert rep.codes_changed_share == 0.0 and rep.level_changed == (0,) and rep.level_compared == (rep.codes_compared,)
    with pytest.raises(ValueError, match="precision"):
        compare_precision(toy, audio, lengths, precision_b="fp16")
    with pytest.raises(ValueError, match="batch"):
        compare_precision(toy, audio[0], lengths)


@pytest.mark.parametrize("vid", ["soundstream_16k_4kbps", "encodec_24k_6kbps"])
def test_compare_precision_real_codec(vid):
    codec = load_codec(vid, "random:0")
    audio, lengths = _two_items(codec)
    base = compare_precision(codec, audio, lengths, precision_b="fp32")
    assert base.snr_db == (math.inf, math.inf) and base.max_abs_diff == 0.0
    assert base.codes_changed == 0 and base.codes_compared > 0 and base.code_levels == codec.variant.n_codebooks
    assert base.level_changed_shares == (0.0,) * codec.variant.n_codebooks
    rep = compare_precision(codec, audio, lengths, "fp32", "bf16")
    assert rep.codes_compared == base.codes_compared
    assert len(rep.snr_db) == 2 and rep.max_abs_diff > 0  # bf16 matmuls/convs do change the output
    assert all(0 < s < math.inf for s in rep.snr_db), rep.snr_db
    assert rep.snr_min_db == min(rep.snr_db) and rep.snr_min_db <= rep.snr_mean_db
    assert 0.0 <= rep.codes_changed_share <= 1.0
    assert len(rep.level_changed) == len(rep.level_compared) == codec.variant.n_codebooks
    assert sum(rep.level_changed) == rep.codes_changed and sum(rep.level_compared) == rep.codes_compared
    assert all(0.0 <= x <= 1.0 for x in rep.level_changed_shares)
    d = rep.to_dict()
    assert d["variant"] == vid and d["snr_db"] == list(rep.snr_db) and d["codes_changed_share"] == rep.codes_changed_share


def test_autocast_context():
    assert PRECISIONS == ("fp32", "bf16", "bf16_fp32vq")
    lin = torch.nn.Linear(4, 4)
    with autocast("cpu", "bf16"):
        assert lin(torch.ones(1, 4)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert lin(torch.ones(1, 4)).dtype == torch.float32


def test_precision_bench_quick(tmp_path):
    from bench import BENCHES, BenchOptions, run_bench

    assert "precision" in BENCHES
    res = run_bench("precision", BenchOptions(quick=True, workdir=tmp_path))
    assert res.name == "precision" and res.quick
    metrics = {r.metric: r for r in res.rows}
    assert set(metrics) == {"toy_mulaw_16k: bf16 SNR vs fp32 (min)", "toy_mulaw_16k: codes changed by bf16",
                            "toy_mulaw_16k: fp32 time / bf16 time"}
    assert metrics["toy_mulaw_16k: bf16 SNR vs fp32 (min)"].value == math.inf  # elementwise: untouched by autocast
    assert metrics["toy_mulaw_16k: codes changed by bf16"].value == 0.0
    assert metrics["toy_mulaw_16k: fp32 time / bf16 time"].value > 0
    assert all(r.status == "INFO" for r in res.rows)


def test_bf16_fp32vq_keeps_the_quantisers_in_fp32_and_flips_fewer_codes():
    from codec_wrappers.precision import keep_quantizers_fp32, prepare_codec, quantizer_modules

    codec = load_codec("encodec_24k_6kbps", "random:0")
    mods = quantizer_modules(codec.model)
    assert [type(m).__name__ for m in mods] == ["ResidualVectorQuantizer"]
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(2, 1, 7200, generator=g)
    lengths = torch.tensor([7200, 5400])
    # The same fp32 latents into the quantiser: under bf16 autocast its distance matmul rounds them
    # (codes flip); kept in fp32 it gives exactly the fp32 codes.
    model, rvq = codec.model, mods[0]
    with torch.inference_mode():
        latents = model.encoder(x)
        exact = rvq.encode(latents, model.frame_rate, 6.0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rounded = rvq.encode(latents, model.frame_rate, 6.0)
    plain = compare_precision(codec, x, lengths, "fp32", "bf16")
    kept = compare_precision(codec, x, lengths, "fp32", "bf16_fp32vq")
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        kept_codes = rvq.encode(latents, model.frame_rate, 6.0)
    assert (rounded != exact).any()
    assert torch.equal(kept_codes, exact)
    # End to end the bf16 encoder flips codes too (on an AVX2-only CPU those are all of them), so
    # the kept quantiser can only flip fewer or as many.
    assert plain.codes_changed > 0 and kept.codes_changed <= plain.codes_changed
    # Inside the patched quantiser autocast is off and its inputs are float32.
    seen = []
    book = mods[0].vq.layers[0]._codebook  # encodec's nearest-codeword search: EuclideanCodebook.quantize
    search = book.quantize

    def spy(z):
        seen.append((torch.is_autocast_enabled("cpu"), z.dtype))
        return search(z)

    book.quantize = spy
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        codec.resynthesize(x, lengths)
    del book.quantize
    assert seen and all(s == (False, torch.float32) for s in seen)
    assert keep_quantizers_fp32(codec.model) == 1  # idempotent
    with pytest.raises(ValueError, match="bf16_fp32vq"):
        prepare_codec(load_codec("toy_mulaw_16k", "random:0"), "bf16_fp32vq")
