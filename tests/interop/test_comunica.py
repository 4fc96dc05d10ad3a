"""Comunica (npm @comunica/query-sparql 5.4.1, under Node 22), a federated SPARQL engine nobody on
SPORE wrote, runs one query across three SPORE hosts' endpoints at once.

The join needs two hosts: a node on host B is a member of a group on host A, and only host A's
nodes say which snapshot is that group's model. Installed by ``.ci/install-comunica.sh``.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from interop_peers import INTEROP_DIR, require_installed

from tests.linked_data_world import World

pytestmark = [pytest.mark.interop, pytest.mark.slow]

COMUNICA_DIR = INTEROP_DIR / "comunica"
NODE = COMUNICA_DIR / "node_modules" / ".bin" / "node"
QUERY = """PREFIX spore: <https://w3id.org/spore/ns#>
SELECT ?member ?group ?snapshot WHERE { ?member spore:memberOf ?group . ?group spore:groupModel ?snapshot }"""


def comunica(query: str, endpoints: list[str]) -> list[dict[str, str]]:
    require_installed(NODE, ".ci/install-comunica.sh")
    done = subprocess.run(
        [str(NODE), str(COMUNICA_DIR / "query.mjs"), query, *endpoints],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [{name: term["value"] for name, term in row.items()} for row in json.loads(done.stdout)]


def test_comunica_joins_across_three_hosts(ld_world: World) -> None:
    endpoints = [host.runtime.config.base_url + "/sparql" for host in ld_world.hosts]
    rows = comunica(QUERY, endpoints)
    members = {row["member"] for row in rows}
    assert members == ld_world.nodes  # every node, each joined with its group's model
    cy = next(n for n in ld_world.nodes if n.endswith("/nodes/cy"))
    host_a = ld_world.hosts[0].runtime.config.base_url
    # cy's membership is on host B, its group's snapshots are stated on host A: a cross-host join.
    assert any(r["member"] == cy and r["snapshot"].startswith(host_a) for r in rows)
    assert {r["snapshot"] for r in rows} <= ld_world.snapshots
