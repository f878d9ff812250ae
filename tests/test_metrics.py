"""Study metrics against scikit-learn and hand-computed values (ties included)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score, roc_curve

from train import metrics as M

# Hand-computed: y = [1, 1, 0, 0], scores with a tie between a positive and a negative.
# ROC points (fpr, tpr): (0,0) (0,.5) (.5,1) (1,1).
Y_TIE = [1, 1, 0, 0]
S_TIE = [0.9, 0.5, 0.5, 0.1]


def test_auc_with_tie_hand_computed():
    # pairs (pos, neg): (.9,.5)=1 (.9,.1)=1 (.5,.5)=.5 (.5,.1)=1 -> 3.5 / 4
    assert M.auc(Y_TIE, S_TIE) == pytest.approx(0.875)


def test_fpr95_with_tie_hand_computed():
    # TPR 0.95 lies on the segment (0, .5) -> (.5, 1): fpr = .5 * (.95 - .5) / .5 = .45
    assert M.fpr_at_tpr(Y_TIE, S_TIE) == pytest.approx(0.45)


def test_eer_with_tie_hand_computed():
    # fpr - fnr = -1, -.5, .5, 1: crossing halfway along (0, .5) -> (.5, 1): fpr = fnr = .25
    assert M.eer(Y_TIE, S_TIE) == pytest.approx(0.25)


def test_perfect_and_reversed_separation():
    y = [1, 1, 1, 0, 0]
    s = np.array([3.0, 2.0, 1.5, 1.0, -1.0])
    assert M.auc(y, s) == 1.0 and M.fpr_at_tpr(y, s) == 0.0 and M.eer(y, s) == 0.0
    assert M.auc(y, -s) == 0.0 and M.fpr_at_tpr(y, -s) == 1.0 and M.eer(y, -s) == 1.0


def test_all_tied_scores_give_chance():
    y = [1, 0, 1, 0]
    s = [0.3] * 4
    assert M.auc(y, s) == 0.5
    assert M.eer(y, s) == pytest.approx(0.5)
    assert M.fpr_at_tpr(y, s) == pytest.approx(0.95)


def test_fpr_on_exact_tpr_takes_smallest_fpr():
    # 20 positives; the 19th positive (TPR exactly .95) ties with nothing: FPR there is 0.
    y = [1] * 20 + [0] * 4
    s = list(range(100, 80, -1)) + [81.5, 70, 60, 50]  # one negative between the 19th and 20th
    assert M.fpr_at_tpr(y, s) == 0.0


def test_against_sklearn_and_anchor_interp_random():
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = rng.integers(0, 2, 300)
        s = rng.normal(size=300) + y * 0.8
        s = np.round(s, 1)  # plenty of ties
        assert M.auc(y, s) == pytest.approx(roc_auc_score(y, s))
        fpr, tpr, _ = roc_curve(y, s)
        # anchor: interpolate FPR at TPR .95 over the ROC (no exact hit in continuous data)
        if not np.isclose(tpr, 0.95).any():
            assert M.fpr_at_tpr(y, s) == pytest.approx(np.interp(0.95, tpr, fpr))
        # EER: brute force over a fine grid of the piecewise-linear ROC
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
        grid = np.linspace(0, 1, 200001)
        t = np.interp(grid, fpr, tpr)
        k = np.argmin(np.abs(grid - (1 - t)))
        assert M.eer(y, s) == pytest.approx(grid[k], abs=1e-4)


def test_ood_metrics_orientation():
    out = M.ood_metrics(id_scores=[5.0, 4.0, 3.0], ood_scores=[1.0, 0.0])
    assert out == {"auc": 1.0, "fpr95": 0.0, "eer": 0.0, "n_id": 3, "n_ood": 2}


@pytest.mark.parametrize("fn", [M.auc, M.eer, M.fpr_at_tpr])
def test_degenerate_inputs_raise(fn):
    with pytest.raises(ValueError, match="one class"):
        fn([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="one class"):
        fn([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match="NaN"):
        fn([1, 0], [np.nan, 0.2])
    with pytest.raises(ValueError, match="length"):
        fn([1, 0], [0.2])


def test_f1_against_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 7, 200)
    p = np.where(rng.random(200) < 0.7, y, rng.integers(0, 7, 200))
    out = M.f1_scores(y, p, labels=range(7))
    assert out["macro"] == pytest.approx(f1_score(y, p, average="macro"))
    assert out["weighted"] == pytest.approx(f1_score(y, p, average="weighted"))
    per = f1_score(y, p, average=None)
    assert [out["per_class"][k] for k in range(7)] == pytest.approx(list(per))
    assert out["n"] == 200


def test_f1_hand_computed_and_missing_class():
    # class 0: tp 1, fp 1, fn 1 -> F1 .5; class 1: tp 1, fp 1, fn 1 -> .5; class 2 never true/pred -> 0
    out = M.f1_scores([0, 0, 1, 1], [0, 1, 1, 0], labels=[0, 1, 2])
    assert out["per_class"] == {0: 0.5, 1: 0.5, 2: 0.0}
    assert out["macro"] == pytest.approx(1 / 3)
    assert M.micro_f1([3, 3, 3, 3], [3, 3, 4, 0]) == pytest.approx(0.5)
    assert M.binary_f1([1, 1, 1, 1], [1, 1, 0, 0]) == pytest.approx(2 * 0.5 / 1.5)
    assert M.binary_f1([1, 1], [0, 0]) == 0.0
    with pytest.raises(ValueError, match="empty"):
        M.f1_scores([], [])


# EER conventions on tied scores, hand-computed. "anchor": sort ascending, positives before
# negatives among ties; operating point k rejects the first k; EER = (FNR + FPR) / 2 where
# |FNR - FPR| is smallest (first such k).
def test_eer_conventions_on_a_tie_hand_computed():
    # Y_TIE / S_TIE sorted: .1(neg) .5(pos) .5(neg) .9(pos); k = 0..4:
    # FNR 0 0 .5 .5 1, FPR 1 .5 .5 0 0 -> k = 2: (.5 + .5) / 2 = .5. Interpolated: .25.
    assert M.eer(Y_TIE, S_TIE, "anchor") == pytest.approx(0.5)
    assert M.eer(Y_TIE, S_TIE, "interpolated") == pytest.approx(0.25)
    assert M.eer(Y_TIE, S_TIE) == M.eer_interpolated(Y_TIE, S_TIE)


def test_eer_conventions_on_saturated_msp_hand_computed():
    # ID (positive) 1, 1, 1, .8; OOD 1, .5 (float32 MSP ties at 1.0).
    y = [1, 1, 1, 1, 0, 0]
    s = [1.0, 1.0, 1.0, 0.8, 1.0, 0.5]
    # anchor order: .5(neg) .8(pos) 1(pos) 1(pos) 1(pos) 1(neg); FNR 0 0 .25 .5 .75 1 1,
    # FPR 1 .5 .5 .5 .5 .5 0 -> k = 3: |.5 - .5| = 0 -> EER .5
    assert M.eer_anchor(y, s) == pytest.approx(0.5)
    # ROC (0,0) (.5,.75) (.5,1) (1,1); fpr - fnr: -1 then .25 -> 80% along the first segment: .4
    assert M.eer_interpolated(y, s) == pytest.approx(0.4)
    # all scores tied: the anchor rejects every positive before any negative -> EER 1 (interpolated .5)
    assert M.eer_anchor([1, 1, 0, 0], [1.0] * 4) == 1.0 and M.eer([1, 1, 0, 0], [1.0] * 4) == pytest.approx(0.5)


def test_eer_anchor_without_ties_hand_computed():
    # y 1 1 1 0 0, s 5 4 2 3 1 -> ascending labels 0 1 0 1 1: FNR 0 0 1/3 1/3 2/3 1, FPR 1 .5 .5 0 0 0
    # -> k = 2: (1/3 + 1/2) / 2 = 5/12. Interpolated: crossing on (0, 2/3) -> (.5, 2/3) at fpr 1/3.
    y, s = [1, 1, 1, 0, 0], [5.0, 4.0, 2.0, 3.0, 1.0]
    assert M.eer_anchor(y, s) == pytest.approx(5 / 12)
    assert M.eer_interpolated(y, s) == pytest.approx(1 / 3)
    assert M.eer_anchor([1, 1, 0, 0], [0.9, 0.8, 0.3, 0.1]) == 0.0


def _upstream_style_eer(pos, neg):
    """The anchor's procedure as its code runs it: scores [positives, negatives], stable ascending
    argsort, rates after each prefix (a plain loop here)."""
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    order = np.argsort(scores, kind="stable")
    best = None
    rejected_pos = rejected_neg = 0
    for k in range(len(scores) + 1):
        if k:
            if labels[order[k - 1]] == 1:
                rejected_pos += 1
            else:
                rejected_neg += 1
        fnr, fpr = rejected_pos / len(pos), (len(neg) - rejected_neg) / len(neg)
        if best is None or abs(fnr - fpr) < best[0]:
            best = (abs(fnr - fpr), (fnr + fpr) / 2)
    return best[1]


def test_eer_anchor_matches_the_upstream_procedure_in_any_input_order():
    rng = np.random.default_rng(5)
    for _ in range(20):
        pos = np.round(rng.normal(0.8, 1, rng.integers(2, 40)), 1)
        neg = np.round(rng.normal(0, 1, rng.integers(2, 40)), 1)  # rounded: many ties
        want = _upstream_style_eer(pos, neg)
        y, s = M.binary_scores(pos, neg)
        perm = rng.permutation(len(y))
        assert M.eer_anchor(y, s) == pytest.approx(want)
        assert M.eer_anchor(y[perm], s[perm]) == pytest.approx(want)


def test_eer_convention_is_checked_and_reaches_ood_metrics():
    with pytest.raises(ValueError, match="unknown EER convention 'aasist'"):
        M.eer(Y_TIE, S_TIE, "aasist")
    got = M.ood_metrics([0.9, 0.5], [0.5, 0.1], eer_convention="anchor")
    assert got["eer"] == pytest.approx(0.5) and got["auc"] == pytest.approx(0.875)
    with pytest.raises(ValueError, match="one class"):
        M.eer_anchor([1, 1], [0.1, 0.2])
