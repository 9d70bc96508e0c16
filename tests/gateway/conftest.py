"""The gateway under test: the project's real ASGI app served over real HTTP (uvicorn in a thread),
routing to the fake provider server. Tests commit their data (transaction=True) because the gateway
reads the registry from its own threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from asgiref.sync import sync_to_async

from registry import services
from registry.fakes import KEY

FREE = {"model_id": "llama-3.1-8b-instant", "is_free": True, "free_rpm": 30, "latency_ms": 100, "reliability": 0.99}
PAID = {"model_id": "gpt-4o-mini", "input_price": "0.15", "output_price": "0.6", "latency_ms": 400, "reliability": 0.99}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="session")
def gateway_url(asgi_url) -> str:
    return asgi_url


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


@pytest.fixture
def two_providers(provider) -> None:
    """A free model at groq (FREE) and a paid one at openai (PAID): `auto` tries groq first."""
    provider("groq", models=[FREE])
    provider("openai", models=[PAID])


@pytest.fixture
def openai_client(gateway, user_secret) -> openai.OpenAI:
    """The OpenAI SDK at the gateway with the user key, no retries (not pytest-django's `client`)."""
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=user_secret, max_retries=0)


def served(raw) -> tuple[str, str]:
    """(model, attempts) of a raw SDK response, from the gateway's headers."""
    return raw.headers["x-afmts-model"], raw.headers["x-afmts-attempts"]


def stream_lines(gateway: str, secret: str, timeout: float = 20, **body: Any) -> list[str]:
    """The `data: ` lines of a streamed chat completion, read to the end."""
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", timeout=timeout,
                      headers={"authorization": f"Bearer {secret}"}, json={**body, "stream": True}) as response:
        return [line for line in response.iter_lines() if line.startswith("data: ")]


def flush() -> int:
    from analytics.recorder import recorder

    return recorder.flush()


aflush = sync_to_async(flush)
