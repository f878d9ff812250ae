"""Training and studying on the MLAAD source-tracing release unchanged: ``class_column: class_id``
labels each fake by its system's ``extra.class_id`` (the MLAAD reader's), not by an ST label."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.releases import write_release_protocol
from pipeline.releases.mlaad import prepare_mlaad
from test_refd_train import TINY
from test_release_mlaad import BARK, GRIFFIN, UNSEEN, XTTS, audio, wav
from test_w2v2_features import tiny_w2v2_dir
from train.config import TrainConfig
from train.data import CLASS_ID_BASE, apply_class_column, read_protocol
from train.predict import load_trained, predict
from train.trainer import train


def test_apply_class_column_rules():
    df = pd.DataFrame({
        "utt_id": ["r", "a", "b", "u"], "label": [0, -1, -1, -1], "is_fake": [False, True, True, True],
        "extra": ["{}", json.dumps({"class_id": 2}), json.dumps({"class_id": 0, "known": True}), json.dumps({"known": False})],
    })
    assert apply_class_column(df, "label") is df
    out = apply_class_column(df, "class_id")
    assert out["label"].tolist() == [0, CLASS_ID_BASE + 2, CLASS_ID_BASE, -1]
    assert out["st_label"].tolist() == [0, -1, -1, -1] and df["label"].tolist() == [0, -1, -1, -1]
    assert apply_class_column(out, "class_id")["label"].tolist() == out["label"].tolist()  # idempotent
    with pytest.raises(ValueError, match="class_column must be one of"):
        apply_class_column(df, "model_name")
    with pytest.raises(ValueError, match="needs column 'extra'"):
        apply_class_column(df.drop(columns="extra"), "class_id")
    with pytest.raises(ValueError, match="class_column must be 'label' or 'class_id'"):
        TrainConfig(class_column="system")


def make_mlaad_with_reals(root: Path) -> Path:
    """A replica whose lists also name bona fide files (``bonafide`` rows), so RE has reals."""
    seed = iter(range(1000))
    lists: dict[str, list[tuple[str, str]]] = {"train": [], "dev": [], "eval": []}
    for split, per_class in (("train", 4), ("dev", 2), ("eval", 2)):
        for system in (XTTS, BARK, GRIFFIN):
            lists[split] += [(audio(root, "en", system, f"{split}_{k}", next(seed)), system) for k in range(per_class)]
        for k in range(per_class):
            rel = f"mailabs/en/{split}_{k}.wav"
            wav(root / rel, next(seed))
            lists[split].append((rel, "bonafide"))
    lists["eval"] += [(audio(root, "de", UNSEEN, f"ood_{k}", next(seed)), UNSEEN) for k in range(3)]
    for name, entries in lists.items():
        (root / f"{name}.csv").write_text("path,model_name\n" + "".join(f"{p},{m}\n" for p, m in entries))
    return root


@pytest.fixture(scope="module")
def mlaad_protocol(tmp_path_factory):
    base = tmp_path_factory.mktemp("mlaad")
    df = prepare_mlaad(make_mlaad_with_reals(base / "MLAADv5"))
    written = write_release_protocol(df, base / "out")
    return written["train"].parent.parent


@pytest.fixture(scope="module")
def w2v2(tmp_path_factory):
    return tiny_w2v2_dir(tmp_path_factory.mktemp("w2v2") / "tiny")


def refd_config(protocol: Path, w2v2: Path, out: Path, **kw) -> TrainConfig:
    base = dict(model="refd", protocol_dir=str(protocol), out_dir=str(out), w2v2_model=str(w2v2), num_samples=3200,
                batch_size=4, epochs=2, refd_re_epochs=1, lr=1e-3, progress=False, log_every=1, lr_step_epochs=1,
                feature_cache_dir=str(out.parent / "cache"), model_kwargs=dict(TINY), class_column="class_id")
    base.update(kw)
    return TrainConfig(**base)


def test_st_labels_alone_cannot_train_on_mlaad(mlaad_protocol):
    train_df = read_protocol(mlaad_protocol, "train")
    assert set(train_df["label"]) == {0, -1}  # every MLAAD fake is "not an ST class"
    classes = read_protocol(mlaad_protocol, "train", class_column="class_id")
    ids = {GRIFFIN: 0, BARK: 1, XTTS: 2}  # sorted training systems (the reader's class ids)
    for name, i in ids.items():
        assert (classes.loc[classes["label_name"] == name, "label"] == CLASS_ID_BASE + i).all()
    ood = read_protocol(mlaad_protocol, "eval_ood", class_column="class_id")
    assert set(ood["label"]) == {-1}


def test_refd_trains_predicts_and_studies_mlaad_classes(mlaad_protocol, w2v2, tmp_path):
    from train.study import ModelRef, StudyConfig, run_study

    run = train(refd_config(mlaad_protocol, w2v2, tmp_path / "refd"))
    fusion = json.loads((run / "refd.json").read_text())
    assert fusion["classes"] == [0, CLASS_ID_BASE, CLASS_ID_BASE + 1, CLASS_ID_BASE + 2]
    model, config, classes = load_trained(run / "best.pt")
    assert config.class_column == "class_id"
    ev = read_protocol(mlaad_protocol, "eval_id")  # raw rows: predict labels them as the run was trained
    p = predict(model, config, ev, batch_size=4)
    assert sorted(set(p.labels.tolist())) == [0, CLASS_ID_BASE, CLASS_ID_BASE + 1, CLASS_ID_BASE + 2]
    assert p.logits.shape == (len(ev), len(classes))

    # a study reading ST labels refuses the run (its numbers would be wrong), naming the fix
    wrong = run_study(StudyConfig(models=(ModelRef("REFD", run),), protocol_dir=mlaad_protocol,
                                  output=tmp_path / "wrong", detectors=("msp",), plots=False))
    assert "study.class_column: class_id" in pd.read_csv(wrong.output / "table3_id_f1.csv").to_string()

    res = run_study(StudyConfig(models=(ModelRef("REFD", run),), protocol_dir=mlaad_protocol, output=tmp_path / "study",
                                detectors=("msp", "knn"), plots=False, class_column="class_id"))
    t3 = pd.read_csv(res.output / "table3_id_f1.csv")
    assert {XTTS, BARK, GRIFFIN} <= set(t3.columns)  # per-system F1 named by MLAAD system, not ST codec
    assert "Mimi" not in t3.columns and "real" in t3.columns
    assert 0.0 <= float(t3["macro_f1"].iloc[0]) <= 1.0
    dec = pd.read_csv(res.output / "refd_decision.csv")
    assert set(dec.subset) == {"eval_id", "eval_ood"} and dec.n.tolist() == [8, 3]


def test_study_recipe_key(tmp_path):
    from train.study import load_study_config

    recipe = tmp_path / "r.yaml"
    recipe.write_text("study:\n  protocol_dir: p\n  class_column: class_id\n")
    (tmp_path / "p").mkdir()
    assert load_study_config(recipe).class_column == "class_id"
    recipe.write_text("study:\n  protocol_dir: p\n  class_column: system\n")
    with pytest.raises(ValueError, match="class_column must be one of"):
        load_study_config(recipe)


def test_cli_class_column(mlaad_protocol, w2v2, tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    out = tmp_path / "runs" / "refd"
    r = CliRunner().invoke(app, ["train", "--model", "refd", "--protocol-dir", str(mlaad_protocol), "--out", str(out),
                                 "--w2v2-model", str(w2v2), "--epochs", "1", "--batch-size", "4", "--no-progress"])
    assert r.exit_code != 0 and "class_column: class_id" in r.output  # ST labels: no fake class to train
    assert "--class-column" in CliRunner().invoke(app, ["study", "--help"]).output
