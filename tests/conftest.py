"""Shared test fixtures. Everything runs on CPU with tiny models and short audio."""
from __future__ import annotations

import os

import pytest

# Keep tests single-threaded per process: the CI machine has 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """A Predictor sets torch's intra-op thread count for its process; in tests that process is
    pytest's, so put the count back after each test (numeric tests depend on it)."""
    import torch

    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("NCST_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow check; run with NCST_SLOW=1 (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
