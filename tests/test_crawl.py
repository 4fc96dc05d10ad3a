"""A linked-data crawler (rdflib) starting from one node's IRI reaches every node, group and snapshot
of a three-host fungiverse, following links across hosts, and never sees private data."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from rdflib import RDF, Namespace, URIRef

import ontology
from federation.linked_data.crawl import crawl, not_a_vocabulary
from tests.linked_data_world import World

SPORE = Namespace(ontology.NAMESPACE)
AS = Namespace("https://www.w3.org/ns/activitystreams#")


def _loopback(url: str) -> bool:
    """The fungiverse of this test lives on 127.0.0.1 (any port): that is all the crawler may fetch."""
    return not_a_vocabulary(url) and urlsplit(url).hostname == "127.0.0.1"


def test_vocabulary_hosts_are_not_crawled() -> None:
    assert not not_a_vocabulary("https://w3id.org/spore/ns#FungusNode")
    assert not not_a_vocabulary("https://schema.org/name")
    assert not not_a_vocabulary("mailto:someone@example.org")
    assert not_a_vocabulary("http://127.0.0.1:8000/nodes/ada")


@pytest.mark.slow
def test_crawl_from_one_node_reaches_every_node_group_and_snapshot(ld_world: World) -> None:
    start = next(n for n in ld_world.nodes if n.endswith("/nodes/ada"))
    result = crawl(start, allow=_loopback, max_documents=400)
    graph = result.graph
    hosts = {urlsplit(d).netloc for d in result.documents}
    assert len(hosts) == len(ld_world.hosts) == 3  # the links led across every host

    def typed(kind: URIRef) -> set[str]:
        return {str(s) for s in graph.subjects(RDF.type, kind)}

    assert typed(AS.Service) >= ld_world.nodes
    assert typed(SPORE.FungusNode) == ld_world.nodes
    assert typed(AS.Group) == ld_world.groups
    assert typed(SPORE.ModelSnapshot) == ld_world.snapshots
    reached = set(result.documents)
    assert ld_world.blueprints | ld_world.decisions | ld_world.recommendations <= reached
    # Lineage is linked data too: every second snapshot names its parent.
    derived = {str(o) for o in graph.objects(None, URIRef("http://www.w3.org/ns/prov#wasDerivedFrom"))}
    assert derived and derived <= ld_world.snapshots
    assert "4242" not in graph.serialize(format="nt")  # the private play counts stayed private
