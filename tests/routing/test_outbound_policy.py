"""The outbound URL policy at connect time (registry/providers/http.py): whatever is in the database,
every transport checks the resolved address before it connects, follows no redirect and caps what
it reads. Local servers here count the connections they accept, so "no connection was made" is
observed, not assumed."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from afmts import urlpolicy
from registry import tracker
from registry.fakes import KEY
from registry.models import Agent, Provider
from registry.providers import adapter_class
from registry.providers.errors import ProviderError
from registry.providers.http import PolicyRefused, ReplyTooLarge, close_clients
from routing.tasks import call_agent
from tests.outbound import completion, send

TRANSPORTS = ["native", "aiohttp", "httpx"]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
SECRET = "AKIA-METADATA-SECRET-BODY"


@pytest.fixture
def strict(settings):
    """The operator's default: no private upstreams for hosted kinds (the suite allows them)."""
    settings.AFMTS_ALLOW_PRIVATE_UPSTREAMS = False
    settings.AFMTS_ALLOWED_UPSTREAM_HOSTS = []
    settings.AFMTS_DEMO = False
    settings.AFMTS_UPSTREAM_TIMEOUTS = {"connect": 2, "read": 5, "write": 2, "pool": 2, "total": 10}
    return settings


@pytest.fixture(params=TRANSPORTS)
async def transport(request, strict) -> str:
    strict.AFMTS_UPSTREAM_TRANSPORT = request.param
    yield request.param
    await close_clients()


def adapter(kind: str, base_url: str):
    return adapter_class(kind)(base_url=base_url, api_key=KEY)


async def streamed(kind: str, base_url: str) -> list[dict]:
    return [item async for item in adapter(kind, base_url).stream(CHAT)]


# ------------------------------------------------------------------ addresses


async def test_a_hosted_kind_cannot_reach_a_name_that_resolves_to_loopback(transport, spot):
    server = spot(lambda h: send(h, completion(SECRET)))
    url = f"http://localhost:{server.port}"

    with pytest.raises(PolicyRefused) as listing:
        await adapter("groq", url).list_models()
    with pytest.raises(PolicyRefused):
        await adapter("openai", url).chat(CHAT)
    with pytest.raises(PolicyRefused):
        await streamed("openai", url)

    assert listing.value.provider_code == "private" and not listing.value.retryable
    assert "localhost (127.0.0.1)" in listing.value.message
    assert server.accepts == 0


@pytest.mark.parametrize("url,rule", [
    ("http://169.254.169.254", "link_local"),
    ("http://[::ffff:169.254.169.254]", "link_local"),
    ("http://[fd00:ec2::254]", "metadata"),
    ("http://metadata.google.internal", "metadata"),
    ("http://0.0.0.0:22", "unspecified"),
])
async def test_link_local_and_metadata_addresses_are_refused_before_connecting(transport, url, rule):
    for kind in ("openai", "ollama"):
        with pytest.raises(PolicyRefused) as caught:
            await adapter(kind, url).list_models()
        assert caught.value.provider_code == rule
        with pytest.raises(PolicyRefused):
            await streamed(kind, url)


async def test_local_server_kinds_may_use_loopback(transport, fake):
    for kind in ("ollama", "openai_compatible"):
        listing = await adapter(kind, fake.base_url(kind)).list_models()
        assert listing.models


async def test_a_hosted_kind_on_loopback_needs_the_operators_allowance(transport, fake, settings):
    with pytest.raises(PolicyRefused):
        await adapter("groq", fake.base_url("groq")).list_models()

    settings.AFMTS_ALLOWED_UPSTREAM_HOSTS = [f"127.0.0.1:{fake.base_url('groq').split(':')[2].split('/')[0]}"]
    assert (await adapter("groq", fake.base_url("groq")).list_models()).models
    settings.AFMTS_ALLOWED_UPSTREAM_HOSTS = []
    settings.AFMTS_ALLOW_PRIVATE_UPSTREAMS = True
    assert (await adapter("groq", fake.base_url("groq")).chat({**CHAT, "model": "llama-3.1-8b-instant"}))["choices"]


# ------------------------------------------------------------------ redirects and sizes


async def test_redirects_are_not_followed(transport, spot):
    target = spot(lambda h: send(h, completion(SECRET)))
    hop = spot(lambda h: send(h, b"", status=302, headers={"location": f"http://127.0.0.1:{target.port}/v1/x"}))
    url = f"http://127.0.0.1:{hop.port}"

    with pytest.raises(ProviderError):
        await adapter("openai_compatible", url).list_models()
    with pytest.raises(ProviderError):
        await adapter("openai_compatible", url).chat(CHAT)
    with pytest.raises(ProviderError):
        await streamed("openai_compatible", url)

    assert hop.accepts >= 1
    assert target.accepts == 0


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_oversized_reply_is_an_upstream_error(transport, spot, settings, chunked):
    settings.AFMTS_UPSTREAM_MAX_REPLY_BYTES = 4096
    server = spot(lambda h: send(h, completion("x" * 10_000), chunked=chunked))
    url = f"http://127.0.0.1:{server.port}"

    with pytest.raises(ReplyTooLarge) as caught:
        await adapter("openai_compatible", url).chat(CHAT)
    assert "4096-byte cap" in caught.value.message and caught.value.retryable
    settings.AFMTS_UPSTREAM_MAX_REPLY_BYTES = 1 << 20
    assert (await adapter("openai_compatible", url).chat(CHAT))["choices"]


async def test_a_compressed_reply_that_inflates_past_the_cap_is_an_upstream_error(transport, spot, settings):
    settings.AFMTS_UPSTREAM_MAX_REPLY_BYTES = 4096
    packed = gzip.compress(completion("x" * 10_000))  # its Content-Length is well under the cap
    server = spot(lambda h: send(h, packed, headers={"content-encoding": "gzip"}))

    with pytest.raises(ReplyTooLarge):
        await adapter("openai_compatible", f"http://127.0.0.1:{server.port}").chat(CHAT)


async def test_an_oversized_stream_line_is_an_upstream_error(transport, spot, settings):
    settings.AFMTS_UPSTREAM_MAX_LINE_BYTES = 1024
    event = json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                        "choices": [{"index": 0, "delta": {"content": "y" * 5000}, "finish_reason": None}]})
    server = spot(lambda h: send(h, f"data: {event}\n\ndata: [DONE]\n\n".encode(), kind="text/event-stream",
                                 chunked=True))
    with pytest.raises(ReplyTooLarge):
        await streamed("openai_compatible", f"http://127.0.0.1:{server.port}")
    settings.AFMTS_UPSTREAM_MAX_LINE_BYTES = 1 << 20
    assert await streamed("openai_compatible", f"http://127.0.0.1:{server.port}")


# ------------------------------------------------------------------ agents, discovery, the gateway


async def test_agent_endpoints_obey_the_policy(strict, spot):
    target = spot(lambda h: send(h, b'{"answer": 42}'))
    hop = spot(lambda h: send(h, b"", status=302, headers={"location": f"http://127.0.0.1:{target.port}/"}))
    big = spot(lambda h: send(h, b'{"a": "' + b"z" * 9000 + b'"}'))

    for endpoint in (f"http://localhost:{target.port}/", "http://169.254.169.254/", "http://0xa9fea9fe/"):
        with pytest.raises(urlpolicy.Refused):
            await call_agent(Agent(name="a", endpoint=endpoint), {"type": "x"})
    assert target.accepts == 0

    strict.AFMTS_ALLOWED_UPSTREAM_HOSTS = ["localhost", "127.0.0.1"]
    assert await call_agent(Agent(name="a", endpoint=f"http://localhost:{target.port}/"), {"type": "x"}) == {"answer": 42}
    with pytest.raises(httpx.HTTPStatusError):
        await call_agent(Agent(name="a", endpoint=f"http://127.0.0.1:{hop.port}/"), {"type": "x"})
    assert target.accepts == 1
    strict.AFMTS_UPSTREAM_MAX_REPLY_BYTES = 4096
    with pytest.raises(ValueError, match="cap"):
        await call_agent(Agent(name="a", endpoint=f"http://127.0.0.1:{big.port}/"), {"type": "x"})


def test_discovery_of_a_url_written_to_the_database_is_refused_and_says_why(strict, transactional_db, spot):
    server = spot(lambda h: send(h, json.dumps({"data": [{"id": SECRET}]}).encode()))
    Provider.objects.create(slug="evil", name="evil", kind="groq", base_url=f"http://localhost:{server.port}")

    tracker.discover(["evil"])

    provider = Provider.objects.get(slug="evil")
    assert "outbound URL policy (private)" in provider.last_error
    assert not provider.models.exists() and server.accepts == 0


def test_a_benchmark_of_a_model_behind_a_refused_url_reports_the_refusal(strict, db, spot):
    from registry.benchmark import run_benchmark
    from registry.models import AIModel

    server = spot(lambda h: send(h, completion(SECRET)))
    provider = Provider.objects.create(slug="evil", name="evil", kind="openai",
                                       base_url=f"http://localhost:{server.port}")
    model = AIModel.objects.create(provider=provider, model_id="gpt-x", name="gpt-x")

    report = run_benchmark([model], rounds=1, save=False)

    calls = [c for r in report.results for c in r.calls]
    assert calls and all(not c.ok and c.error_kind == "refused" for c in calls)
    assert server.accepts == 0
