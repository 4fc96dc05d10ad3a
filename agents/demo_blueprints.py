"""The demo's blueprints: derived from the example blueprints, dealt into groups across hosts, and
written only once they conform to the shapes. Split from ``agents/demo.py``, which plans and runs
the hosts; :class:`DemoError` lives here because both raise it and this module needs nothing of that
one."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from rdflib import Graph, URIRef
from rdflib.term import Node

from agents.blueprint_writer import AGGREGATION_RULES, ARCHITECTURES, BlueprintChoices, new_blueprint
from ontology import SPORE

__all__ = [
    "EXAMPLES",
    "GENRES",
    "DemoError",
    "derive_blueprints",
    "example_choices",
    "group_of",
    "write_blueprints",
]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "blueprints"
# Hashtags the demo's groups gather around, in the order groups are added as nodes grow.
GENRES = ("#jazz", "#indie", "#rock", "#electronic", "#ambient", "#hiphop", "#folk", "#metal")
_DIMENSIONS = (32, 48, 64)
_LEARNING_RATES = ("0.001", "0.002", "0.005")


class DemoError(Exception):
    """Something the person running the demo can fix; the command turns it into one line."""


# -- blueprints --------------------------------------------------------------------------------------


def example_choices(directory: Path = EXAMPLES) -> list[BlueprintChoices]:
    """The example blueprints' architecture, aggregation rule and model sizes, as writer choices.

    The demo derives its nodes from these rather than copying the files: the examples pin
    illustrative module hashes, and a node runs only code whose installed source matches its pin, so
    each derived blueprint is written fresh (with real hashes) by :func:`new_blueprint`.
    """
    found = []
    for path in sorted(directory.glob("*.ttl")):
        graph = Graph().parse(path, format="turtle")
        for blueprint in graph.subjects(predicate=SPORE.nodeName):
            choices = _choices_of(graph, blueprint)
            if choices is not None:
                found.append(choices)
    if not found:
        raise DemoError(f"no example blueprints in {directory}")
    return found


def _choices_of(graph: Graph, blueprint: Node) -> BlueprintChoices | None:
    architectures = {iri: key for key, iri in ARCHITECTURES.items()}
    rules = {iri: key for key, iri in AGGREGATION_RULES.items()}
    config = graph.value(blueprint, SPORE.trains)
    architecture = architectures.get(graph.value(config, SPORE.architecture))  # type: ignore[arg-type]
    if config is None or architecture is None:
        return None

    def number(prop: URIRef, default: int) -> int:
        value = graph.value(config, prop)
        return default if value is None else int(value.toPython())

    rate = graph.value(config, SPORE.learningRate)
    return BlueprintChoices(
        name=str(graph.value(blueprint, SPORE.nodeName)),
        hashtags=tuple(sorted(str(tag) for tag in graph.objects(blueprint, SPORE.seeksHashtag))),
        architecture=architecture,
        aggregation=rules.get(graph.value(config, SPORE.aggregationRule), "trimmed-mean"),  # type: ignore[arg-type]
        embedding_dimension=number(SPORE.embeddingDimension, 64),
        layers=number(SPORE.layers, 2),
        learning_rate=str(rate) if rate is not None else "0.001",
        local_epochs=number(SPORE.localEpochs, 1),
    )


def derive_blueprints(
    examples: Sequence[BlueprintChoices],
    count: int,
    *,
    hosts: int = 1,
    group_size: int | None = None,
    seed: int = 7,
) -> list[tuple[str, BlueprintChoices]]:
    """``count`` distinct nodes, one example per group, with varied model sizes and learning rates.

    Nodes are dealt round-robin over hosts (:func:`plan_demo`). Without ``group_size`` (a demo),
    node ``i`` seeks genre ``(i // hosts) % groups``: about two nodes per group, every group on more
    than one host. With ``group_size`` (a large fungiverse), see :func:`group_of`.
    """
    rng = random.Random(seed)
    groups = max(1, min(len(GENRES), count // 2))
    if group_size is not None and group_size < 1:
        raise DemoError(f"group size must be at least 1, not {group_size}")
    derived = []
    for index in range(count):
        group = index // hosts % groups if group_size is None else group_of(index, hosts, group_size)
        # One example per group: members of a group share its architecture, since a knowledge-aware
        # node also shares tag and entity tables, which an owner of another architecture refuses.
        example = examples[group % len(examples)]
        name = f"{example.name}_{index:02d}" if count <= 100 else f"{example.name}_{index:03d}"
        genre = GENRES[group % len(GENRES)] + (str(group // len(GENRES)) if group >= len(GENRES) else "")
        # Krum needs 2f + 3 updates (5 for f = 1); a demo group has two or three members, so a node
        # derived from a Krum example aggregates with the coordinate median, also Byzantine-robust.
        aggregation = "median" if example.aggregation == "krum" else example.aggregation
        derived.append(
            (
                name,
                BlueprintChoices(
                    name=name,
                    hashtags=(genre,),
                    architecture=example.architecture,
                    aggregation=aggregation,
                    # Per group, not per node: a group merges parameters of one shape, and an owner
                    # rejects a member whose shared parameters have another.
                    embedding_dimension=_DIMENSIONS[group % len(_DIMENSIONS)],
                    layers=example.layers,
                    learning_rate=rng.choice(_LEARNING_RATES),
                    local_epochs=max(1, min(2, example.local_epochs)),
                    title=f"{example.name.replace('_', ' ').title()} {index}",
                ),
            )
        )
    return derived


def group_of(index: int, hosts: int, group_size: int) -> int:
    """The group of node ``index`` in groups of ``group_size``, each spanning two neighbouring hosts.

    A group's founder is its member with the smallest actor IRI, so the member on the lowest port;
    groups spanning *all* hosts would all be founded on the first host, which then answers every
    join and merges every round. Here group ``(batch, pair)`` takes half its members from host
    ``pair`` and half from host ``pair + 1``, so founders spread over the hosts.
    """
    host, slot = index % hosts, index // hosts
    if hosts == 1:
        return slot // group_size
    forward = slot % 2 == 0  # with the next host, or (odd slots) with the previous one
    pair = host if forward else (host - 1) % hosts
    batch = (slot // 2) // max(1, group_size // 2)
    return batch * hosts + pair


def write_blueprints(state_dir: Path, derived: Sequence[tuple[str, BlueprintChoices]]) -> list[Path]:
    """Write each derived blueprint, validated against the shapes first (an invalid one is a bug)."""
    target = state_dir / "blueprints"
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, choices in derived:
        graph, report = new_blueprint(choices)
        if not report.conforms:
            raise DemoError(f"derived blueprint {name} does not conform: {'; '.join(report.lines())}")
        path = target / f"{name}.ttl"
        path.write_text(graph.serialize(format="turtle"), encoding="utf-8")
        written.append(path)
    return written
