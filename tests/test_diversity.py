"""Ensemble scores and diversity: hand-computed tables, and torch/torchmetrics/scipy peers.

The hand table is two members on four examples over three classes; no maximum probability
sits on a multiple of 1/15, so every ECE bin below is unambiguous. The peers share no code
with the library.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import entropy
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.functional.classification import multiclass_calibration_error

from landscape.analysis import (
    brier_score,
    disagreement,
    diversity,
    diversity_rows,
    ensemble_metrics,
    expected_calibration_error,
    interpolate,
    kl_divergence,
    mask_distances,
    negative_log_likelihood,
    pairwise,
    pairwise_disagreement,
    pairwise_kl,
    predict_probs,
    prediction_embedding,
    probability_metrics,
    reliability_rows,
    ticket_barrier,
)
from landscape.errors import LandscapeError
from landscape.sparse import apply_masks, random_masks

# members x examples x classes; labels below
TABLE = [
    [
        [0.70, 0.20, 0.10],  # predicts 0, right, confidence 0.70: bin 10 = (10/15, 11/15]
        [0.10, 0.55, 0.35],  # predicts 1, wrong, 0.55: bin 8
        [0.25, 0.25, 0.50],  # predicts 2, right, 0.50: bin 7
        [0.50, 0.45, 0.05],  # predicts 0, wrong, 0.50: bin 7
    ],
    [
        [0.95, 0.03, 0.02],  # predicts 0, right, 0.95: bin 14
        [0.25, 0.10, 0.65],  # predicts 2, right, 0.65: bin 9
        [0.10, 0.70, 0.20],  # predicts 1, wrong, 0.70: bin 10
        [0.30, 0.50, 0.20],  # predicts 1, right, 0.50: bin 7
    ],
]
LABELS = [0, 2, 2, 1]
# the ensemble's mean prediction, row by row:
# [0.825, 0.115, 0.06] right 0.825 (bin 12); [0.175, 0.325, 0.5] right 0.5 (bin 7);
# [0.175, 0.475, 0.35] wrong 0.475 (bin 7); [0.4, 0.475, 0.125] right 0.475 (bin 7)


def _table():
    return torch.tensor(TABLE, dtype=torch.float64), torch.tensor(LABELS)


def _random(m: int, n: int, c: int, seed: int = 0, scale: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(m, n, c, generator=g, dtype=torch.float64)
    return logits, torch.randint(0, c, (n,), generator=g)


def test_member_and_ensemble_scores_by_hand():
    probs, labels = _table()
    result = ensemble_metrics(probs, labels)
    m0, m1 = result.members
    ens = result.ensemble
    assert (m0.accuracy, m1.accuracy, ens.accuracy) == (0.5, 0.75, 0.75)
    assert ens.error == 0.25 and ens.count == 4 and result.bins == 15
    nll = [
        -(math.log(0.70) + math.log(0.35) + math.log(0.50) + math.log(0.45)) / 4,
        -(math.log(0.95) + math.log(0.65) + math.log(0.20) + math.log(0.50)) / 4,
        -(math.log(0.825) + math.log(0.50) + math.log(0.35) + math.log(0.475)) / 4,
    ]
    assert [m0.nll, m1.nll, ens.nll] == pytest.approx(nll, abs=1e-12)
    # sum over classes of (p - onehot)^2, per example, then the mean
    brier = [
        (0.14 + 0.735 + 0.375 + 0.555) / 4,
        (0.0038 + 0.195 + 1.14 + 0.38) / 4,
        (0.04745 + 0.38625 + 0.67875 + 0.45125) / 4,
    ]
    assert [m0.brier, m1.brier, ens.brier] == pytest.approx(brier, abs=1e-12)
    # Ovadia et al.'s code scores sum_c p_c^2 - 2 p_y: the same minus the constant 1
    ovadia = ((probs[0] ** 2).sum(1) - 2 * probs[0][torch.arange(4), labels]).mean()
    assert m0.brier - 1 == pytest.approx(ovadia.item(), abs=1e-12)
    # member 0: bin 10 |1 - .7|, bin 8 |0 - .55|, bin 7 two examples |1 - (.5 + .5)| = 0
    # member 1: one example per bin, |1-.95| + |1-.65| + |0-.7| + |1-.5|
    # ensemble: bin 12 |1 - .825|; bin 7 |2 - (.5 + .475 + .475)|
    ece = [(0.30 + 0.55) / 4, (0.05 + 0.35 + 0.70 + 0.50) / 4, (0.175 + 0.55) / 4]
    assert [m0.ece, m1.ece, ens.ece] == pytest.approx(ece, abs=1e-12)
    # the single-table functions give the same numbers
    mean = probs.mean(0)
    assert negative_log_likelihood(mean, labels) == pytest.approx(nll[2], abs=1e-12)
    assert brier_score(mean, labels) == pytest.approx(brier[2], abs=1e-12)
    assert expected_calibration_error(mean, labels) == pytest.approx(ece[2], abs=1e-12)
    assert probability_metrics(probs[1], labels) == m1


def test_rows_are_tidy():
    probs, labels = _table()
    rows = ensemble_metrics(probs, labels).rows(method="edst")
    assert [r["member"] for r in rows] == [0, 1, "ensemble"]
    assert set(rows[0]) == {"method", "member", "accuracy", "error", "nll", "brier", "ece", "count"}
    assert rows[1]["accuracy"] == 0.75 and rows[2]["method"] == "edst"


def test_nll_matches_cross_entropy_of_the_logits():
    logits, labels = _random(1, 500, 10, scale=4.0)
    probs = torch.softmax(logits[0], dim=1)
    expected = F.cross_entropy(logits[0], labels).item()
    assert negative_log_likelihood(probs, labels) == pytest.approx(expected, rel=1e-12)


def test_nll_clamps_a_zero_probability_instead_of_inf():
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    # -log(1.18e-38) = 87.34 for the first example, log 2 for the second
    assert negative_log_likelihood(probs, [1, 0]) == pytest.approx((87.3365 + math.log(2)) / 2)


def test_ece_matches_torchmetrics_on_random_probabilities():
    logits, labels = _random(1, 3000, 10, seed=3, scale=3.0)
    probs = torch.softmax(logits[0].float(), dim=1)  # torchmetrics scores in float32
    ours = expected_calibration_error(probs, labels)
    theirs = multiclass_calibration_error(probs, labels, 10, n_bins=15, norm="l1").item()
    assert ours == pytest.approx(theirs, abs=1e-6)
    for bins in (1, 7):
        theirs = multiclass_calibration_error(probs, labels, 10, n_bins=bins, norm="l1").item()
        assert expected_calibration_error(probs, labels, bins=bins) == pytest.approx(
            theirs, abs=1e-6
        )


def test_ece_puts_a_confidence_of_one_in_the_last_bin():
    # both in (14/15, 1]: accuracy 1/2, confidence (1 + .97)/2, so ECE = .485. torchmetrics
    # 1.9 gives .515 here: it counts the 1.0 in a bin of its own (torchmetrics#3510)
    probs = torch.tensor([[1.0, 0.0], [0.97, 0.03]])
    assert expected_calibration_error(probs, [1, 0]) == pytest.approx(0.485)


def test_reliability_rows_by_hand_and_they_sum_to_the_ece():
    probs, labels = _table()
    rows = reliability_rows(probs.mean(0), labels, method="ens")
    assert [(r["bin"], r["count"]) for r in rows] == [(7, 3), (12, 1)]
    assert rows[0]["lower"] == pytest.approx(7 / 15) and rows[0]["upper"] == pytest.approx(8 / 15)
    assert rows[0]["accuracy"] == pytest.approx(2 / 3)
    assert rows[0]["confidence"] == pytest.approx(1.45 / 3)
    assert rows[1]["accuracy"] == 1.0 and rows[1]["confidence"] == pytest.approx(0.825)
    assert rows[0]["method"] == "ens"
    logits, y = _random(1, 400, 5, seed=4)
    p = torch.softmax(logits[0], 1)
    rows = reliability_rows(p, y)
    assert sum(r["count"] for r in rows) == 400
    from_rows = sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / 400
    assert from_rows == pytest.approx(expected_calibration_error(p, y), abs=1e-12)


def test_disagreement_and_kl_by_hand():
    probs, _ = _table()
    p, q = probs
    # predictions [0, 1, 2, 0] and [0, 2, 1, 1] differ on three of four examples
    assert disagreement(p, q) == 0.75
    assert disagreement(torch.tensor([0, 1, 2, 0]), q) == 0.75
    assert disagreement(p, p) == 0.0
    kl = (
        0.70 * math.log(0.70 / 0.95) + 0.20 * math.log(0.20 / 0.03) + 0.10 * math.log(0.10 / 0.02),
        0.10 * math.log(0.10 / 0.25) + 0.55 * math.log(0.55 / 0.10) + 0.35 * math.log(0.35 / 0.65),
        0.25 * math.log(0.25 / 0.10) + 0.25 * math.log(0.25 / 0.70) + 0.50 * math.log(0.50 / 0.20),
        0.50 * math.log(0.50 / 0.30) + 0.45 * math.log(0.45 / 0.50) + 0.05 * math.log(0.05 / 0.20),
    )
    assert kl_divergence(p, q) == pytest.approx(sum(kl) / 4, abs=1e-12)
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-15)


def test_kl_matches_torch_and_scipy_and_takes_0_log_0_as_0():
    logits, _ = _random(2, 300, 6, seed=5)
    p, q = torch.softmax(logits, dim=2)
    expected = F.kl_div(q.log(), p, reduction="batchmean").item()
    assert kl_divergence(p, q) == pytest.approx(expected, rel=1e-12)
    assert kl_divergence(p.numpy(), q.numpy()) == pytest.approx(
        entropy(p.numpy(), q.numpy(), axis=1).mean(), rel=1e-12
    )
    # p = 0 terms vanish: KL([1, 0] || [.5, .5]) = log 2
    assert kl_divergence([[1.0, 0.0]], [[0.5, 0.5]]) == pytest.approx(math.log(2))


def test_pairwise_matrices_agree_with_the_pair_functions():
    logits, _ = _random(4, 200, 5, seed=6, scale=1.0)
    probs = torch.softmax(logits, dim=2)
    dis, kl = pairwise_disagreement(probs), pairwise_kl(probs)
    assert dis.shape == kl.shape == (4, 4)
    torch.testing.assert_close(dis, pairwise(probs, disagreement), rtol=0, atol=0)
    torch.testing.assert_close(kl, pairwise(probs, kl_divergence), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(dis, dis.T)
    assert torch.all(dis.diagonal() == 0) and torch.all(kl.diagonal().abs() < 1e-14)
    assert not torch.allclose(kl, kl.T)  # KL(a || b) != KL(b || a)
    assert kl[0, 1].item() == pytest.approx(kl_divergence(probs[0], probs[1]), rel=1e-12)


def test_diversity_summarises_the_pairs_a_below_b():
    logits, _ = _random(3, 100, 4, seed=7, scale=1.0)
    probs = torch.softmax(logits, dim=2)
    result = diversity(probs)
    rows = diversity_rows(probs, method="x")
    assert [(r["member_a"], r["member_b"]) for r in rows] == [(0, 1), (0, 2), (1, 2)]
    assert rows[2]["kl"] == pytest.approx(kl_divergence(probs[1], probs[2]), rel=1e-12)
    assert rows[0]["disagreement"] == disagreement(probs[0], probs[1])
    assert result.mean_kl == pytest.approx(np.mean([r["kl"] for r in rows]), rel=1e-12)
    assert result.mean_disagreement == pytest.approx(np.mean([r["disagreement"] for r in rows]))
    assert rows[0]["method"] == "x"


def test_mask_distances_by_hand():
    a = {
        "w": torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0]], dtype=torch.bool),
        "v": torch.ones(2).bool(),
    }
    b = {
        "w": torch.tensor([[1, 0, 0, 1], [1, 0, 0, 0]], dtype=torch.bool),
        "v": torch.ones(2).bool(),
    }
    c = {"w": torch.zeros(2, 4, dtype=torch.bool), "v": torch.tensor([True, False])}
    rows = mask_distances([a, b, c], arm="dst")
    assert [(r["member_a"], r["member_b"]) for r in rows] == [(0, 1), (0, 2), (1, 2)]
    # a keeps w at {0, 1, 4, 6} and v at both; b keeps w at {0, 3, 4} and v at both
    # a ^ b = {1, 3, 6}: 3 of 10 weights; a & b: 2 + 2 = 4, a | b: 5 + 2 = 7
    assert rows[0]["hamming"] == pytest.approx(3 / 10)
    assert rows[0]["jaccard"] == pytest.approx(1 - 4 / 7)
    # a vs c: c keeps only v[0]; they differ on w {0, 1, 4, 6} and v[1]; share v[0] of 6
    assert rows[1]["hamming"] == pytest.approx(5 / 10)
    assert rows[1]["jaccard"] == pytest.approx(1 - 1 / 6)
    assert rows[2]["arm"] == "dst"


def test_pca_embedding_matches_numpy_svd_and_keeps_distances():
    logits, _ = _random(3, 50, 4, seed=8, scale=1.0)
    probs = torch.softmax(logits, dim=2)
    coords = prediction_embedding(probs)
    assert coords.shape == (3, 2) and coords.dtype == np.float64
    x = probs.reshape(3, -1).numpy()
    centred = x - x.mean(0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    reference = u[:, :2] * s[:2]
    for k in range(2):  # equal up to the sign of each component...
        sign = np.sign(vt[k][np.argmax(np.abs(vt[k]))])  # ...which the loadings fix
        np.testing.assert_allclose(coords[:, k], sign * reference[:, k], atol=1e-12)
    # three points span a plane, so two components keep every pairwise distance
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert np.linalg.norm(coords[i] - coords[j]) == pytest.approx(
            np.linalg.norm(x[i] - x[j]), rel=1e-10
        )
    # two members: one direction of variance; the second coordinate is exactly 0
    pair = prediction_embedding(probs[:2])
    assert np.all(pair[:, 1] == 0) and pair[0, 0] == pytest.approx(-pair[1, 0])
    np.testing.assert_array_equal(prediction_embedding(probs.numpy()), coords)


def test_tsne_without_scikit_learn_says_how_to_install_it(monkeypatch):
    probs = torch.softmax(_random(3, 10, 3)[0], dim=2)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(LandscapeError, match="pip install scikit-learn"):
        prediction_embedding(probs, method="tsne")


def test_tsne_embeds_when_scikit_learn_is_there():
    pytest.importorskip("sklearn")
    probs = torch.softmax(_random(6, 20, 3)[0], dim=2)
    coords = prediction_embedding(probs, method="tsne", seed=1)
    assert coords.shape == (6, 2)
    np.testing.assert_array_equal(coords, prediction_embedding(probs, method="tsne", seed=1))


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))


def _data(n: int = 60, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 12, generator=g), torch.randint(0, 4, (n,), generator=g)


def test_predict_probs_is_the_softmax_of_each_model():
    models = [_mlp(0).eval(), _mlp(1).train()]
    x, y = _data()
    probs, labels = predict_probs(models, (x, y), batch_size=16)
    assert probs.shape == (2, 60, 4) and probs.dtype == torch.float64
    torch.testing.assert_close(labels, y)
    with torch.no_grad():
        for p, model in zip(probs, models):
            torch.testing.assert_close(p, torch.softmax(model(x).double(), 1))
    assert models[1].training and not models[0].training  # left as they were found
    batches = iter(DataLoader(TensorDataset(x, y), batch_size=7))  # one-shot: read once
    torch.testing.assert_close(predict_probs(models, batches)[0], probs)


def test_predict_probs_refuses_shuffled_data_and_mixed_classes():
    x, y = _data()
    shuffled = DataLoader(
        TensorDataset(x, y), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    with pytest.raises(LandscapeError, match="shuffle=False"):
        predict_probs([_mlp(0), _mlp(1)], shuffled)
    wide = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    with pytest.raises(LandscapeError, match="same classes"):
        predict_probs([_mlp(0), wide], (x, y))
    with pytest.raises(LandscapeError, match=r"\[model\]"):
        predict_probs(_mlp(0), (x, y))
    with pytest.raises(LandscapeError, match="models\\[1\\]"):
        predict_probs([_mlp(0), {"weight": 1}], (x, y))


def test_ticket_barrier_is_interpolate_with_mask_densities():
    a, b = _mlp(0), _mlp(1)
    masks_a = random_masks(a, 0.5, torch.Generator().manual_seed(0))
    masks_b = random_masks(b, 0.5, torch.Generator().manual_seed(1))
    apply_masks(a, masks_a), apply_masks(b, masks_b)
    data = _data()
    result = ticket_barrier(a, b, data, masks_a, masks_b, points=5)
    line = interpolate(a, b, data, points=5)
    assert result["loss_barrier"] == line.loss_barrier
    assert result["error_barrier"] == line.error_barrier
    kept = lambda m: sum(int(t.sum()) for t in m.values())  # noqa: E731
    total = sum(t.numel() for t in masks_a.values())
    either = {n: masks_a[n] | masks_b[n] for n in masks_a}
    both = {n: masks_a[n] & masks_b[n] for n in masks_a}
    assert result["density_a"] == kept(masks_a) / total == pytest.approx(0.5, abs=0.01)
    assert result["union_density"] == kept(either) / total
    assert result["intersection_density"] == kept(both) / total
    assert set(ticket_barrier(a, b, data, points=3)) == {"loss_barrier", "error_barrier"}
    with pytest.raises(LandscapeError, match="both tickets"):
        ticket_barrier(a, b, data, masks_a)
    with pytest.raises(LandscapeError, match="masks of model_b"):
        ticket_barrier(a, b, data, masks_a, {"0.weight": torch.ones(3, 3).bool()})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p, y: ensemble_metrics(p[0], y), r"\(members M, examples N, classes C\)"),
        (lambda p, y: ensemble_metrics(p, y[:3]), r"shape \(N,\) = \(4,\)"),
        (lambda p, y: ensemble_metrics(p, y + 1), "labels span 1..3 but probs has 3 classes"),
        (lambda p, y: ensemble_metrics(p, y.double()), "integer class indices"),
        (lambda p, y: ensemble_metrics(p * 2, y), "softmax"),
        (lambda p, y: ensemble_metrics(p.log(), y), "non-negative"),
        (lambda p, y: ensemble_metrics(p * float("nan"), y), "NaN"),
        (lambda p, y: ensemble_metrics(p, y, bins=0), "bins must be a whole number >= 1"),
        (lambda p, y: expected_calibration_error(p, y), r"\(examples N, classes C\)"),
        (lambda p, y: reliability_rows(p, y), "probs.mean"),
        (lambda p, y: pairwise_kl(p[:1]), "at least two"),
        (lambda p, y: diversity(p[:1]), "M >= 2"),
        (lambda p, y: disagreement(p[0], p[1][:3]), "same data"),
        (lambda p, y: disagreement(p[0], p), r"\(N, C\) probabilities or \(N,\)"),
        (lambda p, y: kl_divergence(p[0], torch.full((4, 2), 0.5)), "same examples and classes"),
        (lambda p, y: kl_divergence(p[0], "q"), "tensor or numpy array"),
        (lambda p, y: prediction_embedding(p, method="umap"), "pca"),
        (lambda p, y: prediction_embedding(p, dim=3), "dim <= 2"),
        (lambda p, y: mask_distances([{}]), "at least two"),
        (lambda p, y: mask_distances({"w": torch.ones(2)}), "list of mask sets"),
    ],
)
def test_bad_inputs_say_what_to_pass(call, message):
    probs, labels = _table()
    with pytest.raises(LandscapeError, match=message):
        call(probs, labels)
