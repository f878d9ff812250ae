"""Weights resolution order, checkpoint reading, and seeded random weights."""
from __future__ import annotations

import hashlib
import pickle
import re

import pytest
import torch

from codec_wrappers import catalog as cat
from codec_wrappers import weights as w


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv(w.WEIGHTS_DIR_ENV, raising=False)
    monkeypatch.delenv(cat.CATALOG_PATH_ENV, raising=False)
    # Empty caches, so that files on the machine never leak into a test.
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf_empty"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub_empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cat.clear_cache()


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_random_specs():
    assert w.parse_random("random") == 0
    assert w.parse_random("random:17") == 17
    assert w.parse_random("/some/path") is None
    with pytest.raises(ValueError, match="random:<integer seed>"):
        w.parse_random("random:abc")
    r = w.resolve_weights("encodec_24k_6kbps", "random:5")
    assert (r.kind, r.seed, r.weights_id, r.is_random) == ("random", 5, "random:5", True)


def test_toy_needs_no_weights():
    r = w.resolve_weights("toy_mulaw_16k")
    assert (r.kind, r.weights_id) == ("none", "none")


def test_missing_weights_error_names_what_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv(w.WEIGHTS_DIR_ENV, str(tmp_path / "weights"))
    with pytest.raises(w.WeightsNotFound) as err:
        w.resolve_weights("snac_24k")
    msg = str(err.value)
    assert "hubertsiuzdak/snac_24khz" in msg and "config.json" in msg and "pytorch_model.bin" in msg
    assert str(tmp_path / "weights" / "snac_24k") in msg and "random:<seed>" in msg
    with pytest.raises(w.WeightsNotFound, match="encodec_24khz-d7cc33bc.th"):
        w.resolve_weights("encodec_24k_6kbps")
    with pytest.raises(w.WeightsNotFound, match="No official weights exist"):
        w.resolve_weights("soundstream_16k_4kbps")


def test_explicit_path_file_and_folder(tmp_path):
    f = tmp_path / "ckpt.th"
    f.write_bytes(b"abc")
    r = w.resolve_weights("encodec_24k_6kbps", str(f))
    assert r.source == "explicit" and r.files == (str(f.resolve()),) and r.sha256 == (_sha(f),)
    assert r.weights_id == "sha256:" + _sha(f)[:16]
    folder = tmp_path / "snac"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(w.WeightsNotFound, match="pytorch_model.bin"):
        w.resolve_weights("snac_24k", str(folder))
    (folder / "pytorch_model.bin").write_bytes(b"x")
    r = w.resolve_weights("snac_24k", str(folder))
    assert [p.rsplit("/", 1)[-1] for p in r.files] == ["config.json", "pytorch_model.bin"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        w.resolve_weights("snac_24k", str(tmp_path / "nope"))


def test_weights_dir_then_hf_cache_order(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    # A fake HF cache in the real layout: models--org--name/{refs/main, snapshots/<rev>/<file>}.
    hf = tmp_path / "hf"
    repo = hf / "models--fnlp--SpeechTokenizer"
    snap = repo / "snapshots" / "abc123" / "speechtokenizer_hubert_avg"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    (snap / "config.json").write_text("{}")
    (snap / "SpeechTokenizer.pt").write_bytes(b"hf")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hf))
    r = w.resolve_weights("speechtokenizer_16k")
    assert r.source == "hf_cache" and r.files[1].endswith("SpeechTokenizer.pt")

    root = tmp_path / "weights"
    local = root / "speechtokenizer_16k" / "speechtokenizer_hubert_avg"
    local.mkdir(parents=True)
    (local / "config.json").write_text("{}")
    (local / "SpeechTokenizer.pt").write_bytes(b"local")
    monkeypatch.setenv(w.WEIGHTS_DIR_ENV, str(root))
    r = w.resolve_weights("speechtokenizer_16k")
    assert r.source == "NCST_WEIGHTS_DIR" and r.files[1] == str((local / "SpeechTokenizer.pt").resolve())
    assert r.sha256[1] == _sha(local / "SpeechTokenizer.pt")


def test_package_caches(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / "encodec_24khz-d7cc33bc.th").write_bytes(b"e")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    assert w.resolve_weights("encodec_24k_12kbps").source == "torch_hub"
    dac_dir = tmp_path / "home" / ".cache" / "descript" / "dac"
    dac_dir.mkdir(parents=True)
    (dac_dir / "weights_44khz_8kbps_0.0.1.pth").write_bytes(b"d")
    assert w.resolve_weights("dac_44k").source == "descript"


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_load_checkpoint_is_weights_only(tmp_path):
    from safetensors.torch import save_file

    sd = {"a": torch.arange(4.0)}
    torch.save(sd, tmp_path / "ok.pt")
    assert torch.equal(w.load_checkpoint(tmp_path / "ok.pt")["a"], sd["a"])
    save_file(sd, str(tmp_path / "ok.safetensors"))
    assert torch.equal(w.load_checkpoint(tmp_path / "ok.safetensors")["a"], sd["a"])
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"x": _Evil()}))
    with pytest.raises(ValueError) as err:  # a protocol-5 pickle: torch refuses its opcodes before any global
        w.load_checkpoint(tmp_path / "evil.pt")
    assert "refused" in str(err.value) and "weights_only" not in str(err.value)
    torch.save({"x": _Evil()}, tmp_path / "evil.pt")  # protocol 2: the refusal names the global
    with pytest.raises(ValueError) as err:
        w.load_checkpoint(tmp_path / "evil.pt")
    msg = str(err.value)
    # Issue 22 item 7: say the file carries code and which global, never torch's "retry with weights_only=False".
    assert "evil.pt" in msg and "contains code" in msg and re.search(r"global '[\w.]*print'", msg) and "refused" in msg
    assert "weights_only=False" not in msg and "weights_only` set to `False" not in msg


def test_checkpoint_refusal_in_manifests_matches_weights(tmp_path):
    """train/ (which may import only manifests/) gets the same words from manifests.checkpoints."""
    from manifests.checkpoints import checkpoint_refusal

    torch.save({"x": _Evil()}, tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for name in ("evil.pt", "junk.pt"):
        try:
            torch.load(tmp_path / name, weights_only=True)
        except Exception as exc:
            assert checkpoint_refusal(tmp_path / name, exc) == w.refusal_message(tmp_path / name, exc)
            text = checkpoint_refusal(tmp_path / name, exc)
            assert ("contains code" in text) == (name == "evil.pt") and "weights_only=False" not in text
        else:
            raise AssertionError(f"{name} loaded")


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.utils.weight_norm(torch.nn.Conv1d(4, 8, 3))
        self.bn = torch.nn.BatchNorm1d(8)
        self.lstm = torch.nn.LSTM(8, 8)
        self.up = torch.nn.ConvTranspose1d(8, 8, 4, stride=2, groups=8)
        self.register_buffer("embed", torch.zeros(16, 8))
        self.register_buffer("cluster_size", torch.zeros(16))
        self.register_buffer("embed_avg", torch.zeros(16, 8))
        self.register_buffer("window", torch.hann_window(8))
        self.alpha = torch.nn.Parameter(torch.ones(1, 8, 1))


def test_seeded_state_dict_rules():
    torch.manual_seed(123)  # the global RNG must not matter
    a = w.seeded_state_dict(_Tiny(), seed=3)
    torch.manual_seed(999)
    b = w.seeded_state_dict(_Tiny(), seed=3)
    c = w.seeded_state_dict(_Tiny(), seed=4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv.weight_v"], c["conv.weight_v"])
    assert torch.all(a["bn.running_var"] > 0) and torch.all(a["conv.weight_g"] == 1)
    assert torch.all(a["conv.bias"] == 0) and torch.all(a["alpha"] == 1)
    assert torch.equal(a["window"], torch.hann_window(8))
    # Codebook rows are distinct (non-degenerate) and the running average agrees with them.
    assert torch.cdist(a["embed"], a["embed"]).add(torch.eye(16) * 1e9).min() > 0.1
    assert torch.equal(a["embed_avg"], a["embed"]) and torch.all(a["cluster_size"] == 1)
    # N(0, 1/fan_in): conv fan_in 4*3 = 12; LSTM 1/sqrt(hidden); grouped transposed conv small fan-in.
    assert 0.15 < a["conv.weight_v"].std() < 0.45
    assert a["up.weight"].std() > 0.4
    _Tiny().load_state_dict(a, strict=True)


def test_nested_checkpoint_paths_keep_their_folders(tmp_path):
    """AudioDec's two files share a basename: only the exp/... layout may match, never a flat folder."""
    names = w.checkpoint_files(cat.get_variant("audiodec_24k_320d"))
    assert len(names) == 2 and len({n.rsplit("/", 1)[-1] for n in names}) == 1
    (tmp_path / "checkpoint-500000steps.pkl").write_bytes(b"x")
    with pytest.raises(w.WeightsNotFound):
        w.resolve_weights("audiodec_24k_320d", str(tmp_path))
    for n in names:
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / n).write_bytes(n.encode())
    r = w.resolve_weights("audiodec_24k_320d", str(tmp_path))
    assert r.files[0].endswith(names[0]) and r.files[1].endswith(names[1]) and r.sha256[0] != r.sha256[1]
