"""Snapshots, model cards and recommendations as linked data, on a tiny model trained here."""

from __future__ import annotations

import datetime
import hashlib

import pytest
import torch
from rdflib import Graph, Literal, URIRef
from test_models import planted

from models.adjacency import bipartite_adjacency
from models.card import Measurement, model_card, snapshot_iri
from models.lightgcn import LightGCN
from models.metrics import RankingMetrics
from models.recommend import RecommendationEngine, UnknownArtistError, match_artists, recommendation_graph
from models.snapshot import (
    SnapshotError,
    SnapshotIntegrityError,
    load_snapshot,
    save_snapshot,
    shared_parameters,
)
from models.split import PROTOCOL_80_20, split_per_listener
from models.train import TrainConfig, train_bpr
from ontology import SPORE

SCHEMA = "https://schema.org/"
WHEN = datetime.datetime(2026, 11, 22, 4, 0, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def trained():
    toy = planted()
    split = split_per_listener(toy, PROTOCOL_80_20, seed=0)
    graph = bipartite_adjacency(split.train.interactions, toy.num_listeners, toy.num_artists)
    model = LightGCN(toy.num_listeners, toy.num_artists, embedding_dim=8, num_layers=2)
    config = TrainConfig(epochs=15, batch_size=256, learning_rate=0.05, eval_every=5)
    report = train_bpr(model, graph, split.train.interactions, config, progress=False)
    return toy, split, graph, model, config, report


# Snapshots -----------------------------------------------------------------------------------------


def test_snapshot_is_named_by_the_sha256_of_its_bytes_and_round_trips(trained, tmp_path) -> None:
    toy, split, _, model, _, _ = trained
    snapshot = save_snapshot(model, split.train, tmp_path)
    data = snapshot.path.read_bytes()
    assert snapshot.path.name == f"{hashlib.sha256(data).hexdigest()}.safetensors"
    assert snapshot.byte_size == len(data)
    loaded = load_snapshot(snapshot.path, toy)
    assert loaded.sha256 == snapshot.sha256
    assert isinstance(loaded.model, LightGCN) and loaded.model.num_layers == 2
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor)
    # Saving the same weights again gives the same file.
    assert save_snapshot(model, split.train, tmp_path).path == snapshot.path


def test_snapshot_loading_refuses_bytes_that_do_not_match_the_name(trained, tmp_path) -> None:
    _, split, _, model, _, _ = trained
    snapshot = save_snapshot(model, split.train, tmp_path)
    data = bytearray(snapshot.path.read_bytes())
    data[-1] ^= 0xFF
    snapshot.path.write_bytes(bytes(data))
    with pytest.raises(SnapshotIntegrityError, match="refusing"):
        load_snapshot(snapshot.path)


def test_snapshot_loading_refuses_an_announced_digest_mismatch(trained, tmp_path) -> None:
    _, split, _, model, _, _ = trained
    snapshot = save_snapshot(model, split.train, tmp_path)
    renamed = tmp_path / "model.safetensors"
    renamed.write_bytes(snapshot.path.read_bytes())
    assert load_snapshot(renamed).sha256 == snapshot.sha256
    with pytest.raises(SnapshotIntegrityError):
        load_snapshot(renamed, expected_sha256="0" * 64)


def test_snapshot_refuses_other_rows_and_non_snapshots(trained, tmp_path) -> None:
    _, split, _, model, _, _ = trained
    snapshot = save_snapshot(model, split.train, tmp_path)
    other = planted(listeners=61)
    with pytest.raises(SnapshotError, match="other listeners"):
        load_snapshot(snapshot.path, other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a snapshot")
    with pytest.raises(SnapshotError, match="not a safetensors snapshot"):
        load_snapshot(junk)


def test_shared_parameters_are_the_item_side_tensors(trained) -> None:
    model = trained[3]
    assert set(shared_parameters(model.state_dict())) == {"artist_embedding.weight"}


# Model card ----------------------------------------------------------------------------------------


def _card(trained, tmp_path, **overrides) -> tuple[Graph, URIRef]:
    toy, split, _, model, config, report = trained
    snapshot = save_snapshot(model, split.train, tmp_path)
    metrics = RankingMetrics(k=20, recall=0.25, ndcg=0.24, hit_rate=0.8, coverage=0.3, listeners=60)
    arguments = {
        "config": config,
        "training_seconds": report.seconds,
        "epochs": report.epochs_run,
        "data_description": toy.describe(),
        "training_split": split.describe() + ", training part",
        "measurements": (Measurement(metrics, split.describe() + ", test part"),),
        "parent": snapshot_iri("ab" * 32),
        "generated_at": WHEN,
        **overrides,
    }
    return model_card(snapshot, **arguments), snapshot_iri(snapshot.sha256)


def test_model_card_describes_the_snapshot_and_passes_the_shapes(trained, tmp_path) -> None:
    from shapes.validation import default_validator

    card, iri = _card(trained, tmp_path)
    assert str(iri).startswith("ni:///sha-256;")
    assert card.value(iri, SPORE.architecture) == SPORE.LightGCN
    toy, split, _, model, config, report = trained
    assert card.value(iri, SPORE.epochs).toPython() == report.epochs_run
    assert card.value(card.value(iri, SPORE.configuration), SPORE.seed).toPython() == config.seed
    evaluations = set(card.subjects(SPORE.evaluates, iri))
    assert {card.value(e, SPORE.metric) for e in evaluations} == {
        SPORE.Recall,
        SPORE.NDCG,
        SPORE.HitRate,
        SPORE.Coverage,
    }
    report = default_validator().validate(card)
    assert report.conforms, report.lines()


def test_model_card_with_a_bad_value_fails_the_shapes(trained, tmp_path) -> None:
    from shapes.validation import default_validator

    card, iri = _card(trained, tmp_path)
    card.set((iri, SPORE.sha256, Literal("not-a-digest")))
    evaluation = next(iter(card.subjects(SPORE.evaluates, iri)))
    card.set((evaluation, SPORE.value, Literal(1.5)))
    report = default_validator().validate(card)
    assert not report.conforms
    assert {v.path for v in report.violations} >= {"spore:sha256", "spore:value"}


# Recommendations -----------------------------------------------------------------------------------


def test_recommendations_exclude_the_listeners_artists(trained) -> None:
    toy, split, graph, model, _, _ = trained
    engine = RecommendationEngine(model, graph, split.train)
    for listener in range(5):
        ranked = engine.for_listener(listener, k=10)
        known = set(engine.known_artists(listener).tolist())
        assert len(ranked) == 10 and not {r.index for r in ranked} & known
        assert [r.position for r in ranked] == list(range(1, 11))
        assert all(a.score >= b.score for a, b in zip(ranked, ranked[1:], strict=False))


def test_fold_in_from_liked_artists_recommends_their_community(trained) -> None:
    toy, split, graph, model, _, _ = trained
    engine = RecommendationEngine(model, graph, split.train)
    ranked = engine.for_artists([0, 1, 2], k=5)  # community 0 holds artists 0..19
    assert not {0, 1, 2} & {r.index for r in ranked}
    assert sum(r.index < 20 for r in ranked) >= 4


def test_artist_names_match_case_insensitively_and_typos_get_suggestions() -> None:
    toy = planted()
    matches = match_artists(["  artist 3", "ARTIST 12"], toy)
    assert [m.index for m in matches] == [3, 12]
    with pytest.raises(UnknownArtistError) as caught:
        match_artists(["Artist 3", "Artsit 7", "Zzzzzz"], toy)
    assert "Artist 7" in caught.value.unknown["Artsit 7"]
    assert caught.value.unknown["Zzzzzz"] == []
    assert "did you mean" in str(caught.value)


def test_recommendation_graph_passes_its_shape_and_fails_without_a_snapshot(trained) -> None:
    from shapes.validation import default_validator

    toy, split, graph, model, _, _ = trained
    engine = RecommendationEngine(model, graph, split.train)
    ranked = engine.for_listener(0, k=5)
    rdf, subject = recommendation_graph(
        ranked, made_with=snapshot_iri("cd" * 32), listener=toy.listeners[0], generated_at=WHEN
    )
    assert rdf.value(subject, SPORE.forListener) == URIRef(toy.listeners[0])
    items = list(rdf.objects(subject, URIRef(SCHEMA + "itemListElement")))
    assert len(items) == 5
    assert default_validator().validate(rdf).conforms

    rdf.remove((subject, SPORE.madeWith, None))
    assert not default_validator().validate(rdf).conforms


def test_recommendation_is_for_a_listener_or_from_seed_artists_not_both(trained) -> None:
    toy = trained[0]
    with pytest.raises(ValueError, match="not both"):
        recommendation_graph(
            [], made_with=snapshot_iri("cd" * 32), listener=toy.listeners[0], seed_artists=(toy.artists[0],)
        )
