"""A peer's standing: how far a node trusts what a peer says, learnt from what the node saw itself.

Standing is the expected value of a beta reputation (Jøsang and Ismail, "The Beta Reputation
System", Bled eConference 2002): with ``r`` pieces of positive and ``s`` of negative evidence,

.. math:: \\mathrm{standing} = \\frac{r + 1}{r + s + 2}

so a peer the node never observed stands at exactly 1/2 and is *not* in good standing (which needs
more than the policy's bar, 1/2 by default): an accusation by a stranger, or by a fresh sybil,
counts for nothing until the accuser has a record. Positive evidence is a round in which the peer's
update passed the node's own screening, or an accusation by the peer that the node's own evidence
corroborated; negative evidence is a round in which its update failed the screening, or an
accusation that the node's own evidence contradicts (the accused's updates passed). Negative
evidence weighs ``NEGATIVE_WEIGHT`` times as much, so that a liar who behaves well in every round but
accuses honest peers loses standing faster than its clean rounds restore it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

__all__ = ["NEGATIVE_WEIGHT", "PeerRecord", "host_of"]

NEGATIVE_WEIGHT = 2.0


@dataclass(frozen=True)
class PeerRecord:
    """What a node has seen of one peer: clean and failed rounds, accusations borne out or not."""

    clean: int = 0
    strikes: int = 0
    corroborated: int = 0
    contradicted: int = 0
    last_strike_round: int | None = None

    @property
    def standing(self) -> float:
        positive = self.clean + self.corroborated
        negative = NEGATIVE_WEIGHT * (self.strikes + self.contradicted)
        return (positive + 1.0) / (positive + negative + 2.0)

    @property
    def vouched_clean(self) -> bool:
        """The node itself saw the peer's updates pass and never fail: it can vouch for the peer."""
        return self.clean > 0 and self.strikes == 0

    def passed(self) -> PeerRecord:
        return replace(self, clean=self.clean + 1)

    def failed(self, round_number: int) -> PeerRecord:
        return replace(self, strikes=self.strikes + 1, last_strike_round=round_number)

    def accusation_borne_out(self) -> PeerRecord:
        return replace(self, corroborated=self.corroborated + 1)

    def accusation_contradicted(self) -> PeerRecord:
        return replace(self, contradicted=self.contradicted + 1)


def host_of(actor: str) -> str:
    """The host (authority) an actor lives on: accusers on one host count as one, since one host
    can mint any number of actors (a sybil host must not outvote a quorum by itself)."""
    return urlsplit(actor).netloc.lower() or actor
