"""Served nodes reason after every round and act on it over HTTP, as simulated nodes do (issue 6).

One small fungiverse on two loopback hosts, served LightGCN nodes built from blueprints on a
synthetic catalogue (every node holds the same listeners, so a better model is better for all):

* host A: ``good`` owns ``#good`` and learns fast; ``liar`` owns ``#liar``, barely learns, and
  publishes an inflated Recall@20 (0.99) for its model; its policy mutates whenever it stagnates;
* host B: ``bad`` owns ``#bad`` and barely learns, ``mover`` is in ``#bad``; ``mid`` owns ``#mid`` and
  learns, ``doubter`` is in ``#mid``.

Embedding sizes split the world in two: ``good``/``bad``/``mover`` (8) and ``liar``/``mid``/``doubter``
(12), so ``mover`` only sees ``#good``'s claim and ``doubter`` only ``#liar``'s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import torch
from click.testing import CliRunner
from pyoxigraph import NamedNode, RdfFormat
from rdflib import RDF, Graph, Literal, URIRef
from rdflib.namespace import PROV

import queries
from agents import watch
from agents.claims import ClaimReader
from agents.commands.demo import tell_decisions
from agents.commands.explain import explain
from agents.commands.status import status
from agents.fungus_host import start_fungus_host
from agents.hosting import HostOptions, NodeHost
from agents.node import FungusNode
from agents.node_publish import start_publishing
from agents.node_setup import CatalogueQuads, NodeRoles, RoundTiming, build_node, read_blueprint
from agents.node_thinking import ServedThinking, claim_from_results, graph_from_rows, why_not_reasoning
from agents.protocol.messages import GroupInfo
from agents.protocol.recommender import LightGCNLearner
from agents.revisions import resume_revision
from agents.thinking import Claim, learner_settings
from federation.host import RunningHost
from knowledge.graphs import GraphKind, graph_iri
from knowledge.music.synth import SynthParams, synthesize
from knowledge.store import EmbeddedStore, to_rdflib
from ontology import SPORE
from reasoning.decisions import DecisionView, read_decisions
from reasoning.mutation import current_blueprint
from reasoning.mutation import write_blueprint as write_mutant
from reasoning.operators import load_operators, mutate
from reasoning.records import rule_dataset
from shapes.validation import default_validator

POLICY = """
    spore:policy [ a spore:Policy ; spore:switchMargin 0.05 ; spore:switchPatience {patience} ;
        spore:stagnationRounds {stagnation} ; spore:mutationRate {rate} ;
        spore:outlierThreshold 3.5 ; spore:accusationQuorum 3 ]"""
BLUEPRINT = """@prefix spore: <https://w3id.org/spore/ns#> .
<#blueprint> a spore:Blueprint ; spore:nodeName "{name}" ; spore:seeksHashtag "{hashtag}" ;
    spore:trains [ a spore:ModelConfiguration ; spore:architecture spore:{architecture} ;
        spore:embeddingDimension {dim} ; spore:layers 2 ; spore:learningRate {lr} ; spore:localEpochs 1 ;
        spore:batchSize 512 ; spore:aggregationRule spore:WeightedMean ] ;
    spore:usesModule [ a spore:CodeModule ; spore:moduleId "spore.train.lightgcn" ;
        spore:sha256 "3f0d6a1fa0bd5d0ed5b5a6d0a3b4f8f2d6f6c7e2a1b9c8d7e6f5a4b3c2d1e0f9" ;
        spore:implements spore:TrainingBehaviour ]{policy} .
"""
ROUNDS = 8


@dataclass(frozen=True)
class Plan:
    name: str
    hashtag: str
    dim: int
    lr: str
    founds: bool
    patience: int = 1
    stagnation: int = 20
    rate: str = "0.2"
    policy: bool = True
    architecture: str = "LightGCN"


HOST_A = (
    Plan("good", "#good", 8, "0.05", True),
    Plan("liar", "#liar", 12, "0.0001", True, stagnation=2, rate="1.0"),
)
HOST_B = (
    Plan("bad", "#bad", 8, "0.0001", True),
    Plan("mover", "#bad", 8, "0.0001", False),
    Plan("mid", "#mid", 12, "0.05", True),
    Plan("doubter", "#mid", 12, "0.0001", False, patience=2),
    # Stagnates at once (its rate is tiny), so selection adopts a peer's blueprint.
    Plan("adopter", "#bad", 8, "0.0001", False, patience=50, stagnation=2, rate="0.2"),
)


@dataclasses.dataclass(frozen=True, eq=False)
class InflatedLearner(LightGCNLearner):
    """A LightGCN learner whose owner claims Recall@20 0.99 for every model it evaluates."""

    def evaluate(self, weights: Any) -> dict[str, float]:
        return {**super().evaluate(weights), "recall@20": 0.99}

    def evaluate_with_statistics(self, weights: Any, statistics: Any) -> dict[str, float]:
        return {**super().evaluate_with_statistics(weights, statistics), "recall@20": 0.99}


def write_blueprint(directory: Path, plan: Plan) -> Path:
    policy = POLICY.format(patience=plan.patience, stagnation=plan.stagnation, rate=plan.rate)
    path = directory / f"{plan.name}.ttl"
    path.write_text(
        BLUEPRINT.format(
            name=plan.name,
            hashtag=plan.hashtag,
            dim=plan.dim,
            lr=plan.lr,
            policy=(" ;" + policy) if plan.policy else "",
            architecture=plan.architecture,
        )
    )
    return path


def served_node(
    plan: Plan, base: str, store: EmbeddedStore, catalogue: CatalogueQuads, tmp: Path
) -> FungusNode:
    blueprint = read_blueprint(write_blueprint(tmp, plan))
    roles = NodeRoles(founds=plan.hashtag if plan.founds else None, shard=(0, 1))
    node = build_node(
        blueprint,
        f"{base}/nodes/{plan.name}",
        store=store,
        catalogue=catalogue,
        roles=roles,
        timing=RoundTiming(round_seconds=0.3, max_rounds=ROUNDS + 4),
    )
    if plan.name == "liar":
        learner = node.ctx.learner
        fields = {f.name: getattr(learner, f.name) for f in dataclasses.fields(learner) if f.init}
        node.ctx = dataclasses.replace(node.ctx, learner=InflatedLearner(**fields))
    return node


@dataclass
class World:
    hosts: dict[str, NodeHost]
    running: list[RunningHost]
    nodes: dict[str, FungusNode]
    events: list[dict[str, Any]]

    def node(self, name: str) -> FungusNode:
        return self.nodes[name]

    def store(self, name: str) -> EmbeddedStore:
        graphs = self.nodes[name].graphs
        assert graphs is not None
        return graphs.store  # type: ignore[return-value]

    def decisions(self, name: str) -> list[DecisionView]:
        actor = self.nodes[name].actor
        return read_decisions(self.store(name), node=actor, dataset=rule_dataset(actor))

    def group(self, name: str) -> str | None:
        membership = self.nodes[name].state.membership
        return membership.group.hashtag if membership is not None else None


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("served-reasoning")
    catalogue = CatalogueQuads(synthesize(SynthParams(listeners=40, artists=120, seed=3)))
    events: list[dict[str, Any]] = []
    options = HostOptions(autostart=False, poll_seconds=1.0)
    running, hosts = [], {}
    for label, plans in (("a", HOST_A), ("b", HOST_B)):
        store = EmbeddedStore()
        host, node_host = start_fungus_host(
            tmp / label,
            lambda base, plans=plans, store=store: [
                served_node(p, base, store, catalogue, tmp) for p in plans
            ],
            options=options,
            on_round=events.append,
            store=store,
        )
        running.append(host)
        hosts[label] = node_host
    try:
        bases = [host.runtime.config.base_url for host in running]
        for index, (host, node_host) in enumerate(zip(running, hosts.values(), strict=True)):
            node_host.options = dataclasses.replace(options, peers=(bases[1 - index],))
            host.call(node_host.poll_peers())
        epoch = time.monotonic() + 0.5
        for host, node_host in zip(running, hosts.values(), strict=True):
            host.call(node_host.begin(epoch))
        nodes = {node.name: node for node_host in hosts.values() for node in node_host.nodes.values()}
        yield World(hosts, running, nodes, events)
    finally:
        for host in reversed(running):
            host.stop()


# -- pure parts -------------------------------------------------------------------------------------


def test_a_claim_and_a_blueprint_are_read_from_sparql_json() -> None:
    group = GroupInfo(
        iri="http://a.test/nodes/o/groups/x",
        hashtag="#x",
        owner="http://a.test/nodes/o",
        shared_shapes=(),
        aggregation_rule=str(SPORE.WeightedMean),
    )
    row = {
        "value": {"type": "literal", "value": "0.25"},
        "snapshot": {"type": "uri", "value": "ni:///sha-256;abc"},
        "sha256": {"type": "literal", "value": "AB" * 32},
        "download": {"type": "uri", "value": "http://a.test/nodes/o/artifacts/" + "ab" * 32},
    }
    claim = claim_from_results({"results": {"bindings": [row]}}, group)
    assert claim is not None and claim.value == 0.25 and claim.sha256 == "ab" * 32 and claim.blueprint is None
    assert claim_from_results({"results": {"bindings": []}}, group) is None
    assert claim_from_results({"results": {"bindings": [{**row, "value": {"value": "x"}}]}}, group) is None
    rows = [
        {
            "p": {"type": "uri", "value": str(SPORE.policy)},
            "o": {"type": "bnode", "value": "b0"},
            "q": {"type": "uri", "value": str(SPORE.switchMargin)},
            "v": {"type": "literal", "value": "0.05", "datatype": "http://www.w3.org/2001/XMLSchema#decimal"},
        },
        {
            "p": {"type": "uri", "value": str(SPORE.policy)},
            "o": {"type": "bnode", "value": "b0"},
            "q": {"type": "uri", "value": str(RDF.type)},
            "v": {"type": "uri", "value": str(SPORE.Policy)},
        },
    ]
    graph = graph_from_rows({"results": {"bindings": rows}}, "http://a.test/b")
    policy = graph.value(URIRef("http://a.test/b"), SPORE.policy)
    assert policy is not None and (policy, RDF.type, SPORE.Policy) in graph and len(graph) == 3


def test_nodes_that_cannot_reason_are_skipped_and_mf_never_mutates_layers(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    store = EmbeddedStore()
    catalogue = CatalogueQuads(synthesize(SynthParams(listeners=12, artists=40, seed=1)))
    base = "http://127.0.0.1:9"
    policyless = served_node(
        Plan("plain", "#plain", 8, "0.01", True, policy=False), base, store, catalogue, tmp_path
    )
    assert start_publishing(policyless, base) is None  # a blueprint without a policy is not published
    assert why_not_reasoning(policyless) == "its blueprint has no spore:policy with a spore:switchMargin"
    assert "no graphs" in (why_not_reasoning(dataclasses.replace(policyless, graphs=None)) or "")
    linear = dataclasses.replace(policyless, ctx=dataclasses.replace(policyless.ctx, learner=object()))
    assert "is not LightGCN-like" in (why_not_reasoning(linear) or "")
    fine = served_node(Plan("fine", "#fine", 8, "0.01", True), base, store, catalogue, tmp_path)
    assert start_publishing(fine, base) is not None and why_not_reasoning(fine) is None
    # Matrix factorisation reasons too, but never mutates its layers (that would make it LightGCN).
    factorised = Plan("mf", "#mf", 8, "0.01", True, architecture="MatrixFactorization")
    mf = served_node(factorised, base, store, catalogue, tmp_path)
    assert start_publishing(mf, base) is not None
    thinking = ServedThinking(SimpleNamespace(options=HostOptions()))  # type: ignore[arg-type]
    thinking.add(fine)
    thinking.add(mf)
    switched_off = ServedThinking(SimpleNamespace(options=HostOptions(reasoning=False)))  # type: ignore[arg-type]
    switched_off.add(fine)
    assert switched_off.reasoners == {}
    names = {
        actor: [op.iri.rsplit("#", 1)[-1] for op in r.operators] for actor, r in thinking.reasoners.items()
    }
    assert "LayersMutation" in names[fine.actor] and "LayersMutation" not in names[mf.actor]


# -- the live fungiverse ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_node_switches_to_a_better_group_on_its_own_cross_check_over_http(world: World) -> None:
    assert wait_for(lambda: world.group("mover") == "#good", 60), (
        world.group("mover"),
        world.decisions("mover"),
    )
    left = [d for d in world.decisions("mover") if d.explanation.startswith("Left #bad for #good")]
    assert left, [d.explanation for d in world.decisions("mover")]
    decision = left[0]
    mover = world.node("mover").actor
    # The evidence is the node's own measurement of #good's snapshot, not only #good's claim.
    own_checks = [e for e in decision.evidence if e.by == mover and not e.claimed and e.iri.endswith("-good")]
    assert own_checks and all(e.value is not None for e in own_checks)
    assert any(e.claimed for e in decision.evidence)
    assert world.hosts["b"].transport.stats.get("snapshots-fetched", 0) >= 1
    # The owner's blueprint came along from its SPARQL endpoint, so that selection could adopt it.
    peers = to_rdflib(world.store("mover"), graph_iri(NamedNode(mover), GraphKind.PEERS))
    theirs = peers.value(URIRef(world.node("good").actor), SPORE.blueprint)
    assert theirs is not None and str(theirs).startswith(world.node("good").actor)
    configuration = peers.value(theirs, SPORE.trains)
    assert configuration is not None and float(peers.value(configuration, SPORE.learningRate)) == 0.05
    assert peers.value(peers.value(theirs, SPORE.policy), SPORE.switchMargin) is not None
    # Leave reached #bad's owner and Join #good's owner on the other host, which admitted the node.
    good, bad = world.node("good"), world.node("bad")
    assert wait_for(lambda: mover in good.state.membership.members, 20)  # type: ignore[union-attr]
    assert good.state.counters.get("received:Join", 0) >= 1
    assert bad.state.counters.get("received:Leave", 0) >= 1
    assert mover not in next(iter(bad.state.owned.values())).members
    assert any(e.get("event") == "decision" and e["node"] == "mover" for e in world.events)


@pytest.mark.slow
def test_an_inflated_claim_that_the_cross_check_does_not_reproduce_moves_nobody(world: World) -> None:
    doubter = world.node("doubter")
    assert wait_for(lambda: doubter.state.rounds_done >= 5, 60)
    assert world.group("doubter") == "#mid"
    decisions = world.decisions("doubter")
    assert not any(d.explanation.startswith("Left") for d in decisions)
    stayed = [d for d in decisions if d.explanation.startswith("Stayed in #mid: #liar claims 0.990")]
    assert stayed, [d.explanation for d in decisions]
    measured = [e for e in stayed[-1].evidence if e.by == doubter.actor and e.iri.endswith("-liar")]
    assert measured and all((e.value or 0.0) < 0.9 for e in measured)


@pytest.mark.slow
def test_decisions_are_in_the_decisions_graph_and_dereference_as_turtle(world: World) -> None:
    assert wait_for(lambda: bool(world.decisions("mover")) and bool(world.decisions("doubter")), 60)
    for name in ("mover", "doubter", "liar"):
        actor = world.node(name).actor
        graph = to_rdflib(world.store(name), graph_iri(NamedNode(actor), GraphKind.DECISIONS))
        if len(graph):
            report = default_validator().validate(graph)
            assert report.conforms, report.lines()
    decision = world.decisions("mover")[0]
    response = httpx.get(decision.iri, headers={"accept": "text/turtle"}, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/turtle")
    turtle = Graph().parse(data=response.text, format="turtle")
    subject = URIRef(decision.iri)
    assert (subject, SPORE.explanation, Literal(decision.explanation)) in turtle
    assert (subject, SPORE.decidedBy, URIRef(world.node("mover").actor)) in turtle
    assert any(turtle.objects(subject, PROV.wasDerivedFrom))
    # The fungiverse's "decisions of the last round" query finds the nodes' decisions at the host.
    base = world.running[1].runtime.config.base_url
    answer = httpx.get(
        f"{base}/sparql",
        params={"query": queries.load("last-round-decisions")},
        headers={"accept": "application/sparql-results+json"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    deciders = {row["node"]["value"] for row in answer.json()["results"]["bindings"]}
    assert {world.node("mover").actor, world.node("doubter").actor} <= deciders
    # The node's web page lists it with its explanation.
    page = httpx.get(f"{base}/browse/nodes/mover", headers={"accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and decision.explanation in html.unescape(page.text)
    # `spore explain` reads the same decision through the node's public SPARQL endpoint.
    explained = CliRunner().invoke(explain, [world.node("mover").actor, decision.iri.rsplit("/", 1)[-1]])
    assert explained.exit_code == 0, explained.output
    assert decision.explanation in explained.output and "options weighed" in explained.output


@pytest.mark.slow
def test_a_mutation_rebuilds_the_learner_and_publishes_the_revision(world: World) -> None:
    liar = world.node("liar")
    store = world.store("liar")
    actor = liar.actor

    def mutations() -> list[DecisionView]:
        return [d for d in world.decisions("liar") if d.kind_name == "MutationDecision"]

    assert wait_for(lambda: bool(mutations()), 60), [d.explanation for d in world.decisions("liar")]
    first = mutations()[0]
    assert first.round is not None
    assert wait_for(lambda: liar.state.rounds_done > first.round + 1, 30)  # type: ignore[operator]
    graph = to_rdflib(store, graph_iri(NamedNode(actor), GraphKind.BLUEPRINT))
    revision = current_blueprint(store, actor)
    assert revision is not None and str(revision).startswith(f"{actor}/blueprints/")
    # Lineage: the first revision descends from the served blueprint; each later one from the last.
    first_revision = URIRef(f"{actor}/blueprints/{first.round}")
    assert (first_revision, PROV.wasRevisionOf, URIRef(f"{actor}/blueprint")) in graph
    settings = learner_settings(graph, first_revision)
    assert settings["learning_rate"] == pytest.approx(0.0002)  # rate 1.0: every operator fired
    # The learner is the same kind of learner, rebuilt with the current revision's settings.
    learner = liar.ctx.learner
    current = learner_settings(graph, revision)
    assert isinstance(learner, InflatedLearner)
    assert (learner.learning_rate, learner.local_epochs, learner.num_layers) == (
        current["learning_rate"],
        current["local_epochs"],
        current["num_layers"],
    )
    # Every model card states the learning rate its round trained with: the latest revision
    # decided before that round (the served blueprint's 0.0001 before any).
    rates = {0: 0.0001}
    for decision in mutations():
        assert decision.round is not None
        rates[decision.round] = learner_settings(graph, URIRef(f"{actor}/blueprints/{decision.round}"))[
            "learning_rate"
        ]
    cards = store.query(
        "SELECT ?round ?rate WHERE { ?card a <https://w3id.org/spore/ns#ModelSnapshot> ; "
        "<https://w3id.org/spore/ns#roundNumber> ?round ; <https://w3id.org/spore/ns#configuration> ?c . "
        "?c <https://w3id.org/spore/ns#learningRate> ?rate }",
        default_graph=graph_iri(NamedNode(actor), GraphKind.MODELS),
    )
    published = {int(row["round"].value): float(row["rate"].value) for row in cards}  # type: ignore[index]
    assert any(number > first.round for number in published)
    for number, rate in published.items():
        expected = rates[max(r for r in rates if r < number)]
        assert rate == pytest.approx(expected), (number, published, rates)
    response = httpx.get(str(first_revision), headers={"accept": "text/turtle"}, timeout=10)
    assert response.status_code == 200
    served = Graph().parse(data=response.text, format="turtle")
    assert (first_revision, PROV.wasRevisionOf, URIRef(f"{actor}/blueprint")) in served


@pytest.mark.slow
def test_a_stagnating_node_adopts_a_verified_better_peers_blueprint_over_http(world: World) -> None:
    adopter = world.node("adopter")
    store = world.store("adopter")
    actor = adopter.actor

    def adoptions() -> list[DecisionView]:
        return [d for d in world.decisions("adopter") if "Adopted a peer's blueprint" in d.explanation]

    assert wait_for(lambda: bool(adoptions()), 90), [d.explanation for d in world.decisions("adopter")]
    decision = adoptions()[0]
    assert decision.kind_name == "MutationDecision" and decision.round is not None
    # The evidence: its own measurement of the peer group's snapshot on its own listeners.
    own_checks = [e for e in decision.evidence if e.by == actor and not e.claimed and e.value is not None]
    assert own_checks, decision.evidence
    revision = URIRef(f"{actor}/blueprints/{decision.round}")
    graph = to_rdflib(store, graph_iri(NamedNode(actor), GraphKind.BLUEPRINT))
    parent = graph.value(revision, PROV.wasRevisionOf)
    peers = {world.node(name).actor for name in ("good", "mid")}
    assert parent is not None and any(str(parent).startswith(p) for p in peers), parent
    assert str(graph.value(revision, SPORE.nodeName)) == "adopter"  # its own name stays
    settings = learner_settings(graph, revision)
    assert settings["learning_rate"] != pytest.approx(0.0001)  # the peer's rate, not its own file's
    # The rounds after it train with the adopted revision's settings (or a later revision's).
    assert wait_for(lambda: adopter.state.rounds_done > decision.round + 1, 30)  # type: ignore[operator]
    current = current_blueprint(store, actor)
    assert current is not None and str(current).startswith(f"{actor}/blueprints/")
    latest = learner_settings(to_rdflib(store, graph_iri(NamedNode(actor), GraphKind.BLUEPRINT)), current)
    learner = adopter.ctx.learner
    assert (learner.learning_rate, learner.local_epochs, learner.num_layers) == (
        latest["learning_rate"],
        latest["local_epochs"],
        latest["num_layers"],
    )


def test_one_read_of_a_groups_claim_serves_every_node_of_a_host(world: World) -> None:
    node_host, host = world.hosts["b"], world.running[1]
    assert wait_for(lambda: world.node("good").state.rounds_done >= 2, 60)
    good = next(info for info in node_host.thinking.groups().values() if info.hashtag == "#good")
    reads: list[str] = []

    async def read(group: GroupInfo) -> Claim | None:  # the host's own SPARQL read, counted
        reads.append(group.iri)
        return await node_host.thinking._read_claim(group)

    async def four_nodes_ask(reader: ClaimReader) -> list[Claim | None]:
        return list(await asyncio.gather(*(reader.read(good) for _ in range(4))))

    shared = ClaimReader(read, fresh_for=60.0)
    first = host.call(four_nodes_ask(shared))
    again = host.call(four_nodes_ask(shared))
    assert reads == [good.iri]  # four nodes, twice: one GET
    assert first[0] is not None and first[0].group == good.iri and first[0].value > 0
    assert all(claim is first[0] for claim in first + again)
    stale = ClaimReader(read, fresh_for=0.0)  # a claim older than fresh_for is read again
    host.call(stale.read(good))
    host.call(stale.read(good))
    assert reads == [good.iri] * 3


def test_spore_status_shows_the_last_rounds_decisions_as_the_demo_prints_them(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert wait_for(lambda: bool(world.decisions("doubter")), 60)
    urls = [host.runtime.config.base_url for host in world.running]
    decisions = watch.fetch_decisions(urls)
    doubter = world.node("doubter").actor
    mine = [d for d in decisions if d.node == doubter]
    assert mine and all(d.explanation and d.kind.endswith("Decision") for d in mine)
    latest = max(d.round or 0 for d in world.decisions("doubter"))
    assert {d.round for d in mine} == {latest}  # the last round's only
    line = watch.decision_text(mine[0])
    assert line.startswith(f"doubter decided in round {latest} (") and mine[0].explanation in line
    # The demo's terminal: each decision once, however often it polls. The fungiverse goes on while
    # the test runs, so the second poll may see a later round's decisions: compare IRIs with lines.
    told: set[str] = set()
    tell_decisions(urls, told)
    tell_decisions(urls, told)
    printed = capsys.readouterr().out.splitlines()
    assert printed and len(printed) == len(set(printed)) == len(told)
    assert all(re.fullmatch(r"  \w+ decided in round \d+ \(\w+Decision\): .+", line) for line in printed)
    result = CliRunner().invoke(status, urls)
    assert result.exit_code == 0, result.output
    assert "decisions of each node's last reasoning round:" in result.output
    assert "doubter decided in round" in result.output


def test_a_restarted_node_follows_its_blueprint_revision_not_its_file(world: World, tmp_path: Path) -> None:
    liar = world.node("liar")
    store = world.store("liar")
    original = URIRef(f"{liar.actor}/blueprint")
    assert wait_for(lambda: current_blueprint(store, liar.actor) not in (None, original), 60)
    # The running liar goes on reasoning, so the restart takes a copy of its blueprint graph. Its own
    # mutation may have changed only its policy: on the copy a further revision changes the learning
    # rate, so that a node following the revision is told apart from one following its file.
    target = graph_iri(NamedNode(liar.actor), GraphKind.BLUEPRINT)
    live = to_rdflib(store, target)
    copy = EmbeddedStore()
    copy.load(live.serialize(format="nt"), format=RdfFormat.N_TRIPLES, graph=target)
    mutated = current_blueprint(copy, liar.actor)
    assert mutated is not None and mutated != original
    rate = [op for op in load_operators() if op.name == "learningRate"]
    mutants = (
        mutate(
            live,
            mutated,
            URIRef(f"{liar.actor}/blueprints/restart"),
            rng=random.Random(seed),
            rate=1.0,
            operators=rate,
        )
        for seed in range(20)
    )
    mutant = next(
        m for m in mutants if abs(learner_settings(m.graph, m.iri)["learning_rate"] - 0.0001) > 1e-9
    )
    write_mutant(copy, liar.actor, mutant.graph, mutant.iri)
    # A restart: the same blueprint file and store, the same actor, built afresh as `spore serve` does,
    # then what a host does first with a node: publish its self, then let it reason.
    base = liar.actor.rsplit("/nodes/", 1)[0]
    catalogue = CatalogueQuads(synthesize(SynthParams(listeners=40, artists=120, seed=3)))
    again = served_node(HOST_A[1], base, copy, catalogue, tmp_path)
    assert again.ctx.learner.learning_rate == pytest.approx(0.0001)  # the file's
    assert start_publishing(again, "http://127.0.0.1:9/actor") is not None
    assert current_blueprint(copy, liar.actor) == mutant.iri  # publishing did not put the file's back
    assert resume_revision(again) == mutant.iri
    settings = learner_settings(to_rdflib(copy, target), mutant.iri)
    learner = again.ctx.learner
    assert (learner.learning_rate, learner.local_epochs, learner.num_layers) == (
        settings["learning_rate"],
        settings["local_epochs"],
        settings["num_layers"],
    )
    assert learner.learning_rate != pytest.approx(0.0001)  # not the file's
    assert again.ctx.training_step == pytest.approx(learner.learning_rate * learner.local_epochs)
    assert again.blueprint is not None and again.blueprint.local_epochs == settings["local_epochs"]
