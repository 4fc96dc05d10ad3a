"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, and a two-host fungiverse.

Playwright cannot download its own browser here, so it launches the system ``chromium``
(``.ci/install-chromium.sh`` installs it) with the flags of ../shared/INTEROP.md. Screenshots go to
``$SPORE_ARTIFACTS`` or ``tests/artifacts/`` for CI to keep.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing(reason: str) -> None:
    if os.environ.get("SPORE_REQUIRE_INTEROP") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    root = Path(os.environ.get("SPORE_ARTIFACTS") or Path(__file__).parent.parent / "artifacts")
    directory = root / "browser"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


# Module scope, not session: Playwright's sync API runs an asyncio loop in the main thread while it is
# open, and every later test that calls asyncio.run() would fail with "cannot be called from a
# running event loop".
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = (
        os.environ.get("SPORE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if executable is None:
        _missing("chromium is not installed (.ci/install-chromium.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (.ci/install-chromium.sh)")
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh temporary profile itself (it refuses --user-data-dir).
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from web_world import start_web_world

    built = start_web_world(Path(tmp_path_factory.mktemp("browser-world")))
    yield built
    built.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()
