"""The dashboard in a real browser: headless Debian Chromium driven by Playwright (one browser per
test session), against the project's ASGI app served by uvicorn in a thread (tests/gateway/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.gateway.conftest import gateway, gateway_url, provider, user_secret  # noqa: F401 - shared fixtures

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IN_CI = os.environ.get("CI", "").lower() == "true"
SHOTS = Path(settings.BASE_DIR) / "data" / "screenshots"
PASSWORD = "dashboard-test-password-1"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Chromium from Debian (never `playwright install`): missing fails in CI, skips elsewhere.

    Playwright's sync API keeps an event loop marked running in this thread while it lives, which
    Django takes for an async context: the tests' own database calls are allowed meanwhile, and the
    browser lives only as long as the module, so later test files see no loop."""
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"CI=true but {CHROMIUM} is missing (.ci/run installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield chromium
            chromium.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def operator(transactional_db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("operator", password=PASSWORD, is_staff=True, is_superuser=True)


class Console:
    """What a page said in its console that is an error (CSP violations included) and uncaught errors."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))


@pytest.fixture
def dash(browser, request, operator) -> Callable:
    """dash() -> (page, console): a fresh browser context at 1,280 px, logged in as a staff user."""
    base = request.getfixturevalue("gateway")
    contexts = []

    def open_page(*, login: bool = True):
        context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(5000)
        console = Console(page)
        if login:
            page.goto("/dashboard/login/")
            page.fill("#id_username", "operator")
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/dashboard/")
        return page, console

    yield open_page
    for context in contexts:
        context.close()
    from analytics.recorder import recorder

    recorder.take()  # requests the test left unwritten (the playground's) must not surface in the next test


def off_loop(fn: Callable, *args, **kwargs):
    """Run `fn` in a thread of its own: code that starts an event loop (discovery, a broadcast)
    cannot run in this one while Playwright's loop is marked running."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    def call():
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
