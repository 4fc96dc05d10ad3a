"""``spore demo``'s orchestration: plan a local fungiverse, write its blueprints, run its hosts.

A demo is a state directory holding ``demo.json`` (the plan: ports, hosts, which blueprints each
serves, which data) and one data directory per host. The plan is written once and reused, so a
second run with the same directory starts the same hosts on the same ports: node IRIs contain the
port, and a host that came back elsewhere would be a different node to its peers.

Hosts are ``spore serve`` subprocesses, each in its own session so that Ctrl-C reaches only the
demo, which then stops them in order (SIGTERM, a grace period, SIGKILL); on Linux each also gets
``PR_SET_PDEATHSIG`` so that not even a ``kill -9`` of the demo leaves a host behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from rdflib import Graph, URIRef
from rdflib.term import Node

from agents.blueprint_writer import AGGREGATION_RULES, ARCHITECTURES, BlueprintChoices, new_blueprint
from ontology import SPORE

__all__ = [
    "DemoPlan",
    "HostPlan",
    "DemoError",
    "EXAMPLES",
    "default_data_dir",
    "lastfm_dir",
    "plan_demo",
    "load_plan",
    "save_plan",
    "load_progress",
    "save_progress",
    "example_choices",
    "derive_blueprints",
    "group_of",
    "write_blueprints",
    "serve_command",
    "Fungiverse",
]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "blueprints"
PLAN_FILE = "demo.json"
PROGRESS_FILE = "progress.json"
# Hashtags the demo's groups gather around, in the order groups are added as nodes grow.
GENRES = ("#jazz", "#indie", "#rock", "#electronic", "#ambient", "#hiphop", "#folk", "#metal")
_DIMENSIONS = (32, 48, 64)
_LEARNING_RATES = ("0.001", "0.002", "0.005")


class DemoError(Exception):
    """Something the person running the demo can fix; the command turns it into one line."""


@dataclass(frozen=True)
class HostPlan:
    index: int
    port: int
    data_dir: str
    blueprints: tuple[str, ...]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class DemoPlan:
    nodes: int
    hosts: tuple[HostPlan, ...]
    music: str | None  # a Last.fm-2k directory, or None for the synthetic graph
    round_seconds: float

    @property
    def urls(self) -> list[str]:
        return [host.base_url for host in self.hosts]


def default_data_dir() -> Path:
    """``$SPORE_DATA_DIR``, else ``../shared/data`` beside the checkout (as the tests and benches use)."""
    return Path(os.environ.get("SPORE_DATA_DIR", ROOT.parent / "shared" / "data"))


def lastfm_dir(data_dir: Path) -> Path | None:
    """The Last.fm-2k directory under ``data_dir`` (or ``data_dir`` itself) when its files are there."""
    for candidate in (data_dir / "lastfm-2k", data_dir):
        if (candidate / "user_artists.dat").is_file():
            return candidate
    return None


def plan_demo(
    state_dir: Path,
    names: Sequence[str],
    *,
    hosts: int,
    port: int,
    music: Path | None,
    round_seconds: float,
) -> DemoPlan:
    """The named nodes dealt round-robin over hosts on ports ``port .. port + hosts - 1``."""
    nodes = len(names)
    if not 1 <= hosts <= nodes:
        raise DemoError(f"--hosts must be between 1 and --nodes ({nodes}), not {hosts}")
    if not 1024 <= port <= 65535 - hosts:
        raise DemoError(f"--port {port} leaves no room for {hosts} host(s) below 65536")
    plans = []
    for index in range(hosts):
        mine = names[index::hosts]
        plans.append(
            HostPlan(
                index=index,
                port=port + index,
                data_dir=str(state_dir / "hosts" / f"host{index}"),
                blueprints=tuple(str(state_dir / "blueprints" / f"{name}.ttl") for name in mine),
            )
        )
    return DemoPlan(
        nodes=nodes,
        hosts=tuple(plans),
        music=str(music) if music else None,
        round_seconds=round_seconds,
    )


def save_plan(state_dir: Path, plan: DemoPlan) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / PLAN_FILE).write_text(json.dumps(asdict(plan), indent=2) + "\n", encoding="utf-8")


def load_plan(state_dir: Path) -> DemoPlan | None:
    """The stored plan, or None for a fresh state directory."""
    path = state_dir / PLAN_FILE
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        hosts = tuple(
            HostPlan(h["index"], h["port"], h["data_dir"], tuple(h["blueprints"])) for h in raw["hosts"]
        )
        return DemoPlan(raw["nodes"], hosts, raw.get("music"), float(raw["round_seconds"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DemoError(
            f"{path} is not a demo plan ({error}); remove it or use another --state-dir"
        ) from error


def load_progress(state_dir: Path) -> int:
    """The last round the demo saw every node finish (0 for a fresh demo or an unreadable record)."""
    try:
        return int(json.loads((state_dir / PROGRESS_FILE).read_text(encoding="utf-8"))["round"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def save_progress(state_dir: Path, round_number: int) -> None:
    """Remember the round reached, so that a resumed demo counts ``--rounds`` from there.

    The hosts keep their own rounds in their checkpoints, but right after a restart their nodes are
    in no group until they rejoin, and a status read then would say round 0.
    """
    temporary = state_dir / f"{PROGRESS_FILE}.tmp"
    temporary.write_text(json.dumps({"round": round_number}) + "\n", encoding="utf-8")
    os.replace(temporary, state_dir / PROGRESS_FILE)


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


# -- hosts ---------------------------------------------------------------------------------------------


def serve_command(plan: DemoPlan, host: HostPlan) -> list[str]:
    """The ``spore serve`` command line of one host; every other host is a peer."""
    command = [sys.executable, "-m", "agents", "serve", *host.blueprints]
    command += ["--base-url", host.base_url, "--port", str(host.port), "--data-dir", host.data_dir]
    command += ["--music", plan.music] if plan.music else ["--synth"]
    for other in plan.hosts:
        if other.index != host.index:
            command += ["--peer", other.base_url]
    command += ["--round-seconds", f"{plan.round_seconds:g}"]
    return command


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the demo dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Fungiverse:
    """The running host processes of one plan; a context manager that always stops them."""

    def __init__(self, plan: DemoPlan, *, grace_seconds: float = 15.0) -> None:
        self.plan = plan
        self.grace_seconds = grace_seconds
        self.processes: list[subprocess.Popen[bytes]] = []

    def log_path(self, host: HostPlan) -> Path:
        return Path(host.data_dir) / "serve.log"

    def start(self) -> None:
        busy = [host.port for host in self.plan.hosts if not port_free(host.port)]
        if busy:
            raise DemoError(
                f"port(s) {', '.join(map(str, busy))} in use: is another demo running? (see `spore status`)"
            )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.setdefault("OMP_NUM_THREADS", "1")  # several hosts share few cores; torch threads would fight
        for host in self.plan.hosts:
            Path(host.data_dir).mkdir(parents=True, exist_ok=True)
            with self.log_path(host).open("ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        serve_command(self.plan, host),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        cwd=ROOT,
                        start_new_session=True,
                        preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
                    )
                )

    def check_alive(self) -> None:
        for host, process in zip(self.plan.hosts, self.processes, strict=True):
            code = process.poll()
            if code is not None:
                raise DemoError(f"host {host.base_url} exited with status {code}: {self.last_log_line(host)}")

    def last_log_line(self, host: HostPlan) -> str:
        try:
            lines = self.log_path(host).read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "no output"

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Wait until every host answers ``/healthz`` (loading data can take a while)."""
        deadline = time.monotonic() + timeout
        pending = list(self.plan.hosts)
        with httpx.Client(timeout=2.0) as client:
            while pending:
                self.check_alive()
                for host in list(pending):
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{host.base_url}/healthz").status_code == 200:
                            pending.remove(host)
                if pending and time.monotonic() > deadline:
                    raise DemoError(f"host(s) not ready after {timeout:.0f} s: {pending[0].base_url}")
                if pending:
                    time.sleep(0.3)

    def stop(self) -> None:
        """SIGTERM every host, wait for them together, then SIGKILL whatever is left."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        for process in self.processes:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                process.wait(remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def __enter__(self) -> Fungiverse:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
