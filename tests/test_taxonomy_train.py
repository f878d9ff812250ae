"""Training the codec-taxonomy model through train.trainer: M1 with a fine-tuned tiny random
wav2vec 2.0 (RawBoost, learnable task weights), M2 on the frozen feature cache; exact resume for
both; every fake row used (ST label -1 and unknown taxonomy included); predict_taxonomy; preset."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from manifests import real_row, to_frame, write_manifest
from test_w2v2_features import tiny_w2v2_dir
from train.config import PRESETS, TrainConfig
from train.data import read_protocol
from train.predict import TaxonomyPredictions, load_trained, predict_taxonomy
from train.taxonomy import TASK_CLASSES
from train.trainer import train

# codec -> (ST label, aux, decoder, vq, tone Hz); "ext" is an external spoof with unknown taxonomy
CODECS = {
    "codec_a": (1, "none", "time", "MVQ", 660.0),
    "codec_b": (-1, "semantic", "frequency", "SVQ", 1320.0),  # outside the ST classes
    "codec_c": (3, "disentangle", "time", "SQ", 2500.0),
    "ext": (-1, "unknown", "unknown", "unknown", 4500.0),
}
SR = 16000


def make_taxonomy_protocol(root: Path, counts: dict[str, dict[str, int]], seconds: float = 0.35, seed: int = 0) -> Path:
    """``<root>/protocol/<subset>.parquet`` with real rows and the codecs above (``{subset: {codec|'real': n}}``)."""
    rng = np.random.default_rng(seed)
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    for subset, per in counts.items():
        rows = []
        for name, n in per.items():
            for k in range(n):
                uid = f"{subset}_{name}_{k}"
                m = int(seconds * SR * rng.uniform(0.8, 1.2))
                hz = 220.0 if name == "real" else CODECS[name][4]
                t = np.arange(m) / SR
                wav = 0.4 * np.sin(2 * np.pi * hz * t + rng.uniform(0, 6.3)) + 0.02 * rng.standard_normal(m)
                path = audio / f"{uid}.wav"
                sf.write(path, wav.astype(np.float32), SR)
                row = real_row(utt_id=uid, corpus="toy", path=str(path.resolve()), split=subset, sample_rate=SR,
                               num_samples=m, duration_s=m / SR)
                if name != "real":
                    label, aux, dec, vq, _ = CODECS[name]
                    row.update(is_fake=True, label=label, label_name=name, codec=name, variant="v",
                               domain="external" if label < 0 else "id", aux=aux, decoder=dec, vq=vq)
                row.update(subset=subset, condition="")
                rows.append(row)
        write_manifest(to_frame(rows, kind="protocol"), root / "protocol" / f"{subset}.parquet", kind="protocol")
    return root / "protocol"


@pytest.fixture(scope="module")
def protocol(tmp_path_factory):
    return make_taxonomy_protocol(
        tmp_path_factory.mktemp("tax"),
        {"train": {"real": 3, "codec_a": 1, "codec_b": 1, "codec_c": 1, "ext": 2},
         "dev": {"real": 2, "codec_a": 1, "codec_b": 1, "codec_c": 1, "ext": 1}},
    )


@pytest.fixture(scope="module")
def w2v2(tmp_path_factory):
    return tiny_w2v2_dir(tmp_path_factory.mktemp("w2v2") / "tiny")


def cfg(protocol, out, w2v2, **kw) -> TrainConfig:
    base = dict(model="taxonomy", protocol_dir=str(protocol), out_dir=str(out), w2v2_model=str(w2v2), w2v2_layer=2,
                num_samples=6000, batch_size=4, epochs=2, lr=1e-3, progress=False, log_every=1, seed=3,
                model_kwargs={"proj_dim": 32})  # 10 spectral nodes instead of 42: a quicker graph on CPU
    base.update(kw)
    return TrainConfig(**base)


def epochs_of(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["type"] == "epoch"]


def assert_same_state(a: dict, b: dict) -> None:
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"], rtol=1e-5, atol=1e-9)


# M1: wav2vec 2.0 fine-tuned inside the model, RawBoost, learnable task weights.
# M2: frozen front end through the feature cache, no BIN head.
RUNS = {
    "M1": dict(variant="M1", w2v2_finetune=True, rawboost=5, learnable_task_weights=True, balance="aux"),
    "M2": dict(variant="M2", w2v2_finetune=False, balance="dec", feature_cache_dir=None),
}


@pytest.mark.parametrize("variant", list(RUNS))
def test_training_step_and_exact_resume(protocol, w2v2, tmp_path, variant):
    kw = dict(RUNS[variant])
    if "feature_cache_dir" in kw:
        kw["feature_cache_dir"] = str(tmp_path / "cache")
    full = train(cfg(protocol, tmp_path / "full", w2v2, **kw))
    part = train(cfg(protocol, tmp_path / "part", w2v2, epochs=1, **kw))
    part = train(cfg(protocol, tmp_path / "part", w2v2, resume=True, **kw))
    a = torch.load(full / "last.pt", weights_only=True)
    b = torch.load(part / "last.pt", weights_only=True)
    assert_same_state(a, b)
    assert a["variant"] == variant and a["tasks"] == {"M1": ["bin", "aux", "dec", "vq"], "M2": ["aux", "dec", "vq"]}[variant]
    assert a["frontend"] == ("fine-tuned" if variant == "M1" else "frozen")
    # 8 training rows a epoch (ST label -1 and unknown-taxonomy rows included): 2 steps of 4
    assert (a["epoch"], a["step"]) == (2, 4)
    ea, eb = epochs_of(full), epochs_of(part)
    assert [r["train_n"] for r in ea] == [8, 8]
    assert [r["dev_loss"] for r in ea] == pytest.approx([r["dev_loss"] for r in eb], rel=1e-5)
    rec = ea[-1]
    for t in a["tasks"]:
        assert 0.0 <= rec[f"dev_f1_{t}"] <= 1.0 and np.isfinite(rec[f"train_loss_{t}"])
    assert 0.0 <= rec["dev_eer"] <= 1.0  # M2 too: from the (a*d*q)^(1/3) score
    weights = [rec[f"task_weight_{t}"] for t in a["tasks"]]
    assert sum(weights) == pytest.approx(1.0)
    if variant == "M1":
        # the fine-tuned front end is in the checkpoint and was trained; the task weights moved
        w2v_keys = [k for k in a["model"] if k.startswith("frontend.model.")]
        assert w2v_keys
        from transformers import Wav2Vec2Model

        start = Wav2Vec2Model.from_pretrained(str(w2v2)).state_dict()
        moved = [k for k in w2v_keys if k[len("frontend.model."):] in start
                 and not torch.equal(a["model"][k], start[k[len("frontend.model."):]])]
        assert moved
        assert weights != pytest.approx([0.25] * 4, abs=1e-9)
    else:
        assert not any(k.startswith("frontend") for k in a["model"])
        assert weights == pytest.approx([1 / 3] * 3)
        feats = [r for r in map(json.loads, (full / "metrics.jsonl").read_text().splitlines()) if r["type"] == "features"]
        assert [(r["subset"], r["computed"]) for r in feats] == [("train", 8), ("dev", 6)]
    config = json.loads((full / "config.json").read_text())
    assert (config["model"], config["variant"], config["w2v2_finetune"]) == ("taxonomy", variant, variant == "M1")
    with pytest.raises(ValueError, match="M1|M2"):
        train(cfg(protocol, tmp_path / "part", w2v2, resume=True, epochs=3,
                  **{**kw, "variant": "M2" if variant == "M1" else "M1"}))


def test_predict_taxonomy_output(protocol, w2v2, tmp_path):
    run = train(cfg(protocol, tmp_path / "run", w2v2, variant="D_VQ", w2v2_finetune=True, epochs=1,
                    max_steps_per_epoch=1))
    model, config, _ = load_trained(run)
    assert not model.training and config.variant == "D_VQ" and config.frontend_kind == "fine-tuned"
    dev = read_protocol(protocol, "dev")
    bad = dev.copy()
    bad.loc[0, "path"] = str(tmp_path / "gone.wav")  # an unreadable row is left out
    tp = predict_taxonomy(model, config, bad, batch_size=4)
    assert isinstance(tp, TaxonomyPredictions) and len(tp) == 5
    assert tp.utt_ids == dev["utt_id"].tolist()[1:] == tp.rows["utt_id"].tolist()
    assert set(tp.probs) == {"bin", "vq"} and tp.probs["vq"].shape == (5, 4)
    np.testing.assert_allclose(tp.probs["bin"].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(tp.p_spoof, tp.probs["bin"][:, 0])
    assert tp.targets["vq"].tolist() == [0, 1, 2, 3, -1] and tp.targets["bin"].tolist() == [1, 0, 0, 0, 0]
    frame = tp.to_frame()
    assert [f"p_vq_{c}" for c in TASK_CLASSES["vq"]] == [c for c in frame.columns if c.startswith("p_vq_")]
    assert frame["true_vq"].tolist() == ["REAL", "MVQ", "SVQ", "SQ", ""]
    assert frame.attrs["frontend"] == "fine-tuned" and frame.attrs["variant"] == "D_VQ"
    np.testing.assert_allclose(frame["p_spoof"] + frame["p_bonafide"], 1.0)
    again = predict_taxonomy(model, config, dev, batch_size=6)
    np.testing.assert_allclose(again.probs["vq"][1:], tp.probs["vq"], rtol=1e-5, atol=1e-6)


def test_preset_and_recipe(tmp_path):
    c = TrainConfig.from_preset("codec_taxonomy", epochs=2)
    assert (c.model, c.variant, c.lr, c.weight_decay, c.batch_size, c.seed, c.epochs) == ("taxonomy", "M1", 1e-6, 1e-4, 8, 1234, 2)
    assert (c.w2v2_finetune, c.w2v2_layer, c.w2v2_normalize, c.rawboost, c.balance, c.lr_gamma) == (True, 24, False, 5, "aux", 1.0)
    assert c.frontend_kind == "fine-tuned"
    base = TrainConfig()  # the baselines' defaults are untouched
    assert (base.lr, base.batch_size, base.seed, base.rawboost, base.w2v2_finetune) == (5e-4, 24, 688, 0, False)
    r = tmp_path / "r.yaml"
    r.write_text("output_dir: out\ntrain:\n  preset: codec_taxonomy\n  variant: M2\n  w2v2_finetune: false\n")
    c = TrainConfig.from_recipe(r)
    assert (c.variant, c.lr, c.frontend_kind) == ("M2", 1e-6, "frozen")
    assert Path(c.out_dir) == (tmp_path / "out" / "runs" / "taxonomy_M2").resolve()
    assert PRESETS["codec_taxonomy"]["epochs"] == 20
    r.write_text("train:\n  preset: nope\n")
    with pytest.raises(ValueError, match="nope"):
        TrainConfig.from_recipe(r)
    with pytest.raises(ValueError, match="variant"):
        TrainConfig(model="taxonomy", variant="M3")
    with pytest.raises(ValueError, match="w2v2_finetune"):
        TrainConfig(model="w2v2_aasist", w2v2_finetune=True)
    with pytest.raises(ValueError, match="balance"):
        TrainConfig(model="taxonomy", balance="codec")
