"""Aggregation rules on vectors small enough to check by hand, row-sparse merges and input checks."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from rdflib import RDF

from models.merge import (
    RULES,
    AggregationError,
    AggregationRule,
    CoordinateMedian,
    IncompatibleUpdatesError,
    InvalidUpdateError,
    Krum,
    ModelUpdate,
    NonFiniteUpdateError,
    TrimmedMean,
    UnknownRuleError,
    VarianceCorrectedMean,
    WeightedMean,
    rule_for,
)
from ontology import SPORE, load_ontology

ARTISTS = "artist_embedding.weight"
TAGS = "tag_embedding.weight"


def update(sender: str, values: list, examples: int = 1, rows: list[int] | None = None) -> ModelUpdate:
    weights = {ARTISTS: torch.tensor(values, dtype=torch.float32)}
    index = {ARTISTS: torch.tensor(rows, dtype=torch.int64)} if rows is not None else {}
    return ModelUpdate(
        sender=f"https://n.example/{sender}", round=3, weights=weights, num_examples=examples, rows=index
    )


def scalars(*values: float) -> list[ModelUpdate]:
    """One update per value, each a 1x1 artist table, senders a, b, c... in order."""
    return [update(chr(ord("a") + i), [[v]]) for i, v in enumerate(values)]


def merged(rule: AggregationRule, updates: list[ModelUpdate], **kwargs: object) -> torch.Tensor:
    return rule.aggregate(updates, **kwargs)[ARTISTS]  # type: ignore[arg-type]


# ---- each rule by hand ---------------------------------------------------------------------------

OUTLIER_GROUP = (0.1, 0.3, 0.7, 0.8, 5.0)


def test_krum_picks_07() -> None:
    # f=1, n=5: each score sums the n-f-2=2 nearest squared distances.
    # 0.1: .04+.36=.40  0.3: .04+.16=.20  0.7: .01+.16=.17  0.8: .01+.25=.26  5.0: 17.64+18.49
    assert merged(Krum(num_byzantine=1), scalars(*OUTLIER_GROUP)).item() == pytest.approx(0.7)


def test_multi_krum_averages_the_best_scored() -> None:
    # The three lowest scores are 0.7, 0.3, 0.8 (see above): mean 0.6, the outlier left out.
    result = merged(Krum(num_byzantine=1, num_selected=3), scalars(*OUTLIER_GROUP))
    assert result.item() == pytest.approx(0.6)
    chosen = Krum(num_byzantine=1, num_selected=3).select(scalars(*OUTLIER_GROUP))
    assert [u.weights[ARTISTS].item() for u in chosen] == pytest.approx([0.7, 0.3, 0.8])


def test_krum_on_vectors_rejects_the_attacker() -> None:
    honest = [[[1.0, 1.0]], [[1.1, 0.9]], [[0.9, 1.1]], [[1.0, 1.2]]]
    updates = [update(f"h{i}", v) for i, v in enumerate(honest)] + [update("z", [[-50.0, 80.0]])]
    chosen = Krum(num_byzantine=1).select(updates)
    assert chosen[0].sender != "https://n.example/z"
    assert merged(Krum(num_byzantine=1), updates).tolist() == [[1.0, 1.0]]


def test_trimmed_mean_drops_one_value_at_each_end() -> None:
    # beta=0.2 of 5 values: floor(1.0)=1 dropped per end -> mean(0.3, 0.7, 0.8) = 0.6; plain mean 1.38.
    assert merged(TrimmedMean(beta=0.2), scalars(*OUTLIER_GROUP)).item() == pytest.approx(0.6)
    assert merged(WeightedMean(), scalars(*OUTLIER_GROUP)).item() == pytest.approx(1.38)


def test_trimmed_mean_with_beta_zero_is_the_mean() -> None:
    assert merged(TrimmedMean(beta=0.0), scalars(1.0, 2.0, 6.0)).item() == pytest.approx(3.0)


def test_median_odd_and_even_counts() -> None:
    assert merged(CoordinateMedian(), scalars(*OUTLIER_GROUP)).item() == pytest.approx(0.7)
    # Even count: the mean of the two middle values, not torch.median's lower one.
    assert merged(CoordinateMedian(), scalars(1.0, 2.0, 3.0, 100.0)).item() == pytest.approx(2.5)


def test_median_is_per_coordinate() -> None:
    updates = [update("a", [[1.0, 9.0]]), update("b", [[2.0, 8.0]]), update("c", [[30.0, -7.0]])]
    assert merged(CoordinateMedian(), updates).tolist() == [[2.0, 8.0]]


def test_weighted_mean_respects_example_counts() -> None:
    updates = [update("a", [[1.0, 2.0]], examples=1), update("b", [[3.0, 4.0]], examples=3)]
    assert merged(WeightedMean(), updates).tolist() == [[2.5, 3.5]]


def test_weighted_mean_of_members_without_examples_is_the_plain_mean() -> None:
    updates = [update("a", [[1.0]], examples=0), update("b", [[3.0]], examples=0)]
    assert merged(WeightedMean(), updates).item() == pytest.approx(2.0)


def test_variance_corrected_mean_restores_the_row_norm() -> None:
    # Orthogonal unit rows average to norm 1/sqrt(2); the correction brings it back to 1.
    updates = [update("a", [[1.0, 0.0]]), update("b", [[0.0, 1.0]])]
    plain = merged(WeightedMean(), updates)
    corrected = merged(VarianceCorrectedMean(), updates)
    assert plain.norm().item() == pytest.approx(1 / math.sqrt(2))
    assert corrected.tolist()[0] == pytest.approx([1 / math.sqrt(2), 1 / math.sqrt(2)])


def test_variance_corrected_mean_targets_the_weighted_mean_norm() -> None:
    # Norms 1 (weight 1) and 3 (weight 3), orthogonal: target norm (1*1 + 3*3)/4 = 2.5.
    updates = [update("a", [[1.0, 0.0]], examples=1), update("b", [[0.0, 3.0]], examples=3)]
    corrected = merged(VarianceCorrectedMean(), updates)
    direction = torch.tensor([0.25, 2.25]) / torch.tensor([0.25, 2.25]).norm()
    assert corrected[0].norm().item() == pytest.approx(2.5, rel=1e-6)
    assert corrected[0].tolist() == pytest.approx((direction * 2.5).tolist(), rel=1e-6)


def test_variance_corrected_mean_caps_the_gain_and_leaves_agreement_alone() -> None:
    # Nearly opposite rows cancel: mean (0.05, 0.05); the gain is capped at sqrt(2).
    opposed = [update("a", [[1.0, 0.0]]), update("b", [[-0.9, 0.1]])]
    assert merged(VarianceCorrectedMean(), opposed).tolist()[0] == pytest.approx(
        [0.05 * math.sqrt(2), 0.05 * math.sqrt(2)], rel=1e-5
    )
    same = [update("a", [[0.6, 0.8]]), update("b", [[0.6, 0.8]])]
    assert merged(VarianceCorrectedMean(), same).tolist()[0] == pytest.approx([0.6, 0.8])
    cancelled = [update("a", [[1.0, 0.0]]), update("b", [[-1.0, 0.0]])]
    assert merged(VarianceCorrectedMean(), cancelled).tolist() == [[0.0, 0.0]]


# ---- row-sparse merges -----------------------------------------------------------------------------

REFERENCE = {ARTISTS: torch.tensor([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0], [40.0, 40.0]])}


def test_row_sparse_weighted_mean_merges_each_row_over_its_senders() -> None:
    a = update("a", [[1.0, 1.0], [2.0, 2.0]], examples=1, rows=[0, 1])
    b = update("b", [[4.0, 4.0], [6.0, 6.0]], examples=3, rows=[1, 2])
    result = merged(WeightedMean(), [a, b], reference=REFERENCE)
    assert result.tolist() == [[1.0, 1.0], [3.5, 3.5], [6.0, 6.0], [40.0, 40.0]]


def test_row_sparse_robust_rules_use_per_row_counts() -> None:
    # Row 0: five senders (an outlier among them); row 1: two senders; rows 2-3: nobody.
    values = [0.1, 0.3, 0.7, 0.8, 5.0]
    updates = [update(chr(97 + i), [[v, v]], rows=[0]) for i, v in enumerate(values)]
    updates[0] = update("a", [[0.1, 0.1], [1.0, 1.0]], rows=[0, 1])
    updates[1] = update("b", [[0.3, 0.3], [3.0, 3.0]], rows=[0, 1])
    median = merged(CoordinateMedian(), updates, reference=REFERENCE)
    trimmed = merged(TrimmedMean(beta=0.2), updates, reference=REFERENCE)
    # Row 1 has two values: median 2.0; trimming floor(0.4)=0 leaves their mean 2.0.
    expected_median = torch.tensor([[0.7, 0.7], [2.0, 2.0], [30.0, 30.0], [40.0, 40.0]])
    expected_trimmed = torch.tensor([[0.6, 0.6], [2.0, 2.0], [30.0, 30.0], [40.0, 40.0]])
    torch.testing.assert_close(median, expected_median)
    torch.testing.assert_close(trimmed, expected_trimmed)


def test_row_sparse_matches_a_naive_loop() -> None:
    """Every row-wise rule against a per-row numpy loop on random sparse updates."""
    generator = torch.Generator().manual_seed(7)
    rows, dim, members = 12, 3, 6
    reference = {ARTISTS: torch.randn(rows, dim, generator=generator)}
    updates = []
    for i in range(members):
        touched = sorted(torch.randperm(rows, generator=generator)[: 3 + i].tolist())
        values = torch.randn(len(touched), dim, generator=generator)
        updates.append(update(f"m{i}", values.tolist(), examples=i + 1, rows=touched))

    def naive(combine) -> np.ndarray:  # type: ignore[no-untyped-def]
        out = reference[ARTISTS].double().numpy().copy()
        for r in range(rows):
            sent = [
                (u.weights[ARTISTS][u.rows[ARTISTS].tolist().index(r)].double().numpy(), u.num_examples)
                for u in updates
                if r in u.rows[ARTISTS].tolist()
            ]
            if sent:
                out[r] = combine(np.stack([v for v, _ in sent]), np.array([w for _, w in sent], dtype=float))
        return out

    def trim(x: np.ndarray, _w: np.ndarray) -> np.ndarray:
        cut = int(math.floor(0.25 * len(x)))
        return np.sort(x, axis=0)[cut : len(x) - cut].mean(axis=0)

    expected = {
        "mean": naive(lambda x, w: np.average(x, axis=0, weights=w)),
        "median": naive(lambda x, _w: np.median(x, axis=0)),
        "trimmed": naive(trim),
    }
    got = {
        "mean": merged(WeightedMean(), updates, reference=reference),
        "median": merged(CoordinateMedian(), updates, reference=reference),
        "trimmed": merged(TrimmedMean(beta=0.25), updates, reference=reference),
    }
    for key in expected:
        np.testing.assert_allclose(got[key].numpy(), expected[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_parameters_nobody_sent_keep_the_reference() -> None:
    reference = {**REFERENCE, TAGS: torch.tensor([[7.0, 7.0]])}
    result = WeightedMean().aggregate([update("a", [[1.0, 1.0]], rows=[2])], reference=reference)
    assert result[TAGS].tolist() == [[7.0, 7.0]]
    assert result[ARTISTS].tolist() == [[10.0, 10.0], [20.0, 20.0], [1.0, 1.0], [40.0, 40.0]]
    assert result[TAGS] is not reference[TAGS]


def test_krum_completes_sparse_members_with_the_reference() -> None:
    # Four members change row 0 a little, one moves it far: row completion makes them comparable.
    updates = [update(f"h{i}", [[10.0 + 0.1 * i, 10.0]], rows=[0]) for i in range(4)]
    updates.append(update("z", [[900.0, 900.0]], rows=[0]))
    result = merged(Krum(num_byzantine=1), updates, reference=REFERENCE)
    # 10.1 and 10.2 tie on score 0.02 (10.0 and 10.3 score 0.05); the outlier scores far more.
    assert min(abs(result[0, 0].item() - 10.1), abs(result[0, 0].item() - 10.2)) < 1e-5
    assert result[1:].tolist() == REFERENCE[ARTISTS][1:].tolist()


@pytest.mark.parametrize("iri", sorted(RULES))
def test_one_dimensional_and_empty_parameters(iri: str) -> None:
    reference = {"artist_bias": torch.tensor([1.0, 2.0, 3.0]), TAGS: torch.zeros(0, 2)}
    updates = [
        ModelUpdate(
            sender=f"m{i}",
            round=0,
            weights={"artist_bias": torch.tensor([value, 5.0]), TAGS: torch.zeros(0, 2)},
            rows={"artist_bias": torch.tensor([0, 2])},
            num_examples=1,
        )
        for i, value in enumerate([0.0, 1.9, 2.0, 2.1, 4.0])
    ]
    result = rule_for(iri).aggregate(updates, reference=reference)
    assert result["artist_bias"][1].item() == 2.0 and result["artist_bias"][2].item() == pytest.approx(5.0)
    assert result["artist_bias"][0].item() == pytest.approx(
        2.0
    )  # mean, median, trimmed mean and Krum all give 2
    assert result[TAGS].shape == (0, 2)


# ---- determinism and purity ----------------------------------------------------------------------


@pytest.mark.parametrize("iri", sorted(RULES))
def test_result_does_not_depend_on_arrival_order_nor_mutate_inputs(iri: str) -> None:
    generator = torch.Generator().manual_seed(1)
    updates = [
        update(f"m{i}", torch.randn(3, 4, generator=generator).tolist(), examples=i + 2, rows=[0, 2, 3])
        for i in range(7)
    ]
    reference = {ARTISTS: torch.randn(5, 4, generator=generator)}
    before = [u.weights[ARTISTS].clone() for u in updates], reference[ARTISTS].clone()
    first = merged(rule_for(iri), updates, reference=reference)
    shuffled = updates[:]
    random.Random(3).shuffle(shuffled)
    second = merged(rule_for(iri), shuffled, reference=reference)
    assert torch.equal(first, second)
    assert all(torch.equal(u.weights[ARTISTS], b) for u, b in zip(updates, before[0], strict=True))
    assert torch.equal(reference[ARTISTS], before[1])


# ---- the registry ----------------------------------------------------------------------------------


def test_every_rule_in_the_ontology_has_an_implementation() -> None:
    individuals = set(load_ontology().subjects(RDF.type, SPORE.AggregationRule))
    assert individuals == set(RULES)
    for iri in individuals:
        rule = rule_for(iri)
        assert isinstance(rule, AggregationRule)
        assert rule.iri == iri


def test_rule_for_passes_hyperparameters_and_refuses_unknowns() -> None:
    assert rule_for(SPORE.TrimmedMean, beta=0.25).beta == 0.25  # type: ignore[attr-defined]
    assert rule_for(str(SPORE.Krum), num_byzantine=2).num_byzantine == 2  # type: ignore[attr-defined]
    with pytest.raises(UnknownRuleError, match="unknown aggregation rule"):
        rule_for("https://w3id.org/spore/ns#GeometricMedian")
    with pytest.raises(AggregationError, match="bad hyperparameters"):
        rule_for(SPORE.WeightedMean, beta=0.1)
    with pytest.raises(AggregationError, match="beta"):
        rule_for(SPORE.TrimmedMean, beta=0.5)
    with pytest.raises(AggregationError, match="finite"):
        rule_for(SPORE.TrimmedMean, beta=float("nan"))


# ---- validation ------------------------------------------------------------------------------------


def test_update_refuses_per_listener_parameters() -> None:
    with pytest.raises(InvalidUpdateError, match="not a shared parameter"):
        ModelUpdate(
            sender="s", round=0, weights={"listener_embedding.weight": torch.zeros(2, 2)}, num_examples=1
        )


def test_update_refuses_non_finite_values() -> None:
    with pytest.raises(NonFiniteUpdateError, match="NaN or infinite"):
        update("a", [[1.0, float("nan")]])
    with pytest.raises(NonFiniteUpdateError):
        update("a", [[float("inf")]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": {ARTISTS: torch.tensor([0, 0])}}, "repeat"),
        ({"rows": {ARTISTS: torch.tensor([0])}}, "2 rows of values for 1 row indices"),
        ({"rows": {ARTISTS: torch.tensor([-1, 0])}}, "non-negative"),
        ({"rows": {ARTISTS: torch.tensor([0.0, 1.0])}}, "integer tensor"),
        ({"rows": {TAGS: torch.tensor([0])}}, "no values"),
        ({"num_examples": -1}, "num_examples"),
        ({"round": -2}, "round"),
        ({"sender": ""}, "sender"),
        ({"weights": {ARTISTS: torch.tensor([[1, 2]])}}, "floating-point"),
        ({"weights": {}}, "no parameters"),
    ],
)
def test_update_refuses_malformed_fields(kwargs: dict, message: str) -> None:
    fields = {"sender": "s", "round": 0, "weights": {ARTISTS: torch.zeros(2, 2)}, "num_examples": 1, **kwargs}
    with pytest.raises(InvalidUpdateError, match=message):
        ModelUpdate(**fields)


def test_mismatched_updates_are_refused() -> None:
    with pytest.raises(IncompatibleUpdatesError, match="shape"):
        WeightedMean().aggregate([update("a", [[1.0, 2.0]]), update("b", [[1.0, 2.0, 3.0]])])
    other = ModelUpdate(sender="c", round=0, weights={TAGS: torch.zeros(1, 2)}, num_examples=1)
    with pytest.raises(IncompatibleUpdatesError, match="lacks"):
        WeightedMean().aggregate([update("a", [[1.0, 2.0]]), other])
    with pytest.raises(IncompatibleUpdatesError, match="receiver lacks"):
        WeightedMean().aggregate([other], reference=REFERENCE)
    with pytest.raises(IncompatibleUpdatesError, match="out of range"):
        WeightedMean().aggregate([update("a", [[1.0, 2.0]], rows=[4])], reference=REFERENCE)
    with pytest.raises(IncompatibleUpdatesError, match="no reference"):
        WeightedMean().aggregate([update("a", [[1.0, 2.0]], rows=[0])])
    with pytest.raises(IncompatibleUpdatesError, match="two updates from"):
        WeightedMean().aggregate([update("a", [[1.0]]), update("a", [[2.0]])])
    with pytest.raises(IncompatibleUpdatesError, match="receiver's own"):
        WeightedMean().aggregate([update("a", [[1.0]])], reference={ARTISTS: torch.tensor([[math.nan]])})


def test_rule_preconditions_are_typed_errors() -> None:
    with pytest.raises(AggregationError, match="no updates"):
        WeightedMean().aggregate([])
    with pytest.raises(AggregationError, match="at least 5 updates"):
        Krum(num_byzantine=1).aggregate(scalars(1.0, 2.0, 3.0, 4.0))
    with pytest.raises(AggregationError, match="cannot select"):
        Krum(num_byzantine=0, num_selected=4).aggregate(scalars(1.0, 2.0, 3.0))
    with pytest.raises(AggregationError, match="integer"):
        Krum(num_byzantine=1.5)  # type: ignore[arg-type]
