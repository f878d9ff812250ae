"""train.trainer / train.predict: a tiny run end to end, exact resume, best-by-dev-loss, the
feature cache across epochs and runs, predict on eval rows, and the ``ncst train`` command."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from test_train_data import make_protocol
from test_w2v2_features import tiny_w2v2_dir
from train.config import TrainConfig
from train.data import read_protocol
from train.features import load_frontend
from train.predict import Predictions, load_trained, predict
from train.trainer import lr_at, train

SUBSETS = {"train": {0: 4, 1: 4, 3: 4}, "dev": {0: 2, 1: 2, 3: 2}, "eval_ood": {0: 1, 7: 2}}


@pytest.fixture(scope="module")
def protocol(tmp_path_factory):
    return make_protocol(tmp_path_factory.mktemp("toy"), SUBSETS, seconds=0.4)


def cfg(protocol, out, **kw) -> TrainConfig:
    base = dict(model="mel_lcnn", protocol_dir=str(protocol), out_dir=str(out), num_samples=8000, batch_size=4,
                epochs=2, lr=1e-3, progress=False, log_every=1)
    base.update(kw)
    return TrainConfig(**base)


def test_config_defaults_are_the_papers():
    c = TrainConfig()
    assert (c.num_samples, c.sample_rate, c.epochs, c.batch_size, c.seed) == (64600, 16000, 50, 24, 688)
    assert (c.lr, c.weight_decay, c.betas, c.eps) == (5e-4, 5e-4, (0.9, 0.999), 1e-8)
    assert [lr_at(c, e) for e in (0, 9, 10, 19, 20, 49)] == [5e-4, 5e-4, 2.5e-4, 2.5e-4, 1.25e-4, 5e-4 / 16]
    assert not c.random_crop and c.w2v2_layer == 5 and c.w2v2_model == "facebook/wav2vec2-xls-r-300m"
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig(model="resnet")
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_dict({"bogus": 1})


def test_recipe_then_flags_override(tmp_path):
    r = tmp_path / "recipe.yaml"
    r.write_text("name: x\ntrain:\n  model: aasist\n  epochs: 7\n  lr: 0.001\n  random_crop: true\n")
    c = TrainConfig.from_recipe(r, epochs=3, batch_size=None)
    assert (c.model, c.epochs, c.lr, c.random_crop, c.batch_size) == ("aasist", 3, 1e-3, True, 24)
    r.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ValueError, match="epoch"):
        TrainConfig.from_recipe(r)


def test_run_layout_metrics_and_best_by_dev_loss(protocol, tmp_path):
    run = train(cfg(protocol, tmp_path / "run", epochs=3))
    for name in ("best.pt", "last.pt", "metrics.jsonl", "metrics.csv", "config.json"):
        assert (run / name).exists(), name
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in recs if r["type"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert all({"train_loss", "dev_loss", "dev_acc", "dev_macro_f1", "lr"} <= set(r) for r in epochs)
    assert [r for r in recs if r["type"] == "step"]
    best_epoch = min(epochs, key=lambda r: r["dev_loss"])["epoch"]
    best = torch.load(run / "best.pt", weights_only=True)
    last = torch.load(run / "last.pt", weights_only=True)
    assert best["epoch"] == best_epoch and last["epoch"] == 3 and last["step"] == 3 * 3
    assert best["classes"] == [0, 1, 3] and best["config"]["classes"] == [0, 1, 3]
    assert best["best_metric"] == pytest.approx(min(r["dev_loss"] for r in epochs))
    assert json.loads((run / "config.json").read_text())["classes"] == [0, 1, 3]
    assert pd.read_csv(run / "metrics.csv")["epoch"].tolist() == [1, 2, 3]
    # the lr schedule: StepLR halves every lr_step_epochs epochs
    with pytest.raises(FileExistsError, match="resume"):
        train(cfg(protocol, tmp_path / "run", epochs=3))


def test_resume_equals_uninterrupted_run(protocol, tmp_path):
    kw = dict(lr_step_epochs=1, random_crop=True)  # the scheduler and crop RNG must resume too
    full = train(cfg(protocol, tmp_path / "full", **kw))
    part = train(cfg(protocol, tmp_path / "part", epochs=1, **kw))
    ck1 = torch.load(part / "last.pt", weights_only=True)
    assert ck1["epoch"] == 1 and ck1["step"] == 3
    part = train(cfg(protocol, tmp_path / "part", resume=True, **kw))
    a = torch.load(full / "last.pt", weights_only=True)
    b = torch.load(part / "last.pt", weights_only=True)
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"]) == (2, 6)
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 2
    assert b["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 / 4)
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"], rtol=1e-5, atol=1e-9)
    ra = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(x) for x in (part / "metrics.jsonl").read_text().splitlines()]
    ea = [r for r in ra if r["type"] == "epoch"]
    eb = [r for r in rb if r["type"] == "epoch"]
    assert [r["epoch"] for r in eb] == [1, 2]
    assert [r["dev_loss"] for r in ea] == pytest.approx([r["dev_loss"] for r in eb], rel=1e-5)


def test_waveform_run_learns_and_predicts(protocol, tmp_path):
    run = train(cfg(protocol, tmp_path / "run", epochs=4, num_samples=4000, max_steps_per_epoch=3))
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"epoch"' in x]
    ep = [r for r in recs if r["type"] == "epoch"]
    assert ep[-1]["train_loss"] < ep[0]["train_loss"]
    model, config, classes = load_trained(run)
    assert classes == [0, 1, 3] and config.num_samples == 4000 and not model.training
    df = read_protocol(protocol, "eval_ood")
    preds = predict(model, config, df, batch_size=2)
    assert isinstance(preds, Predictions)
    assert preds.utt_ids == df["utt_id"].tolist()
    assert preds.labels.tolist() == df["label"].tolist()  # ST labels, 7 is OOD
    assert preds.logits.shape == (3, 3) and preds.embeddings.shape == (3, 256) and preds.classes == [0, 1, 3]
    again = predict(model, config, df, batch_size=3)
    np.testing.assert_allclose(preds.logits, again.logits, rtol=1e-5, atol=1e-5)  # eval mode, fixed cut
    # an unreadable row is left out, the rest is scored
    bad = df.copy()
    bad.loc[1, "path"] = str(tmp_path / "gone.wav")
    p2 = predict(model, config, bad)
    assert p2.utt_ids == [df["utt_id"][0], df["utt_id"][2]]


def test_w2v2_run_computes_features_once(protocol, tmp_path):
    w2v = tiny_w2v2_dir(tmp_path / "w2v2")
    c = cfg(protocol, tmp_path / "run", model="w2v2_aasist", w2v2_model=str(w2v), epochs=2, num_samples=8000,
            feature_cache_dir=str(tmp_path / "cache"))
    fe = load_frontend(str(w2v), 5, None, "cpu")
    calls0 = fe.calls
    run = train(c)
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    feats = [r for r in recs if r["type"] == "features"]
    assert [(r["subset"], r["computed"]) for r in feats] == [("train", 12), ("dev", 6)]
    first_run_calls = fe.calls - calls0
    assert first_run_calls == 3 + 2  # one front-end call per batch of 4, train + dev, before epoch 1
    assert len([r for r in recs if r["type"] == "epoch"]) == 2  # and none during the two epochs
    ck = torch.load(run / "last.pt", weights_only=True)
    assert ck["ssl_dim"] == 32 and not any(k.startswith("frontend") for k in ck["model"])
    # a second run over the same cache runs the front end zero times
    train(c.replace(out_dir=str(tmp_path / "run2")))
    assert fe.calls - calls0 == first_run_calls
    # predict reuses the cache for known rows and adds new ones
    model, config, classes = load_trained(run / "best.pt")
    dev = read_protocol(protocol, "dev")
    before = fe.calls
    p = predict(model, config, dev)
    assert fe.calls == before and p.embeddings.shape == (6, 160)
    p_ood = predict(model, config, read_protocol(protocol, "eval_ood"))
    assert fe.calls == before + 1 and p_ood.logits.shape == (3, 3)


def test_cli_train(protocol, tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    out = tmp_path / "cli_run"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  num_samples: 4000\n  progress: false\n  lr_step_epochs: 5\n")
    res = CliRunner().invoke(app, ["train", "--model", "mel_lcnn", "--protocol-dir", str(protocol), "--out", str(out),
                                   "--epochs", "1", "--batch-size", "6", "--device", "cpu", "--recipe", str(recipe),
                                   "--max-steps-per-epoch", "1"])
    assert res.exit_code == 0, res.output
    conf = json.loads((out / "config.json").read_text())
    assert (conf["model"], conf["epochs"], conf["batch_size"], conf["num_samples"], conf["lr_step_epochs"]) == (
        "mel_lcnn", 1, 6, 4000, 5)
    assert str(out / "best.pt") in res.output.replace("\n", "") or "best.pt" in res.output
    res = CliRunner().invoke(app, ["train", "--model", "mel_lcnn", "--protocol-dir", str(protocol), "--out", str(out),
                                   "--epochs", "2", "--recipe", str(recipe), "--max-steps-per-epoch", "1", "--resume"])
    assert res.exit_code == 0, res.output
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2


def test_run_goes_on_past_unreadable_files(tmp_path, caplog):
    import logging

    from manifests import write_manifest

    pdir = make_protocol(tmp_path / "d", {"train": {0: 3, 1: 3}, "dev": {0: 1, 1: 1}}, seconds=0.3)
    df = read_protocol(pdir, "train")
    df.loc[2, "path"] = str(tmp_path / "vanished.wav")
    write_manifest(df, pdir / "train.parquet", kind="protocol")
    with caplog.at_level(logging.WARNING):
        run = train(cfg(pdir, tmp_path / "run", epochs=1, num_samples=4000))
    assert "vanished.wav" in caplog.text
    ep = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"type": "epoch"' in x]
    assert ep[0]["train_n"] == 5


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mel_lcnn", "aasist"])
def test_default_length_training_step(protocol, tmp_path, model):
    """The paper's 64600-sample input through a full training step and predict (slow on CPU)."""
    run = train(cfg(protocol, tmp_path / model, model=model, num_samples=64600, epochs=1, max_steps_per_epoch=1,
                    limit=4))
    m, config, classes = load_trained(run)
    p = predict(m, config, read_protocol(protocol, "dev").iloc[:2], batch_size=2)
    assert config.num_samples == 64600 and p.logits.shape == (2, len(classes))
