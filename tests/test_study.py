"""The study runner end to end on a tiny protocol.

Two kinds of model: a constructed predictor whose outputs are known (so the tables can be checked
number by number), and a real run made by ``train.trainer.train`` with a tiny config (skipped, with
the reason, while the trainer is not in the tree).
"""
from __future__ import annotations

import importlib.util
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from manifests import ST_LABELS, real_row, write_manifest
from train import study as S

# The paper's headers of Tables 4-6, written out (not taken from the code under test).
PAPER_TABLE4 = ["model", "19LA", "ITW", "NCSSD", "C3-1", "C3-2", "C3-3", "C3-4", "C4-1", "C4-2", "C4-3",
                "NCSSD-Mimi", "NCSSD-SNAC", "AVG"]
PAPER_TABLE5_CONDITIONS = ["OOD single codec", "OOD multi codec", "OOD other fake type", "different config", "different source"]
PAPER_TABLE5 = ["model", "detector"] + [f"{c} {m}" for c in PAPER_TABLE5_CONDITIONS + ["AVG"] for m in ("AUC", "FPR95", "EER")]
PAPER_TABLE6 = ["model", "Moshi", "Mini-omni", "SpeechGPT-Gen", "VALL-E", "AVG"]
ID_CODECS = {1: "Mimi", 2: "SpeechTokenizer", 3: "FunCodec", 4: "EnCodec", 5: "FACodec", 6: "SNAC"}
TAX = {"vq": "MVQ", "aux": "none", "decoder": "time"}


def _row(utt_id: str, label: int, subset: str, condition: str, path: str, weights_id: str = "random:7", is_fake=None) -> dict:
    row = real_row(utt_id=utt_id, corpus="tiny", path=path, speaker="s1", language="en", split=subset,
                   sample_rate=16000, num_samples=4000, duration_s=0.25)
    fake = label != 0 if is_fake is None else is_fake
    if fake:
        row.update(is_fake=True, label=label, label_name=ST_LABELS.get(label, condition), codec=ST_LABELS.get(label, condition),
                   variant=condition.lower(), domain="id" if 0 < label < 7 else ("ood" if label >= 7 else "external"),
                   weights_id=weights_id, **(TAX if label != -1 else {"vq": "unknown", "aux": "unknown", "decoder": "unknown"}))
    row.update(subset=subset, condition=condition)
    return row


def build_protocol(root: Path, n: int = 4, audio=None, with_alm: bool = True, drop: tuple = ()) -> Path:
    """A tiny protocol dir. ``audio(utt_id, label) -> absolute path`` (default: fake paths)."""
    audio = audio or (lambda u, lab: str(root / "audio" / f"{u}.wav"))
    pdir = root / "protocol"
    spec = {
        "train": [(lab, ST_LABELS[lab]) for lab in range(7)],
        "dev": [(lab, ST_LABELS[lab]) for lab in range(7)],
        "eval_id": [(lab, ST_LABELS[lab]) for lab in range(7)],
        "eval_ood": [(lab, ST_LABELS[lab]) for lab in range(7, 12)],
        "unseen_real": [(0, "asvspoof2019_la"), (0, "in_the_wild")],
        "diff_config": [(3, "C3-1"), (4, "C4-1")],
        "diff_source": [(1, "NCSSD-mimi"), (6, "NCSSD-snac"), (7, "NCSSD-wavtokenizer")],
        "ood_config": [(7, "wavtokenizer_small40")],
        # spoofed rows of other corpora (label -1, condition = corpus): the paper's "OOD other fake type"
        "ood_other": [(-1, "asvspoof2019_la"), (-1, "in_the_wild")],
        "alm": [(-1, "moshi"), (-1, "valle")] if with_alm else [],
    }
    for subset, groups in spec.items():
        if subset in drop:
            continue
        rows = [_row(f"{subset}-{cond}-{lab}-{i}", lab, subset, cond, audio(f"{subset}-{cond}-{lab}-{i}", lab),
                     is_fake=True if lab == -1 else None)
                for lab, cond in groups for i in range(max(n, 8) if subset == "train" else n)]
        write_manifest(rows, pdir / f"{subset}.parquet", kind="protocol")
    return pdir


@dataclass
class Preds:
    utt_ids: list
    labels: np.ndarray
    logits: np.ndarray
    embeddings: np.ndarray
    classes: list


class KnownPredictor:
    """ID rows: confident on their class (except the last SNAC row of each set -> real);
    OOD rows (labels 7-11, and the ood_other fakes): flat logits, embeddings in their own direction;
    ALM rows: Moshi -> Mimi, VALL-E (and other label -1 rows) -> real."""

    classes = list(range(7))

    def __init__(self):
        self.calls = 0

    def __call__(self, ref, rows: pd.DataFrame):
        self.calls += 1
        n, d = len(rows), 16
        logits = np.zeros((n, 7), np.float32)
        emb = np.zeros((n, d), np.float32)
        rng = np.random.default_rng(len(rows))
        subsets = rows["subset"] if "subset" in rows.columns else [""] * n
        for i, (lab, cond, uid, sub) in enumerate(zip(rows["label"], rows["condition"], rows["utt_id"], subsets)):
            lab = int(lab)
            if sub == "ood_other":
                emb[i, 12] = 3.0  # flat logits, a direction of their own
            elif 0 <= lab < 7:
                target = 0 if (lab == 6 and uid.endswith("-3")) else lab
                logits[i, target] = 8.0
                emb[i, lab] = 3.0
            elif lab >= 7:
                emb[i, lab] = 3.0  # own direction: far from every training cluster
            else:
                logits[i, 1 if cond == "moshi" else 0] = 8.0
                emb[i, 1] = 3.0
        emb += rng.normal(scale=0.05, size=emb.shape).astype(np.float32)
        return Preds(list(rows["utt_id"]), rows["label"].to_numpy(), logits, emb, self.classes)


def _recipe(tmp_path: Path, study: dict, name="tiny study") -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": name, "output_dir": "out", "generate": {"ignored": 1}, "study": study}))
    return path


def _setup(tmp_path: Path, **kw) -> Path:
    out = tmp_path / "out"
    build_protocol(out, **kw)
    (out / "runs" / "known").mkdir(parents=True)
    (out / "runs" / "known" / "best.pt").write_bytes(b"stand-in")
    return _recipe(tmp_path, {"models": ["known"], "plots": True})


def test_recipe_section_resolution(tmp_path):
    recipe = _recipe(tmp_path, {"models": ["a", {"name": "b", "path": "elsewhere/run_b"}], "detectors": ["knn", "MSP"]})
    cfg = S.load_study_config(recipe)
    out = (tmp_path / "out").resolve()
    assert cfg.models == (S.ModelRef("a", out / "runs" / "a"), S.ModelRef("b", out / "runs" / "elsewhere/run_b"))
    assert cfg.protocol_dir == out / "protocol" and cfg.output == out / "study"
    assert cfg.detectors == ("knn", "msp") and cfg.title == "tiny study"
    with pytest.raises(ValueError, match="unknown keys in 'study'.*detector"):
        S.load_study_config(_recipe(tmp_path, {"detector": ["knn"]}))
    with pytest.raises(ValueError, match="unknown OOD detectors"):
        S.load_study_config(_recipe(tmp_path, {"detectors": ["odin"]}))
    # no models listed: every run dir with a checkpoint under <output_dir>/runs
    for r in ("r2", "r1", "empty"):
        (out / "runs" / r).mkdir(parents=True)
    (out / "runs" / "r1" / "best.pt").write_bytes(b"x")
    (out / "runs" / "r2" / "last.pt").write_bytes(b"x")
    assert [m.name for m in S.load_study_config(_recipe(tmp_path, {})).models] == ["r1", "r2"]


def test_study_tables_with_known_predictions(tmp_path):
    recipe = _setup(tmp_path)
    pred = KnownPredictor()
    res = S.run_study_from_recipe(recipe, predict_fn=pred)
    out = tmp_path / "out" / "study"
    for stem in ("table3_id_f1", "table4_robustness", "table4_robustness_detail", "table5_ood", "table5_ood_detail",
                 "table6_alm", "table6_alm_detail"):
        assert (out / f"{stem}.csv").exists() and (out / f"{stem}.md").exists()
    r = json.loads((out / "results.json").read_text())["models"]["known"]

    # Table 3: one SNAC row of 4 goes to real -> real: P 4/5 R 1; SNAC: P 1 R 3/4
    t3 = r["table3"]
    assert t3["n"] == 28
    assert t3["real"] == pytest.approx(2 * 0.8 / 1.8) and t3["SNAC"] == pytest.approx(2 * 0.75 / 1.75)
    assert t3["Mimi"] == 1.0
    assert t3["macro_f1"] == pytest.approx((5 + 2 * 0.8 / 1.8 + 2 * 0.75 / 1.75) / 7)

    # Table 4: per condition; NCSSD-snac loses one row of 4; the OOD NCSSD-wavtokenizer is not here
    t4 = {(x["set"], x["condition"]): x["f1"] for x in r["table4"]}
    assert t4[("unseen real", "asvspoof2019_la")] == 1.0
    assert t4[("different config", "C3-1")] == 1.0
    assert t4[("different source", "NCSSD-snac")] == 0.75
    assert ("different source", "NCSSD-wavtokenizer") not in t4

    # Table 5: every detector x condition, OOD flat/far -> perfectly separated for these
    t5 = pd.DataFrame(r["table5"])
    conds = set(t5["condition"])
    assert {"eval_ood/WavTokenizer", "eval_ood/SoundStream", "eval_ood/all", "ood_config/wavtokenizer_small40",
            "diff_source/NCSSD-wavtokenizer", "ood_other/asvspoof2019_la", "ood_other/all", "average"} <= conds
    assert set(t5["detector"]) == set(S.DETECTOR_NAMES)
    for det in ("msp", "energy", "knn", "mahalanobis"):
        avg = t5[(t5.detector == det) & (t5.condition == "average")].iloc[0]
        assert avg["auc"] == 1.0 and avg["fpr95"] == 0.0 and avg["eer"] == 0.0, det
    all_row = t5[(t5.detector == "msp") & (t5.condition == "eval_ood/all")].iloc[0]
    assert all_row["n_id"] == 28 and all_row["n_ood"] == 20
    multi = t5[(t5.detector == "msp") & (t5.condition == "eval_ood/labels 8-11")].iloc[0]
    assert multi["n_ood"] == 16
    other = t5[(t5.detector == "msp") & (t5.condition == "ood_other/all")].iloc[0]
    assert other["n_ood"] == 8  # label -1 rows: not filtered out by the OOD labels
    avg = t5[(t5.detector == "msp") & (t5.condition == "average")].iloc[0]
    assert avg["n_ood"] == 36  # 5 codecs + ood_config + diff_source + 2 other corpora, 4 rows each; aggregates not counted

    # Table 6: moshi all traced to Mimi (its back end) and called fake; VALL-E called real
    t6 = {x["condition"]: x for x in r["table6"]}
    assert t6["moshi"]["detect_f1"] == 1.0 and t6["moshi"]["backend_f1"] == 1.0 and t6["moshi"]["backend"] == "1 Mimi"
    assert t6["valle"]["detect_f1"] == 0.0 and t6["valle"]["fake_rate"] == 0.0 and t6["valle"]["backend_f1"] == 0.0

    # the paper's layouts, read back from the CSV files
    t4p = pd.read_csv(out / "table4_robustness.csv", comment=">")
    assert list(t4p.columns) == PAPER_TABLE4
    row = t4p.iloc[0]
    assert row["19LA"] == 1.0 and row["ITW"] == 1.0 and row["C3-1"] == 1.0 and row["NCSSD-SNAC"] == 0.75
    assert row["NCSSD"] == S.NA and row["C4-3"] == S.NA
    assert row["AVG"] == pytest.approx((5 * 1.0 + 0.75) / 6)  # the 6 available of the 12 cells
    assert "AVG is the mean over the available cells only; no number in: NCSSD, C3-2" in (out / "table4_robustness.md").read_text()
    t5p = pd.read_csv(out / "table5_ood.csv", comment=">")
    assert list(t5p.columns) == PAPER_TABLE5
    assert list(t5p["detector"]) == ["MSP", "Energy", "KNN", "Mahalanobis", "NSD", "AVG"]
    msp = t5p.iloc[0]
    for cond in ("OOD single codec", "OOD multi codec", "OOD other fake type", "different config", "different source"):
        assert msp[f"{cond} AUC"] == 1.0 and msp[f"{cond} EER"] == 0.0, cond
    for col in PAPER_TABLE5[2:]:  # AVG row = mean over the detectors; AVG columns = mean over the conditions
        assert t5p[col].iloc[5] == pytest.approx(t5p[col].iloc[:5].mean()), col
    for m in ("AUC", "FPR95", "EER"):
        cells = t5p[[f"{c} {m}" for c in PAPER_TABLE5_CONDITIONS]].iloc[:5]
        assert t5p[f"AVG {m}"].iloc[:5].to_numpy() == pytest.approx(cells.mean(axis=1).to_numpy())
    md5 = (out / "table5_ood.md").read_text()
    assert "EER convention: interpolated" in md5 and "AVG is the mean over the available" not in md5
    assert "EER convention: interpolated" in (out / "table5_ood_detail.md").read_text()
    assert res.results["eer_convention"] == "interpolated" and len(r["table5_paper"]) == 6
    t6p = pd.read_csv(out / "table6_alm.csv", comment=">")
    assert list(t6p.columns) == PAPER_TABLE6
    assert t6p.iloc[0]["Moshi"] == 1.0 and t6p.iloc[0]["VALL-E"] == 0.0 and t6p.iloc[0]["AVG"] == 0.5
    assert r["table4_paper"]["AVG"] == pytest.approx(row["AVG"]) and r["table6_paper"]["Mini-omni"] == S.NA

    # report: random weights on its first line, every table, embedded images
    html = res.report.read_text()
    assert "RANDOM WEIGHTS" in html.splitlines()[0] and "random:7" in html.splitlines()[0]
    for title in ("Table 3", "Table 4", "Table 5", "Table 6", "Table 4 detail", "Table 5 detail", "Table 6 detail"):
        assert title in html
    assert "EER convention: interpolated" in html
    assert html.count("data:image/png;base64,") == 5  # ROC, DET, confusion, embeddings, scores
    assert (out / "plots" / "known" / "det.png").is_file()  # OOD scores -> a DET plot
    md = (out / "table5_ood.md").read_text()
    assert md.startswith("> **WARNING: RANDOM WEIGHTS")
    assert res.results["random_weights"] is True

    # second run: predictions and fitted statistics come from the cache
    calls = pred.calls
    S.run_study_from_recipe(recipe, predict_fn=pred, plots=False)
    assert pred.calls == calls
    assert len(list((out / "cache" / "known" / "ood").glob("*.npz"))) == 3


def test_missing_subsets_say_no_data(tmp_path):
    recipe = _setup(tmp_path, with_alm=False,
                    drop=("unseen_real", "diff_config", "diff_source", "ood_config", "ood_other", "eval_ood", "train"))
    (tmp_path / "out" / "protocol" / "eval_ood.parquet").write_bytes(b"not parquet")  # unreadable: reported, skipped
    res = S.run_study_from_recipe(recipe, predict_fn=KnownPredictor(), plots=False)
    assert "eval_ood.parquet" in res.results["protocol_errors"]["eval_ood"]
    r = res.results["models"]["known"]
    assert r["table3"]["macro_f1"] > 0.9  # eval_id is still there
    assert {x["f1"] for x in r["table4"]} == {S.NA}
    assert {x["auc"] for x in r["table5"]} == {S.NA}
    assert r["table6"][0]["detect_f1"] == S.NA
    # the paper layouts: every cell and every AVG says no data
    assert set(r["table4_paper"].values()) == {"known", S.NA}
    assert {v for x in r["table5_paper"] for k, v in x.items() if k not in ("model", "detector")} == {S.NA}
    assert r["table6_paper"]["AVG"] == S.NA
    html = res.report.read_text()
    assert html.count(S.NA) >= 4 and "Table 6" in html and "could not be read" in html


def test_no_train_subset_and_rows_without_prediction(tmp_path):
    recipe = _setup(tmp_path, drop=("train",))
    known = KnownPredictor()

    def predict(ref, rows):  # the predictor leaves out unreadable files: here every "-0" row
        p = known(ref, rows)
        keep = [i for i, u in enumerate(p.utt_ids) if not u.endswith("-0")]
        return Preds([p.utt_ids[i] for i in keep], p.labels[keep], p.logits[keep], p.embeddings[keep], p.classes)

    res = S.run_study_from_recipe(recipe, predict_fn=predict, plots=False)
    r = res.results["models"]["known"]
    assert r["table3"]["n"] == 21 and r["rows_without_prediction"]["eval_id"] == 7
    t5 = pd.DataFrame(r["table5"])
    assert (t5[t5.detector == "msp"]["auc"].iloc[0]) == 1.0
    for det in ("knn", "mahalanobis", "nsd"):
        assert list(t5[t5.detector == det]["condition"]) == ["n/a (no 'train' rows to fit on)"]


def test_real_weights_no_banner_and_failed_model_goes_on(tmp_path):
    out = tmp_path / "out"
    build_protocol(out, n=2)
    for sub in ("train", "eval_id", "eval_ood"):  # rewrite with real (sha) weights everywhere
        df = pd.read_parquet(out / "protocol" / f"{sub}.parquet")
        df["weights_id"] = np.where(df["codec"] != "", "sha256:abc", "")
        write_manifest(df, out / "protocol" / f"{sub}.parquet", kind="protocol")
    for sub in ("unseen_real", "diff_config", "diff_source", "ood_config", "ood_other", "alm", "dev"):
        (out / "protocol" / f"{sub}.parquet").unlink()
    recipe = _recipe(tmp_path, {"models": ["good", "broken"], "plots": False, "detectors": ["msp", "knn"]})
    good = KnownPredictor()

    def predict(ref, rows):
        if ref.name == "broken":
            raise RuntimeError("checkpoint is corrupt")
        return good(ref, rows)

    res = S.run_study_from_recipe(recipe, predict_fn=predict)
    first = res.report.read_text().splitlines()[0]
    assert "RANDOM" not in first.upper()
    assert res.results["models"]["broken"]["status"] == "failed"
    assert "checkpoint is corrupt" in res.results["models"]["broken"]["error"]
    assert res.results["models"]["good"]["status"] == "ok"
    t3 = pd.read_csv(res.output / "table3_id_f1.csv")
    assert list(t3["model"]) == ["good", "broken"]


def test_cli_reports_a_broken_checkpoint_and_still_writes_the_report(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    recipe = _setup(tmp_path)  # runs/known/best.pt holds junk bytes
    res = CliRunner().invoke(app, ["study", str(recipe), "--no-plots"])
    assert res.exit_code == 1, res.output
    assert "failed models: known" in res.output
    results = json.loads((tmp_path / "out" / "study" / "results.json").read_text())
    assert results["models"]["known"]["status"] == "failed"
    assert "RANDOM WEIGHTS" in (tmp_path / "out" / "study" / "report.html").read_text().splitlines()[0]


class SaturatingPredictor(KnownPredictor):
    """Confident everywhere: ID rows put 30 on their class, OOD rows 20 on Mimi. In float64 the
    MSP of ID rows (1 - 6 e^-30) stays above the OOD rows' (1 - 6 e^-20); in float32 both are 1.0."""

    def __call__(self, ref, rows):
        p = super().__call__(ref, rows)
        for i, lab in enumerate(rows["label"]):
            if 0 <= int(lab) < 7:
                p.logits[i] *= 30.0 / 8.0
            elif int(lab) >= 7 or rows["subset"].iloc[i] == "ood_other":
                p.logits[i, 1] = 20.0
        return p


def test_eer_anchor_convention_end_to_end(tmp_path):
    recipe = _setup(tmp_path)
    pred = SaturatingPredictor()
    conds = ("OOD single codec", "OOD multi codec", "OOD other fake type", "different config", "different source")

    def table5(eer: str) -> pd.DataFrame:
        res = S.run_study_from_recipe(recipe, predict_fn=pred, plots=False, detectors=["msp", "energy"], eer=eer,
                                      output=f"out/study-{eer}")
        assert res.results["eer_convention"] == eer
        assert f"EER convention: {eer}" in (res.output / "table5_ood.md").read_text()
        assert f"EER convention: {eer}" in (res.output / "cors_detection.md").read_text()
        assert f"EER convention: {eer}" in res.report.read_text()
        return pd.read_csv(res.output / "table5_ood.csv", comment=">").set_index("detector")

    interp, anchor = table5("interpolated"), table5("anchor")
    for cond in conds:
        # float64 MSP separates ID from OOD perfectly
        assert interp.loc["MSP", f"{cond} AUC"] == 1.0 and interp.loc["MSP", f"{cond} EER"] == 0.0, cond
        # float32 MSP: every score is 1.0; the anchor's EER rejects all ID before any OOD -> 1.0
        assert anchor.loc["MSP", f"{cond} AUC"] == 0.5 and anchor.loc["MSP", f"{cond} EER"] == 1.0, cond
        # energy (logsumexp, float64 either way) is not tied: both conventions give 0
        assert interp.loc["Energy", f"{cond} EER"] == 0.0 and anchor.loc["Energy", f"{cond} EER"] == 0.0, cond
    assert anchor.loc["AVG", "AVG EER"] == pytest.approx(0.5)  # mean of MSP 1.0 and Energy 0.0
    with pytest.raises(ValueError, match=r"recipe.yaml: study: eer must be one of \('interpolated', 'anchor'\)"):
        S.load_study_config(recipe, eer="aasist")


def test_fusion_detector_is_a_table5_row_outside_the_avg(tmp_path):
    recipe = _setup(tmp_path)
    res = S.run_study_from_recipe(recipe, predict_fn=KnownPredictor(), plots=False, detectors=["msp", "knn", "fusion"],
                                  fusion_w=0.5, output="out/study-fusion")
    t5 = pd.read_csv(res.output / "table5_ood.csv", comment=">").set_index("detector")
    assert list(t5.index) == ["MSP", "KNN", "Fusion", "AVG"]
    # ID rows sit on their class prototype with a confident logit; OOD rows are flat and far
    assert t5.loc["Fusion", "OOD single codec AUC"] == 1.0 and t5.loc["Fusion", "AVG EER"] == 0.0
    assert S.load_study_config(recipe, fusion_w=0.3).fusion_w == 0.3
    with pytest.raises(ValueError, match=r"fusion_w must be in \[0, 1\]"):
        S.load_study_config(recipe, fusion_w=2)


TRAINER = importlib.util.find_spec("train.trainer") is not None and importlib.util.find_spec("train.predict") is not None


def _tone_audio(root: Path):
    """Writes a 0.25 s, 16 kHz wav per row: a tone whose pitch depends on the label (separable)."""
    import soundfile as sf

    sr, n = 16000, 4000
    t = np.arange(n) / sr

    def make(utt_id: str, label: int) -> str:
        rng = np.random.default_rng(zlib.crc32(utt_id.encode()))
        f = 220.0 * (1.35 ** (label + 1))
        wav = 0.3 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) + 0.01 * rng.normal(size=n)
        path = root / "audio" / f"{utt_id}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wav.astype(np.float32), sr)
        return str(path)

    return make


@pytest.mark.skipif(not TRAINER, reason="train.trainer / train.predict not in the tree yet")
def test_study_with_real_trainer_via_cli(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app
    from train.config import TrainConfig
    from train.trainer import train

    out = tmp_path / "out"
    pdir = build_protocol(out, n=2, audio=_tone_audio(out))
    cfg = TrainConfig(model="mel_lcnn", protocol_dir=str(pdir), out_dir=str(out / "runs" / "tiny"), epochs=1,
                      batch_size=8, num_samples=4000, progress=False, seed=1)
    run_dir = Path(train(cfg))
    assert (run_dir / "best.pt").exists()
    recipe = _recipe(tmp_path, {"models": ["tiny"], "batch_size": 8})
    res = CliRunner().invoke(app, ["study", str(recipe)])
    assert res.exit_code == 0, res.output
    study = out / "study"
    results = json.loads((study / "results.json").read_text())
    r = results["models"]["tiny"]
    assert r["status"] == "ok" and r["classes"] == list(range(7))
    assert r["table3"]["n"] == 14 and 0.0 <= r["table3"]["macro_f1"] <= 1.0
    aucs = [x["auc"] for x in r["table5"] if x["condition"] != S.NA]
    # 5 detectors x (9 conditions + the aggregates eval_ood 8-11, eval_ood/all, ood_other/all + average)
    assert len(aucs) == 5 * 13 and all(0.0 <= a <= 1.0 for a in aucs)
    html = (study / "report.html").read_text()
    assert "RANDOM WEIGHTS" in html.splitlines()[0]
    for title in ("Table 3", "Table 4", "Table 5", "Table 6"):
        assert title in html
    assert html.count("data:image/png;base64,") == 5  # ROC, DET, confusion, embeddings, scores


def test_cors_subset_gives_per_codec_detection_eer(tmp_path):
    """CodecFake+ CoRS (subset ``cors``): reals vs each codec's fakes, EER from P(real)."""
    recipe = _setup(tmp_path)
    pdir = tmp_path / "out" / "protocol"
    rows = [_row(f"cors-real-{i}", 0, "cors", "real", f"/x/r{i}.wav") for i in range(4)]
    # "good": the KnownPredictor calls these real-class rows confidently fake (label 1 -> logit on Mimi)
    rows += [_row(f"cors-good-{i}", 1, "cors", "good_codec", f"/x/g{i}.wav") for i in range(4)]
    # "sneaky": external fakes (label -1, not 'moshi') -> logits on real: they look real
    rows += [_row(f"cors-sneaky-{i}", -1, "cors", "sneaky_codec", f"/x/s{i}.wav", is_fake=True) for i in range(4)]
    write_manifest(rows, pdir / "cors.parquet", kind="protocol")
    S.run_study_from_recipe(recipe, predict_fn=KnownPredictor(), plots=False)
    out = tmp_path / "out" / "study"
    got = {x["condition"]: x for x in json.loads((out / "results.json").read_text())["models"]["known"]["cors"]}
    assert set(got) == {"good_codec", "sneaky_codec", "all"}
    assert got["good_codec"]["eer"] == 0.0 and got["good_codec"]["fake_rate"] == 1.0
    assert got["sneaky_codec"]["fake_rate"] == 0.0 and got["sneaky_codec"]["eer"] >= 0.5  # indistinguishable from reals
    assert got["all"]["n_fake"] == 8 and got["all"]["n_real"] == 4
    assert "CoRS" in (out / "cors_detection.md").read_text() and "CoRS" in (out / "report.html").read_text()
