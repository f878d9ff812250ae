"""OOD detectors: hand-computed values, constructed ID/OOD clusters, chunking and the fit cache."""
from __future__ import annotations

import numpy as np
import pytest

from train import metrics as M
from train import ood


def test_msp_and_energy_hand_computed():
    logits = np.array([[0.0, 0.0], [np.log(3.0), 0.0], [1.0, 2.0]])
    assert ood.MSPDetector().score(logits) == pytest.approx([0.5, 0.75, np.e**2 / (np.e + np.e**2)])
    assert ood.EnergyDetector().score(logits) == pytest.approx([np.log(2), np.log(4), np.log(np.e + np.e**2)])
    # numerically stable for large logits
    assert ood.EnergyDetector().score([[1000.0, 1000.0]]) == pytest.approx([1000 + np.log(2)])
    assert ood.MSPDetector().score([[1000.0, 0.0]]) == pytest.approx([1.0])


def test_knn_hand_computed():
    e1, e2 = [1.0, 0.0], [0.0, 1.0]
    det = ood.KNNDetector(k=2).fit(None, np.array([e1, e1, e2]))
    # k-th (2nd) largest cosine: e1 -> [1,1,0] -> 1; e2 -> [0,0,1] -> 0; diagonal -> .707; scale-free
    got = det.score(None, np.array([[5.0, 0.0], e2, [1.0, 1.0]]))
    assert got == pytest.approx([1.0, 0.0, np.sqrt(0.5)])
    with pytest.raises(ValueError, match="at least k"):
        ood.KNNDetector(k=7).fit(None, np.eye(3))


def test_mahalanobis_hand_computed():
    # 1-D, un-normalised: class 0 at {-1, 1} (mean 0), class 1 at {9, 11} (mean 10); pooled var 1.
    det = ood.MahalanobisDetector(normalize=False).fit(None, np.array([[-1.0], [1.0], [9.0], [11.0]]), [0, 0, 1, 1])
    assert det.score(None, np.array([[2.0], [7.0], [10.0]])) == pytest.approx([-4.0, -9.0, 0.0])


def test_mahalanobis_uses_normalised_features_for_fit_and_score():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)) + 3
    y = rng.integers(0, 2, 40)
    det = ood.MahalanobisDetector(normalize=True).fit(None, x, y)
    # scaling a test point does not change its score: both sides see unit vectors
    assert det.score(None, x[:5]) == pytest.approx(det.score(None, 10 * x[:5]))


def test_nsd_hand_computed():
    # train: e1 with LSE 2, e2 with LSE 4 -> guide = (2 e1 + 4 e2) / 2 = (1, 2)
    det = ood.NSDDetector().fit(np.array([[2.0], [4.0]]), np.array([[1.0, 0.0], [0.0, 3.0]]))
    assert det.guide == pytest.approx([1.0, 2.0])
    # test 3*e1 with LSE 1 -> cos guide part 1 -> score 1; test e2 with LSE 0.5 -> 2 * 0.5 = 1
    assert det.score(np.array([[1.0], [0.5]]), np.array([[3.0, 0.0], [0.0, 1.0]])) == pytest.approx([1.0, 1.0])


def _clusters(seed=0, n=60, d=8):
    """Two ID classes around 4*e0 and 4*e2, OOD points around 4*e1, with matching logits.

    (Classes at +-e0 would cancel in NSD's mean over training features: a real property of the
    score, not what this test is about.)
    """
    rng = np.random.default_rng(seed)
    centres = np.zeros((3, d))
    centres[0, 0], centres[1, 2], centres[2, 1] = 4.0, 4.0, 4.0
    lab = rng.integers(0, 2, n)
    train = centres[lab] + rng.normal(scale=0.5, size=(n, d))
    id_lab = rng.integers(0, 2, n)
    test_id = centres[id_lab] + rng.normal(scale=0.5, size=(n, d))
    test_ood = centres[2] + rng.normal(scale=0.5, size=(n, d))
    w = np.zeros((d, 2))
    w[0, 0], w[2, 1] = 2.0, 2.0  # class logits from axes 0 and 2 only
    return (train @ w, train, lab), (test_id @ w, test_id), (test_ood @ w, test_ood)


@pytest.mark.parametrize("name", ood.DETECTOR_NAMES)
def test_detectors_separate_constructed_clusters(name):
    (tl, tf, ty), (il, if_), (ol, of) = _clusters()
    det = ood.make_detector(name).fit(tl, tf, ty)
    s_id, s_ood = det.score(il, if_), det.score(ol, of)
    assert s_id.shape == (60,) and np.isfinite(s_id).all()
    assert M.auc(*M.binary_scores(s_id, s_ood)) > 0.95
    # a training point itself scores at least as ID as any OOD point
    assert det.score(tl[:1], tf[:1])[0] > s_ood.max()


@pytest.mark.parametrize("name", ["knn", "mahalanobis", "nsd"])
def test_chunked_equals_unchunked(name):
    (tl, tf, ty), (il, if_), _ = _clusters(seed=3)
    small = ood.make_detector(name, chunk_size=7).fit(tl, tf, ty)
    big = ood.make_detector(name, chunk_size=100_000).fit(tl, tf, ty)
    assert small.score(il, if_) == pytest.approx(big.score(il, if_), rel=1e-6, abs=1e-6)


def test_nsd_guide_equals_chunked_pairwise_mean():
    (tl, tf, ty), (il, if_), _ = _clusters(seed=4)
    det = ood.NSDDetector().fit(tl, tf)
    from scipy.special import logsumexp

    scaled = ood.l2_normalize(tf) * logsumexp(tl, axis=1)[:, None]
    x = ood.l2_normalize(if_)
    ref_dense = (x @ scaled.T).mean(axis=1) * logsumexp(il, axis=1)
    for chunk in (1, 5, 1000):
        assert ood.nsd_pairwise(scaled, x, chunk) * logsumexp(il, axis=1) == pytest.approx(ref_dense)
    assert det.score(il, if_) == pytest.approx(ref_dense)


def test_fit_cache_reused_and_keyed_by_predictions(tmp_path):
    (tl, tf, ty), (il, if_), _ = _clusters(seed=5)
    dets = ood.fit_detectors(ood.DETECTOR_NAMES, tl, tf, ty, cache_dir=tmp_path, run_key="runA")
    files = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert [f.split("-")[0] for f in files] == ["knn", "mahalanobis", "nsd"]
    # second call loads from disk: identical scores, no new files
    again = ood.fit_detectors(ood.DETECTOR_NAMES, tl, tf, ty, cache_dir=tmp_path, run_key="runA")
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == files
    for n in ood.DETECTOR_NAMES:
        assert again[n].score(il, if_) == pytest.approx(dets[n].score(il, if_))
    # other predictions or another run -> other cache entries
    ood.fit_detectors(["knn"], tl, tf + 1.0, ty, cache_dir=tmp_path, run_key="runA")
    ood.fit_detectors(["knn"], tl, tf, ty, cache_dir=tmp_path, run_key="runB")
    assert len(list(tmp_path.glob("knn-*.npz"))) == 3


def test_bad_input_errors():
    with pytest.raises(ValueError, match="unknown OOD detector"):
        ood.make_detector("odin")
    with pytest.raises(RuntimeError, match="not fitted"):
        ood.KNNDetector().score(None, np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        ood.MSPDetector().score([[np.nan, 1.0]])
    det = ood.KNNDetector(k=1).fit(None, np.eye(3))
    with pytest.raises(ValueError, match="dim"):
        det.score(None, np.ones((2, 4)))


def test_msp_float32_saturates_and_ties_like_the_anchor():
    logits = np.zeros((3, 7))
    logits[0, 1], logits[1, 2], logits[2, 3] = 30.0, 25.0, 3.0
    f64 = ood.MSPDetector().score(logits)
    f32 = ood.make_detector("msp", msp_precision="float32").score(logits)
    # float64 keeps the two confident rows apart (1 - 6 e^-30 vs 1 - 6 e^-25); float32 rounds both to 1
    assert f64[0] > f64[1] > f64[2] and f64[1] < 1.0
    assert f32[0] == 1.0 and f32[1] == 1.0 and f32.dtype == np.float64
    assert f32[2] == pytest.approx(np.exp(3) / (np.exp(3) + 6), rel=1e-6)
    assert ood.make_detector("msp").precision == "float64"
    with pytest.raises(ValueError, match="msp precision"):
        ood.MSPDetector("float16")


def test_fusion_detector_hand_computed_and_in_the_study_set():
    # two classes (ST labels 1 and 3) on axes 0 and 1; a third logit column (label 5) has no train row
    emb = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    logits = np.zeros((3, 3))
    det = ood.make_detector("fusion", fusion_w=0.25, classes=[1, 3, 5]).fit(logits, emb, np.array([1, 1, 3]))
    assert det.prototypes.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]  # zero prototype for label 5
    test_logits = np.array([[np.log(2.0), 0.0, 0.0], [0.0, 0.0, 0.0]])
    test_emb = np.array([[1.0, 1.0], [-1.0, 0.0]])
    # row 0: softmax [.5 .25 .25], cos [.707 .707 0] -> max(.75*.5+.25*.707, .75*.25+.25*.707, .75*.25)
    # row 1: softmax 1/3 each, cos [-1 0 0] -> max(.75/3 - .25, .75/3, .75/3) = .25
    want = [0.75 * 0.5 + 0.25 * np.sqrt(0.5), 0.25]
    assert det.score(test_logits, test_emb) == pytest.approx(want)
    assert ood.make_detector("fusion", fusion_w=0.0, classes=[1, 3, 5]).fit(logits, emb, [1, 1, 3]).score(
        test_logits, test_emb) == pytest.approx(ood.MSPDetector().score(test_logits))  # w = 0 is MSP
    with pytest.raises(ValueError, match="class of each of the 3 logit columns"):
        ood.make_detector("fusion", classes=[1, 3]).fit(logits, emb, [1, 1, 3])
    with pytest.raises(ValueError, match=r"w must be in \[0, 1\]"):
        ood.FusionDetector(w=1.5)
    assert "fusion" in ood.ALL_DETECTORS and "fusion" not in ood.DETECTOR_NAMES  # opt-in: the paper has five
    # cached like the others, keyed by w
    (tl, tf, ty), (il, if_), (ol, of) = _clusters()
    a = ood.fit_detectors(["fusion"], tl, tf, ty, classes=[0, 1], fusion_w=0.5)["fusion"]
    assert M.auc(*M.binary_scores(a.score(il, if_), a.score(ol, of))) > 0.95
