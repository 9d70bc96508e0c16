"""The Python client (the seeds' AIRegistryClient), against the running service."""

from __future__ import annotations

import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async

from afmts_client import AIRegistryClient, AsyncAIRegistryClient, RegistryError
from registry import services

FREE = {"model_id": "llama-3.1-8b-instant", "is_free": True, "latency_ms": 300, "reliability": 0.99,
        "capabilities": ["text-generation", "streaming"]}
PAID = {"model_id": "gpt-4o-mini", "input_price": "0.15", "output_price": "0.6", "latency_ms": 900,
        "reliability": 0.95, "capabilities": ["text-generation", "streaming", "code-generation"]}


def test_importable_without_django():
    code = "import sys, afmts_client; assert 'django' not in sys.modules, 'django imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)

    assert out.stdout.strip() == "ok", out.stderr


@pytest.fixture
def registry(gateway, provider):
    provider("groq", models=[FREE])
    provider("openai", models=[PAID])
    secret = services.apikey_create(name="client", scope="admin")[1]
    with AIRegistryClient(gateway, api_key=secret) as client:
        yield client


def test_discover_model_and_query_it_through_the_gateway(registry, fake):
    model = registry.discover_model("text-generation", max_latency=5000, min_reliability=0.9, max_cost_per_token=0.01)

    assert model["publicId"] == "groq/llama-3.1-8b-instant"
    answer = registry.create_model_client(model["id"]).query("Explain quantum computing in simple terms")
    assert isinstance(answer, str) and answer
    assert fake.state.requests("groq")  # it went through the gateway to the provider
    assert "".join(registry.create_model_client("free").stream("hi"))


def test_find_register_agent_route_task_and_stats(registry):
    coders = registry.find_models({"capability": "code-generation"})
    assert [m["publicId"] for m in coders] == ["openai/gpt-4o-mini"]

    agent = registry.register_agent({"name": "my-agent", "capabilities": ["processing", "analysis"]})
    assert agent["status"] == "online" and registry.heartbeat(agent["id"])["name"] == "my-agent"

    result = registry.route_task({"type": "text-generation", "description": "Write a haiku"})
    assert result["modelUsed"] == "groq/llama-3.1-8b-instant" and result["result"]

    stats = registry.get_stats()
    assert stats["models"]["total"] == 2 and stats["agents"]["online"] == 1
    assert registry.get_model_communication(coders[0]["id"])["gateway"]["model"] == "openai/gpt-4o-mini"


def test_errors_raise_with_status_and_code(registry):
    with pytest.raises(RegistryError) as err:
        registry.get_model(999999)
    assert err.value.status == 404

    with pytest.raises(RegistryError) as err:
        registry.create_model_client("nope/none").query("hi")
    assert err.value.status == 404 and err.value.code == "model_not_found"


async def test_async_client(gateway, provider):
    @sync_to_async
    def setup() -> str:
        provider("groq", models=[FREE])
        return services.apikey_create(name="async", scope="user")[1]

    secret = await setup()
    async with AsyncAIRegistryClient(gateway, api_key=secret) as client:
        model = await client.discover_model("text-generation")
        model_client = await client.create_model_client(model)
        assert await model_client.query("hi")
        assert [chunk async for chunk in model_client.stream("hi")]


def test_a_model_client_fails_over_to_the_discovered_alternatives(registry, fake):
    from analytics.models import UsageRecord
    from tests.gateway.conftest import flush

    model = registry.discover_model("text-generation")
    assert model["publicId"] == "groq/llama-3.1-8b-instant"
    client = registry.create_model_client(model["id"])
    fake.state.push("groq", "server_error", count=5)

    answer = client.query("Explain quantum computing in simple terms")

    assert answer and client.served_by == "openai/gpt-4o-mini"
    flush()
    record = UsageRecord.objects.get()
    assert (record.requested_model, record.public_id, record.status) == (
        "groq/llama-3.1-8b-instant", "openai/gpt-4o-mini", "ok")


def test_explicit_fallbacks_replace_the_discovered_ones(registry, fake):
    client = registry.create_model_client("groq/llama-3.1-8b-instant", fallbacks=[])
    fake.state.push("groq", "server_error", count=5)

    with pytest.raises(RegistryError) as err:
        client.query("hi")
    assert err.value.status >= 500


def test_a_failed_query_counts_under_the_model_asked_for_not_a_none_row(registry, fake):
    from analytics import monitor
    from tests.gateway.conftest import flush

    client = registry.create_model_client("groq/llama-3.1-8b-instant", fallbacks=[])
    fake.state.push("groq", "server_error", count=5)
    with pytest.raises(RegistryError):
        client.query("hi")
    flush()

    rows = {row["model"]: row for row in monitor.report()["byModel"]}
    assert "(none)" not in rows and rows["groq/llama-3.1-8b-instant"]["errors"] == 1
    assert [row["model"] for row in monitor.performance()] == ["groq/llama-3.1-8b-instant"]


async def test_the_async_model_client_fails_over_too(gateway, provider, fake):
    @sync_to_async
    def setup() -> str:
        provider("groq", models=[FREE])
        provider("openai", models=[PAID])
        return services.apikey_create(name="async", scope="user")[1]

    secret = await setup()
    async with AsyncAIRegistryClient(gateway, api_key=secret) as client:
        model_client = await client.create_model_client(await client.discover_model("text-generation"))
        fake.state.push("groq", "server_error", count=5)
        assert await model_client.query("hi")
        assert model_client.served_by == "openai/gpt-4o-mini"
