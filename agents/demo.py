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
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from agents.demo_blueprints import (
    EXAMPLES,
    DemoError,
    derive_blueprints,
    example_choices,
    group_of,
    write_blueprints,
)

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
PLAN_FILE = "demo.json"
PROGRESS_FILE = "progress.json"


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
