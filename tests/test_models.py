"""Splits, metrics, training and baselines on tiny MusicTensors built here (no data files needed)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from models.adjacency import artist_feature_matrix, bipartite_adjacency, knowledge_adjacency, knowledge_graph
from models.baselines import ItemKNN, Popularity
from models.data import MusicTensors, MusicTensorsError
from models.lightgcn import KnowledgeLightGCN, LightGCN, MatrixFactorization
from models.metrics import evaluate_ranking
from models.pipeline import selection_split
from models.split import PROTOCOL_80_20, PROTOCOL_RECBOLE, part_sizes, split_per_listener
from models.train import TrainConfig, evaluate_model, sample_negatives, train_bpr

BASE = "https://example.org/toy/"


def planted(
    listeners: int = 60, artists: int = 40, communities: int = 2, per_listener: int = 10, seed: int = 0
) -> MusicTensors:
    """Listeners of community c listen only to artists of community c; tags mark the communities."""
    generator = torch.Generator().manual_seed(seed)
    rows, cols = [], []
    block = artists // communities
    for listener in range(listeners):
        community = listener % communities
        chosen = torch.randperm(block, generator=generator)[:per_listener] + community * block
        rows += [listener] * per_listener
        cols += chosen.tolist()
    tag_rows = list(range(artists))
    tag_cols = [artist // block for artist in range(artists)]
    return MusicTensors(
        listeners=tuple(f"{BASE}listener/{i:03d}" for i in range(listeners)),
        artists=tuple(f"{BASE}artist/{i:03d}" for i in range(artists)),
        tags=tuple(f"{BASE}tag/{i}" for i in range(communities)),
        entities=(f"{BASE}entity/0",),
        relations=(f"{BASE}relation/origin",),
        interactions=torch.tensor([rows, cols]),
        play_counts=torch.ones(len(rows)),
        artist_tags=torch.tensor([tag_rows, tag_cols]),
        artist_entities=torch.tensor([[0, 1], [0, 0], [0, 0]]),
        artist_names=tuple(f"Artist {i}" for i in range(artists)),
        artist_tag_weights=torch.full((artists,), 3.0),
    )


# MusicTensors --------------------------------------------------------------------------------------


def test_tensors_map_ids_to_iris_and_back() -> None:
    toy = planted()
    assert toy.artist_index(toy.artist_iri(7)) == 7
    assert toy.iri("listener", toy.index("listener", f"{BASE}listener/005")) == f"{BASE}listener/005"
    with pytest.raises(KeyError, match="no artist"):
        toy.artist_index(f"{BASE}artist/999")


def test_tensors_refuse_out_of_range_indices() -> None:
    toy = planted()
    with pytest.raises(MusicTensorsError, match="outside"):
        toy.with_interactions(torch.tensor([[0], [toy.num_artists]]), torch.ones(1))


# Splits --------------------------------------------------------------------------------------------


def test_part_sizes_follow_recboles_rule() -> None:
    counts = torch.tensor([1, 2, 3, 5, 10, 50])
    # Hand-derived from RecBole's _calcu_split_ids: floor for valid/test, one each when below one
    # interaction as long as training keeps more than one.
    assert part_sizes(counts, (0.8, 0.1, 0.1)).tolist() == [
        [1, 0, 0],
        [1, 0, 1],
        [1, 1, 1],
        [3, 1, 1],
        [8, 1, 1],
        [40, 5, 5],
    ]
    assert part_sizes(counts, (0.8, 0.2)).tolist() == [[1, 0], [1, 1], [2, 1], [4, 1], [8, 2], [40, 10]]


@pytest.mark.parametrize("protocol", [PROTOCOL_80_20, PROTOCOL_RECBOLE])
def test_split_parts_are_disjoint_and_complete(protocol) -> None:
    toy = planted()
    split = split_per_listener(toy, protocol, seed=3)
    parts = [split.train.interactions, split.test] + ([split.valid] if split.valid is not None else [])
    keys = [set((p[0] * toy.num_artists + p[1]).tolist()) for p in parts]
    everything = set((toy.interactions[0] * toy.num_artists + toy.interactions[1]).tolist())
    assert sum(len(k) for k in keys) == len(everything)
    assert set().union(*keys) == everything
    # Ten interactions per listener: 8/2 or 8/1/1 for every listener.
    per_listener_test = torch.bincount(split.test[0], minlength=toy.num_listeners)
    assert per_listener_test.tolist() == [protocol.ratios[-1] * 10] * toy.num_listeners


def test_split_is_reproducible_with_a_seed_and_changes_with_another() -> None:
    toy = planted()
    first = split_per_listener(toy, PROTOCOL_80_20, seed=1)
    again = split_per_listener(toy, PROTOCOL_80_20, seed=1)
    other = split_per_listener(toy, PROTOCOL_80_20, seed=2)
    assert torch.equal(first.test, again.test)
    assert not torch.equal(first.test, other.test)


def test_split_refuses_duplicate_pairs() -> None:
    toy = planted()
    doubled = toy.with_interactions(toy.interactions.repeat(1, 2), toy.play_counts.repeat(2))
    with pytest.raises(MusicTensorsError, match="duplicate"):
        split_per_listener(doubled, PROTOCOL_80_20, seed=0)


def with_taggings(toy: MusicTensors, taggings: list[tuple[int, int, int]]) -> MusicTensors:
    """``toy`` whose artist-tag edges come from ``taggings`` (listener, artist, tag), as graph.py does."""
    pairs = sorted({(a, t) for _, a, t in taggings})
    return dataclasses.replace(
        toy,
        artist_tags=torch.tensor(pairs).t(),
        artist_tag_weights=torch.tensor(
            [float(sum(1 for _, a, t in taggings if (a, t) == p)) for p in pairs]
        ),
        taggings=torch.tensor(sorted(taggings)).t(),
    )


def test_a_tagging_of_a_held_out_pair_gives_no_edge_and_no_weight() -> None:
    toy = planted()
    split = split_per_listener(toy, PROTOCOL_80_20, seed=0)
    (u, a), (u2, a2) = split.test[:, 0].tolist(), split.train.interactions[:, 0].tolist()
    shared_artist = int(split.test[1, 1])
    tagged = with_taggings(
        toy,
        [
            (u, a, 0),  # only a held-out pair tagged (a, tag 0): the edge must go
            (u2, a2, 1),  # a training pair: stays, weight 1
            (-1, a2, 1),  # a tagger without listenings here: never held out, counts
            (int(split.test[0, 1]), shared_artist, 1),  # held out, but (shared_artist, 1) ...
            (-1, shared_artist, 1),  # ... also has a tagger who is not held out: stays, weight 1
        ],
    )
    again = split_per_listener(tagged, PROTOCOL_80_20, seed=0)
    pairs = map(tuple, again.train.artist_tags.t().tolist())
    edges = dict(zip(pairs, again.train.artist_tag_weights.tolist(), strict=True))
    assert (a, 0) not in edges
    assert edges[(a2, 1)] == 2.0
    assert edges[(shared_artist, 1)] == 1.0
    assert again.train.taggings is not None and again.train.taggings.shape[1] == 3
    # The feature matrix a knowledge-aware model reads has no tag-0 column entry for the artist.
    features = artist_feature_matrix(again.train).to_dense()
    assert features[a, 0] == 0.0 and features[a2, 1] > 0.0
    # Model selection carves validation out of training with the same function: its pairs go too.
    carved = selection_split(again)
    kept = carved.train.taggings
    assert kept is not None
    valid_keys = set((carved.valid[0] * toy.num_artists + carved.valid[1]).tolist())
    assert not valid_keys & set((kept[0] * toy.num_artists + kept[1]).tolist())


def test_catalogue_edges_without_any_tagging_here_are_kept() -> None:
    toy = planted()
    only_public = dataclasses.replace(toy, taggings=torch.zeros((3, 0), dtype=torch.long))
    split = split_per_listener(only_public, PROTOCOL_80_20, seed=0)
    assert torch.equal(split.train.artist_tags, toy.artist_tags)
    assert split.train.artist_tag_weights.tolist() == [0.0] * toy.artist_tags.shape[1]


def test_taggings_must_point_inside_the_tables() -> None:
    with pytest.raises(MusicTensorsError, match="taggings"):
        dataclasses.replace(planted(), taggings=torch.tensor([[-2], [0], [0]]))


# Metrics -------------------------------------------------------------------------------------------


def naive_metrics(scores: torch.Tensor, held: dict[int, set[int]], exclude: dict[int, set[int]], k: int):
    recalls, ndcgs, hits, shown = [], [], [], set()
    for listener, relevant in held.items():
        ranked = [
            a
            for a in scores[listener].argsort(descending=True).tolist()
            if a not in exclude.get(listener, ())
        ]
        top = ranked[:k]
        shown |= set(top)
        found = [a in relevant for a in top]
        recalls.append(sum(found) / len(relevant))
        dcg = sum(1 / math.log2(i + 2) for i, f in enumerate(found) if f)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
        ndcgs.append(dcg / ideal)
        hits.append(float(any(found)))
    n = len(held)
    return sum(recalls) / n, sum(ndcgs) / n, sum(hits) / n, len(shown) / scores.shape[1]


def test_metrics_match_hand_computed_values_and_a_naive_loop() -> None:
    # Listener 0 ranks artists 4 > 3 > 2 > 1 > 0, has listened to 4 (masked), holds out {3, 0}.
    # Listener 1 ranks 0 > 1 > 2 > 3 > 4 and holds out {2}.
    scores = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0, 0.0]])
    held_out = torch.tensor([[0, 0, 1], [3, 0, 2]])
    exclude = torch.tensor([[0], [4]])
    result = evaluate_ranking(
        lambda listeners: scores[listeners], held_out, exclude, num_listeners=2, num_artists=5, k=2
    )
    # Top-2: listener 0 -> [3, 2] (1 hit of 2), listener 1 -> [0, 1] (no hit).
    assert result.recall == pytest.approx((1 / 2 + 0) / 2)
    assert result.ndcg == pytest.approx((1.0 / (1 + 1 / math.log2(3)) + 0) / 2)
    assert result.hit_rate == pytest.approx(0.5)
    assert result.coverage == pytest.approx(4 / 5)
    reference = naive_metrics(scores, {0: {3, 0}, 1: {2}}, {0: {4}}, k=2)
    assert (result.recall, result.ndcg, result.hit_rate, result.coverage) == pytest.approx(reference)


def test_metrics_match_a_naive_loop_on_random_scores() -> None:
    generator = torch.Generator().manual_seed(5)
    scores = torch.rand(30, 50, generator=generator)
    toy_pairs = torch.randperm(30 * 50, generator=generator)[:300]
    pairs = torch.stack([toy_pairs // 50, toy_pairs % 50])
    held_out, exclude = pairs[:, :120], pairs[:, 120:]
    result = evaluate_ranking(
        lambda listeners: scores[listeners],
        held_out,
        exclude,
        num_listeners=30,
        num_artists=50,
        k=5,
        batch_size=7,
    )
    held: dict[int, set[int]] = {}
    for listener, artist in held_out.T.tolist():
        held.setdefault(listener, set()).add(artist)
    masked: dict[int, set[int]] = {}
    for listener, artist in exclude.T.tolist():
        masked.setdefault(listener, set()).add(artist)
    reference = naive_metrics(scores, held, masked, k=5)
    assert (result.recall, result.ndcg, result.hit_rate, result.coverage) == pytest.approx(reference)


# Training ------------------------------------------------------------------------------------------


def test_negative_sampling_avoids_training_pairs() -> None:
    toy = planted()
    known = torch.sort(toy.interactions[0] * toy.num_artists + toy.interactions[1]).values
    listeners = toy.interactions[0].repeat(20)
    negatives = sample_negatives(listeners, known, toy.num_artists, torch.Generator().manual_seed(0))
    keys = listeners * toy.num_artists + negatives
    assert not torch.isin(keys, known).any()


def _train(model, graph, split, **overrides):
    config = TrainConfig(
        **{"epochs": 30, "batch_size": 256, "learning_rate": 0.05, "eval_every": 5, **overrides}
    )
    report = train_bpr(
        model, graph, split.train.interactions, config, valid_edges=split.valid, progress=False
    )
    return report, evaluate_model(model, graph, split.test, split.train.interactions, k=5)


def test_lightgcn_learns_planted_communities_and_beats_random() -> None:
    toy = planted()
    split = split_per_listener(toy, PROTOCOL_RECBOLE, seed=0)
    graph = bipartite_adjacency(split.train.interactions, toy.num_listeners, toy.num_artists)
    model = LightGCN(toy.num_listeners, toy.num_artists, embedding_dim=16, num_layers=2)
    report, metrics = _train(model, graph, split)
    assert report.history[-1].loss < report.history[0].loss
    # Random ranking of the 40 artists finds about 5/32 of a held-out artist in the top 5; a model
    # that learned the communities ranks among 20 - 8 own-community candidates only.
    assert metrics.recall > 0.3
    assert report.best_validation is not None


def test_training_is_reproducible_with_a_seed() -> None:
    toy = planted()
    split = split_per_listener(toy, PROTOCOL_RECBOLE, seed=0)
    graph = bipartite_adjacency(split.train.interactions, toy.num_listeners, toy.num_artists)
    states = []
    for _ in range(2):
        model = LightGCN(toy.num_listeners, toy.num_artists, embedding_dim=8, num_layers=2)
        _train(model, graph, split, epochs=6, eval_every=3)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][name], states[1][name]) for name in states[0])


def test_early_stopping_restores_the_best_validated_epoch() -> None:
    toy = planted()
    split = split_per_listener(toy, PROTOCOL_RECBOLE, seed=0)
    graph = bipartite_adjacency(split.train.interactions, toy.num_listeners, toy.num_artists)
    model = LightGCN(toy.num_listeners, toy.num_artists, embedding_dim=8, num_layers=2)
    report, _ = _train(model, graph, split, epochs=200, eval_every=1, patience=3)
    assert report.stopped_early
    assert report.best_epoch == report.epochs_run - 3
    restored = evaluate_model(model, graph, split.valid, split.train.interactions, k=20)
    assert restored.ndcg == pytest.approx(report.best_validation.ndcg)


def test_matrix_factorisation_and_knowledge_models_train_on_the_same_harness() -> None:
    toy = planted()
    split = split_per_listener(toy, PROTOCOL_RECBOLE, seed=0)
    mf = MatrixFactorization(toy.num_listeners, toy.num_artists, embedding_dim=16)
    _, mf_metrics = _train(mf, None, split)
    assert mf_metrics.recall > 0.2
    for mode in ("features", "nodes"):
        graph = knowledge_graph(split.train, side_information=mode)
        kg = KnowledgeLightGCN(
            toy.num_listeners, toy.num_artists, toy.num_tags, toy.num_entities, 16, 2, side_information=mode
        )
        _, kg_metrics = _train(kg, graph, split)
        assert kg_metrics.recall > 0.3, mode


def test_artist_features_are_a_row_mean_over_tags_and_entities() -> None:
    toy = planted(artists=4, communities=2, per_listener=2)
    features = artist_feature_matrix(toy).to_dense()
    # Artists 0 and 1 have tag 0 (applied 3 times) and entity 0 (column 2); artists 2 and 3 tag 1.
    assert features.tolist() == [[0.75, 0, 0.25], [0.75, 0, 0.25], [0, 1, 0], [0, 1, 0]]
    _, layout = knowledge_adjacency(toy)
    assert layout.num_nodes == toy.num_listeners + toy.num_artists + toy.num_tags + toy.num_entities


# Baselines -----------------------------------------------------------------------------------------


def test_popularity_ranks_by_training_listeners() -> None:
    edges = torch.tensor([[0, 1, 2, 0], [2, 2, 2, 1]])
    popularity = Popularity.fit(edges, num_artists=3)
    assert popularity.score(torch.tensor([1])).argsort(descending=True).tolist()[0] == [2, 1, 0]


def test_itemknn_recommends_within_the_listeners_community() -> None:
    toy = planted()
    split = split_per_listener(toy, PROTOCOL_80_20, seed=0)
    knn = ItemKNN.fit(split.train.interactions, toy.num_listeners, toy.num_artists, neighbours=10)
    result = evaluate_ranking(
        knn.score,
        split.test,
        split.train.interactions,
        num_listeners=toy.num_listeners,
        num_artists=toy.num_artists,
        k=5,
    )
    assert result.recall > 0.3
    # Cosine similarity of an artist with itself is dropped, and each row keeps at most 10 neighbours.
    similarity = knn.similarity.to_dense()
    assert similarity.diagonal().abs().sum() == 0
    assert int((similarity > 0).sum(dim=1).max()) <= 10
    # The kept neighbours are the most similar ones: a dense reference over the training matrix.
    dense = torch.zeros(toy.num_listeners, toy.num_artists)
    dense[split.train.interactions[0], split.train.interactions[1]] = 1.0
    cosine = (dense.T @ dense) / (dense.norm(dim=0)[:, None] * dense.norm(dim=0)[None, :]).clamp(min=1e-12)
    cosine.fill_diagonal_(0)
    for artist in range(toy.num_artists):
        kept = similarity[artist][similarity[artist] > 0]
        assert torch.allclose(kept.sort(descending=True).values, cosine[artist].topk(kept.numel()).values)
    # Scoring a listener sums the similarity rows of their training artists.
    listener = 0
    expected = dense[listener] @ similarity
    assert torch.allclose(knn.score(torch.tensor([listener]))[0], expected, atol=1e-6)
    assert torch.allclose(knn.score_liked(dense[listener].nonzero().flatten().tolist()), expected, atol=1e-6)


def test_symmetric_propagation_has_the_gradient_of_a_dense_product() -> None:
    from models.adjacency import symmetric_propagate

    toy = planted(listeners=6, artists=4, per_listener=2)
    graph = bipartite_adjacency(toy.interactions, toy.num_listeners, toy.num_artists)
    x = torch.randn(10, 3, dtype=torch.float32, requires_grad=True)
    weights = torch.randn(10, 3)
    (symmetric_propagate(graph, x) * weights).sum().backward()
    dense = graph.to_dense()
    assert torch.allclose(dense, dense.T)
    assert torch.allclose(x.grad, dense.T @ weights, atol=1e-6)


def test_selection_carves_validation_from_training_and_refits_on_all_of_it() -> None:
    from models.pipeline import evaluate_on_test, fit_embedding_model, fit_itemknn, selection_split

    toy = planted()
    split = split_per_listener(toy, PROTOCOL_80_20, seed=0)
    carved = selection_split(split)
    key = lambda edges: set((edges[0] * toy.num_artists + edges[1]).tolist())  # noqa: E731
    assert key(carved.valid) | key(carved.train.interactions) == key(split.train.interactions)
    assert not key(carved.valid) & key(split.test)
    assert torch.equal(carved.test, split.test)

    config = TrainConfig(epochs=20, batch_size=256, learning_rate=0.05, eval_every=2, patience=2)
    result = fit_embedding_model("lightgcn", split, config, progress=False, embedding_dim=8, num_layers=2)
    assert result.selection is not None and result.report is not None
    assert result.report.epochs_run == result.selection.best_epoch == result.epochs
    assert evaluate_on_test(result, split, k=5).recall > 0.3
    knn = fit_itemknn(split, k=5, neighbourhoods=(2, 8))
    assert knn.chosen["neighbours"] in (2, 8)


def test_the_tag_channel_scores_a_listeners_community_first_and_is_chosen_on_validation() -> None:
    from models.fusion import choose_weight
    from models.knowledge import TagProfile
    from models.pipeline import evaluate_on_test, fit_embedding_model, selection_split

    toy = planted()
    split = split_per_listener(toy, PROTOCOL_80_20, seed=0)
    channel = TagProfile(split.train)
    scores = channel(torch.tensor([0, 1]))  # listener 0 is in community 0, listener 1 in community 1
    half = toy.num_artists // 2
    assert scores[0, :half].min() > scores[0, half:].max()
    assert scores[1, half:].min() > scores[1, :half].max()

    carved = selection_split(split)
    sizes = {"num_listeners": toy.num_listeners, "num_artists": toy.num_artists, "k": 5}
    valid, train = carved.valid, carved.train.interactions
    noise = lambda rows: torch.rand(rows.numel(), toy.num_artists)  # noqa: E731
    weight, _ = choose_weight(noise, TagProfile(carved.train), valid, train, **sizes)
    assert weight > 0  # the tags know the communities; random scores do not
    against = lambda rows: -channel(rows)  # noqa: E731
    weight, _ = choose_weight(channel, against, valid, train, **sizes)
    assert weight == 0.0  # a channel that does not help is switched off

    config = TrainConfig(epochs=10, batch_size=256, learning_rate=0.05, eval_every=2, patience=2)
    result = fit_embedding_model("knowledge-lightgcn", split, config, progress=False, embedding_dim=8)
    assert "tag_weight" in result.chosen and result.fused == (result.chosen["tag_weight"] > 0)
    assert evaluate_on_test(result, split, k=5).recall > 0.3
