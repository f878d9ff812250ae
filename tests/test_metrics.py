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
