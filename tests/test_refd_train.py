"""REFD two-stage training (train.refd_trainer): RE then FD over the feature cache, exact resume
(mid FD stage and at the stage boundary), the fitted fusion in best.pt, predict, CLI, study rows."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from test_train_data import make_protocol
from test_w2v2_features import tiny_w2v2_dir
from train.config import TrainConfig
from train.data import read_protocol
from train.predict import load_trained, predict
from train.trainer import train

SUBSETS = {"train": {0: 4, 1: 4, 3: 4}, "dev": {0: 2, 1: 2, 3: 2}, "eval_id": {0: 2, 1: 2, 3: 2},
           "eval_ood": {7: 3}}
TINY = {"conformer_dim": 8, "conformer_heads": 2, "conformer_ffn_dim": 16, "conformer_layers": 1,
        "conformer_kernel": 3, "dropout": 0.0}


@pytest.fixture(scope="module")
def protocol(tmp_path_factory):
    return make_protocol(tmp_path_factory.mktemp("refd"), SUBSETS, seconds=0.4)


@pytest.fixture(scope="module")
def w2v2(tmp_path_factory):
    return tiny_w2v2_dir(tmp_path_factory.mktemp("w2v2") / "tiny")


def cfg(protocol, w2v2, out, **kw) -> TrainConfig:
    base = dict(model="refd", protocol_dir=str(protocol), out_dir=str(out), w2v2_model=str(w2v2), num_samples=8000,
                batch_size=4, epochs=2, refd_re_epochs=2, lr=1e-3, progress=False, log_every=1, lr_step_epochs=1,
                feature_cache_dir=str(out.parent / "cache"), model_kwargs=dict(TINY))
    base.update(kw)
    return TrainConfig(**base)


def epochs_of(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"epoch"' in x
            and json.loads(x)["type"] == "epoch"]


def assert_same(a: dict, b: dict) -> None:
    assert (a["epoch"], a["step"], a["stage"]) == (b["epoch"], b["step"], b["stage"])
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    for k in a["optimizer"]["state"]:
        torch.testing.assert_close(a["optimizer"]["state"][k]["exp_avg"], b["optimizer"]["state"][k]["exp_avg"],
                                   rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("backend", ["conformer", "aasist"])
def test_two_stages_train_and_resume_exactly(protocol, w2v2, tmp_path, backend):
    full = train(cfg(protocol, w2v2, tmp_path / "full", refd_backend=backend))
    ep = epochs_of(full)
    assert [(r["epoch"], r["stage"]) for r in ep] == [(1, "re"), (2, "re"), (3, "fd"), (4, "fd")]
    assert [r["train_n"] for r in ep] == [12, 12, 8, 8]  # RE: every row; FD: fakes only
    assert all(np.isfinite(r["dev_loss"]) for r in ep) and "train_npair" in ep[-1]
    # stopped mid FD stage (epochs=1), resumed to 2: the same weights, optimiser and scheduler
    part = train(cfg(protocol, w2v2, tmp_path / "part", refd_backend=backend, epochs=1))
    assert torch.load(part / "last.pt", weights_only=True)["stage"] == "fd"
    train(cfg(protocol, w2v2, tmp_path / "part", refd_backend=backend, resume=True))
    a = torch.load(full / "last.pt", weights_only=True)
    b = torch.load(part / "last.pt", weights_only=True)
    assert_same(a, b)
    assert [r["dev_loss"] for r in epochs_of(part)] == pytest.approx([r["dev_loss"] for r in ep], rel=1e-5)
    # FD training leaves RE as its best epoch left it
    best = torch.load(full / "best.pt", weights_only=True)
    assert best["refd"]["fitted_on"] == "dev" and bool(best["model"]["fitted"])
    fusion = json.loads((full / "refd.json").read_text())
    assert fusion["classes"] == [0, 1, 3] and fusion["backend"] == backend
    assert float(best["model"]["ood_threshold"]) == pytest.approx(fusion["ood_threshold"])


def test_resume_at_stage_boundary(protocol, w2v2, tmp_path, monkeypatch):
    """A run killed right after its last RE epoch resumes into FD (best RE weights, fresh FD
    optimiser) and ends where an uninterrupted run ends."""
    import train.refd_trainer as rt

    kw = dict(epochs=1, refd_re_epochs=1)
    full = train(cfg(protocol, w2v2, tmp_path / "full", **kw))
    real_optimiser = rt._optimiser

    def crash_at_fd(c, model, stage):
        if stage == "fd":
            raise KeyboardInterrupt("killed at the stage boundary")
        return real_optimiser(c, model, stage)

    monkeypatch.setattr(rt, "_optimiser", crash_at_fd)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        train(cfg(protocol, w2v2, part, **kw))
    ck = torch.load(part / "last.pt", weights_only=True)
    assert (ck["epoch"], ck["stage"]) == (1, "re") and not (part / "refd.json").exists()
    monkeypatch.setattr(rt, "_optimiser", real_optimiser)
    with pytest.raises(FileExistsError, match="resume"):
        train(cfg(protocol, w2v2, part, **kw))
    train(cfg(protocol, w2v2, part, resume=True, **kw))
    assert_same(torch.load(full / "last.pt", weights_only=True), torch.load(part / "last.pt", weights_only=True))
    a, b = torch.load(full / "best.pt", weights_only=True), torch.load(part / "best.pt", weights_only=True)
    assert a["refd"]["ood_threshold"] == pytest.approx(b["refd"]["ood_threshold"])
    assert a["refd"]["re_threshold"] == pytest.approx(b["refd"]["re_threshold"])
    # the RE stage cannot change once the run has left it
    with pytest.raises(ValueError, match="RE stage"):
        train(cfg(protocol, w2v2, part, resume=True, epochs=1, refd_re_epochs=2))


def test_predict_logits_follow_the_refd_decision(protocol, w2v2, tmp_path):
    run = train(cfg(protocol, w2v2, tmp_path / "run", epochs=1, refd_re_epochs=1))
    model, config, classes = load_trained(run)
    assert classes == [0, 1, 3] and config.model == "refd"
    df = read_protocol(protocol, "eval_id")
    p = predict(model, config, df, batch_size=3)
    assert p.logits.shape == (6, 3) and p.embeddings.shape == (6, 8)
    x = torch.randn(5, 10, 32)
    with torch.no_grad():
        st = model.stages(x)
        logits, emb = model(x)
    real = (st["real_score"] >= model.re_threshold).numpy()
    pred = logits.argmax(1).numpy()
    assert ((pred == 0) == real).all()  # column 0 exactly where RE says real
    fake_pred = st["fused"].argmax(1).numpy() + 1
    assert (pred[~real] == fake_pred[~real]).all()  # else the fused FD class


def test_refd_needs_real_rows(tmp_path, w2v2):
    proto = make_protocol(tmp_path / "p", {"train": {1: 2, 3: 2, 4: 2}}, seconds=0.3)
    with pytest.raises(ValueError, match="real rows"):
        train(cfg(proto, w2v2, tmp_path / "run", epochs=1, refd_re_epochs=1))


def test_config_and_cli(protocol, w2v2, tmp_path):
    with pytest.raises(ValueError, match="refd_backend"):
        TrainConfig(model="refd", refd_backend="lstm")
    c = TrainConfig(model="refd", epochs=3, refd_re_epochs=None)
    assert c.refd_stage_epochs == (3, 3) and c.uses_frozen_w2v2 and c.run_name == "refd"
    from typer.testing import CliRunner

    from pipeline.cli import app

    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["train", "--model", "refd", "--backend", "aasist", "--protocol-dir", str(protocol),
                                   "--out", str(out), "--epochs", "1", "--w2v2-model", str(w2v2), "--batch-size", "4",
                                   "--no-progress", "--feature-cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    conf = json.loads((out / "config.json").read_text())
    assert conf["model"] == "refd" and conf["refd_backend"] == "aasist"
    assert (out / "refd.json").exists()


def test_study_adds_refd_rows_frechet_and_fusion(protocol, w2v2, tmp_path):
    from train.study import ModelRef, StudyConfig, run_study

    run = train(cfg(protocol, w2v2, tmp_path / "refd", epochs=1, refd_re_epochs=1))
    res = run_study(StudyConfig(models=(ModelRef("REFD", run),), protocol_dir=protocol, output=tmp_path / "study",
                                detectors=("msp", "knn")))
    tables = {Path(p).stem for p in res.tables}
    assert {"table3_id_f1", "refd_frechet", "refd_fusion_sweep", "refd_decision"} <= tables
    t3 = pd.read_csv(res.output / "table3_id_f1.csv")
    assert "REFD" in t3.to_string()
    fr = pd.read_csv(res.output / "refd_frechet.csv")
    # eval_id classes against the same train class; the unseen system 7 against all train fakes
    assert set(fr[fr.set == "eval_id"].label) == {0, 1, 3} and (fr[fr.set == "eval_id"].reference == "same class").all()
    row7 = fr[(fr.set == "eval_ood") & (fr.label == 7)].iloc[0]
    assert row7.reference == "all" and row7.n_set == 3 and row7.frechet > 0
    sw = pd.read_csv(res.output / "refd_fusion_sweep.csv")
    assert sw.w.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0] and sw["eval_ood auc"].between(0, 1).all()
    dec = pd.read_csv(res.output / "refd_decision.csv")
    assert dec.subset.tolist() == ["eval_id", "eval_ood"] and dec.n.tolist() == [6, 3]
    assert dec[["real", "unknown", "known fake"]].sum(axis=1).tolist() == pytest.approx([1.0, 1.0])
    # on the unseen system the right answer is "unknown" alone
    assert dec.correct[1] == pytest.approx(dec.unknown[1])
    html = res.report.read_text()
    assert 'id="refd_frechet"' in html and "REFD - Fréchet distance per class" in html
    assert "REFD fusion: in-domain F1 vs OOD AUC over w" in html  # the sweep plot's caption
    assert res.results["refd"]["refd_frechet"]
