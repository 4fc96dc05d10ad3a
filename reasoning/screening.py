"""Screening a round's updates: robust outlier scores and the cross-check of claimed metrics.

Pure functions over numbers the protocol adapter computes (``agents/protocol/defence.py``: each
update's distance to the coordinate-wise median, or its Krum score; the node's own measurement of a
peer's update); each returns :class:`Evidence` that :mod:`reasoning.defederation` turns into strikes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "JUDGED_METRICS",
    "MAD_FLOOR",
    "Evidence",
    "Offence",
    "check_claims",
    "find_outliers",
    "robust_z",
]

# Claims judged by the cross-check: shares in [0, 1] where higher is better, so an inflated claim is
# one above what the node measures. Losses and errors are measured on the claimant's own data and
# cannot be reproduced elsewhere.
JUDGED_METRICS = ("recall", "ndcg", "hit", "precision", "map", "mrr")
MAD_FLOOR = 0.25
# Median absolute deviation to a normal standard deviation (Rousseeuw and Croux, JASA 1993).
_MAD_TO_SIGMA = 1.4826


class Offence(StrEnum):
    """The kinds of misbehaviour a node can show evidence for (closed set, spelt as on the wire)."""

    OUTLIER_UPDATE = "outlier-update"
    UNREPRODUCED_METRIC = "unreproduced-metric"
    SHAPE_VIOLATION = "shape-violation"
    SIGNATURE_FAILURE = "signature-failure"


@dataclass(frozen=True)
class Evidence:
    """One observation that a peer misbehaved in one round, with what it rests on."""

    offender: str
    offence: Offence
    round: int
    detail: str
    score: float = math.nan
    artifacts: tuple[str, ...] = ()


def robust_z(values: Mapping[str, float]) -> dict[str, float]:
    """How many robust standard deviations (scaled MAD) each value lies above the median.

    Needs three values at least (with two, each is as far from the median as the other). The MAD
    is floored at a quarter of the median's magnitude (:data:`MAD_FLOOR`): in a small group three
    honest updates can lie almost at one distance and a fourth, honest but trained on more or other
    listeners, a little further, which an unfloored MAD would call many deviations away. With the
    floor an update must lie about twice as far as the median update (at the default threshold)
    before it counts, which boosted, flipped or random updates do by far.
    """
    if len(values) < 3:
        return {}
    centre = statistics.median(values.values())
    mad = statistics.median(abs(v - centre) for v in values.values())
    scale = _MAD_TO_SIGMA * max(mad, MAD_FLOOR * abs(centre), 1e-12)
    return {key: (value - centre) / scale for key, value in values.items()}


def find_outliers(
    statistic: Mapping[str, float],
    *,
    round_number: int,
    threshold: float,
    what: str,
    artifacts: Mapping[str, str] | None = None,
) -> list[Evidence]:
    """Evidence against every peer whose ``statistic`` (larger is worse: a distance to the
    coordinate-wise median, a Krum score) lies more than ``threshold`` robust deviations above
    the median of the round's updates."""
    evidence = []
    for peer, z in sorted(robust_z(statistic).items()):
        if z > threshold:
            detail = f"its round-{round_number} update's {what} is {z:.1f} robust deviations above the median"
            links = (artifacts[peer],) if artifacts and peer in artifacts else ()
            evidence.append(Evidence(peer, Offence.OUTLIER_UPDATE, round_number, detail, z, links))
    return evidence


def check_claims(
    claimed: Mapping[str, float],
    measured: Mapping[str, float],
    *,
    peer: str,
    round_number: int,
    tolerance: float,
    artifact: str | None = None,
) -> Evidence | None:
    """Evidence when a ranking metric (:data:`JUDGED_METRICS`) the peer claims for its update
    exceeds what the node measures for the same update on its own validation data by more than
    ``tolerance``; metrics the node cannot measure (a training loss on the peer's data) are not
    judged."""
    worst: tuple[float, str] | None = None
    for name, value in sorted(claimed.items()):
        if not name.lower().startswith(JUDGED_METRICS):
            continue
        if name in measured and value - measured[name] > tolerance:
            gap = value - measured[name]
            if worst is None or gap > worst[0]:
                worst = (gap, f"claims {name} {value:.3f}; the node measures {measured[name]:.3f}")
    if worst is None:
        return None
    links = (artifact,) if artifact else ()
    return Evidence(peer, Offence.UNREPRODUCED_METRIC, round_number, worst[1], worst[0], links)
