"""The web page in real headless Chromium: type an artist, get recommendations, cross to another host.

Two loopback hosts (tests/web_world.py): A serves alice (with a trained model) and bob, B serves carol
and the group #jazz both nodes joined. Screenshots of each step go to the artifacts folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from federation.web import NodeModel, web_state

pytestmark = [pytest.mark.slow, pytest.mark.interop]


def shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def test_type_an_artist_pick_a_suggestion_and_get_recommendations(page, world, artifacts) -> None:
    artist = world.artist_names[7]
    page.goto(world.url(world.a, "/"))
    field = page.get_by_label("Artists you like")
    field.press_sequentially(artist[:4].lower(), delay=30)
    option = page.get_by_role("option", name=artist, exact=True)
    option.wait_for()
    assert field.get_attribute("aria-expanded") == "true"
    shot(page, artifacts, "01-autocomplete")
    option.click()
    assert field.input_value() == f"{artist}, "
    page.get_by_role("button", name="Recommend").click()
    page.wait_for_url(re.compile(r"/recommend\?"))
    ranked = page.locator("ol.ranked li")
    assert ranked.count() == 20
    names = page.locator("ol.ranked a.artist").all_inner_texts()
    assert artist not in names
    explanation = page.locator("p.explanation").inner_text()
    assert "alice" in explanation and "jazz" in explanation and "round 3" in explanation
    shot(page, artifacts, "02-recommendations")
    page.get_by_role("link", name="Turtle").first.click()
    assert "spore:Recommendation" in page.content()


def test_a_typo_is_answered_with_did_you_mean(page, world, artifacts) -> None:
    artist = world.artist_names[12]
    typo = artist[:-1] + ("q" if artist[-1] != "q" else "w")
    page.goto(world.url(world.a, "/"))
    page.get_by_label("Artists you like").fill(typo)
    page.get_by_label("Artists you like").press("Enter")
    page.wait_for_url(re.compile(r"/recommend\?"))
    suggestion = page.locator("a.suggestion", has_text=artist).first
    shot(page, artifacts, "03-did-you-mean")
    suggestion.click()
    page.wait_for_load_state()
    assert page.locator("ol.ranked li").count() == 20
    assert artist in page.locator("#answer-title").inner_text()


def test_browse_from_a_node_to_its_group_and_a_member_on_another_host(page, world, artifacts) -> None:
    page.goto(world.url(world.a, "/browse/nodes/alice"))
    assert page.locator("svg.chart polyline").count() >= 2
    assert "stayed in #jazz" in page.locator("ol.decisions").inner_text()
    shot(page, artifacts, "04-node-alice")
    page.locator("li.group-link a").first.click()
    page.wait_for_url(world.url(world.b, "/browse/groups/jazz"))
    assert page.get_by_role("heading", level=1).inner_text() == "#jazz"
    shot(page, artifacts, "05-group-jazz-on-host-b")
    page.locator("li.member a", has_text="carol").click()
    page.wait_for_url(world.url(world.b, "/browse/nodes/carol"))
    assert page.get_by_role("heading", level=1).inner_text() == "carol"
    shot(page, artifacts, "06-node-carol-on-host-b")
    page.get_by_role("link", name="JSON-LD").click()
    assert "FungusNode" in page.content()


def test_network_view_draws_the_mycelium_and_follows_rounds(page, world, artifacts) -> None:
    page.goto(world.url(world.b, "/browse"))
    view = page.locator("#network")
    page.wait_for_function("document.getElementById('network').dataset.rendered === '3'")
    assert view.locator("a.group").count() == 1 and view.locator("a.node").count() == 2
    assert view.locator("line.edge").count() == 2
    shot(page, artifacts, "07-network-host-b")

    page.goto(world.url(world.a, "/browse"))
    status = page.locator("#network-status")
    page.wait_for_function("document.getElementById('network-status').textContent.startsWith('round 3')")
    current = world.model
    state = web_state(world.a.app)
    state.models.publish("alice", NodeModel(current.engine, current.snapshot, group=current.group, round=4))
    try:
        page.wait_for_function(
            "document.getElementById('network-status').textContent.startsWith('round 4')", timeout=10_000
        )
        assert "round 4" in status.inner_text()
        shot(page, artifacts, "08-network-round-4")
    finally:
        state.models.publish("alice", current)


def test_the_form_works_without_javascript(browser, world, artifacts) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(world.url(world.a, "/"))
        page.get_by_label("Artists you like").fill(world.artist_names[3].upper())
        page.get_by_role("button", name="Recommend").click()
        page.wait_for_url(re.compile(r"/recommend\?"))
        assert page.locator("ol.ranked li").count() == 20
        shot(page, artifacts, "09-without-javascript")
    finally:
        context.close()


def test_choosing_another_node_reloads_its_listeners(page, world) -> None:
    page.goto(world.url(world.a, "/"))
    assert page.locator("#listener option").count() > 1  # alice's listeners
    page.get_by_label("Node", exact=True).select_option("bob")
    page.wait_for_url(re.compile(r"/\?node=bob$"))
    assert page.locator("#listener").count() == 0  # bob has no model, so no listeners to pick


def test_pages_pass_axe_accessibility_checks(page, world) -> None:
    axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")
    axe = axe_module.Axe()
    pages = [
        world.url(world.a, "/"),
        world.url(world.a, f"/recommend?node=alice&artists={world.artist_names[0]}"),
        world.url(world.a, "/recommend?node=alice&artists=Radiohed"),
        world.url(world.a, "/browse"),
        world.url(world.a, "/browse/nodes/alice"),
        world.url(world.a, f"/browse/resource?iri={world.alice}/decisions/2-switch"),
        world.url(world.a, f"/browse/resource?iri={world.model.snapshot}"),
        world.url(world.b, "/browse/groups/jazz"),
    ]
    found = {}
    for url in pages:
        page.goto(url)
        result = axe.run(page)
        found[url] = [(v["id"], v["impact"], v["help"]) for v in result.response["violations"]]
    assert found == {url: [] for url in pages}


def test_suggestions_work_from_the_keyboard(page, world) -> None:
    first, second = world.artist_names[20], world.artist_names[21]
    page.goto(world.url(world.a, "/"))
    field = page.get_by_label("Artists you like")
    for artist in (first, second):
        field.press_sequentially(artist[:5].lower(), delay=30)
        page.get_by_role("option", name=artist, exact=True).wait_for()
        page.wait_for_load_state("networkidle")  # the last keystroke's suggestions have arrived
        suggestions = page.locator("#artist-suggestions [role=option]")
        names = suggestions.all_inner_texts()
        for _ in range(names.index(artist) + 1):
            field.press("ArrowDown")
        assert suggestions.nth(names.index(artist)).get_attribute("aria-selected") == "true"
        field.press("Enter")  # picks the suggestion; it does not submit the form
    assert field.input_value() == f"{first}, {second}, "
    field.press("Escape")
    field.press("Enter")  # now the form is sent
    page.wait_for_url(re.compile(r"/recommend\?"))
    assert f"{first}, {second}" in page.locator("#answer-title").inner_text()
