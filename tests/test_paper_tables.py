"""Tables 4-6 in the paper's layout: headers against the paper's, AVG = mean of its cells, missing
cells, condition-name mapping, and the paper's OOD sets."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from train import paper_tables as P
from train.tables import NA, OodCondition, SubsetPredictions

# The paper's headers, written out here (not derived from the code under test).
PAPER_TABLE4 = ["model", "19LA", "ITW", "NCSSD", "C3-1", "C3-2", "C3-3", "C3-4", "C4-1", "C4-2", "C4-3",
                "NCSSD-Mimi", "NCSSD-SNAC", "AVG"]
PAPER_TABLE5_CONDITIONS = ["OOD single codec", "OOD multi codec", "OOD other fake type", "different config",
                           "different source", "AVG"]
PAPER_TABLE5 = ["model", "detector"] + [f"{c} {m}" for c in PAPER_TABLE5_CONDITIONS for m in ("AUC", "FPR95", "EER")]
PAPER_TABLE6 = ["model", "Moshi", "Mini-omni", "SpeechGPT-Gen", "VALL-E", "AVG"]
PAPER_DETECTORS = ["MSP", "Energy", "KNN", "Mahalanobis", "NSD"]


def test_headers_are_the_papers():
    assert P.table4_columns() == PAPER_TABLE4
    assert P.table4_columns(["diff_source/x"]) == PAPER_TABLE4 + ["diff_source/x"]
    assert P.table5_columns() == PAPER_TABLE5
    assert P.table6_columns() == PAPER_TABLE6
    assert [P.DETECTOR_TITLES[d] for d in ("msp", "energy", "knn", "mahalanobis", "nsd")] == PAPER_DETECTORS
    # the groups of Table 4 cover its 12 columns once, in order
    assert [c for cols in P.TABLE4_GROUPS.values() for c in cols] == PAPER_TABLE4[1:-1]


def _t4_detail(conds: dict[tuple[str, str], float], n: int = 10) -> list[dict]:
    rows = [{"model": "m", "set": s, "condition": c, "label": "", "n": n, "f1": v} for (s, c), v in conds.items()]
    rows.append({"model": "m", "set": "unseen real", "condition": "average", "label": "", "n": 0, "f1": 0.123})
    return rows


def test_table4_maps_condition_names_and_avg_is_mean_of_its_12_cells():
    values = {("unseen real", "asvspoof2019_la"): 0.91, ("unseen real", "In_The_Wild"): 0.82, ("unseen real", "ncssd"): 0.73,
              **{("different config", f"C{a}-{b}"): 0.5 + 0.01 * (3 * a + b) for a, k in ((3, 4), (4, 3)) for b in range(1, k + 1)},
              ("different source", "NCSSD-mimi"): 0.64, ("different source", "ncssd_snac"): 0.55,
              ("different source", "ncssd-encodec"): 0.01}  # not a paper column: extra, not in AVG
    row = P.table4_paper("m", _t4_detail(values))
    assert list(row)[:14] == PAPER_TABLE4
    assert row["19LA"] == 0.91 and row["ITW"] == 0.82 and row["NCSSD-SNAC"] == 0.55 and row["C4-3"] == pytest.approx(0.65)
    assert row["diff_source/ncssd-encodec"] == 0.01 and list(row)[14:] == ["diff_source/ncssd-encodec"]
    cells = [row[c] for c in PAPER_TABLE4[1:-1]]
    assert all(isinstance(v, float) for v in cells)
    assert row["AVG"] == pytest.approx(np.mean(cells))
    assert P.missing_note([row], PAPER_TABLE4[1:-1]) is None


def test_table4_missing_cells_avg_over_available_and_noted():
    row = P.table4_paper("m", _t4_detail({("unseen real", "19LA"): 1.0, ("different config", "C3-1"): 0.5}))
    assert row["ITW"] == NA and row["C4-3"] == NA
    assert row["AVG"] == pytest.approx(0.75)  # the available cells only
    note = P.missing_note([row], PAPER_TABLE4[1:-1])
    assert "ITW" in note and "C3-2" in note and "19LA" not in note and "C3-1," not in note
    empty = P.table4_paper("m", [{"model": "m", "set": "unseen real", "condition": NA, "label": NA, "n": 0, "f1": NA}])
    assert empty["AVG"] == NA and all(empty[c] == NA for c in PAPER_TABLE4[1:-1])


def test_table4_pools_two_conditions_of_one_column_by_rows():
    detail = [{"model": "m", "set": "unseen real", "condition": "19LA", "label": "", "n": 30, "f1": 1.0},
              {"model": "m", "set": "unseen real", "condition": "asvspoof2019_la", "label": "", "n": 10, "f1": 0.6}]
    assert P.table4_paper("m", detail)["19LA"] == pytest.approx((30 * 1.0 + 10 * 0.6) / 40)


def _scores(id_s, ood_by_cond):
    return {"eval_id": np.asarray(id_s, dtype=float), **{c: np.asarray(v, dtype=float) for c, v in ood_by_cond.items()}}


def test_table5_avg_column_and_avg_row_are_means_of_their_cells():
    rng = np.random.default_rng(3)
    dets = ["msp", "energy", "knn", "mahalanobis", "nsd"]
    scores = {d: _scores(rng.normal(1, 1, 40), {c: rng.normal(0, 1, 30) for c in P.TABLE5_CONDITIONS}) for d in dets}
    rows = P.table5_paper("m", scores, dets)
    df = pd.DataFrame(rows)
    assert list(df.columns) == PAPER_TABLE5
    assert list(df["detector"]) == PAPER_DETECTORS + ["AVG"]
    for m in ("AUC", "FPR95", "EER"):
        cells = df[[f"{c} {m}" for c in PAPER_TABLE5_CONDITIONS[:-1]]].iloc[:5].astype(float)
        assert df[f"AVG {m}"].iloc[:5].astype(float).to_numpy() == pytest.approx(cells.mean(axis=1).to_numpy())
    for col in PAPER_TABLE5[2:]:
        assert float(df[col].iloc[5]) == pytest.approx(df[col].iloc[:5].astype(float).mean())
    # a cell is the metric of eval_id against that condition's scores
    from train import metrics as M

    got = M.ood_metrics(scores["knn"]["eval_id"], scores["knn"]["different config"])
    assert rows[2]["different config AUC"] == pytest.approx(got["auc"]) and rows[2]["different config EER"] == pytest.approx(got["eer"])


def test_table5_opt_in_fusion_row_stays_out_of_the_avg_row():
    good = _scores([3.0, 2.0], {c: [0.0, 1.0] for c in P.TABLE5_CONDITIONS})  # AUC 1
    bad = _scores([0.0, 1.0], {c: [3.0, 2.0] for c in P.TABLE5_CONDITIONS})  # AUC 0
    rows = P.table5_paper("m", {"msp": good, "fusion": bad}, ["msp", "fusion"])
    assert [r["detector"] for r in rows] == ["MSP", "Fusion", "AVG"]
    assert rows[1]["OOD single codec AUC"] == 0.0 and rows[2]["OOD single codec AUC"] == 1.0  # MSP alone


def test_table5_missing_condition_and_detector_without_scores():
    sc = _scores([3.0, 2.0, 1.0], {"OOD single codec": [0.0, 2.5], "different source": [-1.0]})
    rows = P.table5_paper("m", {"msp": sc, "energy": sc}, ["msp", "energy", "knn"], why_not={"knn": "n/a (no 'train' rows to fit on)"})
    msp, knn, avg = rows[0], rows[2], rows[3]
    assert msp["OOD multi codec AUC"] == NA and msp["OOD other fake type EER"] == NA
    # eval_id (3, 2, 1) vs (0, 2.5): AUC 4/6; vs (-1): 1 -> AVG over the two available conditions
    assert msp["OOD single codec AUC"] == pytest.approx(4 / 6) and msp["different source AUC"] == 1.0
    assert msp["AVG AUC"] == pytest.approx((4 / 6 + 1.0) / 2)
    assert all(knn[c] == "n/a (no 'train' rows to fit on)" for c in PAPER_TABLE5[2:])
    assert avg["detector"] == "AVG" and avg["OOD single codec AUC"] == pytest.approx(4 / 6)  # knn's reason left out
    assert avg["OOD multi codec AUC"] == NA
    note = P.missing_note(rows, [f"{c} {m}" for c in PAPER_TABLE5_CONDITIONS[:-1] for m in ("AUC", "FPR95", "EER")])
    assert "OOD multi codec AUC" in note and "OOD single codec AUC" in note  # knn has no number there


def test_table5_eer_convention_on_tied_scores():
    # eval_id (1, 1, 1, .8) vs OOD (1, .5): interpolated EER .4, anchor .5 (see test_metrics)
    sc = _scores([1.0, 1.0, 1.0, 0.8], {"OOD single codec": [1.0, 0.5]})
    assert P.table5_paper("m", {"msp": sc}, ["msp"])[0]["OOD single codec EER"] == pytest.approx(0.4)
    assert P.table5_paper("m", {"msp": sc}, ["msp"], eer_convention="anchor")[0]["OOD single codec EER"] == pytest.approx(0.5)


def _ood(labels, conds=None, is_fake=None):
    n = len(labels)
    rows = pd.DataFrame({"label": labels, "condition": conds or ["c"] * n, "is_fake": is_fake or [True] * n})
    return SubsetPredictions(rows, np.zeros((n, 7), np.float32), np.zeros((n, 4), np.float32), list(range(7)))


def test_paper_ood_conditions():
    ood = {"eval_ood": _ood([7, 8, 9, 7, 11, 10]), "ood_other": _ood([-1, -1, -1]), "diff_source": _ood([7, 7])}
    conds = {c.name: c for c in P.paper_ood_conditions(ood)}
    assert list(conds) == ["OOD single codec", "OOD multi codec", "OOD other fake type", "different source"]
    assert conds["OOD single codec"].mask.tolist() == [True, False, False, True, False, False]
    assert conds["OOD multi codec"].mask.tolist() == [False, True, True, False, True, True]
    assert conds["OOD other fake type"].subset == "ood_other" and conds["OOD other fake type"].mask.all()
    assert isinstance(conds["different source"], OodCondition) and conds["different source"].mask.sum() == 2


def test_table6_maps_alms_and_avg_over_the_four():
    detail = [{"model": "m", "condition": c, "n": 4, "backend_f1": v} for c, v in
              (("moshi", 1.0), ("Mini_omni", 0.5), ("speechgpt-gen", 0.25), ("valle", 0.0), ("moshi-standin", 0.9))]
    row = P.table6_paper("m", detail)
    assert list(row) == PAPER_TABLE6 + ["moshi-standin"]
    assert row["AVG"] == pytest.approx((1.0 + 0.5 + 0.25 + 0.0) / 4) and row["moshi-standin"] == 0.9
    only = P.table6_paper("m", detail[:1])
    assert only["VALL-E"] == NA and only["AVG"] == 1.0
    assert "VALL-E" in P.missing_note([only], PAPER_TABLE6[1:-1])
    assert P.table6_paper("m", [{"model": "m", "condition": NA, "n": 0, "backend_f1": NA}])["AVG"] == NA


def test_table6_alm_columns_map_named_sets_into_paper_columns():
    detail = [{"model": "m", "condition": c, "n": 4, "backend_f1": v} for c, v in
              (("moshi-standin", 0.9), ("valle-standin", 0.3), ("other", 0.5))]
    row = P.table6_paper("m", detail, {"moshi-standin": "Moshi", "valle_standin": "VALL-E"})
    assert row["Moshi"] == 0.9 and row["VALL-E"] == 0.3 and row["Mini-omni"] == NA
    assert row["AVG"] == pytest.approx((0.9 + 0.3) / 2) and row["other"] == 0.5 and "moshi-standin" not in row
    with pytest.raises(ValueError, match="not a Table 6 column"):
        P.table6_paper("m", detail, {"moshi-standin": "Moshy"})
