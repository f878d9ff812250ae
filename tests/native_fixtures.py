"""Shared helpers for the native-codec reference fixtures (``tests/fixtures/codecs/<variant>.{json,npz}``).

The fixtures ship with the project in ``tests/fixtures/codecs/`` (``$NCST_REF_DIR`` overrides the
folder). They are made from the upstream code by ``fixture.py`` of that folder (our own helper:
``fill_state_dict`` and ``test_signal``). A missing fixture is an error, never a skip.

API: ``REF_DIR``, ``FIXTURE_VARIANTS``, ``fixture_module()``, ``load_fixture(variant) -> (meta, npz)``,
``expected_shapes(meta, part=None) -> {key: shape}``, ``filled_state_dict(meta, part=None, seed=None)``
(fills the FULL key list in sorted order, as the fixtures were made), ``test_signal(sr, seconds, seed)``,
``assert_close_to_reference(out, ref)`` (max abs error <= 1e-4 * max |ref|),
``check_resynthesize_at_raw_lengths(codec, model_path, signal, lengths)`` (``resynthesize`` of items
alone and in a padded batch == the model run at each item's raw length).
"""
from __future__ import annotations

import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

REF_DIR = Path(os.environ.get("NCST_REF_DIR") or Path(__file__).resolve().parent / "fixtures" / "codecs")
# Every native variant with an upstream reference fixture (one json + npz each in REF_DIR).
FIXTURE_VARIANTS = (
    "audiodec_24k_320d", "facodec_16k", "funcodec_16k_ds320_freq", "funcodec_16k_ds320_time",
    "hificodec_16k_320d", "hificodec_24k_320d", "soundstream_16k_4kbps", "wavtokenizer_24k_40tps",
    "wavtokenizer_24k_75tps",
    "spectral_codec_22k", "spectral_codec_44k",
    "ticodec_24k_1g1r", "ticodec_24k_1g2r", "ticodec_24k_1g4r",
    "sqcodec_16k_50dim_9",
    "bigcodec_16k",
)


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"native-codec reference fixture missing: {path} (the fixtures ship in "
                                f"tests/fixtures/codecs/; NCST_REF_DIR={os.environ.get('NCST_REF_DIR')!r})")
    return path


@lru_cache(maxsize=1)
def fixture_module():
    """The fixture generator module (``fill_state_dict``, ``test_signal``) from ``REF_DIR``."""
    spec = importlib.util.spec_from_file_location("ncst_ref_fixture", _require(REF_DIR / "fixture.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_fixture(variant: str) -> tuple[dict, dict]:
    """``(json metadata, {name: numpy array})`` of a variant's fixture; ``FileNotFoundError`` if absent."""
    meta = json.loads(_require(REF_DIR / f"{variant}.json").read_text())
    with np.load(_require(REF_DIR / f"{variant}.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    return meta, arrays


def _entries(meta: dict, part: str | None):
    entries = meta["state_dict"]
    if isinstance(entries, dict):
        if part is None:
            raise ValueError(f"state_dict of {meta.get('variant')} has parts {sorted(entries)}: name one")
        entries = entries[part]
    return entries


def expected_shapes(meta: dict, part: str | None = None) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of the json's state-dict list (or of one part of it)."""
    return {k: tuple(s) for k, s, _ in _entries(meta, part)}


def filled_state_dict(meta: dict, part: str | None = None, seed: int | None = None) -> dict[str, torch.Tensor]:
    """The fixture's weights: ``fill_state_dict`` over the FULL key list of the json, sorted order.

    Uses ``meta['fixture']['fill_seed']`` unless ``seed`` is given and ``fill_scale`` when the json has one.
    """
    full = {k: torch.zeros(s, dtype=getattr(torch, dt)) for k, s, dt in _entries(meta, part)}
    fix = meta.get("fixture", {})
    seed = fix.get("fill_seed", 1234) if seed is None else seed
    scale = fix.get("fill_scale", meta.get("fill_scale"))
    fill = fixture_module().fill_state_dict
    if scale is not None:
        return fill(full, seed=seed, scale=scale)
    return fill(full, seed=seed)


def test_signal(sample_rate: int, seconds: float = 1.0, seed: int = 7) -> torch.Tensor:
    """The fixtures' ``(1, 1, N)`` input signal."""
    return fixture_module().test_signal(sample_rate, seconds, seed)


test_signal.__test__ = False  # not a pytest test


def assert_close_to_reference(out, ref, rel: float = 1e-4, outside: float = 0.0) -> None:
    """``|out - ref| <= rel * max|ref|`` at every sample, or at all but a share ``outside`` of
    them (shapes must match)."""
    out = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
    ref = np.asarray(ref)
    assert out.shape == ref.shape, f"shape {out.shape} != reference {ref.shape}"
    err, tol = np.abs(out - ref), rel * float(np.abs(ref).max())
    share = float((err > tol).mean())
    assert share <= outside, (f"{share:.2%} of samples off by more than {tol:.3g} (= {rel} x max|reference|; "
                              f"allowed {outside:.2%}); max abs error {float(err.max()):.3g}")


def check_resynthesize_at_raw_lengths(
    codec,
    model_path: Callable[[torch.Tensor], torch.Tensor],
    signal: torch.Tensor,
    lengths: Sequence[int],
    out_samples: Callable[[int], int] | None = None,
    outside: float = 0.0,
) -> None:
    """``codec.resynthesize`` equals the upstream path run at each item's raw length.

    ``model_path(x (1, 1, n)) -> (1, 1, m)`` is the fixture-verified model path (encode/decode called
    directly on the unpadded signal); its output is cut or zero-filled to ``n`` (upstream returns
    ``m != n`` samples for lengths that are not a multiple of the hop). Items cut from ``signal`` at
    different offsets are checked alone and inside one right-padded batch (junk in the padding),
    within the fixture bound (1e-4 x max|reference|; ``outside``: the share of samples allowed past
    it, for fixtures whose notes say float32 rounding is amplified). ``out_samples(n)``: the ``m``
    upstream gives.
    """
    lengths = [int(n) for n in lengths]
    flat = signal.reshape(-1)
    total = max(lengths)
    assert total + 97 * len(lengths) <= flat.numel(), "signal too short for these lengths"
    batch = torch.full((len(lengths), 1, total), 0.6)  # junk past each item must not matter
    for i, n in enumerate(lengths):
        batch[i, 0, :n] = flat[97 * i: 97 * i + n]
    out = codec.resynthesize(batch, torch.tensor(lengths))
    assert out.shape == batch.shape
    for i, n in enumerate(lengths):
        x = batch[i: i + 1, :, :n].clone()
        with torch.inference_mode():
            ref = model_path(x).float()
        if out_samples is not None:
            assert ref.shape[-1] == out_samples(n), f"upstream path gave {ref.shape[-1]} samples for {n}"
        ref = torch.nn.functional.pad(ref, (0, max(0, n - ref.shape[-1])))[..., :n]
        assert float(ref.abs().max()) > 0, f"silent reference for length {n}"
        alone = codec.resynthesize(x, torch.tensor([n]))
        assert alone.shape == (1, 1, n)
        assert_close_to_reference(alone[0], ref[0], outside=outside)
        assert_close_to_reference(out[i, :, :n], ref[0], outside=outside)
        assert torch.all(out[i, :, n:] == 0), f"item {i} (length {n}) is not zero past its end"
