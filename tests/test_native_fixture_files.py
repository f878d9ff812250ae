"""The native-codec reference fixtures ship with the project (tests/fixtures/codecs/), one per native variant."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from codec_wrappers import catalog
from native_fixtures import FIXTURE_VARIANTS

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "tests" / "fixtures" / "codecs"
# Native catalog variants without an upstream fixture, and why (a new native variant must be added to
# FIXTURE_VARIANTS with its fixture, or here with a reason).
NO_FIXTURE = {
    "toy_mulaw_16k": "our own mu-law toy codec, no upstream",
    "funcodec_16k_ds640_3kbps": "FunCodec time-domain architecture of funcodec_16k_ds320_time, hop 640",
    "funcodec_16k_ds640_6kbps": "FunCodec time-domain architecture of funcodec_16k_ds320_time, hop 640",
    "funcodec_16k_ds640_8kbps": "FunCodec time-domain architecture of funcodec_16k_ds320_time, hop 640",
    "funcodec_16k_ds320_libritts": "same architecture as funcodec_16k_ds320_time, other checkpoint",
}


def test_every_native_variant_has_its_fixture_in_the_project():
    natives = {v.id: v for v in catalog.load_catalog().values() if v.native}
    assert set(FIXTURE_VARIANTS) <= set(natives), sorted(set(FIXTURE_VARIANTS) - set(natives))
    assert not set(FIXTURE_VARIANTS) & set(NO_FIXTURE)
    unexplained = set(natives) - set(FIXTURE_VARIANTS) - set(NO_FIXTURE)
    assert not unexplained, f"native variants with neither a fixture nor a reason: {sorted(unexplained)}"
    assert (SHIPPED / "fixture.py").is_file()
    for vid in FIXTURE_VARIANTS:
        meta = json.loads((SHIPPED / f"{vid}.json").read_text())
        assert meta["variant"] == vid and meta["state_dict"], vid
        assert natives[vid].sample_rate == meta["sample_rate"], vid
        with np.load(SHIPPED / f"{vid}.npz") as z:
            assert {"input", "output", "codes"} <= set(z.files), (vid, z.files)
            assert z["input"].shape == (1, 1, meta["sample_rate"]), vid  # 1 s test signal
    assert {p.stem for p in SHIPPED.glob("*.json")} == set(FIXTURE_VARIANTS)
    assert {p.stem for p in SHIPPED.glob("*.npz")} == set(FIXTURE_VARIANTS)


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="not a git checkout: cannot ask git whether the fixtures are ignored")
def test_fixtures_are_not_git_ignored():
    paths = [str(p.relative_to(ROOT)) for p in sorted(SHIPPED.iterdir()) if p.suffix in (".json", ".npz", ".py")]
    assert len(paths) == 2 * len(FIXTURE_VARIANTS) + 1
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert ignored.returncode == 1 and not ignored.stdout, f"git ignores: {ignored.stdout}"
