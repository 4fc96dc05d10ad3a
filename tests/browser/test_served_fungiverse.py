"""The page of real `spore serve` hosts in Chromium: nodes co-training over HTTP, asked and browsed.

Two `spore serve` processes (one node each, one #jazz group across both hosts, synthetic music);
once their nodes have merged a round, a person types an artist on the first host, gets the group
model's recommendations, and follows the group to a member node on the second host.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.interop]

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _blueprint(directory: Path, name: str) -> Path:
    from agents.blueprint_writer import BlueprintChoices, new_blueprint

    graph, report = new_blueprint(
        BlueprintChoices(
            name=name,
            hashtags=("#jazz",),
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


def _status(url: str) -> dict[str, Any] | None:
    try:
        return httpx.get(f"{url}/status", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    root = tmp_path_factory.mktemp("served")
    blueprints = [_blueprint(root, name) for name in ("ana", "cy")]
    ports = [_free_port(), _free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "agents", "serve", str(blueprints[index])]
            + ["--port", str(ports[index]), "--data-dir", str(root / f"host{index}"), "--synth"]
            + [
                "--peer",
                urls[1 - index],
                "--round-seconds",
                "2",
                "--discover-seconds",
                "3",
                "--max-seconds",
                "240",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for index in range(2)
    ]
    try:
        deadline = time.monotonic() + 180
        while True:
            statuses = [_status(url) for url in urls]
            done = [
                node.get("rounds_done", 0) >= 1 and node.get("group") is not None
                for status in statuses
                if status
                for node in status["nodes"]
            ]
            if len(done) == 2 and all(done):
                break
            for process in processes:
                if process.poll() is not None:
                    _, err = process.communicate()
                    pytest.fail(f"spore serve exited {process.returncode}: {err[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"the hosts did not merge a round in time: {statuses}")
            time.sleep(1)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_ask_a_served_node_and_follow_its_group_to_the_other_host(page, served, artifacts) -> None:
    first, second = served
    status = _status(first)
    assert status is not None
    name = next(node["name"] for node in status["nodes"])
    artist = httpx.get(f"{first}/recommend/artists", params={"node": name, "q": "the"}).json()[1][0]
    page.goto(f"{first}/?node={name}")
    field = page.get_by_label("Artists you like")
    field.press_sequentially(artist[:6].lower(), delay=30)
    page.get_by_role("option", name=artist, exact=True).click()
    page.get_by_role("button", name="Recommend").click()
    assert page.locator("ol.ranked li").count() == 20
    explanation = page.locator("p.explanation").inner_text()
    assert f"node {name}'s LightGCN model" in explanation and "#jazz" in explanation
    page.screenshot(path=str(artifacts / "10-served-recommendations.png"), full_page=True)

    page.goto(f"{first}/browse/nodes/{name}")
    assert page.locator("svg.chart polyline").count() >= 1  # the rounds the runtime reported
    page.locator("li.group-link a").first.click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", level=1).inner_text() == "#jazz"
    members = page.locator("li.member a")
    assert members.count() == 2
    page.screenshot(path=str(artifacts / "11-served-group.png"), full_page=True)
    page.locator(f"li.member a[href^='{second}/']").first.click()
    page.wait_for_url(f"{second}/browse/nodes/*")
    assert page.locator("p.hint").first.inner_text() == "Fungus node"
    page.screenshot(path=str(artifacts / "12-served-member-on-second-host.png"), full_page=True)

    page.goto(f"{second}/browse")
    page.wait_for_function("Number(document.getElementById('network').dataset.rendered || 0) >= 3")
    page.screenshot(path=str(artifacts / "13-served-network.png"), full_page=True)
