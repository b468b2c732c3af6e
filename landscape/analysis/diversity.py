"""Ensembles of (sparse) networks: calibration, prediction diversity, mask distances, embeddings.

Predictions are probability tables: ``probs`` of shape ``(M, N, C)`` holds the softmax
outputs of ``M`` members on ``N`` examples over ``C`` classes (each row sums to 1), and
``labels`` of shape ``(N,)`` the true classes. Numpy arrays and tensors are both accepted;
every computation runs in float64 on the CPU. The ensemble predicts the mean of its
members' probabilities, as in deep ensembles (Lakshminarayanan et al. 2017) and the sparse
ensembles of Liu et al. 2022 ("Deep Ensembling with No Overhead for either Training or
Testing: The All-Round Blessings of Dynamic Sparsity", FreeTickets).

The definitions follow uncertainty-baselines (Nado et al. 2021), whose numbers most
ensemble papers report: NLL and Brier as in ``robustness_metrics/metrics/uncertainty.py``,
ECE, disagreement and KL as in ``edward2``'s ``ExpectedCalibrationError`` and
``average_pairwise_diversity``. Nothing here trains or plots.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape.analysis.evaluate import DEFAULT_BATCH, as_model, predict
from landscape.analysis.interpolate import interpolate
from landscape.checks import integer
from landscape.errors import LandscapeError
from landscape.sparse.masks import (
    Masks,
    check_masks,
    density,
    hamming_distance,
    intersection,
    jaccard_distance,
    union,
)

# The smallest normal float32. Probabilities are clamped to it before a logarithm, so a
# probability that float32 softmax rounded to 0 scores -log(EPS) = 87.3 nats (about where it
# underflowed) instead of inf; every probability above it is left exactly as it is.
EPS = torch.finfo(torch.float32).tiny
# How far a row of probabilities may sum from 1 (float16 softmax outputs stay within it).
SUM_TOLERANCE = 1e-3
DEFAULT_BINS = 15
METHODS = ("pca", "tsne")


@dataclass(frozen=True)
class ProbabilityMetrics:
    """Scores of one table of predicted probabilities ``(N, C)`` against labels ``(N,)``.

    Attributes:
        accuracy: fraction of examples whose top-1 class (argmax) is the label.
        error: ``1 - accuracy``.
        nll: mean negative log-likelihood ``-log p[label]`` (see :func:`negative_log_likelihood`).
        brier: multi-class Brier score (see :func:`brier_score`).
        ece: expected calibration error (see :func:`expected_calibration_error`).
        count: the number of examples ``N``.
    """

    accuracy: float
    error: float
    nll: float
    brier: float
    ece: float
    count: int


@dataclass(frozen=True)
class EnsembleMetrics:
    """The scores of an ensemble's mean prediction and of each member alone.

    Attributes:
        ensemble: scores of the mean of the members' probabilities.
        members: scores of each member, in the order of ``probs``.
        bins: the number of ECE bins used.
    """

    ensemble: ProbabilityMetrics
    members: tuple[ProbabilityMetrics, ...]
    bins: int

    def rows(self, **extra: Any) -> list[dict[str, Any]]:
        """Tidy rows: one per member (``member`` = its index), then one with ``member``
        ``"ensemble"``; columns accuracy, error, nll, brier, ece, count and ``extra``."""
        scored = [*enumerate(self.members), ("ensemble", self.ensemble)]
        return [{**extra, "member": m, **asdict(s)} for m, s in scored]


@dataclass(frozen=True)
class Diversity:
    """How differently the members predict, pair by pair.

    Attributes:
        disagreement: ``(M, M)``; entry ``[a, b]`` is the fraction of examples on which the
            top-1 predictions of members ``a`` and ``b`` differ (symmetric, zero diagonal).
        kl: ``(M, M)``; entry ``[a, b]`` is the mean over examples of ``KL(p_a || p_b)``.
        mean_disagreement: mean of ``disagreement[a, b]`` over the pairs ``a < b``.
        mean_kl: mean of ``kl[a, b]`` over the pairs ``a < b`` (edward2's ``average_kl``).
    """

    disagreement: torch.Tensor
    kl: torch.Tensor
    mean_disagreement: float
    mean_kl: float

    def rows(self, **extra: Any) -> list[dict[str, Any]]:
        """Tidy rows, one per pair ``a < b``: member_a, member_b, disagreement, kl
        (``KL(p_a || p_b)``), and ``extra`` columns."""
        m = len(self.kl)
        return [
            {
                **extra,
                "member_a": a,
                "member_b": b,
                "disagreement": float(self.disagreement[a, b]),
                "kl": float(self.kl[a, b]),
            }
            for a, b in itertools.combinations(range(m), 2)
        ]


# ---------------------------------------------------------------------------------------
# predictions


def predict_probs(
    models: Sequence[Any], data: Any, *, batch_size: int = DEFAULT_BATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every member's softmax probabilities on all of ``data``.

    Args:
        models: a list of classifiers returning logits ``(N, C)``, or ``Run``s (each loads
            its last checkpoint on the CPU). Each model is left as it was found.
        data: ``(x, y)`` (tensors or numpy arrays), a Split, or batches in a fixed order
            (a one-shot iterator is read once and kept).
        batch_size: examples per forward pass when ``data`` is a tensor pair.

    Returns:
        ``(probs, labels)``: ``probs`` of shape ``(M, N, C)``, float64 on the CPU (softmax
        taken in float64, so no probability underflows to 0 before a logit gap of ~700),
        and ``labels`` of shape ``(N,)``, int64.

    Raises:
        LandscapeError: no models, or members that disagree on the labels (data in a
            shuffled order) or on the number of classes.
    """
    if isinstance(models, nn.Module) or not isinstance(models, (list, tuple)):
        raise LandscapeError(
            f"predict_probs takes a list of models (or Runs), got {type(models).__name__}; "
            f"wrap a single model as [model]"
        )
    if not models:
        raise LandscapeError("predict_probs got an empty list of models; pass at least one")
    data = list(data) if isinstance(data, Iterator) else data
    probs, labels = [], None
    for i, obj in enumerate(models):
        logits, y = predict(as_model(obj, f"models[{i}]"), data, batch_size=batch_size)
        p = torch.softmax(logits.detach().to("cpu", torch.float64), dim=1)
        y = y.cpu()
        if labels is not None and not torch.equal(y, labels):
            raise LandscapeError(
                f"models[{i}] saw other labels than models[0]: the data comes in a different "
                f"order each pass; use a fixed order (DataLoader(..., shuffle=False)) or (x, y)"
            )
        if probs and p.shape[1] != probs[0].shape[1]:
            raise LandscapeError(
                f"models[{i}] has {p.shape[1]} outputs but models[0] has "
                f"{probs[0].shape[1]}; an ensemble needs members over the same classes"
            )
        probs.append(p)
        labels = y
    return torch.stack(probs), labels


# ---------------------------------------------------------------------------------------
# scores of one prediction and of an ensemble


def negative_log_likelihood(probs: Any, labels: Any) -> float:
    """Mean negative log-likelihood of the labels, ``-(1/N) sum_n log p_n[y_n]``.

    ``p_n[y_n]`` is clamped below at :data:`EPS` (the smallest normal float32, 1.2e-38) so
    that a probability rounded to 0 costs 87.3 nats instead of inf; for probabilities from
    :func:`predict_probs` (float64) it binds only where the label's logit trails the top
    one by more than 87. Equals ``F.cross_entropy(logits, labels)`` for ``probs =
    softmax(logits)``, and robustness_metrics' ``nll``.

    Args:
        probs: ``(N, C)`` probabilities (rows sum to 1).
        labels: ``(N,)`` integer classes.
    """
    p, y = _checked_pair(probs, labels)
    return _nll(p, y)


def brier_score(probs: Any, labels: Any) -> float:
    """Multi-class Brier score, ``(1/N) sum_n sum_c (p_nc - [c == y_n])^2``, in [0, 2].

    The sum over classes (Brier 1950's original definition), as uncertainty-baselines
    reports it (``robustness_metrics/metrics/uncertainty.py``: ``Brier`` is ``num_classes``
    times the mean squared error against the one-hot label). Two other conventions are in
    use: Ovadia et al. 2019's code (``uq_benchmark_2019/metrics_lib.py``, ``brier_scores``)
    and ``tfp.stats.brier_score`` drop the constant, ``sum_c p_c^2 - 2 p_y``, i.e. this
    score minus 1; some libraries divide by ``C`` (the class mean). Neither is used here.

    Args:
        probs: ``(N, C)`` probabilities.
        labels: ``(N,)`` integer classes.
    """
    p, y = _checked_pair(probs, labels)
    return _brier(p, y)


def expected_calibration_error(probs: Any, labels: Any, *, bins: int = DEFAULT_BINS) -> float:
    """Expected calibration error of the top-1 prediction over equal-width confidence bins.

    ``ECE = sum_b (|B_b| / N) |acc(B_b) - conf(B_b)|`` (Naeini et al. 2015; Guo et al. 2017,
    eq. 5), where the confidence of an example is its largest probability, ``acc`` is the
    fraction of a bin whose argmax is the label and ``conf`` the bin's mean confidence.
    Bins are right-closed as in Guo et al. and Ovadia et al. 2019's code
    (``np.digitize(..., right=True)``): ``[0, 1/B], (1/B, 2/B], ..., (1 - 1/B, 1]``.

    This equals torchmetrics' ``multiclass_calibration_error(probs, labels, C, n_bins=B,
    norm="l1")`` (to float32 rounding) except for a confidence of exactly 1.0, common for
    saturated float32 softmax outputs: torchmetrics (1.9) counts it in an extra bin of its
    own (Lightning-AI/torchmetrics#3510); here, as in edward2/uncertainty-baselines (whose
    ``tf.histogram_fixed_width_bins`` puts 1.0 in the last bin), it joins the last bin.

    Args:
        probs: ``(N, C)`` probabilities.
        labels: ``(N,)`` integer classes.
        bins: number of bins ``B`` (15, as in Guo et al. and uncertainty-baselines).
    """
    p, y = _checked_pair(probs, labels)
    return _ece(p, y, integer("bins", bins, 1))


def probability_metrics(probs: Any, labels: Any, *, bins: int = DEFAULT_BINS) -> ProbabilityMetrics:
    """Accuracy, error, NLL, Brier score and ECE of one ``(N, C)`` table of probabilities."""
    p, y = _checked_pair(probs, labels)
    return _metrics(p, y, integer("bins", bins, 1))


def ensemble_metrics(probs: Any, labels: Any, *, bins: int = DEFAULT_BINS) -> EnsembleMetrics:
    """Scores of the ensemble's mean prediction and of each member.

    Args:
        probs: ``(M, N, C)`` probabilities of ``M`` members (as :func:`predict_probs` gives).
        labels: ``(N,)`` integer classes.
        bins: number of ECE bins.

    Returns:
        :class:`EnsembleMetrics`; the ensemble predicts ``(1/M) sum_m probs[m]``.
    """
    p = _as_probs(probs, "probs", 3)
    y = _as_labels(labels, p.shape[1], p.shape[2])
    bins = integer("bins", bins, 1)
    members = tuple(_metrics(pm, y, bins) for pm in p)
    return EnsembleMetrics(ensemble=_metrics(p.mean(0), y, bins), members=members, bins=bins)


def reliability_rows(
    probs: Any, labels: Any, *, bins: int = DEFAULT_BINS, **extra: Any
) -> list[dict[str, Any]]:
    """The reliability diagram's numbers: one row per non-empty confidence bin.

    Columns: bin (0-based), lower, upper (the bin is ``(lower, upper]``, the first also
    holds 0), confidence (mean top-1 probability), accuracy, count, and ``extra`` columns
    (e.g. ``method="EDST"``). ``sum count * |accuracy - confidence| / N`` over the rows is
    :func:`expected_calibration_error`.

    Args:
        probs: ``(N, C)`` probabilities; for an ensemble pass the mean, ``probs.mean(0)``.
        labels: ``(N,)`` integer classes.
        bins: number of equal-width bins.
    """
    p, y = _checked_pair(probs, labels)
    bins = integer("bins", bins, 1)
    count, conf_sum, acc_sum = _bin_sums(p, y, bins)
    return [
        {
            **extra,
            "bin": b,
            "lower": b / bins,
            "upper": (b + 1) / bins,
            "confidence": float(conf_sum[b] / count[b]),
            "accuracy": float(acc_sum[b] / count[b]),
            "count": int(count[b]),
        }
        for b in range(bins)
        if count[b] > 0
    ]


def _metrics(p: torch.Tensor, y: torch.Tensor, bins: int) -> ProbabilityMetrics:
    accuracy = (p.argmax(1) == y).double().mean().item()
    return ProbabilityMetrics(
        accuracy=accuracy,
        error=1.0 - accuracy,
        nll=_nll(p, y),
        brier=_brier(p, y),
        ece=_ece(p, y, bins),
        count=len(y),
    )


def _nll(p: torch.Tensor, y: torch.Tensor) -> float:
    return -p.gather(1, y[:, None]).clamp_min(EPS).log().mean().item()


def _brier(p: torch.Tensor, y: torch.Tensor) -> float:
    onehot = F.one_hot(y, p.shape[1]).to(p.dtype)
    return (p - onehot).pow(2).sum(1).mean().item()


def _ece(p: torch.Tensor, y: torch.Tensor, bins: int) -> float:
    count, conf_sum, acc_sum = _bin_sums(p, y, bins)
    # |B| * |acc(B) - conf(B)| = |sum of correct - sum of confidences| within a bin
    return ((acc_sum - conf_sum).abs().sum() / len(y)).item()


def _bin_sums(
    p: torch.Tensor, y: torch.Tensor, bins: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per bin: the example count, the sum of confidences, the number correct."""
    confidence, predicted = p.max(1)
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    # right=False: edges[i - 1] < c <= edges[i] gives i, so bin i - 1 is (edges[i-1], edges[i]]
    index = (torch.bucketize(confidence, edges, right=False) - 1).clamp_(0, bins - 1)
    zeros = torch.zeros(bins, dtype=torch.float64)
    count = zeros.scatter_add(0, index, torch.ones_like(confidence))
    conf_sum = zeros.scatter_add(0, index, confidence)
    acc_sum = zeros.scatter_add(0, index, (predicted == y).double())
    return count, conf_sum, acc_sum


# ---------------------------------------------------------------------------------------
# diversity


def disagreement(p: Any, q: Any) -> float:
    """Fraction of examples on which two classifiers' top-1 predictions differ.

    ``(1/N) sum_n [argmax p_n != argmax q_n]`` (Fort et al. 2019, "Deep Ensembles: A Loss
    Landscape Perspective"; edward2's ``disagreement``). Ties go to the lowest class index.

    Args:
        p: ``(N, C)`` probabilities, or ``(N,)`` predicted classes.
        q: the same for the other classifier.
    """
    a, b = _as_predictions(p, "p"), _as_predictions(q, "q")
    if len(a) != len(b):
        raise LandscapeError(
            f"p covers {len(a)} examples but q {len(b)}; compare predictions on the same data"
        )
    if len(a) == 0:
        raise LandscapeError("disagreement needs at least one example")
    return (a != b).double().mean().item()


def kl_divergence(p: Any, q: Any) -> float:
    """Mean over examples of ``KL(p_n || q_n) = sum_c p_nc log(p_nc / q_nc)``.

    Terms with ``p_nc = 0`` count 0 (``0 log 0 = 0``); ``q_nc`` is clamped below at
    :data:`EPS` so a class that ``q`` rules out costs a large finite amount instead of
    inf. Equals ``F.kl_div(q.log(), p, reduction="batchmean")`` for positive ``q``.

    Args:
        p: ``(N, C)`` probabilities (the reference distribution).
        q: ``(N, C)`` probabilities on the same examples and classes.
    """
    a, b = _as_probs(p, "p", 2), _as_probs(q, "q", 2)
    if a.shape != b.shape:
        raise LandscapeError(
            f"p has shape {tuple(a.shape)} but q {tuple(b.shape)}; both must be (N, C) "
            f"probabilities on the same examples and classes"
        )
    return _kl(a[None], b[None])[0, 0].item()


def pairwise(probs: Any, fn: Callable[[torch.Tensor, torch.Tensor], float]) -> torch.Tensor:
    """``(M, M)`` matrix with entry ``[a, b] = fn(probs[a], probs[b])``, float64.

    Args:
        probs: ``(M, N, C)`` probabilities, ``M >= 2``.
        fn: a function of two ``(N, C)`` tables, such as :func:`disagreement`.
    """
    p = _members(probs)
    m = len(p)
    out = torch.empty(m, m, dtype=torch.float64)
    for a, b in itertools.product(range(m), repeat=2):
        out[a, b] = float(fn(p[a], p[b]))
    return out


def pairwise_disagreement(probs: Any) -> torch.Tensor:
    """``(M, M)`` matrix of :func:`disagreement` between every two members of ``probs``
    ``(M, N, C)``."""
    predicted = _members(probs).argmax(2)
    return (predicted[:, None] != predicted[None]).double().mean(2)


def pairwise_kl(probs: Any) -> torch.Tensor:
    """``(M, M)`` matrix with entry ``[a, b]`` = :func:`kl_divergence` ``(probs[a],
    probs[b])`` for ``probs`` ``(M, N, C)``; not symmetric."""
    p = _members(probs)
    return _kl(p, p)


def diversity(probs: Any) -> Diversity:
    """Pairwise disagreement and KL divergence of the members of ``probs`` ``(M, N, C)``,
    ``M >= 2``, and their means over the pairs ``a < b`` (edward2's
    ``average_pairwise_diversity``, as reported by uncertainty-baselines)."""
    p = _members(probs)
    dis = pairwise_disagreement(p)
    kl = pairwise_kl(p)
    upper = torch.triu_indices(len(p), len(p), offset=1)
    return Diversity(
        disagreement=dis,
        kl=kl,
        mean_disagreement=dis[upper[0], upper[1]].mean().item(),
        mean_kl=kl[upper[0], upper[1]].mean().item(),
    )


def diversity_rows(probs: Any, **extra: Any) -> list[dict[str, Any]]:
    """``diversity(probs).rows(**extra)``: one row per pair ``a < b``."""
    return diversity(probs).rows(**extra)


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``(A, B)`` matrix of mean ``KL(p[a] || q[b])``, ``p`` ``(A, N, C)``, ``q`` ``(B, N, C)``."""
    neg_entropy = torch.xlogy(p, p).sum(2).mean(1)  # (A,): mean_n sum_c p log p
    cross = torch.einsum("anc,bnc->ab", p, q.clamp_min(EPS).log()) / p.shape[1]
    return neg_entropy[:, None] - cross


def _members(probs: Any) -> torch.Tensor:
    p = _as_probs(probs, "probs", 3)
    if len(p) < 2:
        raise LandscapeError(
            f"probs holds {len(p)} member; pairwise comparisons need at least two: pass "
            f"(M, N, C) probabilities with M >= 2"
        )
    return p


# ---------------------------------------------------------------------------------------
# masks, embeddings, barriers


def mask_distances(masks_list: Sequence[Masks], **extra: Any) -> list[dict[str, Any]]:
    """Distances between every two members' masks: one row per pair ``a < b``.

    Columns: member_a, member_b, hamming (the fraction of masked weights kept by exactly one
    of the two: FreeTickets' mask distance, Liu et al. 2022), jaccard (``1 - |a & b| / |a |
    b|`` over kept weights), and ``extra`` columns.

    Args:
        masks_list: ``M >= 2`` mask sets of one architecture (name -> bool tensor).
    """
    if isinstance(masks_list, dict) or not isinstance(masks_list, (list, tuple)):
        raise LandscapeError(
            f"mask_distances takes a list of mask sets (dicts of name -> bool tensor), got "
            f"{type(masks_list).__name__}"
        )
    if len(masks_list) < 2:
        raise LandscapeError(
            f"mask_distances got {len(masks_list)} mask set(s); pass at least two to compare"
        )
    return [
        {
            **extra,
            "member_a": a,
            "member_b": b,
            "hamming": hamming_distance(masks_list[a], masks_list[b]),
            "jaccard": jaccard_distance(masks_list[a], masks_list[b]),
        }
        for a, b in itertools.combinations(range(len(masks_list)), 2)
    ]


def prediction_embedding(
    probs: Any, dim: int = 2, method: str = "pca", *, seed: int = 0
) -> np.ndarray:
    """Each member's test predictions as a point in ``dim`` dimensions.

    Member ``m`` is the vector ``probs[m].flatten()`` of length ``N * C`` (Fort et al. 2019,
    Fig. 3, embed the predictions of models along training trajectories this way). Members
    of several methods are embedded together by stacking them into one ``probs``.

    ``"pca"`` (default): with ``X`` the ``(M, N*C)`` matrix centred over members and
    ``X = U S V^T`` its thin SVD, the points are ``X V_k = U_k S_k`` for the first ``dim``
    components. Each component's sign is fixed so that its largest-magnitude loading is
    positive, so the picture does not flip between runs; coordinates on components with
    zero variance (``dim >= M``) are exactly 0. ``"tsne"`` uses scikit-learn's t-SNE
    (van der Maaten & Hinton 2008), initialised by PCA, seeded by ``seed``.

    Args:
        probs: ``(M, N, C)`` probabilities, ``M >= 2``.
        dim: dimensions of the embedding, at most ``M`` for PCA.
        method: ``"pca"`` or ``"tsne"``.
        seed: the random state of t-SNE (PCA is deterministic).

    Returns:
        ``(M, dim)`` float64 array, one row per member in the order of ``probs``.
    """
    if method not in METHODS:
        raise LandscapeError(f"unknown embedding method {method!r}; choose one of {METHODS}")
    x = _members(probs).flatten(1)
    dim = integer("dim", dim, 1)
    if method == "tsne":
        return _tsne(x.numpy(), dim, integer("seed", seed))
    if dim > min(x.shape):
        raise LandscapeError(
            f"PCA of {len(x)} members gives at most {min(x.shape)} components; ask for dim <= "
            f"{min(x.shape)}"
        )
    centred = x - x.mean(0)
    u, s, vh = torch.linalg.svd(centred, full_matrices=False)
    u, s, vh = u[:, :dim], s[:dim], vh[:dim]
    rows = torch.arange(dim)
    sign = torch.sign(vh[rows, vh.abs().argmax(1)])
    coords = u * (s * sign)
    # directions without variance are numerical noise, not a direction the data picks
    coords[:, s <= s.max() * max(x.shape) * torch.finfo(x.dtype).eps] = 0.0
    return coords.numpy()


def _tsne(x: np.ndarray, dim: int, seed: int) -> np.ndarray:
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise LandscapeError(
            'method="tsne" needs scikit-learn: pip install scikit-learn (or use method="pca")'
        ) from None
    perplexity = min(30.0, (len(x) - 1) / 3)  # t-SNE needs perplexity < M
    tsne = TSNE(
        n_components=dim,
        perplexity=perplexity,
        init="pca",
        random_state=seed,
        method="barnes_hut" if dim < 4 else "exact",  # Barnes-Hut stops at 3 dimensions
    )
    return tsne.fit_transform(x).astype(np.float64)


def ticket_barrier(
    model_a: Any,
    model_b: Any,
    data: Any,
    masks_a: Masks | None = None,
    masks_b: Masks | None = None,
    **interpolate_kwargs: Any,
) -> dict[str, float]:
    """Loss and error barriers on the straight line between two tickets (sparse models).

    A thin wrapper over :func:`landscape.analysis.interpolate`. Every point
    ``(1 - a) theta_A + a theta_B`` of the line is zero wherever both endpoints are, so the
    line lies in the union of the two masks: its density is the density of the interpolated
    models, and the intersection's density says how much of the two tickets is shared.

    Args:
        model_a: the ticket at alpha = 0 (a module or a ``Run``).
        model_b: the ticket at alpha = 1.
        data: where loss and error are measured (see :func:`interpolate`).
        masks_a: the masks of ``model_a`` (name -> bool tensor), or ``None``.
        masks_b: the masks of ``model_b``; give both or neither.
        **interpolate_kwargs: passed on to :func:`interpolate` (``points``, ``train_data``...).

    Returns:
        ``{"loss_barrier", "error_barrier"}`` and, with masks, ``"density_a"``,
        ``"density_b"``, ``"union_density"`` and ``"intersection_density"`` (fractions of
        the masked weights kept).
    """
    if (masks_a is None) != (masks_b is None):
        raise LandscapeError("pass the masks of both tickets (masks_a and masks_b) or neither")
    if masks_a is not None:
        for name, model, masks in (("model_a", model_a, masks_a), ("model_b", model_b, masks_b)):
            if isinstance(model, nn.Module):  # a Run's model is checked when it loads
                try:
                    check_masks(model, masks)
                except LandscapeError as err:
                    raise LandscapeError(f"masks of {name}: {err}") from None
        shared = {
            "density_a": density(masks_a),
            "density_b": density(masks_b),
            "union_density": density(union(masks_a, masks_b)),
            "intersection_density": density(intersection(masks_a, masks_b)),
        }
    else:
        shared = {}
    line = interpolate(model_a, model_b, data, **interpolate_kwargs)
    return {"loss_barrier": line.loss_barrier, "error_barrier": line.error_barrier, **shared}


# ---------------------------------------------------------------------------------------
# input checks


def _as_probs(probs: Any, name: str, ndim: int) -> torch.Tensor:
    """``probs`` as a float64 CPU tensor of ``ndim`` dimensions whose last axis sums to 1."""
    shape = "(members M, examples N, classes C)" if ndim == 3 else "(examples N, classes C)"
    t = _as_tensor(probs, name)
    if t.dtype == torch.bool or t.is_complex():
        raise LandscapeError(f"{name} must hold real probabilities, got dtype {t.dtype}")
    t = t.to(torch.float64)
    if t.dim() != ndim or 0 in t.shape:
        hint = "; for an ensemble pass the members' mean, probs.mean(0)" if t.dim() == 3 else ""
        raise LandscapeError(
            f"{name} must have shape {shape} with no empty axis; got {tuple(t.shape)}{hint}"
        )
    if not bool(torch.isfinite(t).all()):
        raise LandscapeError(f"{name} holds NaN or inf; a diverged model gives no probabilities")
    sums = t.sum(-1)
    if float(t.min()) < 0 or float((sums - 1).abs().max()) > SUM_TOLERANCE:
        raise LandscapeError(
            f"{name} must be probabilities (non-negative, each row summing to 1); got values "
            f"{float(t.min()):.3g}..{float(t.max()):.3g} and row sums {float(sums.min()):.4g}.."
            f"{float(sums.max()):.4g}. For logits pass torch.softmax(logits, dim=-1)"
        )
    return t


def _as_labels(labels: Any, n: int, classes: int) -> torch.Tensor:
    y = _as_tensor(labels, "labels")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise LandscapeError(
            f"labels must be integer class indices, got dtype {y.dtype}; for one-hot labels "
            f"pass y.argmax(1), for whole-number floats y.long()"
        )
    if y.dim() != 1 or len(y) != n:
        raise LandscapeError(
            f"labels must have shape (N,) = ({n},), one per example of probs; got {tuple(y.shape)}"
        )
    y = y.long()
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= classes:
        raise LandscapeError(
            f"labels span {low}..{high} but probs has {classes} classes (0..{classes - 1}); "
            f"check that the labels belong to these predictions"
        )
    return y


def _as_predictions(p: Any, name: str) -> torch.Tensor:
    """``(N,)`` predicted classes from ``(N, C)`` probabilities or ``(N,)`` classes."""
    t = _as_tensor(p, name)
    if t.dim() == 1 and not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        return t.long()
    if t.dim() != 2:
        raise LandscapeError(
            f"{name} must be (N, C) probabilities or (N,) integer predicted classes; got shape "
            f"{tuple(t.shape)} ({t.dtype})"
        )
    return _as_probs(t, name, 2).argmax(1)


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if torch.is_tensor(value):
        return value.detach().cpu()
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError):
        raise LandscapeError(
            f"{name} must be a tensor or numpy array, got {type(value).__name__}"
        ) from None


def _checked_pair(probs: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    p = _as_probs(probs, "probs", 2)
    return p, _as_labels(labels, p.shape[0], p.shape[1])
