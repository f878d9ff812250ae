"""The codec-taxonomy model in the study: the pure tables (weighted F1 against scikit-learn on hand
data, EER polarity, CoRS / CoSG per condition with the seen mark), the study end to end with a
baseline and a taxonomy run side by side (injected predictions), a tiny trained M1 run through
the CLI, the train CLI's --variant / --preset, and recipes/codecfake_plus.yaml."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import f1_score

from manifests import write_manifest
from test_study import KnownPredictor, _recipe, _row, build_protocol
from train import study as S
from train.taxonomy import TASK_CLASSES, task_targets
from train.taxonomy_tables import TaxonomySubset, class_f1_rows, condition_rows, f1_rows, taxonomy_results

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def frame(spec) -> pd.DataFrame:
    """Protocol-like rows from ``[(is_fake, aux, decoder, vq, condition, extra)]``."""
    return pd.DataFrame([{"utt_id": f"u{i}", "is_fake": f, "aux": a, "decoder": d, "vq": q, "condition": c,
                          "extra": json.dumps(e or {})} for i, (f, a, d, q, c, e) in enumerate(spec)])


def onehot(classes, n_cls, sharp=6.0) -> np.ndarray:
    """Softmax-like rows peaked on ``classes``."""
    logits = np.zeros((len(classes), n_cls))
    logits[np.arange(len(classes)), classes] = sharp
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def subset(rows: pd.DataFrame, pred: dict[str, list[int]], p_spoof=None, tasks=("bin", "aux", "dec", "vq")) -> TaxonomySubset:
    probs = {t: onehot(pred[t], len(TASK_CLASSES[t])) for t in tasks if t in pred}
    if p_spoof is not None:  # bin head: column 0 spoof, 1 bona fide
        probs["bin"] = np.c_[p_spoof, 1 - np.asarray(p_spoof)]
    return TaxonomySubset(rows, probs, np.zeros((len(rows), 4), np.float32), tasks, "M1", "fine-tuned")


# ----------------------------------------------------------------------------- pure tables


def test_weighted_f1_rows_match_sklearn_on_hand_data():
    rows = frame([(False, "real", "real", "real", "r", None)] * 3 + [
        (True, "none", "time", "MVQ", "a", None), (True, "none", "time", "MVQ", "a", None),
        (True, "semantic", "frequency", "SVQ", "b", None), (True, "disentangle", "time", "SQ", "c", None),
        (True, "unknown", "unknown", "unknown", "x", None)])  # unknown class: out of the task's F1
    aux_pred = [0, 0, 1, 1, 2, 2, 3, 0]  # REAL, REAL, none(!), none, semantic(!)... per row
    dec_pred = [0, 0, 0, 1, 1, 2, 1, 2]
    vq_pred = [0, 1, 0, 1, 1, 2, 3, 1]
    sp = subset(rows, {"bin": [1, 1, 1, 0, 0, 0, 0, 0], "aux": aux_pred, "dec": dec_pred, "vq": vq_pred})
    (row,) = f1_rows("m", {"eval_id": sp})
    truth = task_targets(rows)
    known = slice(0, 7)
    for task, pred, col in (("aux", aux_pred, "AUX F1"), ("dec", dec_pred, "DEC F1"), ("vq", vq_pred, "VQ F1")):
        want = f1_score(truth[task][known], np.asarray(pred)[known], average="weighted", zero_division=0)
        assert row[col] == pytest.approx(want), task
    assert row["BIN F1"] == 1.0 and row["EER"] == 0.0 and row["EER with"] == ""
    assert (row["n"], row["n_bonafide"], row["n_spoof"], row["frontend"]) == (8, 3, 5, "fine-tuned")
    # per class: scikit-learn's average=None over the classes seen or predicted
    detail = pd.DataFrame(class_f1_rows("m", {"eval_id": sp}))
    aux = detail[detail.task == "AUX"].set_index("class")
    want = f1_score(truth["aux"][known], np.asarray(aux_pred)[known], labels=[0, 1, 2, 3], average=None, zero_division=0)
    assert aux.loc[["REAL", "none", "semantic", "disentangle"], "f1"].to_numpy() == pytest.approx(want)
    assert aux.loc["REAL", "support"] == 3 and aux.loc["none", "support"] == 2


def test_eer_polarity_and_one_class_subsets_borrow_from_eval_id():
    rows = frame([(False, "real", "real", "real", "r", None)] * 2 + [(True, "none", "time", "MVQ", "a", None)] * 2)
    pred = {t: [0, 0, 1, 1] for t in ("bin", "aux", "dec", "vq")}
    right = subset(rows, pred, p_spoof=[0.1, 0.2, 0.8, 0.9])  # P(spoof) high for spoofs
    wrong = subset(rows, pred, p_spoof=[0.9, 0.8, 0.2, 0.1])  # the other way round
    assert f1_rows("m", {"eval_id": right})[0]["EER"] == 0.0
    assert f1_rows("m", {"eval_id": wrong})[0]["EER"] == 1.0
    fakes = subset(rows.iloc[2:].reset_index(drop=True), {t: [1, 1] for t in pred}, p_spoof=[0.15, 0.95])
    reals = subset(rows.iloc[:2].reset_index(drop=True), {t: [0, 0] for t in pred}, p_spoof=[0.95, 0.05])
    got = {r["subset"]: r for r in f1_rows("m", {"eval_id": right, "eval_unseen": fakes, "unseen_real": reals})}
    # the unseen spoof at 0.15 sits between eval_id's reals (0.1, 0.2): half the reals above it
    assert got["eval_unseen"]["EER with"] == "eval_id bona fide" and got["eval_unseen"]["EER"] == pytest.approx(0.5)
    # an unseen real at 0.95 sits above eval_id's spoofs (0.8, 0.9)
    assert got["unseen_real"]["EER with"] == "eval_id spoofs" and got["unseen_real"]["EER"] == pytest.approx(0.5)
    alone = f1_rows("m", {"eval_unseen": fakes})[0]
    assert str(alone["EER"]).startswith("n/a") and alone["EER with"] == ""


def test_cosg_conditions_seen_unseen_and_missing_heads():
    seen, unseen = {"cosg_seen": True}, {"cosg_seen": False}
    rows = frame([(False, "real", "real", "real", "real", seen), (False, "real", "real", "real", "real", unseen),
                  (True, "none", "time", "MVQ", "VALLE", seen), (True, "none", "time", "MVQ", "VALLE", seen),
                  (True, "disentangle", "frequency", "SVQ", "SINGLECODEC", unseen),
                  (True, "disentangle", "frequency", "SVQ", "SINGLECODEC", unseen)])
    sp = subset(rows, {"aux": [0, 0, 1, 1, 3, 1], "dec": [0, 0, 1, 1, 2, 2], "vq": [0, 0, 1, 2, 2, 2]},
                p_spoof=[0.1, 0.3, 0.9, 0.8, 0.2, 0.7])
    got = {r["condition"]: r for r in condition_rows("m", sp)}
    assert list(got) == ["SINGLECODEC", "VALLE", "seen", "unseen", "all"]
    v, s = got["VALLE"], got["SINGLECODEC"]
    assert (v["seen"], v["AUX"], v["AUX acc"], v["VQ acc"], v["VQ pred"]) == ("yes", "none", 1.0, 0.5, "MVQ")
    assert (s["seen"], s["AUX"], s["AUX acc"], s["DEC acc"], s["n_bonafide"]) == ("no", "disentangle", 0.5, 1.0, 2)
    assert v["EER"] == 0.0 and s["spoof rate"] == 0.5
    assert got["seen"]["n_spoof"] == 2 and got["all"]["n_spoof"] == 4 and got["all"]["AUX"] == "mixed"
    # the F1 table splits the subset by the mark (reals by their own mark)
    f1 = {r["subset"]: r for r in f1_rows("m", {"alm": sp})}
    assert f1["alm (CoSG seen)"]["n"] == 3 and f1["alm (CoSG unseen)"]["n_bonafide"] == 1
    assert f1["alm (CoSG unseen)"]["EER with"] == "" and f1["alm (CoSG unseen)"]["EER"] == 0.5  # 0.2 < 0.3 real
    # a model without the AUX head: its cells say so
    no_aux = subset(rows, {"bin": [1, 1, 0, 0, 0, 0], "vq": [0, 0, 1, 2, 2, 2]}, tasks=("bin", "vq"))
    row = condition_rows("m", no_aux)[0]
    assert row["AUX acc"] == "n/a (no AUX head)" and f1_rows("m", {"alm": no_aux})[0]["AUX F1"] == "n/a (no AUX head)"


# ----------------------------------------------------------------------------- the study


class TaxonomyPredictor:
    """An M1 run: right on every head, except that spoofs of condition 'WavTokenizer' are traced to
    AUX semantic and that ID SNAC spoofs get a low P(spoof)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, ref, rows: pd.DataFrame):
        self.calls += 1
        y = task_targets(rows)
        probs = {}
        for task in ("aux", "dec", "vq"):
            cls = np.where(y[task] >= 0, y[task], 1)
            if task == "aux":
                cls = np.where(rows["condition"].to_numpy() == "WavTokenizer", 2, cls)
            probs[task] = onehot(cls, len(TASK_CLASSES[task]))
        fake = rows["is_fake"].to_numpy(dtype=bool)
        p = np.where(fake, 0.9, 0.1)
        p = np.where(fake & (rows["condition"].to_numpy() == "SNAC"), 0.05, p)
        probs["bin"] = np.c_[p, 1 - p]
        return SimpleNamespace(utt_ids=list(rows["utt_id"]), probs=probs, embeddings=np.zeros((len(rows), 8), np.float32),
                               tasks=("bin", "aux", "dec", "vq"), variant="M1", frontend="fine-tuned")


def _taxonomy_protocol(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    pdir = build_protocol(out)
    unseen = [_row(f"unseen-{i}", 6, "eval_unseen", "snac_24k", f"/x/u{i}.wav") for i in range(3)]
    write_manifest(unseen, pdir / "eval_unseen.parquet", kind="protocol")
    cosg = [_row(f"cosg-real-{i}", 0, "alm", "real", f"/x/c{i}.wav") for i in range(2)]
    cosg += [_row(f"cosg-{s}-{i}", -1, "alm", s, f"/x/{s}{i}.wav", is_fake=True) for s in ("VALLE", "NS3") for i in range(2)]
    for r in cosg:
        r["extra"] = json.dumps({"cosg_seen": r["condition"] != "NS3"})
        if r["condition"] == "NS3":
            r.update(aux="disentangle", decoder="time", vq="MVQ")
    write_manifest(cosg, pdir / "alm.parquet", kind="protocol")
    for name in ("known", "taxonomy_M1"):
        (out / "runs" / name).mkdir(parents=True)
        (out / "runs" / name / "best.pt").write_bytes(b"stand-in")
    return _recipe(tmp_path, {"models": ["known", "taxonomy_M1"], "plots": True})


def test_study_gives_taxonomy_runs_their_tables_and_leaves_the_baselines_alone(tmp_path):
    recipe = _taxonomy_protocol(tmp_path)
    known, tax = KnownPredictor(), TaxonomyPredictor()

    def predict(ref, rows):
        return (tax if ref.name == "taxonomy_M1" else known)(ref, rows)

    res = S.run_study_from_recipe(recipe, predict_fn=predict)
    out = res.output
    models = res.results["models"]
    assert models["taxonomy_M1"]["kind"] == "taxonomy" and models["taxonomy_M1"]["frontend"] == "fine-tuned"
    # the baselines' tables hold the baseline alone
    for stem in ("table3_id_f1", "table4_robustness", "table6_alm", "cors_detection"):
        assert set(pd.read_csv(out / f"{stem}.csv", comment=">")["model"]) == {"known"}, stem
    f1 = pd.read_csv(out / "taxonomy_f1.csv", comment=">")
    assert set(f1["model"]) == {"taxonomy_M1"} and set(f1["frontend"]) == {"fine-tuned"}
    f1 = f1.set_index("subset")
    assert {"eval_id", "eval_unseen", "eval_ood", "alm", "alm (CoSG seen)", "alm (CoSG unseen)"} <= set(f1.index)
    assert float(f1.loc["eval_id", "AUX F1"]) == 1.0 and float(f1.loc["eval_id", "VQ F1"]) == 1.0
    # eval_id: the 4 SNAC spoofs (of 24) score below every real (4): some but not most errors
    assert 0.0 < float(f1.loc["eval_id", "EER"]) < 0.5
    assert f1.loc["eval_unseen", "EER with"] == "eval_id bona fide" and int(f1.loc["eval_unseen", "n"]) == 3
    # the CoSG unseen half has no reals of its own: it borrows its subset's (alm), not eval_id's
    assert f1.loc["alm (CoSG unseen)", "EER with"] == "alm bona fide"
    # eval_ood: the WavTokenizer spoofs (4 of 20) traced to AUX semantic
    truth = np.r_[np.ones(20, int)]
    pred = np.r_[np.full(4, 2), np.ones(16, int)]
    assert float(f1.loc["eval_ood", "AUX F1"]) == pytest.approx(f1_score(truth, pred, average="weighted", zero_division=0))
    cosg = pd.read_csv(out / "taxonomy_cosg.csv", comment=">").set_index("condition")
    assert cosg.loc["NS3", "seen"] == "no" and cosg.loc["NS3", "AUX"] == "disentangle" and float(cosg.loc["NS3", "AUX acc"]) == 1.0
    assert cosg.loc["VALLE", "AUX acc"] == "n/a (class unknown)" and cosg.loc["VALLE", "seen"] == "yes"
    assert {"seen", "unseen", "all"} <= set(cosg.index)
    assert "EER convention: interpolated" in (out / "taxonomy_f1.md").read_text()
    # report: the taxonomy tables and one confusion figure per head
    html = res.report.read_text()
    for title in ("Codec taxonomy - weighted F1", "Codec taxonomy on CoSG", "codec-taxonomy M1"):
        assert title in html
    assert sorted(p.name for p in (out / "plots" / "taxonomy_M1").glob("*.png")) == [
        "confusion_aux.png", "confusion_bin.png", "confusion_dec.png", "confusion_vq.png"]
    # a second run reads the cached per-head probabilities
    calls = tax.calls
    again = S.run_study_from_recipe(recipe, predict_fn=predict, plots=False)
    assert tax.calls == calls
    assert again.results["models"]["taxonomy_M1"]["taxonomy_f1"] == models["taxonomy_M1"]["taxonomy_f1"]


def test_taxonomy_results_of_empty_and_unknown_sets():
    res = taxonomy_results("m", {"eval_id": None})
    assert res["taxonomy_f1"][0]["subset"] == S.NA and res["taxonomy_cors"][0]["condition"] == S.NA


@pytest.fixture(scope="module")
def trained_m1(tmp_path_factory):
    from test_taxonomy_train import make_taxonomy_protocol
    from train.config import TrainConfig
    from train.features import make_random_wav2vec2
    from train.trainer import train

    root = tmp_path_factory.mktemp("tax_study")
    counts = {"train": {"real": 4, "codec_a": 2, "codec_b": 2, "codec_c": 2}, "dev": {"real": 2, "codec_a": 1},
              "eval_id": {"real": 2, "codec_a": 2, "codec_c": 2}, "eval_unseen": {"codec_b": 2}}
    pdir = make_taxonomy_protocol(root, counts)
    cfg = TrainConfig.from_preset("codec_taxonomy", protocol_dir=str(pdir), out_dir=str(root / "runs" / "taxonomy_M1"),
                                  w2v2_model=str(make_random_wav2vec2(root / "w2v2", num_layers=2)), w2v2_layer=2, epochs=1, batch_size=4,
                                  num_samples=4000, progress=False, device="cpu")
    return root, Path(train(cfg))


def test_study_of_a_trained_m1_run_via_cli(trained_m1):
    from typer.testing import CliRunner

    from pipeline.cli import app

    root, run = trained_m1
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": "tax", "output_dir": ".", "study": {"models": ["taxonomy_M1"], "batch_size": 4}}))
    res = CliRunner().invoke(app, ["study", str(recipe)])
    assert res.exit_code == 0, res.output
    results = json.loads((root / "study" / "results.json").read_text())
    m = results["models"]["taxonomy_M1"]
    assert m["status"] == "ok" and m["kind"] == "taxonomy" and m["variant"] == "M1" and m["frontend"] == "fine-tuned"
    f1 = {r["subset"]: r for r in m["taxonomy_f1"]}
    assert set(f1) == {"eval_id", "eval_unseen"}
    for task in ("BIN", "AUX", "DEC", "VQ"):
        assert 0.0 <= f1["eval_id"][f"{task} F1"] <= 1.0
    assert 0.0 <= f1["eval_unseen"]["EER"] <= 1.0 and f1["eval_unseen"]["EER with"] == "eval_id bona fide"
    # the demo's random wav2vec 2.0 (marked so) flags the whole report
    assert "RANDOM WEIGHTS" in (root / "study" / "report.html").read_text().splitlines()[0]
    assert not (root / "study" / "table3_id_f1.csv").exists()  # no baseline in this study


# ----------------------------------------------------------------------------- CLI and recipes


def test_train_cli_variant_and_preset(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pipeline.cli import app
    import train.trainer as trainer

    seen = {}
    monkeypatch.setattr(trainer, "train", lambda cfg: seen.setdefault("cfg", cfg) and Path(cfg.out_dir))
    runner = CliRunner()
    help_text = runner.invoke(app, ["train", "--help"]).output
    assert "taxonomy" in help_text and "--variant" in help_text and "--preset" in help_text
    res = runner.invoke(app, ["train", "--preset", "codec_taxonomy", "--variant", "D_VQ", "--protocol-dir", str(tmp_path),
                              "--out", str(tmp_path / "run"), "--epochs", "2"])
    assert res.exit_code == 0, res.output
    cfg = seen.pop("cfg")
    assert (cfg.model, cfg.variant, cfg.lr, cfg.epochs, cfg.rawboost, cfg.w2v2_finetune) == ("taxonomy", "D_VQ", 1e-6, 2, 5, True)
    # with a recipe: preset < recipe train: section < flags
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"output_dir": "o", "train": {"batch_size": 3, "per_model": {"taxonomy": {"epochs": 4}}}}))
    res = runner.invoke(app, ["train", "--recipe", str(recipe), "--preset", "codec_taxonomy", "--variant", "M2"])
    assert res.exit_code == 0, res.output
    cfg = seen.pop("cfg")
    assert (cfg.model, cfg.variant, cfg.batch_size, cfg.epochs, cfg.lr) == ("taxonomy", "M2", 3, 4, 1e-6)
    assert cfg.out_dir == str((tmp_path / "o" / "runs" / "taxonomy_M2").resolve())
    res = runner.invoke(app, ["train", "--preset", "nope", "--protocol-dir", str(tmp_path), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown preset 'nope'" in res.output


def test_codecfake_plus_recipe_reproduces_the_papers_setup():
    from train.config import PRESETS, TrainConfig
    from train.taxonomy import VARIANTS

    doc = yaml.safe_load((RECIPES / "codecfake_plus.yaml").read_text())
    cfg = TrainConfig.from_recipe(RECIPES / "codecfake_plus.yaml")
    assert doc["train"]["preset"] == "codec_taxonomy"
    for key, value in PRESETS["codec_taxonomy"].items():
        if key not in doc["train"]:
            assert getattr(cfg, key) == value, key
    assert (cfg.model, cfg.variant, cfg.w2v2_finetune, cfg.lr, cfg.epochs, cfg.batch_size) == ("taxonomy", "M1", True, 1e-6, 20, 8)
    assert cfg.out_dir.endswith("runs/taxonomy_M1")
    study = S.load_study_config(RECIPES / "codecfake_plus.yaml")
    assert [m.name for m in study.models][0] == "taxonomy_M1"
    text = (RECIPES / "codecfake_plus.yaml").read_text()
    assert "ncst ingest codecfake-plus" in text and "--variant" in text
    for variant in VARIANTS:
        assert variant in text, variant
    # the release's own protocol (CoRS = cors, CoSG = alm) is what the study reads
    assert study.protocol_dir.name == "protocol"
