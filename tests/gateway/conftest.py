"""The gateway under test: the project's real ASGI app served over real HTTP (uvicorn in a thread),
routing to the fake provider server. Tests commit their data (transaction=True) because the gateway
reads the registry from its own threads."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
from asgiref.sync import sync_to_async

from registry import services
from registry.fakes import KEY


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def gateway_url() -> str:
    from afmts.asgi import application

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def gateway(gateway_url, fake, settings, transactional_db) -> Any:
    """The gateway with a clean slate: fresh routing state, fast test timeouts."""
    from analytics.recorder import recorder
    from routing.gateway import runtime as runtime_module
    from routing.live import LiveState

    settings.AFMTS_USAGE_FLUSH_SECONDS = 3600  # tests flush explicitly
    settings.AFMTS_GATEWAY_ATTEMPT_SECONDS = 2.0
    settings.AFMTS_UPSTREAM_TIMEOUTS = {"connect": 1, "read": 2, "write": 1, "pool": 1, "total": 5}
    runtime_module.runtime.live = LiveState()
    recorder.take()
    return gateway_url


@pytest.fixture
def provider(fake, transactional_db) -> Callable[..., Any]:
    """provider("groq", models=[{...}]): a provider of that kind at the fake server with its models."""

    def make(kind: str, *, slug: str | None = None, models: list[dict[str, Any]], **fields: Any):
        slug = slug or kind.replace("_", "-")
        services.provider_create(slug=slug, kind=kind, base_url=fake.base_url(kind), api_key=KEY, **fields)
        for spec in models:
            spec = {"capabilities": ["text-generation", "streaming"], "context_window": 131072, **spec}
            services.model_register(provider_slug=slug, provider_kind=kind, endpoint=None, api_key=None,
                                    model_fields={"name": spec["model_id"], **spec})
        return slug

    return make


@pytest.fixture
def user_secret(transactional_db) -> str:
    return services.apikey_create(name="gateway user", scope="user")[1]


def flush() -> int:
    from analytics.recorder import recorder

    return recorder.flush()


aflush = sync_to_async(flush)
