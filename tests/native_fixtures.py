"""Shared helpers for the native-codec reference fixtures (``shared/ref/codecs/<variant>.{json,npz}``).

The fixture folder is ``$NCST_REF_DIR`` or ``<repo>/../shared/ref/codecs``; tests that need it are
marked with :data:`needs_fixtures` and skip with the reason when it is absent. ``fixture.py`` of that
folder (the generator of the fixtures) is imported from there, never copied.

API: ``REF_DIR``, ``needs_fixtures``, ``fixture_module()``, ``load_fixture(variant) -> (meta, npz)``,
``expected_shapes(meta, part=None) -> {key: shape}``, ``filled_state_dict(meta, part=None, seed=None)``
(fills the FULL key list in sorted order, as the fixtures were made), ``test_signal(sr, seconds, seed)``,
``assert_close_to_reference(out, ref)`` (max abs error <= 1e-4 * max |ref|).
"""
from __future__ import annotations

import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

REF_DIR = Path(os.environ.get("NCST_REF_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "ref" / "codecs")
needs_fixtures = pytest.mark.skipif(
    not (REF_DIR / "fixture.py").is_file(),
    reason=f"native-codec reference fixtures not found at {REF_DIR} (set NCST_REF_DIR)",
)


@lru_cache(maxsize=1)
def fixture_module():
    """The fixture generator module (``fill_state_dict``, ``test_signal``) from ``REF_DIR``."""
    spec = importlib.util.spec_from_file_location("ncst_ref_fixture", REF_DIR / "fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_fixture(variant: str) -> tuple[dict, dict]:
    """``(json metadata, {name: numpy array})`` of a variant's fixture; skips the test if absent."""
    path = REF_DIR / f"{variant}.json"
    if not path.is_file():
        pytest.skip(f"no reference fixture {path}")
    meta = json.loads(path.read_text())
    with np.load(REF_DIR / f"{variant}.npz") as z:
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
