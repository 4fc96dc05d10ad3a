"""``spore serve``: configuration sources, one-line errors, and two real hosts co-training and resuming."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agents.blueprint_writer import BlueprintChoices, new_blueprint
from agents.protocol.groups import founder_of

ROOT = Path(__file__).resolve().parent.parent


def spore(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def write_blueprint(directory: Path, name: str, hashtag: str = "#jazz") -> Path:
    graph, report = new_blueprint(
        BlueprintChoices(
            name=name,
            hashtags=(hashtag,),
            embedding_dimension=16,
            layers=1,
            learning_rate="0.01",
            aggregation="weighted-mean",
        )
    )
    assert report.conforms
    path = directory / f"{name}.ttl"
    path.write_text(graph.serialize(format="turtle"))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def events(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_a_broken_blueprint_or_missing_music_is_one_line_and_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ttl"
    broken.write_text("not turtle at all")
    result = spore("serve", str(broken), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert result.stderr.startswith("spore: error:") and str(broken) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    good = write_blueprint(tmp_path, "ana")
    no_music = spore("serve", str(good), "--data-dir", str(tmp_path / "d"), "--music", str(tmp_path))
    assert no_music.returncode == 2 and no_music.stderr.startswith("spore: error: music data: missing files")


def test_options_come_from_the_environment_and_from_a_toml_file(tmp_path: Path) -> None:
    broken = tmp_path / "from_toml.ttl"
    broken.write_text("not turtle")
    config = tmp_path / "serve.toml"
    config.write_text(f'blueprints = ["{broken}"]\ndata_dir = "{tmp_path / "d"}"\nport = 18999\n')
    from_file = spore("serve", "--config", str(config))
    assert from_file.returncode == 2 and "from_toml.ttl" in from_file.stderr  # blueprints read from TOML
    from_env = spore("serve", "--config", str(config), env={"SPORE_PORT": "0"})
    assert from_env.returncode == 2 and "--port" in from_env.stderr  # the environment overrides the file
    no_blueprint = spore("serve", "--data-dir", str(tmp_path / "d"))
    assert no_blueprint.returncode == 2 and "BLUEPRINT" in no_blueprint.stderr


@pytest.mark.slow
def test_two_hosts_form_a_group_across_hosts_train_and_resume(tmp_path: Path) -> None:
    blueprints = [write_blueprint(tmp_path, name) for name in ("ana", "bo", "cy", "di")]
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]

    def serve(index: int, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "agents", "serve", *map(str, blueprints[2 * index : 2 * index + 2])]
            + ["--port", str(ports[index]), "--data-dir", str(tmp_path / f"host{index}"), "--synth"]
            + ["--round-seconds", "2", "--max-seconds", "150", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )

    def finish(processes: list[subprocess.Popen[str]]) -> list[list[dict[str, object]]]:
        outputs = []
        for process in processes:
            try:
                out, err = process.communicate(timeout=240)
            finally:
                if process.poll() is None:
                    process.kill()
            assert process.returncode == 0, (out[-3000:], err[-2000:])
            outputs.append(events(out))
        return outputs

    first = finish([serve(index, "--peer", urls[1 - index], "--rounds", "2") for index in range(2)])
    nodes = [line for host in first for line in host if line["event"] == "node"]
    founders = [line["node"] for line in nodes if line["founds"]]
    # The hosts agreed on one founder for #jazz: the node that ranks highest for it (rendezvous
    # hashing, agents/protocol/groups.py), whichever host it is on.
    winner = founder_of("#jazz", [str(line["actor"]) for line in nodes])
    assert founders == [next(line["node"] for line in nodes if line["actor"] == winner)]
    rounds = [line for host in first for line in host if line["event"] == "round"]
    assert all(
        line["group"] == "#jazz" and line["bytes"] > 0 and "recall@20" in line["metrics"] for line in rounds
    )
    # Every node ends round 1 in one group of four across both hosts. A node whose host booted it
    # while round 1 was already gathering waits out the round timeout with what reached it, so
    # only the nodes that heard from all four must hold the same merged model.
    last = [line for line in rounds if line["round"] == 1]
    assert sorted(line["node"] for line in last) == ["ana", "bo", "cy", "di"]
    assert all(line["members"] == 4 for line in last), last
    complete = [line for line in last if line["contributors"] == 4]
    assert len(complete) >= 2 and len({line["merged_sha256"] for line in complete}) == 1, last

    # The founder's host alone, started again on its data directory, resumes where it stopped.
    founder_host = 0 if founders[0] in ("ana", "bo") else 1
    [second] = finish([serve(founder_host, "--rounds", "1")])
    resumed = {line["node"]: line for line in second if line["event"] == "node"}
    assert set(resumed) == {str(line["node"]) for line in first[founder_host] if line["event"] == "node"}
    assert {line["resumed_at"] for line in resumed.values()} == {2}
    assert resumed[founders[0]]["founds"] == "#jazz"
    again = [line for line in second if line["event"] == "round"]
    assert sorted((line["node"], line["round"]) for line in again) == sorted((name, 2) for name in resumed)


@pytest.mark.slow
def test_sigterm_stops_a_host_cleanly_after_its_checkpoint(tmp_path: Path) -> None:
    import queue
    import signal
    import threading

    blueprint = write_blueprint(tmp_path, "solo")
    process = subprocess.Popen(
        [sys.executable, "-m", "agents", "serve", str(blueprint), "--port", str(free_port())]
        + ["--data-dir", str(tmp_path / "host"), "--synth", "--round-seconds", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
    reader.start()
    try:
        while json.loads(lines.get(timeout=120)).get("event") != "round":
            pass
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        reader.join(timeout=10)  # everything the host printed before exiting
    finally:
        if process.poll() is None:
            process.kill()
    rest = []
    while not lines.empty():
        rest.append(json.loads(lines.get()))
    assert rest[-1]["event"] == "stopped" and rest[-1]["signal"] == "SIGTERM"
    assert (tmp_path / "host" / "nodes" / "solo" / "checkpoint.json").is_file()


@pytest.mark.slow
def test_a_host_started_again_follows_the_blueprint_revision_in_its_store(tmp_path: Path) -> None:
    """A real restart: a second ``spore serve`` process on the same data directory follows the
    revision its node wrote (as a mutation or an adoption does), not the blueprint file."""
    from pyoxigraph import NamedNode
    from rdflib import URIRef

    from agents.thinking import learner_settings
    from knowledge.graphs import GraphKind, graph_iri
    from knowledge.store import EmbeddedStore, to_rdflib
    from reasoning.mutation import current_blueprint
    from reasoning.mutation import write_blueprint as write_revision
    from reasoning.operators import load_operators, mutate

    blueprint = write_blueprint(tmp_path, "solo")  # learning rate 0.01
    data = tmp_path / "host"
    port = free_port()
    command = ["serve", str(blueprint), "--port", str(port), "--data-dir", str(data), "--synth"]
    first = spore(*command, "--round-seconds", "0.5", "--rounds", "1", timeout=180)
    assert first.returncode == 0, first.stderr[-2000:]
    [node] = [line for line in events(first.stdout) if line["event"] == "node"]
    actor = str(node["actor"])
    target = graph_iri(NamedNode(actor), GraphKind.BLUEPRINT)
    store = EmbeddedStore(data / "store")
    try:
        graph = to_rdflib(store, target)
        parent = current_blueprint(store, actor)
        assert parent == URIRef(f"{actor}/blueprint")
        rate = [op for op in load_operators() if op.name == "learningRate"]
        child = URIRef(f"{actor}/blueprints/2")
        revision = mutate(graph, parent, child, rng=random.Random(0), rate=1.0, operators=rate)
        write_revision(store, actor, revision.graph, revision.iri)
        chosen = learner_settings(revision.graph, revision.iri)["learning_rate"]
        assert chosen != pytest.approx(0.01)
    finally:
        store.close()

    second = spore(*command, "--round-seconds", "0.5", "--rounds", "1", timeout=180)
    assert second.returncode == 0, second.stderr[-2000:]
    [resumed] = [line for line in events(second.stdout) if line["event"] == "revision"]
    assert resumed["node"] == "solo" and resumed["blueprint"] == str(child)
    assert resumed["learning_rate"] == pytest.approx(chosen)  # the learner trains with the revision
    rounds = [line for line in events(second.stdout) if line["event"] == "round"]
    assert rounds and rounds[-1]["round"] == 1  # the protocol counts from 0: the second round
    store = EmbeddedStore(data / "store", read_only=True)
    try:
        assert current_blueprint(store, actor) == child  # publishing again did not put the file's back
        rates = [
            float(row["rate"].value)
            for row in store.query(
                "SELECT ?rate WHERE { GRAPH ?g { ?snapshot <https://w3id.org/spore/ns#roundNumber> 2 ; "
                "<https://w3id.org/spore/ns#configuration> ?c . "
                "?c <https://w3id.org/spore/ns#learningRate> ?rate } }"
            )
        ]
        assert rates == [pytest.approx(chosen)]  # round 2's snapshot was trained with the revision
    finally:
        store.close()
