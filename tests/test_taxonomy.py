"""Codec-taxonomy model pieces: heads per variant, targets from manifest columns, class- and
task-weighted loss, P(spoof) / M2 score, weighted F1 and EER, the balanced sampler, RawBoost."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from train.data import TaxonomyBalancedSampler, taxonomy_balanced_indices
from train.models import build_model
from train.models.taxonomy import TaxonomyModel
from train.rawboost import ISDParams, isd_additive_noise, lnl_convolutive_noise, rawboost
from train.taxonomy import (
    CLASS_WEIGHTS,
    TASK_CLASSES,
    VARIANT_TASKS,
    TaxonomyLoss,
    binary_eer,
    spoof_probability,
    task_probabilities,
    task_targets,
    taxonomy_metrics,
    weighted_f1,
)


def rows(spec) -> pd.DataFrame:
    """Protocol-like rows from ``(is_fake, aux, decoder, vq, label)`` tuples."""
    return pd.DataFrame(spec, columns=["is_fake", "aux", "decoder", "vq", "label"])


# ------------------------------------------------------------------ model
@pytest.mark.parametrize("variant", list(VARIANT_TASKS))
def test_every_variant_has_its_heads(variant):
    torch.manual_seed(0)
    m = build_model("taxonomy", 0, variant=variant, ssl_dim=24).eval()
    tasks = VARIANT_TASKS[variant]
    assert m.tasks == tasks and list(m.branches) == list(tasks)
    logits, emb = m(torch.randn(2, 30, 24))
    sizes = [len(TASK_CLASSES[t]) for t in tasks]
    assert logits.shape == (2, sum(sizes)) and emb.shape == (2, 160 * len(tasks)) == (2, m.embedding_dim)
    parts = m.split(logits)
    assert list(parts) == list(tasks) and [p.shape[1] for p in parts.values()] == sizes
    # heads: BIN 2, AUX 4, DEC 3, VQ 4
    assert {t: len(TASK_CLASSES[t]) for t in tasks} == {t: {"bin": 2, "aux": 4, "dec": 3, "vq": 4}[t] for t in tasks}


def test_heads_share_the_trunk_but_not_the_graph():
    torch.manual_seed(0)
    m = TaxonomyModel("M1", ssl_dim=16)
    trunk = sum(p.numel() for p in m.trunk.parameters())
    per_branch = [sum(p.numel() for p in b.parameters()) for b in m.branches.values()]
    single = TaxonomyModel("S_BIN", ssl_dim=16)
    assert sum(p.numel() for p in single.trunk.parameters()) == trunk  # one trunk whatever the variant
    assert len({id(b.backend) for b in m.branches.values()}) == 4 and min(per_branch) > 0
    # a gradient from one head's loss reaches the trunk and only that head's branch
    logits, _ = m(torch.randn(2, 30, 16))
    m.split(logits)["dec"].sum().backward()
    assert m.trunk.proj.weight.grad is not None and m.trunk.proj.weight.grad.abs().sum() > 0
    assert m.branches["dec"].backend.out.weight.grad is not None
    g = m.branches["aux"].backend.out.weight.grad
    assert g is None or not g.any()
    with pytest.raises(ValueError, match="variant"):
        TaxonomyModel("M3", ssl_dim=16)
    with pytest.raises(ValueError, match="features"):
        m(torch.randn(2, 30, 8))


# ------------------------------------------------------------------ targets
def test_targets_from_manifest_columns_mask_unknown():
    df = rows([
        (False, "real", "real", "real", 0),
        (True, "none", "time", "MVQ", 1),
        (True, "semantic", "frequency", "SVQ", -1),  # a codec outside the ST classes: still a full target
        (True, "disentangle", "time", "SQ", 3),
        (True, "unknown", "unknown", "unknown", -1),  # an external spoof: BIN only
    ])
    t = task_targets(df)
    assert t["bin"].tolist() == [1, 0, 0, 0, 0]  # bona fide = 1, spoof = 0 (the authors' order)
    assert t["aux"].tolist() == [0, 1, 2, 3, -1]
    assert t["dec"].tolist() == [0, 1, 2, 1, -1]
    assert t["vq"].tolist() == [0, 1, 2, 3, -1]
    bad = df.copy()
    bad.loc[1, "vq"] = "RVQ"
    bad.attrs["source_path"] = "/p/train.parquet"
    with pytest.raises(ValueError, match=r"train.parquet.*'vq'.*RVQ"):
        task_targets(bad)
    with pytest.raises(ValueError, match="decoder"):
        task_targets(df.drop(columns=["decoder"]))


# ------------------------------------------------------------------ loss
def test_class_weights_are_the_papers():
    assert CLASS_WEIGHTS == {"bin": (0.1, 0.9), "aux": (0.1, 0.3, 0.3, 0.3), "dec": (0.1, 0.45, 0.45),
                             "vq": (0.1, 0.3, 0.3, 0.3)}
    assert TASK_CLASSES["bin"] == ("spoof", "bonafide") and TASK_CLASSES["aux"][0] == "REAL"


def test_loss_is_softmax_weighted_sum_of_class_weighted_ce():
    torch.manual_seed(0)
    loss_fn = TaxonomyLoss(("bin", "aux", "dec", "vq"))
    logits = {t: torch.randn(5, len(TASK_CLASSES[t])) for t in loss_fn.tasks}
    y = {"bin": torch.tensor([1, 0, 0, 0, 0]), "aux": torch.tensor([0, 1, 2, 3, -1]),
         "dec": torch.tensor([0, 1, 2, 1, -1]), "vq": torch.tensor([0, 1, 2, 3, -1])}
    total, parts = loss_fn(logits, y)

    def by_hand(task):  # weighted CE over known rows: sum w_y * nll / sum w_y
        w = torch.tensor(CLASS_WEIGHTS[task])
        known = y[task] >= 0
        lp = F.log_softmax(logits[task][known], dim=1)
        yy = y[task][known]
        return float(-(w[yy] * lp[torch.arange(len(yy)), yy]).sum() / w[yy].sum())

    for t in loss_fn.tasks:
        assert float(parts[t][0]) == pytest.approx(by_hand(t), rel=1e-5)
    assert [parts[t][1] for t in loss_fn.tasks] == [5, 4, 4, 4]
    assert float(total) == pytest.approx(sum(by_hand(t) for t in loss_fn.tasks) / 4, rel=1e-5)
    assert not loss_fn.weight_logits.requires_grad
    # class weights matter: the same logits with unit weights give another value
    assert by_hand("bin") != pytest.approx(float(F.cross_entropy(logits["bin"], y["bin"])), rel=1e-3)


def test_learnable_task_weights_move_and_weigh_tasks():
    torch.manual_seed(0)
    loss_fn = TaxonomyLoss(("bin", "dec"), learnable_weights=True)
    assert loss_fn.task_weights().tolist() == pytest.approx([0.5, 0.5])
    with torch.no_grad():
        loss_fn.weight_logits.copy_(torch.tensor([math.log(3.0), 0.0]))  # softmax -> [0.75, 0.25]
    logits = {"bin": torch.randn(4, 2), "dec": torch.randn(4, 3)}
    y = {"bin": torch.tensor([0, 1, 0, 1]), "dec": torch.tensor([1, 0, 2, 0])}
    total, parts = loss_fn(logits, y)
    assert float(total.detach()) == pytest.approx(0.75 * float(parts["bin"][0].detach()) + 0.25 * float(parts["dec"][0].detach()), rel=1e-5)
    total.backward()
    assert loss_fn.weight_logits.grad is not None and loss_fn.weight_logits.grad.abs().sum() > 0


def test_task_without_known_target_adds_nothing():
    loss_fn = TaxonomyLoss(("bin", "aux"))
    logits = {"bin": torch.randn(2, 2), "aux": torch.randn(2, 4)}
    total, parts = loss_fn(logits, {"bin": torch.tensor([0, 0]), "aux": torch.tensor([-1, -1])})
    assert parts["aux"] == (None, 0) and float(total) == pytest.approx(0.5 * float(parts["bin"][0]))
    only_aux = TaxonomyLoss(("aux",))
    assert only_aux(logits, {"aux": torch.tensor([-1, -1])})[0] is None


# ------------------------------------------------------------------ scores and metrics
def test_spoof_probability_bin_head_and_m2_formula():
    probs = task_probabilities({"bin": torch.tensor([[2.0, 0.0], [-1.0, 1.0]])})
    expected = torch.softmax(torch.tensor([[2.0, 0.0], [-1.0, 1.0]]), 1)[:, 0].numpy()
    np.testing.assert_allclose(spoof_probability(probs), expected, rtol=1e-6)
    aux = np.array([[0.1, 0.2, 0.3, 0.4], [0.9, 0.05, 0.05, 0.0]])
    dec = np.array([[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]])
    vq = np.array([[0.4, 0.2, 0.2, 0.2], [0.5, 0.5, 0.0, 0.0]])
    a, d, q = 1 - aux[:, 0], 1 - dec[:, 0], 1 - vq[:, 0]
    p_bona = 1 - (a * d * q) ** (1 / 3)  # the authors' M2 bona fide score
    got = spoof_probability({"aux": aux, "dec": dec, "vq": vq})
    np.testing.assert_allclose(1 - got, p_bona, rtol=1e-12)
    np.testing.assert_allclose(got, [(0.9 * 0.8 * 0.6) ** (1 / 3), (0.1 * 0.3 * 0.5) ** (1 / 3)], rtol=1e-12)
    # with a BIN head the BIN head decides, whatever the others say
    both = spoof_probability({"bin": np.array([[0.3, 0.7], [0.6, 0.4]]), "aux": aux})
    np.testing.assert_allclose(both, [0.3, 0.6])
    np.testing.assert_allclose(spoof_probability({"vq": vq}), q)


def test_weighted_f1_matches_sklearn_and_skips_unknown():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = np.where(rng.random(200) < 0.7, y, rng.integers(0, 4, 200))
    assert weighted_f1(y, p) == pytest.approx(f1_score(y, p, average="weighted"), abs=1e-12)
    assert weighted_f1(y, p) != pytest.approx(f1_score(y, p, average="macro"), abs=1e-6)
    y_masked = y.copy()
    y_masked[:50] = -1
    assert weighted_f1(y_masked, p) == pytest.approx(f1_score(y[50:], p[50:], average="weighted"), abs=1e-12)
    with pytest.raises(ValueError, match="known"):
        weighted_f1([-1, -1], [0, 1])


def test_binary_eer_polarity():
    is_fake = np.array([0, 0, 0, 1, 1, 1])
    p_spoof = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert binary_eer(is_fake, p_spoof) == pytest.approx(0.0)
    assert binary_eer(is_fake, 1 - p_spoof) == pytest.approx(1.0)  # wrong polarity is caught, not hidden
    assert binary_eer(is_fake, np.array([0.1, 0.2, 0.8, 0.3, 0.8, 0.9])) == pytest.approx(1 / 3, abs=1e-9)


def test_taxonomy_metrics_per_task():
    targets = {"bin": np.array([1, 0, 0, 0]), "aux": np.array([0, 1, 2, -1]), "dec": np.array([0, 1, 2, -1]),
               "vq": np.array([0, 1, 1, -1])}
    probs = {"bin": np.array([[0.2, 0.8], [0.9, 0.1], [0.7, 0.3], [0.6, 0.4]]),
             "aux": np.eye(4)[[0, 1, 1, 3]]}
    m = taxonomy_metrics(probs, targets)
    assert set(m) == {"f1_bin", "acc_bin", "f1_aux", "acc_aux", "eer"}
    assert m["acc_aux"] == pytest.approx(2 / 3) and m["acc_bin"] == 1.0 and m["eer"] == 0.0


# ------------------------------------------------------------------ sampler
def test_balanced_sampler_proportions():
    # 40 real, spoofs: aux 1 x 100, aux 2 x 10, aux 3 x 30, unknown x 20 (1/8 of 160 spoofs)
    is_fake = np.r_[np.zeros(40, bool), np.ones(160, bool)]
    group = np.r_[np.zeros(40, int), np.full(100, 1), np.full(10, 2), np.full(30, 3), np.full(20, -1)]
    idx = taxonomy_balanced_indices(is_fake, group, 800, np.random.default_rng(0))
    assert len(idx) == 800
    drawn = group[idx]
    assert (~is_fake[idx]).sum() == 400  # half real
    assert (drawn == -1).sum() == 50  # unknown keep their share (1/8) of the spoof half
    assert sorted(int((drawn == g).sum()) for g in (1, 2, 3)) == [116, 117, 117]  # 350 split equally
    # whole permutations: every spoof row of a class is drawn before any is drawn twice
    counts = np.bincount(idx, minlength=200)
    for g in (1, 2, 3, -1):
        c = counts[group == g]
        assert c.max() - c.min() <= 1 and c.min() >= 1
    # every row is used, so no fake row is dropped
    assert counts[is_fake].min() >= 1


def test_balanced_sampler_is_seeded_per_epoch_and_handles_one_sided_data():
    is_fake = np.r_[np.zeros(6, bool), np.ones(12, bool)]
    group = np.r_[np.zeros(6, int), np.repeat([1, 2, 3], 4)]
    a = list(TaxonomyBalancedSampler(is_fake, group, seed=1, epoch=0))
    assert a == list(TaxonomyBalancedSampler(is_fake, group, seed=1, epoch=0)) and len(a) == 18
    assert a != list(TaxonomyBalancedSampler(is_fake, group, seed=1, epoch=1))
    only_fake = taxonomy_balanced_indices(np.ones(6, bool), np.array([1, 1, 1, 1, 2, -1]), 12, np.random.default_rng(0))
    assert len(only_fake) == 12 and np.isin(only_fake, np.arange(6)).all()
    assert (np.array([1, 1, 1, 1, 2, -1])[only_fake] == 2).sum() == 5  # 12 - 2 unknown, split over 2 classes
    only_real = taxonomy_balanced_indices(np.zeros(4, bool), np.zeros(4, int), 8, np.random.default_rng(0))
    assert np.bincount(only_real).tolist() == [2, 2, 2, 2]


# ------------------------------------------------------------------ RawBoost
def speech_like(n=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.4 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("algo", [1, 2, 5])
def test_rawboost_shape_determinism_and_change(algo):
    x = speech_like()
    y1 = rawboost(x, 16000, algo, np.random.default_rng(7))
    y2 = rawboost(x, 16000, algo, np.random.default_rng(7))
    y3 = rawboost(x, 16000, algo, np.random.default_rng(8))
    assert y1.shape == x.shape and y1.dtype == np.float32 and np.isfinite(y1).all()
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, y3)
    assert not np.allclose(y1, x, atol=1e-4)
    assert np.abs(y1).max() <= 1.0 + 1e-6
    # short and odd lengths keep their length too
    assert rawboost(x[:777], 16000, algo, np.random.default_rng(0)).shape == (777,)
    assert np.array_equal(rawboost(x, 16000, 0, np.random.default_rng(0)), x)


def test_rawboost_parts_behave_as_described():
    x = speech_like()
    # ISD touches at most p % of the samples and leaves the rest alone (quiet input: no peak rescale)
    quiet = 0.2 * x
    y = isd_additive_noise(quiet, np.random.default_rng(3), ISDParams(p=10.0, g_sd=2.0))
    changed = np.flatnonzero(y != quiet)
    assert 0 < len(changed) <= 0.10 * len(x)
    # a loud input pushed past 1 is scaled back to a peak of 1
    loud = isd_additive_noise(2.0 * x, np.random.default_rng(3))
    assert np.abs(loud).max() == pytest.approx(1.0)
    # LnL is a filter: it keeps the signal's timing (centred FIR), so it stays correlated with x
    z = lnl_convolutive_noise(x, 16000, np.random.default_rng(3))
    assert abs(z.mean()) < 1e-3
    assert np.corrcoef(z, x)[0, 1] > 0.3
    with pytest.raises(ValueError, match="algorithm"):
        rawboost(x, 16000, 3, np.random.default_rng(0))


def test_dataset_rawboost_is_seeded_per_epoch(tmp_path):
    from test_train_data import make_protocol
    from train.data import AudioDataset, read_protocol

    df = read_protocol(make_protocol(tmp_path, {"train": {0: 1, 1: 1}}, seconds=0.2), "train")
    plain = AudioDataset(df, [0, 1], num_samples=4000)
    boosted = AudioDataset(df, [0, 1], num_samples=4000, rawboost=5, seed=1)
    a, again = boosted[1]["wav"], boosted[1]["wav"]
    assert a.shape == (4000,) and torch.equal(a, again)
    assert not torch.allclose(a, plain[1]["wav"], atol=1e-4)
    boosted.set_epoch(1)
    assert not torch.equal(boosted[1]["wav"], a)  # a new distortion each epoch, the same on a resume
    assert boosted.rows.tolist() == [0, 1]
    with pytest.raises(ValueError, match="RawBoost"):
        AudioDataset(df, [0, 1], rawboost=4)


def test_m1_learns_separable_features():
    """Frozen-feature M1 on features whose mean depends on the codec's taxonomy: the multi-task
    loss falls, BIN gets every row right and each taxonomy head every fake row (REAL, weighted
    0.1, is the slowest class to learn; eval-mode BN after a few steps does not get it yet)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    # (bin, aux, dec, vq) per "codec"; row 0 is real
    kinds = torch.tensor([[1, 0, 0, 0], [0, 1, 1, 1], [0, 2, 2, 2], [0, 3, 1, 3]])
    centres = torch.randn(4, 16, generator=gen) * 2
    which = torch.arange(8) % 4
    x = centres[which][:, None, :] + 0.3 * torch.randn(8, 9, 16, generator=gen)
    y = {t: kinds[which, i] for i, t in enumerate(("bin", "aux", "dec", "vq"))}
    m = TaxonomyModel("M1", ssl_dim=16, proj_dim=32)
    opt = torch.optim.Adam(m.parameters(), lr=5e-3)
    losses = []
    for _ in range(30):  # 16 steps left the aux head one row short at some thread counts
        total, _ = m.criterion(m.split(m(x)[0]), y)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert losses[-1] < 0.3 * losses[0]
    m.eval()
    with torch.no_grad():
        parts = m.split(m(x)[0])
    assert torch.equal(parts["bin"].argmax(1), y["bin"])
    fake = which != 0
    for t in ("aux", "dec", "vq"):
        assert torch.equal(parts[t].argmax(1)[fake], y[t][fake]), t
