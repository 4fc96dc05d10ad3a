"""Adding two recommenders' scores: per-listener standardisation, then a weighted sum.

Scores from unrelated scorers (embedding dot products, graph walks, tag-profile cosines) live on
unrelated scales; standardising each listener's row lets one weight mean the same for everyone.
The weight is a hyperparameter and is chosen on validation data (:func:`choose_weight`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from models.metrics import evaluate_ranking

__all__ = ["FUSION_WEIGHTS", "Scorer", "blended", "choose_weight", "standardised"]

Scorer = Callable[[Tensor], Tensor]
FUSION_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)


def standardised(scores: Tensor) -> Tensor:
    """Each row of ``scores`` shifted and scaled to mean 0 and standard deviation 1."""
    return (scores - scores.mean(dim=1, keepdim=True)) / scores.std(dim=1, keepdim=True).clamp(min=1e-12)


def blended(first: Scorer, second: Scorer, weight: float = 1.0) -> Scorer:
    """A scorer adding ``weight`` times ``second``'s standardised scores to ``first``'s."""
    return lambda listeners: standardised(first(listeners)) + weight * standardised(second(listeners))


def choose_weight(
    first: Scorer,
    second: Scorer,
    valid: Tensor,
    train: Tensor,
    *,
    num_listeners: int,
    num_artists: int,
    k: int,
    weights: Sequence[float] = FUSION_WEIGHTS,
) -> tuple[float, float]:
    """The weight of ``second`` whose blend ranks ``valid`` best by NDCG@k, and that NDCG.

    Ties keep the smaller weight (0 first), so a channel that does not help is switched off.
    """
    best, best_ndcg = 0.0, -1.0
    for weight in weights:
        ndcg = evaluate_ranking(
            blended(first, second, weight),
            valid,
            train,
            num_listeners=num_listeners,
            num_artists=num_artists,
            k=k,
        ).ndcg
        if ndcg > best_ndcg:
            best, best_ndcg = weight, ndcg
    return best, best_ndcg
