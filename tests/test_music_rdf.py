"""The corpus as N-Quads: shape, escaping (checked by rdflib, an independent parser), graphs, shards."""

from __future__ import annotations

from pathlib import Path

import pytest
import rdflib
from music_samples import ODD_NAMES, write_kgcn, write_lastfm
from pyoxigraph import NamedNode

from knowledge.music import vocab as v
from knowledge.music.corpus import IriScheme
from knowledge.music.importer import import_corpus, write_nquads
from knowledge.music.lastfm import read_lastfm
from knowledge.music.rdf import TargetGraphs, corpus_nquads, literal, select_listeners
from knowledge.store import EmbeddedStore

NODE = "http://127.0.0.1:8000/nodes/local"
GRAPHS = TargetGraphs.for_node(NODE)
LASTFM = IriScheme.lastfm()
# rdflib's own N-Quads parser trips its own deprecation; nothing to do with the data under test
pytestmark = pytest.mark.filterwarnings("ignore:Dataset.default_context is deprecated:DeprecationWarning")


@pytest.fixture
def corpus(tmp_path: Path):
    return read_lastfm(write_lastfm(tmp_path / "lastfm"), freebase=write_kgcn(tmp_path / "kgcn"))


@pytest.fixture
def dataset(corpus) -> rdflib.Dataset:
    data = b"".join(chunk for _, chunk in corpus_nquads(corpus, GRAPHS))
    parsed = rdflib.Dataset()
    parsed.parse(data=data, format="nquads")
    return parsed


def graph(dataset: rdflib.Dataset, iri: str) -> rdflib.Graph:
    return dataset.graph(rdflib.URIRef(iri))


def test_graph_iris_follow_node_graphs() -> None:
    assert GRAPHS.catalogue == f"{NODE}/graphs/catalogue"
    assert GRAPHS.private == f"{NODE}/graphs/private"


@pytest.mark.parametrize("text", [*ODD_NAMES.values(), 'a "quoted" \\ back\nslash\r', ""])
def test_literal_round_trips_through_an_independent_parser(text: str) -> None:
    parsed = rdflib.Graph().parse(data=f"<urn:s> <urn:p> {literal(text)} .", format="nt")
    assert str(next(iter(parsed.objects()))) == text


def test_catalogue_holds_artists_tags_and_knowledge(dataset: rdflib.Dataset) -> None:
    catalogue = graph(dataset, GRAPHS.catalogue)
    u = rdflib.URIRef
    artist = u(LASTFM.artist("1"))
    assert (artist, rdflib.RDF.type, u(v.MUSIC_GROUP)) in catalogue
    assert str(catalogue.value(artist, u(v.NAME))) == '"Weird Al" Yankovic'
    assert catalogue.value(artist, u(v.URL)) == u("http://www.last.fm/music/a1")
    assert catalogue.value(u(LASTFM.artist("7")), u(v.IMAGE)) is None
    assert str(catalogue.value(u(LASTFM.tag("4")), u(v.PREF_LABEL))) == "düsseldorf"
    assert (u(LASTFM.tag("1")), u(v.IN_SCHEME), u(LASTFM.tag_scheme())) in catalogue
    assert set(catalogue.objects(artist, u(v.HAS_TAG))) == {u(LASTFM.tag("1"))}
    assert catalogue.value(artist, u(v.KNOWLEDGE_ENTITY)) == u(LASTFM.entity("0"))
    origin = u(LASTFM.relation("music.artist.origin"))
    # a mapped artist's triples use the artist IRI, on both ends
    assert (artist, origin, u(LASTFM.entity("10"))) in catalogue
    assert (u(LASTFM.artist("5")), u(LASTFM.relation("music.artist.influenced_by")), artist) in catalogue
    assert (origin, rdflib.RDFS.subPropertyOf, u(v.KNOWLEDGE_RELATION)) in catalogue
    assert (u(LASTFM.entity("10")), rdflib.RDF.type, u(v.KNOWLEDGE_ENTITY_CLASS)) in catalogue
    # nothing about listeners is public
    assert not list(catalogue.subjects(rdflib.RDF.type, u(v.PERSON)))
    assert not any("listener" in str(term) for triple in catalogue for term in triple)


def test_private_graph_holds_listening_tagging_and_friends(dataset: rdflib.Dataset) -> None:
    private = graph(dataset, GRAPHS.private)
    u = rdflib.URIRef
    listening = u(LASTFM.listening("2", "1"))
    assert (listening, rdflib.RDF.type, u(v.LISTENING)) in private
    assert private.value(listening, u(v.LISTENER)) == u(LASTFM.listener("2"))
    assert private.value(listening, u(v.ARTIST)) == u(LASTFM.artist("1"))
    count = private.value(listening, u(v.PLAY_COUNT))
    assert count.toPython() == 100 and count.datatype == rdflib.XSD.integer
    tagging = u(LASTFM.tagging("2", "1", "1"))
    assert private.value(tagging, u(v.TAG)) == u(LASTFM.tag("1"))
    assert private.value(tagging, u(v.DATE)) == rdflib.Literal("2009-04-01", datatype=rdflib.XSD.date)
    assert (u(LASTFM.listener("2")), u(v.KNOWS), u(LASTFM.listener("3"))) in private
    assert len(set(private.subjects(rdflib.RDF.type, u(v.PERSON)))) == 4
    assert len(set(private.subjects(rdflib.RDF.type, u(v.LISTENING)))) == 8


def test_select_listeners_partitions_evenly() -> None:
    keys = [str(i) for i in range(10)]
    shards = [select_listeners(keys, shard=(i, 3)) for i in range(3)]
    assert sorted(sum(shards, []), key=int) == keys
    assert [len(s) for s in shards] == [4, 3, 3]
    assert select_listeners(keys, subset={"3", "4", "5"}, shard=(1, 2)) == ["4"]
    with pytest.raises(ValueError, match="shard 3/3"):
        select_listeners(keys, shard=(3, 3))


def test_import_into_store_keeps_the_catalogue_whole_and_one_shard_private(corpus) -> None:
    store = EmbeddedStore()
    mine = select_listeners(corpus.listener_keys(), shard=(0, 2))
    seen: list[int] = []
    phases: list[str] = []
    summary = import_corpus(store, corpus, GRAPHS, listeners=mine, progress=seen.append, phase=phases.append)
    assert phases == ["catalogue", "private", "compacting"]
    assert mine == ["2", "4"]
    assert summary.catalogue_quads == store.count(NamedNode(GRAPHS.catalogue))
    assert summary.private_quads == store.count(NamedNode(GRAPHS.private))
    assert sum(seen) > 0
    rows = store.query(
        "SELECT DISTINCT ?who WHERE { GRAPH ?g { ?l ?p ?who } }", bindings={"p": NamedNode(v.LISTENER)}
    )
    assert {row["who"].value for row in rows} == {LASTFM.listener("2"), LASTFM.listener("4")}
    assert (
        store.count(NamedNode(GRAPHS.catalogue))
        == import_corpus(EmbeddedStore(), corpus, GRAPHS).catalogue_quads
    )


def test_replace_clears_an_earlier_import(corpus) -> None:
    store = EmbeddedStore()
    import_corpus(store, corpus, GRAPHS)
    import_corpus(store, corpus, GRAPHS, listeners=["3"], replace=True)
    persons = store.query(
        "SELECT ?p WHERE { GRAPH ?g { ?p a ?type } }",
        bindings={"g": NamedNode(GRAPHS.private), "type": NamedNode(v.PERSON)},
    )
    assert [row["p"].value for row in persons] == [LASTFM.listener("3")]


def test_nquads_file_loads_into_a_store(corpus, tmp_path: Path) -> None:
    path = tmp_path / "music.nq"
    lines = write_nquads(path, corpus, GRAPHS)
    store = EmbeddedStore()
    store.native.load(path=str(path))
    assert len(store.native) == lines == path.read_bytes().count(b"\n")
