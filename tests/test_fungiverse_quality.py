"""The pieces behind the Last.fm quality benchmark, on small synthetic graphs.

Shared co-listening statistics (models/itemgraph.py), the non-IID deal, the blended scorer, the
statistics exchange with its privacy check, and one tiny run of the benchmark's own code path.
"""

from __future__ import annotations

import lzma
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_safetensors

from agents.protocol.recommender import blended, standardised
from agents.protocol.wire import WireCodec, WirePayload
from agents.recsys_scenario import (
    IID,
    NON_IID,
    deal_listeners,
    item_graph_of,
    recsys_fungiverse,
    synthetic_tensors,
    taste_communities,
)
from knowledge.music import SynthParams
from models.itemgraph import (
    CoListening,
    ItemGraph,
    MalformedStatisticsError,
    co_listening,
    decode_statistics,
    encode_statistics,
    merge_statistics,
    noised,
)
from models.privacy import PrivacyViolation, check_outgoing

SMALL = SynthParams(listeners=48, artists=150, seed=3)


def _random_edges(listeners: int, artists: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    dense = torch.rand(listeners, artists, generator=generator) < 0.2
    dense[:, 0] = True  # everyone shares an artist, so the co-listening graph is connected
    return dense.nonzero().T.contiguous()


def _dense(statistics: CoListening) -> torch.Tensor:
    out = torch.zeros(statistics.num_artists, statistics.num_artists)
    out[statistics.rows, statistics.cols] = statistics.values
    return out + out.T - torch.diag(out.diag())


def test_co_listening_is_the_listener_normalised_gram_matrix() -> None:
    edges = _random_edges(12, 9, seed=1)
    ratings = torch.zeros(12, 9)
    ratings[edges[0], edges[1]] = 1.0
    expected = ratings.T @ (ratings / ratings.sum(dim=1, keepdim=True))
    statistics = co_listening(edges, 12, 9)
    assert bool((statistics.rows <= statistics.cols).all())
    assert torch.allclose(_dense(statistics), expected, atol=1e-6)
    assert statistics.listeners == 12


def test_summed_node_statistics_equal_the_statistics_of_everyone() -> None:
    """The reason sharing works: however listeners are split, the group's sum is the global graph."""
    edges = _random_edges(20, 15, seed=2)
    whole = co_listening(edges, 20, 15)
    parts = []
    for listeners in (range(0, 7), range(7, 20)):
        mine = torch.isin(edges[0], torch.tensor(list(listeners)))
        local = edges[:, mine].clone()
        local[0] -= listeners.start
        parts.append(co_listening(local, len(listeners), 15))
    merged = merge_statistics(parts)
    assert torch.allclose(_dense(merged), _dense(whole), atol=1e-6)
    assert merged.listeners == 20


def test_noise_is_seeded_and_has_the_requested_scale() -> None:
    statistics = co_listening(_random_edges(30, 40, seed=3), 30, 40)
    first = noised(statistics, 0.5, torch.Generator().manual_seed(7))
    second = noised(statistics, 0.5, torch.Generator().manual_seed(7))
    assert torch.equal(first.values, second.values)
    difference = first.values - statistics.values
    assert 0.4 < float(difference.std()) < 0.6
    with pytest.raises(ValueError):
        noised(statistics, -1.0, torch.Generator())


def test_statistics_round_trip_through_their_wire_format() -> None:
    statistics = noised(
        co_listening(_random_edges(25, 30, seed=4), 25, 30), 0.01, torch.Generator().manual_seed(0)
    )
    data = encode_statistics(statistics)
    decoded = decode_statistics(data, num_artists=30)
    assert decoded.listeners == statistics.listeners
    # float16 values: three significant digits survive.
    assert torch.allclose(_dense(decoded), _dense(statistics), rtol=2e-3, atol=1e-4)
    assert len(data) < 12 * statistics.entries  # CSR with int16 columns and float16 values


def test_quantised_statistics_are_within_half_a_quantum_and_smaller() -> None:
    sigma = 0.005
    statistics = noised(
        co_listening(_random_edges(200, 120, seed=4), 200, 120), sigma, torch.Generator().manual_seed(0)
    )
    quantised = encode_statistics(statistics, quantum=sigma / 2)
    decoded = decode_statistics(quantised, num_artists=120)
    error = (_dense(decoded) - _dense(statistics)).abs().max().item()
    assert 0 < error <= sigma / 4 + 1e-7  # rounding to the nearest multiple, nothing more
    assert decoded.entries == statistics.entries
    assert len(quantised) < 0.75 * len(encode_statistics(statistics))


def test_statistics_bytes_are_xz_and_refuse_bombs_and_trailing_bytes() -> None:
    from models.compression import is_xz, unxz

    data = encode_statistics(co_listening(_random_edges(10, 12, seed=5), 10, 12))
    assert is_xz(data)
    with pytest.raises(ValueError, match="more than 100 bytes"):
        unxz(lzma.compress(bytes(1000)), limit=100)
    with pytest.raises(MalformedStatisticsError, match="after the xz stream"):
        decode_statistics(data + b"\x00", num_artists=12)


def _rewritten(data: bytes, old: bytes, new: bytes) -> bytes:
    return lzma.compress(lzma.decompress(data).replace(old, new))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda data: data[: len(data) // 2],
        lambda data: b"not statistics at all",
        lambda data: _rewritten(data, b"spore-colistening/2", b"spore-colistening/9"),
        lambda data: _rewritten(data, b"listeners", b"listenerz"),
        lambda data: lzma.compress(lzma.decompress(data)[:-4]),
    ],
)
def test_malformed_statistics_are_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    data = encode_statistics(co_listening(_random_edges(10, 12, seed=5), 10, 12))
    with pytest.raises(MalformedStatisticsError):
        decode_statistics(mangle(data), num_artists=12)


def test_statistics_for_another_catalogue_are_refused() -> None:
    data = encode_statistics(co_listening(_random_edges(10, 12, seed=5), 10, 12))
    with pytest.raises(MalformedStatisticsError, match="12 artists"):
        decode_statistics(data, num_artists=13)


def test_item_graph_scores_are_rp3beta() -> None:
    edges = _random_edges(16, 10, seed=6)
    ratings = torch.zeros(16, 10)
    ratings[edges[0], edges[1]] = 1.0
    beta = 0.3
    # Reference RP3beta (Paudel et al. 2017): P_ui = r/deg_u, P_iu = r/deg_i, W = P_iu P_ui / deg_j^beta.
    user_to_item = ratings / ratings.sum(dim=1, keepdim=True)
    degree = ratings.sum(dim=0).clamp(min=1)  # an artist nobody heard walks nowhere
    item_to_user = ratings.T / degree.unsqueeze(1)
    walk = item_to_user @ user_to_item
    weights = walk / degree.pow(beta).unsqueeze(0)
    weights.fill_diagonal_(0.0)
    graph = ItemGraph.from_statistics(co_listening(edges, 16, 10), beta=beta)
    assert torch.allclose(graph.score(ratings), ratings @ weights, atol=1e-5)


def test_standardised_rows_and_blend() -> None:
    scores = torch.tensor([[1.0, 2.0, 3.0, 10.0], [5.0, 5.0, 6.0, 4.0]])
    rows = standardised(scores)
    assert torch.allclose(rows.mean(dim=1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(rows.std(dim=1), torch.ones(2), atol=1e-6)
    flipped = blended(lambda listeners: scores, lambda listeners: -scores, 2.0)(torch.tensor([0, 1]))
    assert torch.allclose(flipped, -rows, atol=1e-6)


def test_taste_communities_separate_listeners_of_disjoint_artists() -> None:
    left = torch.tensor([[u, a] for u in range(10) for a in range(0, 6) if (u + a) % 3]).T
    right = torch.tensor([[u, a] for u in range(10, 20) for a in range(6, 12) if (u + a) % 3]).T
    labels = taste_communities(torch.cat([left, right], dim=1), 20, 12, k=2, seed=0)
    assert len(set(labels[:10].tolist())) == 1 and len(set(labels[10:].tolist())) == 1
    assert labels[0] != labels[10]


@pytest.mark.parametrize("split", [IID, NON_IID])
def test_every_listener_is_dealt_once_in_equal_shares(split: str) -> None:
    tensors = synthetic_tensors(SMALL)
    dealt = deal_listeners(tensors, 4, seed=1, split=split)
    owners = sorted(int(listener) for node in dealt for listener in node.listeners)
    assert owners == list(range(tensors.num_listeners))
    assert {int(node.listeners.numel()) for node in dealt} == {tensors.num_listeners // 4}
    total = sum(node.train_edges.shape[1] + node.held_out.shape[1] for node in dealt)
    assert total == tensors.num_interactions


def test_non_iid_nodes_hold_more_alike_listeners_than_iid_nodes() -> None:
    tensors = synthetic_tensors(SynthParams(listeners=80, artists=300, seed=5, communities=4))

    def within_node_overlap(split: str) -> float:
        dealt = deal_listeners(tensors, 4, seed=0, split=split)
        shares = []
        for node in dealt:
            counts = torch.bincount(node.train_edges[1], minlength=tensors.num_artists).float()
            shares.append(float((counts * (counts - 1)).sum() / counts.sum()))
        return sum(shares) / len(shares)

    with pytest.raises(ValueError):
        deal_listeners(tensors, 4, seed=0, split="sorted")
    assert within_node_overlap(NON_IID) > 1.3 * within_node_overlap(IID)


def test_statistics_travel_as_protocol_messages_checked_and_summed_within_groups() -> None:
    checked: list[str] = []
    world = None

    def tap(sender: str, recipient: str, payload: WirePayload) -> None:
        assert world is not None
        if b"spore:CoListeningStatistics" in payload.activity:
            checked.append(sender)
        index = world.actors.index(sender)
        for blob in (payload.activity, *(artifact for _, artifact in payload.artifacts)):
            check_outgoing(blob, world.listener_iris(index))

    world = recsys_fungiverse(
        4,
        params=SMALL,
        group_size=2,
        embedding_dim=8,
        max_rounds=2,
        statistics_noise=0.0,
        simulator_options={"codec": WireCodec(), "tap": tap},
    )
    world.simulator.run_until(lambda s: all(s.state(a).rounds_done >= 2 for a in world.actors), limit=100.0)
    # Once per peer, not once per round: each of the four nodes sent to its one group peer.
    assert sorted(checked) == sorted(world.actors)
    graphs = [item_graph_of(world, actor) for actor in world.actors]
    assert all(graph is not None for graph in graphs)
    listened = torch.eye(world.tensors.num_artists)[:5]
    scores = [graph.score(listened) for graph in graphs if graph is not None]
    assert [torch.allclose(scores[0], scores[1]), torch.allclose(scores[2], scores[3])] == [True, True]
    assert not torch.allclose(scores[0], scores[2])
    # The group sum is exactly what one node holding both nodes' listens computes.
    both = [world.data[0], world.data[1]]
    offset = int(both[0].listeners.numel())
    edges = torch.cat([both[0].train_edges, both[1].train_edges + torch.tensor([[offset], [0]])], dim=1)
    pooled = ItemGraph.from_statistics(co_listening(edges, offset + int(both[1].listeners.numel()), 150))
    assert torch.allclose(pooled.score(listened), scores[0], atol=1e-3)
    # The check is not vacuous: statistics whose header named a listener would be refused.
    doctored = save_safetensors({"values": torch.zeros(1)}, metadata={"source": world.listener_iris(0)[0]})
    with pytest.raises(PrivacyViolation):
        check_outgoing(doctored, world.listener_iris(0))


@pytest.mark.slow
def test_benchmark_quality_path_runs_every_method_with_the_privacy_check(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from fungiverse_quality import Settings, run_quality, targets

    tensors = synthetic_tensors(SynthParams(listeners=64, artists=200, seed=2))
    settings = Settings(
        nodes=4,
        embedding_dim=8,
        num_layers=2,
        central_epochs=4,
        silo_epochs=4,
        rounds=4,
        every=2,
        row_fraction=0.1,
        fine_tune_epochs=1,
        noise=0.001,
    )
    results = run_quality(tensors, settings)
    for split in (IID, NON_IID):
        methods = {m["method"]: m for m in results[split]}
        assert set(methods) == {"silo (each node alone)", "FedAvg", "SPORE", "SPORE, uncompressed"}
        assert methods["FedAvg"]["update_share_of_full_copy"] > 0.9  # full copies
        assert methods["SPORE"]["update_share_of_full_copy"] < 0.2  # 10 % of rows, int8
        assert (
            methods["SPORE"]["payloads_checked"] > 0
            and methods["SPORE"]["statistics_bytes_per_node_once"] > 0
        )
        assert set(methods["SPORE"]["chosen_beta"].values()) <= set(settings.betas)
        assert all(0.0 <= m["recall"] <= 1.0 for m in methods.values())
    assert {row[0] for row in targets(results)} >= {"IID: SPORE / centralized", "non-IID: SPORE / FedAvg"}


def test_a_validation_part_comes_out_of_training_and_is_masked_when_ranking_test() -> None:
    from agents.protocol.recommender import LightGCNLearner
    from models.split import SplitProtocol

    tensors = synthetic_tensors(SMALL)
    protocol = SplitProtocol("t", (0.7, 0.1, 0.2), "with validation")
    plain = deal_listeners(tensors, 2, seed=1)
    dealt = deal_listeners(tensors, 2, seed=1, protocol=protocol)
    for before, after in zip(plain, dealt, strict=True):
        assert after.validation is not None and after.validation.shape[1] > 0
        # Test is unchanged; training and validation together are the former training part.
        assert torch.equal(before.held_out, after.held_out)
        assert before.train_edges.shape[1] == after.train_edges.shape[1] + after.validation.shape[1]
    mine = dealt[0]
    assert mine.validation is not None
    count = int(mine.listeners.numel())
    learner = LightGCNLearner(
        mine.train_edges, mine.held_out, num_listeners=count, num_artists=150, validation=mine.validation
    )
    # A scorer that puts each listener's validation artists first: on validation it is perfect; on
    # test those artists are masked, so it scores like the same scorer without them.
    boost = torch.zeros(count, 150)
    boost[mine.validation[0], mine.validation[1]] = 10.0

    def scorer(listeners: torch.Tensor) -> torch.Tensor:
        return boost[listeners] + torch.linspace(0, 1, 150)

    on_validation = learner.ranking(scorer, validation=True)
    on_test = learner.ranking(scorer)
    unboosted = learner.ranking(lambda listeners: torch.linspace(0, 1, 150).expand(len(listeners), 150))
    assert on_validation is not None and on_validation.recall == pytest.approx(1.0)
    assert on_test is not None and unboosted is not None and on_test.recall == pytest.approx(unboosted.recall)


def test_a_node_chooses_its_blend_on_validation_and_reports_it_on_test() -> None:
    from agents.protocol.recommender import BETAS, BLEND_WEIGHTS
    from agents.protocol.statistics import group_statistics
    from agents.recsys_scenario import deal_listeners, fungiverse_over, synthetic_tensors
    from models.split import PROTOCOL_70_10_20

    torch.set_num_threads(1)
    tensors = synthetic_tensors(SynthParams(listeners=60, artists=120, seed=7))
    world = fungiverse_over(
        tensors,
        deal_listeners(tensors, 2, seed=0, protocol=PROTOCOL_70_10_20),
        seed=0,
        group_size=2,
        embedding_dim=8,
        max_rounds=1,
        statistics_noise=0.01,
    )
    world.simulator.run_until(lambda s: all(s.state(a).rounds_done >= 1 for a in world.actors), limit=100.0)
    actor = world.actors[0]
    learner, state = world.learner(actor), world.simulator.state(actor)
    held = group_statistics(world.simulator.nodes[actor].ctx, state)
    assert learner.has_validation and len(held) == 2

    # The reference: every (beta, weight) of the grid, scored on validation; the first best wins.
    def on_validation(scorer) -> float:  # type: ignore[no-untyped-def]
        return learner.ranking(scorer, validation=True).recall

    def graph_alone(beta: float) -> tuple[float, int]:
        return on_validation(learner.graph_scorer(learner.item_graph(held, beta=beta))), -BETAS.index(beta)

    best_beta = max(BETAS, key=graph_alone)

    def blend(weight: float) -> tuple[float, int]:
        scorer = learner.blended_scorer(state.weights, held, beta=best_beta, weight=weight)
        return on_validation(scorer), -BLEND_WEIGHTS.index(weight)

    best_weight = max(BLEND_WEIGHTS, key=blend)
    metrics = learner.evaluate_with_statistics(state.weights, held)
    assert learner.last_choice is not None
    assert (learner.last_choice.beta, learner.last_choice.weight) == (best_beta, best_weight)
    chosen = learner.blended_scorer(state.weights, held, beta=best_beta, weight=best_weight)
    assert metrics["blend-recall@20"] == pytest.approx(learner.ranking(chosen).recall)  # on test
    assert metrics["recall@20"] == pytest.approx(learner.evaluate(state.weights)["recall@20"])
    learner.evaluate_with_statistics(state.weights, [])
    assert learner.last_choice is None  # the model alone: no blend to report
