"""REFD-style seed model II pieces: losses, RE/FD models on both back ends, fusion, Fréchet distance."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from train.frechet import frechet_distance, frechet_from_stats, frechet_table, gaussian_stats
from train.fusion import UNKNOWN, class_prototypes, fused_class_scores, fused_score, fusion_sweep, refd_decide
from train.losses import OCSoftmax, mixup_batch, npair_indices, npair_loss, regmixup_loss
from train.models.refd import FakeDispersion, RealEmphasis, RefdConfig

TINY = dict(ssl_dim=16, conformer_dim=8, conformer_heads=2, conformer_ffn_dim=16, conformer_layers=1,
            conformer_kernel=3, dropout=0.0)


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


# ---- losses ---------------------------------------------------------------------------------

def test_oc_softmax_hand_computed():
    oc = OCSoftmax(2)  # REFD margins: r_real 0.9, r_fake 0.5, alpha 20
    with torch.no_grad():
        oc.center.copy_(torch.tensor([[3.0, 0.0]]))  # only its direction matters
    x = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 5, 1])
    s = oc.scores(x)
    assert torch.allclose(s, torch.tensor([1.0, 0.0, 1 / math.sqrt(2)]), atol=1e-6)
    expected = (softplus(20 * (0.9 - 1.0)) + softplus(20 * (0.0 - 0.5)) + softplus(20 * (1 / math.sqrt(2) - 0.5))) / 3
    assert oc(x, labels).item() == pytest.approx(expected, rel=1e-5)


def test_oc_softmax_rejects_crossed_margins():
    with pytest.raises(ValueError, match="r_fake"):
        OCSoftmax(4, r_real=0.3, r_fake=0.6)


def test_npair_hand_computed():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    labels = torch.tensor([0, 1, 0, 1, 2])  # class 2 has no pair: left out
    a, p = npair_indices(labels)
    assert a.tolist() == [0, 1] and p.tolist() == [2, 3]
    ce = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(-2.0))) / 2
    reg = ((1 + 1) / 2 + (1 + 4) / 2) / 2
    assert npair_loss(emb, labels, l2_weight=0.002).item() == pytest.approx(ce + 0.002 * reg, rel=1e-6)


def test_npair_needs_two_pairs_and_stays_differentiable():
    emb = torch.randn(3, 4, requires_grad=True)
    loss = npair_loss(emb, torch.tensor([0, 0, 1]))
    assert loss.item() == 0.0
    loss.backward()
    assert emb.grad is not None


def test_regmixup_hand_computed():
    clean = torch.zeros(1, 2)
    mixed = torch.tensor([[2.0, 0.0]])
    got = regmixup_loss(clean, torch.tensor([0]), mixed, torch.tensor([1]), lam=0.25, eta=0.5)
    expected = math.log(2) + 0.5 * (0.25 * math.log1p(math.exp(-2)) + 0.75 * math.log1p(math.exp(2)))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_mixup_batch_is_seeded_and_mixes_pairs():
    x = torch.eye(6)
    y = torch.arange(6)
    x1, y1, lam1 = mixup_batch(x, y, 2.0, torch.Generator().manual_seed(3))
    x2, y2, lam2 = mixup_batch(x, y, 2.0, torch.Generator().manual_seed(3))
    _, _, lam3 = mixup_batch(x, y, 2.0, torch.Generator().manual_seed(4))
    assert lam1 == lam2 and torch.equal(x1, x2) and torch.equal(y1, y2) and lam1 != lam3
    assert 0.0 < lam1 < 1.0 and sorted(y1.tolist()) == list(range(6))
    expected = lam1 * x + (1 - lam1) * torch.eye(6)[y1]  # row i mixes e_i with e_perm(i)
    assert torch.allclose(x1, expected)
    with pytest.raises(ValueError, match="alpha"):
        mixup_batch(x, y, 0.0, torch.Generator())


# ---- models ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["conformer", "aasist"])
def test_re_and_fd_shapes(backend):
    torch.manual_seed(0)
    cfg = RefdConfig(backend=backend, **TINY)
    x = torch.randn(3, 30, 16)
    re_model, fd_model = RealEmphasis(cfg).eval(), FakeDispersion(5, cfg).eval()
    with torch.no_grad():
        logits, emb = re_model(x)
        fd_logits, fd_emb = fd_model(x)
    dim = 8 if backend == "conformer" else 160
    assert logits.shape == (3, 2) and emb.shape == (3, dim)
    assert fd_logits.shape == (3, 5) and fd_emb.shape == (3, dim)
    # column 0 = real exactly when the cosine to the real centre passes re_threshold (REFD: 0)
    s = re_model.real_score(emb)
    assert torch.equal(logits.argmax(1) == 0, s > cfg.re_threshold)
    assert torch.allclose(logits[:, 0], cfg.oc_alpha * (s - cfg.re_threshold))
    with pytest.raises(ValueError, match="16"):
        re_model(torch.randn(2, 30, 12))


def test_config_checks():
    with pytest.raises(ValueError, match="backend"):
        RefdConfig(backend="lstm")
    with pytest.raises(ValueError, match="divisible"):
        RefdConfig(conformer_dim=10, conformer_heads=4)
    with pytest.raises(ValueError, match="2 fake classes"):
        FakeDispersion(1, RefdConfig(**TINY))


def _fd_step(model, opt, x, y, gen):
    opt.zero_grad()
    parts = model.loss(x, y, gen)
    parts["total"].backward()
    opt.step()
    return parts


def test_fd_training_step_learns_and_resumes_exactly():
    torch.manual_seed(1)
    cfg = RefdConfig(**TINY)
    model = FakeDispersion(3, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    x = torch.randn(6, 20, 16) + y.view(-1, 1, 1).float()
    gen = torch.Generator().manual_seed(7)
    first = _fd_step(model, opt, x, y, gen)
    assert first["npair"].item() > 0  # three classes with a pair each
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.out.parameters())
    for _ in range(25):
        last = _fd_step(model, opt, x, y, gen)
    assert last["total"].item() < first["total"].item()
    # resume: model + optimiser + generator state give the same next step
    saved = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()), gen.get_state())
    a = _fd_step(model, opt, x, y, gen)["total"].item()
    model2 = FakeDispersion(3, cfg)
    model2.load_state_dict(saved[0])
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-2)
    opt2.load_state_dict(saved[1])
    gen2 = torch.Generator()
    gen2.set_state(saved[2])
    assert _fd_step(model2, opt2, x, y, gen2)["total"].item() == pytest.approx(a, rel=1e-6)


def test_re_training_step_separates_real_from_fake():
    torch.manual_seed(2)
    model = RealEmphasis(RefdConfig(**TINY))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    y = torch.tensor([0, 0, 0, 3, 5, 7])
    x = torch.randn(6, 20, 16) + 2 * (y != 0).view(-1, 1, 1).float()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = model.loss(x, y)
        loss.backward()
        assert model.oc.center.grad is not None
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    with torch.no_grad():
        s = model.real_score(model(x.clone())[1])
    assert s[:3].min() > s[3:].max()


# ---- fusion ---------------------------------------------------------------------------------

def test_prototypes_and_fused_scores():
    emb = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    classes, protos = class_prototypes(emb, [4, 4, 9])
    assert classes.tolist() == [4, 9] and np.allclose(protos, [[1, 0], [0, 1]])
    logits = np.array([[0.0, 0.0], [math.log(3), 0.0]])  # softmax: [.5, .5] and [.75, .25]
    test_emb = np.array([[1.0, 1.0], [0.0, 1.0]])
    c = 1 / math.sqrt(2)
    fused = fused_class_scores(logits, test_emb, protos, 0.4)
    assert np.allclose(fused, [[0.6 * 0.5 + 0.4 * c, 0.6 * 0.5 + 0.4 * c], [0.6 * 0.75, 0.6 * 0.25 + 0.4]])
    assert np.allclose(fused_score(logits, test_emb, protos, 0.0), [0.5, 0.75])  # MSP alone
    assert np.allclose(fused_score(logits, test_emb, protos, 1.0), [c, 1.0])  # similarity alone
    with pytest.raises(ValueError, match="w must be"):
        fused_score(logits, test_emb, protos, 1.5)
    with pytest.raises(ValueError, match="disagree"):
        fused_score(logits[:, :1], test_emb, protos, 0.5)


def test_refd_decision_rule():
    ood = [0.9, 0.1, 0.9, 0.1]
    real = [0.95, 0.2, 0.1, 0.95]
    pred = [0, 1, 1, 0]
    out = refd_decide(ood, 0.5, real, 0.8, pred, fd_labels=[3, 7])
    assert out.tolist() == [0, UNKNOWN, 7, 0]  # REFD's order: a confident real wins over unknown
    out = refd_decide(ood, 0.5, real, 0.8, pred, fd_labels=[3, 7], real_first=False)
    assert out.tolist() == [0, UNKNOWN, 7, UNKNOWN]
    assert refd_decide(ood, 0.5, real, 0.8, pred).tolist() == [0, UNKNOWN, 1, 0]  # FD index when no label map
    with pytest.raises(ValueError, match="1-d"):
        refd_decide(ood, 0.5, real[:3], 0.8, pred)


def test_fusion_sweep_trades_accuracy_for_ood():
    protos = np.array([[1.0, 0.0], [0.0, 1.0]])
    # the classifier gets the second row wrong; the embeddings get it right
    logits_id = np.array([[3.0, 0.0], [3.0, 0.0]])
    emb_id = np.array([[1.0, 0.0], [0.0, 1.0]])
    logits_ood = np.array([[3.0, 0.0]])  # confident classifier, embedding between the prototypes
    emb_ood = np.array([[1.0, -1.0]])

    def auroc(s_id, s_ood):
        return float(np.mean([[a > b for b in s_ood] for a in s_id]))

    rows = fusion_sweep([0.0, 1.0], logits_id, emb_id, [10, 20], logits_ood, emb_ood, protos, [10, 20], auroc)
    assert [r["id_accuracy"] for r in rows] == [0.5, 1.0]
    assert rows[0]["ood"] == 0.0 and rows[1]["ood"] == 1.0


# ---- Fréchet distance -----------------------------------------------------------------------

def test_frechet_closed_form_diagonal():
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    va, vb = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(va) - np.sqrt(vb)) ** 2)
    assert frechet_from_stats(mu_a, np.diag(va), mu_b, np.diag(vb)) == pytest.approx(expected, rel=1e-10)


def test_frechet_closed_form_commuting_rotated():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    va, vb = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 2.0, 8.0, 1.0])
    cov_a, cov_b = q @ np.diag(va) @ q.T, q @ np.diag(vb) @ q.T  # commute: same eigenvectors
    expected = np.sum((np.sqrt(va) - np.sqrt(vb)) ** 2)
    assert frechet_from_stats(np.zeros(4), cov_a, np.zeros(4), cov_b) == pytest.approx(expected, rel=1e-9)


def test_frechet_matches_scipy_sqrtm():
    from scipy import linalg

    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 5))
    b = rng.normal(size=(150, 5)) @ rng.normal(size=(5, 5)) + 0.5
    mu_a, cov_a = a.mean(0), np.cov(a, rowvar=False)
    mu_b, cov_b = b.mean(0), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-7)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_gaussian_stats_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        gaussian_stats(np.zeros((0, 3)))


def test_frechet_table_per_class():
    rng = np.random.default_rng(2)
    train = (np.concatenate([rng.normal(0, 1, (50, 2)), rng.normal(5, 1, (50, 2))]), np.repeat([1, 2], 50))
    eval_id = (np.concatenate([rng.normal(0, 1, (40, 2)), rng.normal(9, 1, (40, 2))]), np.repeat([1, 2], 40))
    ood = (rng.normal(2, 1, (30, 2)), np.full(30, 7))
    table = frechet_table(train, {"eval_id": eval_id, "ood": ood, "tiny": (np.zeros((1, 2)), np.array([1]))})
    assert table[["set", "label", "reference"]].values.tolist() == [
        ["eval_id", 1, "same class"], ["eval_id", 2, "same class"], ["ood", 7, "all"], ["tiny", 1, "same class"]]
    fd = table["frechet"].tolist()
    assert fd[0] < 1.0 < 20.0 < fd[1]  # class 2 moved by (4, 4): about 32
    assert fd[2] == pytest.approx(frechet_distance(train[0], ood[0]))
    assert math.isnan(fd[3])
