"""Fixtures shared by the whole suite: API clients with keys of each scope, factory helpers that
write through the services (so events and the registry version behave as in production)."""

from __future__ import annotations

import os
import socket
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
import uvicorn
from django.conf import settings
from rest_framework.test import APIClient

from registry import services, version
from registry.models import KeyScope
from registry.providers.http import left_open
from tests.routing.conftest import fake, fake_server  # noqa: F401 - the fake providers, for every test folder

IN_CI = os.environ.get("CI", "").lower() == "true"
# The fake providers play hosted kinds (groq, openai, ...) on 127.0.0.1, as an operator's proxy
# would: the suite allows private upstreams (its subprocesses inherit the variable). The outbound
# URL policy tests turn it off to prove refusal (tests/registry/test_urlpolicy.py).
os.environ["AFMTS_ALLOW_PRIVATE_UPSTREAMS"] = "1"
settings.AFMTS_ALLOW_PRIVATE_UPSTREAMS = True


def pytest_report_header(config):
    return f"AFMTS mode: {settings.MODE}; database: {settings.DATABASES['default']['ENGINE']}; redis: {settings.REDIS_URL or '-'}"


@pytest.fixture(scope="session", autouse=True)
def _server_parts_reachable(django_db_blocker):
    """In the server-mode pass (and always in CI), PostgreSQL and Redis must answer: fail, never skip."""
    if not settings.SERVER_MODE:
        return
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        pytest.exit(f"Redis at {settings.REDIS_URL} is not reachable: {exc}", returncode=3)


@pytest.fixture(scope="session", autouse=True)
def _close_stray_connections(django_db_setup, django_db_blocker):
    """Gateway and worker threads keep database connections of their own; on PostgreSQL they would
    keep the test database from being dropped, so end them before it is."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def asgi_address() -> tuple[str, int]:
    """The project's real ASGI app served over real HTTP (uvicorn in a thread) for the session."""
    from afmts.asgi import application

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="asgi-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield ("127.0.0.1", port)
    server.should_exit = True
    thread.join(5)


@pytest.fixture(scope="session")
def asgi_url(asgi_address) -> str:
    return "http://{}:{}".format(*asgi_address)


@pytest.fixture
def spot():
    """A factory of local HTTP servers that count the connections they accept (tests/outbound.py),
    closed after the test."""
    from tests.outbound import spots

    yield from spots()


@pytest.fixture(autouse=True)
def _upstream_clients_closed():
    """A test (or the code it runs) that closes an event loop with upstream clients still open fails:
    they would hold their sockets until exit and print "Unclosed client session" there."""
    yield
    left = left_open()
    assert not left, f"upstream clients left open on an ended event loop: {', '.join(sorted(left))}"


@pytest.fixture(autouse=True)
def _fresh_registry():
    # Each test starts from a rolled-back database: drop the snapshots built by the one before.
    version.bump_local()
    yield


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def admin_key(db) -> str:
    return services.apikey_create(name="test admin", scope=KeyScope.ADMIN)[1]


@pytest.fixture
def user_key(db) -> str:
    return services.apikey_create(name="test user", scope=KeyScope.USER)[1]


@pytest.fixture
def admin_api(admin_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {admin_key}")
    return client


@pytest.fixture
def user_api(user_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=user_key)
    return client


@pytest.fixture
def make_provider(db):
    def make(slug: str = "openai", kind: str | None = None, **fields: Any):
        return services.provider_create(slug=slug, kind=kind or slug, **fields)

    return make


@pytest.fixture
def make_model(db):
    """make_model("gpt-4o", provider="openai", input_price=5, capabilities=[...])"""

    def make(model_id: str, provider: str = "openai", kind: str | None = None, **fields: Any):
        fields.setdefault("name", model_id)
        fields.setdefault("capabilities", ["text-generation"])
        for name in ("input_price", "output_price"):
            if fields.get(name) is not None:
                fields[name] = Decimal(str(fields[name]))
        fields["model_id"] = model_id
        model, _ = services.model_register(
            provider_slug=provider, provider_kind=kind or provider, endpoint=fields.pop("endpoint", None),
            api_key=fields.pop("api_key", None), model_fields=fields,
        )
        return model

    return make
