"""The same adapter behaviour on every transport (setting AFMTS_UPSTREAM_TRANSPORT: "httpx", "aiohttp"
(httpx on aiohttp's pool) or "native" (aiohttp directly))."""

from __future__ import annotations

import time

import pytest

from registry.providers.errors import RateLimited, Timeout, UpstreamUnavailable
from registry.providers.http import Timeouts
from tests.routing.conftest import chat_request


@pytest.fixture(autouse=True, params=["httpx", "aiohttp", "native"])
def transport(request, settings) -> str:
    settings.AFMTS_UPSTREAM_TRANSPORT = request.param
    return request.param


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini", "ollama"])
async def test_stream_is_incremental_on_either_transport(make_adapter, fake, kind):
    fake.state.chunk_delay = 0.02
    arrivals = [time.monotonic() async for _ in make_adapter(kind).stream(chat_request(kind))]
    (seen,) = fake.state.requests(kind)
    assert arrivals[0] < seen["t_last_frame"] - 0.1


async def test_errors_are_typed_the_same_on_either_transport(make_adapter, fake, transport):
    adapter = make_adapter("groq", timeouts=Timeouts(connect=1, read=0.3, write=1, pool=1, total=5))
    if transport != "native":
        assert (type(adapter.client._transport).__name__ == "AiohttpTransport") is (transport == "aiohttp")
    fake.state.push("groq", "rate_limit", retry_after=7)
    with pytest.raises(RateLimited) as caught:
        await adapter.chat(chat_request("groq"))
    assert caught.value.retry_after == 7
    fake.state.push("groq", "hang", seconds=3)
    with pytest.raises(Timeout):
        await adapter.chat(chat_request("groq"))
    fake.state.push("groq", "cut")
    with pytest.raises(UpstreamUnavailable):
        [c async for c in adapter.stream(chat_request("groq"))]
    reply = await adapter.chat(chat_request("groq"))
    assert adapter.last_rate_limit.window("requests", "day") is not None and reply["choices"]


async def test_refused_connection_is_upstream_unavailable_on_either_transport():
    from registry.providers import adapter_class

    adapter = adapter_class("openai")(base_url="http://127.0.0.1:9", api_key="k",
                                      timeouts=Timeouts(connect=0.5, read=1, write=1, pool=1, total=2))
    with pytest.raises(UpstreamUnavailable):
        await adapter.chat({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    from registry.providers.http import close_clients

    await close_clients()
