"""Upstream clients are per event loop and closed when their loop ends, whoever owns the loop: the
gateway's under uvicorn, an async view's under a sync caller, a command's asyncio.run. A loop closed
without ending its tasks leaves them open: `left_open()` names those, and the suite's autouse check
(tests/conftest.py) fails the test that did it, instead of aiohttp's "Unclosed client session" at exit."""

from __future__ import annotations

import asyncio
import gc

import aiohttp
import pytest

from registry.fakes import KEY
from registry.providers import adapter_class
from registry.providers.http import Timeouts, left_open, shared_client, shared_session

TIMEOUTS = Timeouts(connect=2, read=5, write=2, pool=2, total=10)


async def list_models(fake, kind: str, transport: str):
    """List a fake provider's models; the client it went through."""
    base_url = fake.base_url(kind)
    assert (await adapter_class(kind)(base_url=base_url, api_key=KEY, timeouts=TIMEOUTS).list_models()).models
    return shared_session(kind, base_url) if transport == "native" else shared_client(kind, base_url, TIMEOUTS)


def is_closed(client) -> bool:
    return client.closed if isinstance(client, aiohttp.ClientSession) else client.is_closed


@pytest.mark.parametrize("transport", ["native", "aiohttp", "httpx"])
def test_a_loop_that_ends_closes_its_clients_though_its_code_did_not(fake, settings, transport):
    settings.AFMTS_UPSTREAM_TRANSPORT = transport

    client = asyncio.run(list_models(fake, "groq", transport))

    assert is_closed(client)
    assert left_open() == []


@pytest.mark.parametrize("transport", ["native", "httpx"])
def test_a_loop_closed_without_ending_its_tasks_is_named_once(fake, settings, transport):
    settings.AFMTS_UPSTREAM_TRANSPORT = transport
    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(list_models(fake, "groq", transport))
    loop.close()

    assert not is_closed(client)
    assert left_open() == [f"groq {fake.base_url('groq')}"]
    assert left_open() == []  # named, then forgotten
    del client, loop
    gc.collect()  # its warnings ("Unclosed client session", a pending task) land in this test's log


@pytest.mark.parametrize("transport", ["native", "aiohttp", "httpx"])
def test_a_cookie_an_upstream_sets_is_never_sent_back(spot, settings, transport):
    """The upstream clients are shared by every caller of a provider: a cookie one reply sets (a
    CDN's bot-management cookie, a session) must not ride along on anybody's next request."""
    from tests.outbound import completion, send

    settings.AFMTS_UPSTREAM_TRANSPORT = transport
    seen: list[str | None] = []

    def reply(handler) -> None:
        seen.append(handler.headers.get("cookie"))
        send(handler, completion("hi"), headers={"set-cookie": "__cf_bm=abc123; Path=/; HttpOnly"})

    server = spot(reply)
    # A host name: aiohttp's jar keeps no cookie from an IP address, and providers have names.
    adapter = adapter_class("openai_compatible")(base_url=f"http://localhost:{server.port}/v1", api_key="k",
                                                 timeouts=TIMEOUTS)

    async def twice():
        for _ in range(2):
            await adapter.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]})

    asyncio.run(twice())

    assert seen == [None, None]
