"""Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's sync API)
against the real stack: Daphne over TLS, a Celery worker, PostgreSQL and Redis.

Part of the integration suite: it needs DATABASE_URL (PostgreSQL) and TEST_REDIS_URL,
as tests/integration does. The stack here is module-scoped so that it (and the
browser) are gone before the rest of the session, whose asyncio tests must not
find Playwright's event loop around.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import INTEGRATION_HINT, integration_configured
from tests.integration.stack import Stack, build_stack

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
LAPTOP = {"width": 1440, "height": 900}
# Where screenshots go: docs/screenshots/ when SCREENSHOT_DIR says so (see
# docs/dashboard.md), otherwise the test's temporary directory.
SCREENSHOT_DIR = os.environ.get("SCREENSHOT_DIR", "")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: the browser tests may not be skipped: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser_stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator:
    if not integration_configured():
        _skip_or_fail(INTEGRATION_HINT)
    with django_db_blocker.unblock():
        db_name = connection.settings_dict["NAME"]
    running = build_stack(tmp_path_factory.mktemp("browser-stack"), db_name)
    try:
        running.start_daphne()
        running.start_worker()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser(browser_stack) -> Iterator:
    if not Path(CHROMIUM).exists():
        _skip_or_fail(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    # Between its calls, Playwright's sync API leaves its (suspended) event loop
    # marked as running in this thread, and Django then refuses ORM calls from the
    # tests. The loop never runs while test code does, so the ORM is safe here; the
    # permission lasts only as long as the browser.
    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture
def open_page(browser, browser_stack: Stack) -> Iterator[Callable]:
    """A fresh browser (its own cookies) per call: two calls are two clinicians.

    Every page is watched for Content-Security-Policy violations (Chromium reports
    each on the console): a test whose pages were refused a script, a style or a
    connection fails, whatever it asserted itself.
    """
    contexts = []
    refused: list[str] = []

    def watch(message) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    def make(viewport: dict[str, int] = LAPTOP):
        context = browser.new_context(
            base_url=browser_stack.base_url,
            ignore_https_errors=True,  # the stack's self-signed certificate
            viewport=viewport,
            color_scheme="dark",
        )
        context.set_default_timeout(20_000)
        context.on("console", watch)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
    if refused:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(refused))


@pytest.fixture
def screenshot(tmp_path) -> Callable:
    folder = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path

    def take(page, name: str, full_page: bool = False) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
