"""``spore spawn ... --host URL``: ask a running host to start a child (its ``POST /admin/spawn``).

A NODE is spawned by the host itself (it holds the parent's blueprint, children and caps); a
BLUEPRINT file's mutated child is planned here, as :func:`agents.spawn.spawn_from_file` plans one,
named for the host (``{host}/nodes/{name}/blueprint``) with a name free there, and sent as Turtle;
the host checks the shapes and its cap again, since a client's word is not proof.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import httpx
from rdflib import Graph, URIRef

from agents.spawn import SpawnError, child_name, plan_spawn, shape_keeping_operators
from ontology import SPORE

__all__ = ["RemoteSpawnRefused", "spawn_on_host", "spawned_line"]

TIMEOUT_SECONDS = 120.0  # the host loads the child's listeners and builds its model before answering


class RemoteSpawnRefused(ValueError):
    """The host refused the spawn or could not be asked; one line with its reason."""


def _blueprint(path: Path) -> tuple[Graph, URIRef]:
    graph = Graph()
    try:
        graph.parse(path, format="turtle", publicID=path.resolve().as_uri())
    except Exception as error:  # rdflib raises many types for bad Turtle; all mean "unreadable"
        raise SpawnError(f"{path}: not readable Turtle: {' '.join(str(error).split())}") from error
    found = sorted(s for s in graph.subjects(SPORE.nodeName, None) if isinstance(s, URIRef))
    if len(found) != 1:
        raise SpawnError(f"{path}: expected one blueprint with spore:nodeName, found {len(found)}")
    return graph, found[0]


def _host_names(client: httpx.Client, host: str) -> list[str]:
    """The node names the host serves (its ``/status``), so that the child's name is free there."""
    try:
        status = client.get(f"{host}/status", headers={"accept": "application/json"}).json()
    except (httpx.HTTPError, ValueError) as error:
        raise RemoteSpawnRefused(f"cannot read {host}/status: {error}") from error
    nodes = status.get("nodes", []) if isinstance(status, dict) else []
    return [
        entry["name"] for entry in nodes if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    ]


def child_turtle(path: Path, host: str, names: list[str], *, name: str | None, seed: int) -> str:
    """The Turtle of BLUEPRINT's mutated child, named for ``host``; raises when the spawn is refused."""
    graph, parent = _blueprint(path)
    chosen = name or child_name(str(graph.value(parent, SPORE.nodeName) or "node"), names)
    outcome = plan_spawn(
        graph,
        parent,
        child=URIRef(f"{host}/nodes/{chosen}/blueprint"),
        name=chosen,
        children=0,  # the file's children elsewhere are not this host's business; its cap is checked there
        host_nodes=0,
        rng=random.Random(f"{seed}:{chosen}"),
        operators=shape_keeping_operators(),
    )
    if not outcome.spawned or outcome.graph is None:
        raise RemoteSpawnRefused(f"spawn refused: {outcome.reason}")
    return outcome.graph.serialize(format="turtle")


def spawned_line(answer: dict[str, Any]) -> str:
    """One line for the operator from the host's 201 answer."""
    return f"spawned {answer.get('node')} at {answer.get('actor')}: {answer.get('reason')}"


def spawn_on_host(
    source: str, host: str, *, token: str | None, name: str | None = None, seed: int = 0, as_is: bool = False
) -> str:
    """Start SOURCE's child (or, ``as_is``, the blueprint SOURCE) on the running ``host``; one line."""
    host = host.rstrip("/")
    headers = {"authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(timeout=TIMEOUT_SECONDS) as client:
        if source.startswith(("http://", "https://")):
            if as_is:
                raise SpawnError("--as-is starts a blueprint file; a NODE always gets a mutated child")
            body: bytes = json.dumps({"parent": source, "name": name, "seed": seed}).encode()
            headers["content-type"] = "application/json"
        else:
            path = Path(source)
            if not path.is_file():
                raise SpawnError(f"{source}: no such blueprint file (or give a node IRI)")
            if as_is:
                body = path.read_bytes()
            else:
                body = child_turtle(path, host, _host_names(client, host), name=name, seed=seed).encode()
            headers["content-type"] = "text/turtle"
        try:
            response = client.post(f"{host}/admin/spawn", content=body, headers=headers)
        except httpx.HTTPError as error:
            raise RemoteSpawnRefused(f"cannot reach {host}: {error}") from error
    try:
        answer = response.json()
    except ValueError:
        answer = {"error": response.text.strip()[:200]}
    if response.status_code != 201:
        reason = answer.get("error") if isinstance(answer, dict) else None
        raise RemoteSpawnRefused(
            f"{host} answered {response.status_code}: {reason or response.reason_phrase}"
        )
    return spawned_line(answer)
