"""W2V2 front end (cut model == full model's hidden_states[layer]), offline loading, feature cache.

Every model here is a tiny wav2vec 2.0 with seeded RANDOM weights built in code (no download):
it checks the loading/cutting/caching code, not XLS-R's numbers.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from test_train_data import make_protocol
from train.data import AudioDataset, read_protocol
from train.features import (
    CachedFeatureDataset,
    FeatureCache,
    W2V2FrontEnd,
    cache_identity,
    conv_frames,
    ensure_features,
    resolve_model_dir,
)


def tiny_w2v2_config(stable: bool = True, layers: int = 6):
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16, 16, 16, 16, 16), conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, do_stable_layer_norm=stable,
        feat_extract_norm="layer" if stable else "group", hidden_dropout=0.1, attention_dropout=0.1,
    )


def tiny_w2v2_dir(path: Path, stable: bool = True, seed: int = 1234) -> Path:
    """Save a seeded random tiny wav2vec 2.0 in the save_pretrained layout (+ preprocessor config)."""
    from transformers import Wav2Vec2Model

    torch.manual_seed(seed)
    Wav2Vec2Model(tiny_w2v2_config(stable)).save_pretrained(str(path))
    (path / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "sampling_rate": 16000}))
    return path


@pytest.mark.parametrize("stable", [True, False])
def test_cut_model_returns_full_models_hidden_state_5(tmp_path, stable):
    from transformers import Wav2Vec2Model

    d = tiny_w2v2_dir(tmp_path / "w2v2", stable=stable)
    full = Wav2Vec2Model.from_pretrained(str(d)).eval()
    fe = W2V2FrontEnd.from_pretrained(str(d), layer=5, normalize=False)
    assert len(fe.model.encoder.layers) == 5  # really cut: layer 6 is never run
    x = torch.randn(3, 8000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = full(x, output_hidden_states=True).hidden_states[5]
    out = fe(x)
    assert out.shape == ref.shape == (3, fe.num_frames(8000), 32)
    assert torch.equal(out, ref)
    # normalisation = the feature extractor's per-utterance zero mean / unit variance
    fe_norm = W2V2FrontEnd.from_pretrained(str(d), layer=5)
    assert fe_norm.normalize  # read from preprocessor_config.json
    xn = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-7)
    with torch.no_grad():
        ref_n = full(xn, output_hidden_states=True).hidden_states[5]
    torch.testing.assert_close(fe_norm(x), ref_n, rtol=0, atol=1e-6)


def test_xlsr_frame_count():
    from transformers import Wav2Vec2Config

    assert conv_frames(Wav2Vec2Config(), 64600) == 201  # XLS-R 300m conv stack: 1024 x 201 per utterance


def test_missing_model_error_names_repo_and_remedy(tmp_path):
    repo = "ncst-test/no-such-wav2vec2-model"  # never in any cache, and nothing is downloaded
    with pytest.raises(FileNotFoundError) as err:
        resolve_model_dir(repo)
    msg = str(err.value)
    assert repo in msg and f"huggingface-cli download {repo}" in msg and "--w2v2-model" in msg
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_model_dir(str(tmp_path / "notamodel"))


def test_feature_cache_roundtrip_persistence_and_reuse(tmp_path):
    d = tiny_w2v2_dir(tmp_path / "w2v2")
    fe = W2V2FrontEnd.from_pretrained(str(d), layer=5)
    pdir = make_protocol(tmp_path / "data", {"train": {0: 3, 1: 2}}, seconds=0.3)
    ds = AudioDataset(read_protocol(pdir, "train"), [0, 1], num_samples=4000)
    ident = cache_identity(fe, sample_rate=16000, num_samples=4000)
    cache = FeatureCache(tmp_path / "cache", ident, shard_size=2)
    s1 = ensure_features(fe, cache, ds, batch_size=2)
    assert s1 == {"cached": 0, "computed": 5, "failed": 0, "frontend_calls": 3}
    assert len(list(cache.dir.glob("shard-*.npy"))) == 3  # shard_size 2: shards of 2, 2, 1
    # stored values are the front end's output (fp16-rounded), memory-mapped
    item = ds[4]
    with torch.no_grad():
        direct = fe(item["wav"][None]).numpy()[0]
    stored = cache.get(CachedFeatureDataset(ds, cache, fe.num_frames(4000), 32).keys[4])
    assert isinstance(stored.base, np.memmap) or isinstance(stored, np.memmap)
    np.testing.assert_allclose(stored.astype(np.float32), direct, rtol=2e-3, atol=2e-3)
    # a new cache object (another run) sees every feature and computes nothing
    calls = fe.calls
    cache2 = FeatureCache(tmp_path / "cache", ident)
    s2 = ensure_features(fe, cache2, ds, batch_size=2)
    assert s2["computed"] == 0 and s2["cached"] == 5 and fe.calls == calls
    fds = CachedFeatureDataset(ds, cache2, fe.num_frames(4000), 32)
    b = fds[1]
    assert b["feat"].shape == (fe.num_frames(4000), 32) and b["feat"].dtype == torch.float32 and b["ok"]
    # another layer is another identity: nothing shared
    fe3 = W2V2FrontEnd.from_pretrained(str(d), layer=3)
    cache3 = FeatureCache(tmp_path / "cache", cache_identity(fe3, sample_rate=16000, num_samples=4000))
    assert len(cache3) == 0 and cache3.dir != cache.dir
    # a changed file (new mtime/size, no sha256 in the manifest) is a new key
    p = Path(ds.paths[0])
    import soundfile as sf

    w, sr = sf.read(p)
    sf.write(p, np.concatenate([w, w]), sr)
    ds_changed = AudioDataset(read_protocol(pdir, "train"), [0, 1], num_samples=4000)
    assert ensure_features(fe, cache2, ds_changed, batch_size=2)["computed"] == 1


def test_cached_features_load_in_worker_processes(tmp_path):
    from train.data import make_loader

    d = tiny_w2v2_dir(tmp_path / "w2v2")
    fe = W2V2FrontEnd.from_pretrained(str(d), layer=5)
    pdir = make_protocol(tmp_path / "data", {"train": {0: 3, 2: 3}}, seconds=0.3)
    ds = AudioDataset(read_protocol(pdir, "train"), [0, 2], num_samples=4000)
    cache = FeatureCache(tmp_path / "cache", cache_identity(fe, sample_rate=16000, num_samples=4000))
    ensure_features(fe, cache, ds, batch_size=4)
    fds = CachedFeatureDataset(ds, cache, fe.num_frames(4000), 32)
    single = list(make_loader(fds, batch_size=4, shuffle=True, seed=1))
    multi = list(make_loader(fds, batch_size=4, shuffle=True, seed=1, num_workers=2))
    for a, b in zip(single, multi):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["feat"], b["feat"])
        assert a["ok"].all() and a["feat"].abs().sum() > 0
