"""`ncst demo` wiring: every stage runs from one recipe, on a cut-down template (fast codecs)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.commands.demo import DEMO_RECIPE, run_demo


def test_demo_recipe_names_only_catalog_variants_and_parses():
    from codec_wrappers.catalog import get_variant
    from codec_wrappers.registry import is_implemented

    doc = yaml.safe_load(DEMO_RECIPE.read_text())
    ids = [v if isinstance(v, str) else v["id"] for v in doc["generate"]["variants"]]
    roles = {get_variant(i).st_role for i in ids}
    assert all(is_implemented(i) for i in ids)
    # all eleven ST codecs are in the demo, plus config variants for Table 4 and 5
    assert {get_variant(i).st_label for i in ids} == set(range(1, 12))
    assert {"id", "ood", "diff_config", "ood_config"} <= roles


@pytest.mark.timeout(600)
def test_demo_runs_every_stage(tmp_path):
    doc = yaml.safe_load(DEMO_RECIPE.read_text())
    eval_only = ["protocol/sources/eval.parquet"]
    doc["generate"]["variants"] = [
        "funcodec_16k_ds320_time", "mimi_24k_8q",
        {"id": "encodec_24k_6kbps", "sources": ["sources/vctk.parquet", "sources/aishell3.parquet", "sources/ncssd.parquet"]},
        {"id": "soundstream_16k_4kbps", "sources": eval_only},
        {"id": "encodec_24k_3kbps", "sources": eval_only},
    ]
    doc["protocol"]["diff_source"]["variants"] = {"encodec_24k_6kbps": "ncssd-encodec"}
    doc["train"].update(epochs=1, num_samples=8000)
    doc["train"]["per_model"]["taxonomy"].update(epochs=1, max_steps_per_epoch=2)
    doc["train"]["per_model"]["refd"].update(epochs=1, refd_re_epochs=1, max_steps_per_epoch=2)
    doc["study"]["models"] = ["mel_lcnn", "taxonomy_M1", "refd"]
    template = tmp_path / "demo.yaml"
    template.write_text(yaml.safe_dump(doc))

    report = run_demo(tmp_path / "out", models=("mel_lcnn", "taxonomy", "refd"), utterances=2, recipe_template=template)

    out = tmp_path / "out"
    html = report.read_text()
    assert html.splitlines()[0].startswith("<!--") and "RANDOM WEIGHTS" in html.splitlines()[0]
    results = json.loads((out / "study" / "results.json").read_text())
    assert results["random_weights"] is True
    assert results["models"]["mel_lcnn"]["status"] == "ok"
    for stem in ("table3_id_f1", "table4_robustness", "table5_ood", "table6_alm"):
        assert (out / "study" / f"{stem}.csv").exists()
    # the codec-taxonomy M1 run (fine-tuned tiny random wav2vec 2.0) gets its own tables, not Tables 3-6
    tax = results["models"]["taxonomy_M1"]
    assert tax["status"] == "ok" and tax["kind"] == "taxonomy" and tax["frontend"] == "fine-tuned"
    assert any("random-wav2vec2-tiny" in r for r in results["random_weights_ids"])
    f1 = {r["subset"]: r for r in tax["taxonomy_f1"]}
    assert {"eval_id", "alm"} <= set(f1) and 0.0 <= f1["eval_id"]["AUX F1"] <= 1.0
    assert "taxonomy_M1" not in set(pd.read_csv(out / "study" / "table3_id_f1.csv", comment=">")["model"])
    assert "Codec taxonomy - weighted F1" in html and (out / "study" / "plots" / "taxonomy_M1" / "confusion_aux.png").exists()
    # REFD (RE + FD on the frozen tiny wav2vec 2.0) gets Tables 3-5 rows and its Fréchet table
    assert results["models"]["refd"]["status"] == "ok"
    assert "refd" in set(pd.read_csv(out / "study" / "table3_id_f1.csv", comment=">")["model"])
    t5 = pd.read_csv(out / "study" / "table5_ood.csv", comment=">")
    assert "refd" in set(t5["model"]) and "Fusion" in set(t5[t5["model"] == "refd"]["detector"])
    frechet = pd.read_csv(out / "study" / "refd_frechet.csv", comment=">")
    assert {"eval_id", "eval_ood"} <= set(frechet["set"]) and (frechet["frechet"].dropna() >= 0).all()
    assert "REFD - Fréchet distance per class" in html and (out / "study" / "refd_fusion_sweep.csv").exists()
    assert json.loads((out / "runs" / "refd" / "refd.json").read_text())["fitted_on"] == "dev"
    # the OOD codec ran on the eval reals only, the ID codecs on every real
    from manifests import read_manifest

    fake = read_manifest(out / "dataset" / "manifests" / "fake.parquet", validate=True)
    per_variant = fake.groupby("variant").size()
    evals = read_manifest(out / "protocol" / "sources" / "eval.parquet")
    assert per_variant["soundstream_16k_4kbps"] == len(evals) < per_variant["encodec_24k_6kbps"]
    assert (out / "protocol" / "subsets" / "eval_ood.parquet").exists()
    # NCSSD dialogues fill the unseen-real and different-source rows of Table 4
    table4 = pd.read_csv(out / "study" / "table4_robustness_detail.csv", comment=">")
    filled = table4[table4["n"].astype(str) != "0"]
    assert {"unseen real", "different config", "different source"} <= set(filled["set"])
    assert "ncssd-encodec" in set(filled["condition"])
    # the paper's layout: LA / ITW / NCSSD bona fide fill the unseen-real columns, C4-1 its column
    paper4 = pd.read_csv(out / "study" / "table4_robustness.csv", comment=">").set_index("model")
    for col in ("19LA", "ITW", "NCSSD", "C4-1"):
        assert 0.0 <= float(paper4.loc["mel_lcnn", col]) <= 1.0, col
    # the LA and ITW spoofs fill Table 5's "OOD other fake type" for every detector
    paper5 = pd.read_csv(out / "study" / "table5_ood.csv", comment=">")
    assert all(0.0 <= float(v) <= 1.0 for v in paper5["OOD other fake type AUC"])
    # the ALM stand-ins (named so) fill Table 6's four columns, each traced to its back end
    table6 = pd.read_csv(out / "study" / "table6_alm_detail.csv", comment=">")
    assert "refd" in set(table6["model"])  # REFD traces the ALM sets too
    table6 = table6[table6["model"] == "mel_lcnn"].set_index("condition")
    assert int(table6.loc["moshi-standin", "n"]) == 3 and 0.0 <= float(table6.loc["moshi-standin", "detect_f1"]) <= 1.0
    # (this cut-down demo trains Mimi and EnCodec classes only, so Moshi and VALL-E are traceable)
    assert str(table6.loc["moshi-standin", "backend"]).startswith("1")
    assert str(table6.loc["valle-standin", "backend"]).startswith("4")
    paper6 = pd.read_csv(out / "study" / "table6_alm.csv", comment=">").set_index("model")
    cells = [float(paper6.loc["mel_lcnn", c]) for c in ("Moshi", "VALL-E")]
    assert float(paper6.loc["mel_lcnn", "AVG"]) == pytest.approx(sum(cells) / 2)
    assert str(paper6.loc["mel_lcnn", "Mini-omni"]).startswith("n/a")


def test_demo_recipe_trains_m1_briefly_and_studies_it():
    """The demo trains the codec-taxonomy M1 for a few steps on the tiny random wav2vec 2.0
    (fine-tuned) and lists its run in the study."""
    from pipeline.commands.demo import MODELS
    from train.config import TrainConfig

    doc = yaml.safe_load(DEMO_RECIPE.read_text())
    assert "taxonomy" in MODELS
    cfg = TrainConfig.from_recipe(DEMO_RECIPE, model="taxonomy")
    assert (cfg.variant, cfg.w2v2_finetune, cfg.frontend_kind) == ("M1", True, "fine-tuned")
    assert cfg.w2v2_model.endswith("models/random-wav2vec2-tiny")  # the marked random model `ncst demo` makes
    assert cfg.epochs * cfg.max_steps_per_epoch <= 20 and cfg.num_samples == 16000
    assert Path(cfg.out_dir).name in doc["study"]["models"]
    assert TrainConfig.from_recipe(DEMO_RECIPE, model="aasist").epochs == 3  # the baselines keep their settings


def test_demo_recipe_trains_refd_briefly_and_studies_it():
    from pipeline.commands.demo import MODELS
    from train.config import TrainConfig

    doc = yaml.safe_load(DEMO_RECIPE.read_text())
    cfg = TrainConfig.from_recipe(DEMO_RECIPE, model="refd")
    assert "refd" in MODELS and cfg.model == "refd" and cfg.uses_frozen_w2v2
    assert cfg.w2v2_model.endswith("models/random-wav2vec2-tiny")
    assert sum(cfg.refd_stage_epochs) * cfg.max_steps_per_epoch <= 16  # brief: RE + FD, a few steps each
    assert Path(cfg.out_dir).name in doc["study"]["models"]


def test_demo_recipe_fills_every_paper_column():
    """The full demo recipe names data for every column of the paper's Tables 4-6."""
    from codec_wrappers.catalog import get_variant
    from train.paper_tables import TABLE4_COLUMNS, TABLE6_COLUMNS

    doc = yaml.safe_load(DEMO_RECIPE.read_text())
    proto, study = doc["protocol"], doc["study"]
    ids = [v if isinstance(v, str) else v["id"] for v in doc["generate"]["variants"]]
    conditions = {get_variant(i).condition for i in ids if get_variant(i).st_role == "diff_config"}
    conditions |= {e["condition"] for e in proto["unseen_real"]} | set(proto["diff_source"]["variants"].values())
    norm = {c.lower().replace("_", "-") for c in conditions}
    for column, _, aliases in TABLE4_COLUMNS:
        assert norm & set(aliases), f"Table 4 column {column} has no data in the demo recipe"
    assert {e["condition"] for e in proto["ood_other"]} == {"asvspoof2019_la", "in_the_wild"}
    assert "ncssd-wavtokenizer" in proto["diff_source"]["variants"].values()  # Table 5 "different source"
    assert any(get_variant(i).st_role == "ood_config" for i in ids)         # Table 5 "different config"
    assert sorted(study["alm_columns"].values()) == sorted(c for c, _ in TABLE6_COLUMNS)
    assert set(study["alm_columns"]) == {e["condition"] for e in proto["alm"]} == set(study["alm_backends"])
