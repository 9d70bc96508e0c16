"""Failures, scripted on the fake providers, reach the caller as the one typed error hierarchy."""

from __future__ import annotations

import pytest

from registry.providers.errors import (
    AuthError,
    ContextTooLong,
    MalformedReply,
    NotFoundError,
    ProviderError,
    RateLimited,
    Timeout,
    UpstreamUnavailable,
)
from registry.providers.http import Timeouts
from tests.routing.conftest import KINDS, MODEL, chat_request

KEYED = [k for k in KINDS if k not in ("ollama", "openai_compatible")]


async def drain(adapter, request) -> list[dict]:
    return [c async for c in adapter.stream(request)]


@pytest.mark.parametrize("kind", KEYED)
async def test_wrong_key_is_an_auth_error_with_the_providers_message(make_adapter, kind):
    with pytest.raises(AuthError) as caught:
        await make_adapter(kind, api_key="wrong-key").chat(chat_request(kind))
    assert caught.value.message and not caught.value.retryable
    assert "wrong-key" not in str(caught.value)


@pytest.mark.parametrize("kind", [k for k in KEYED if k != "openrouter"])  # OpenRouter's list is public
async def test_wrong_key_fails_the_listing_too(make_adapter, kind):
    with pytest.raises(AuthError):
        await make_adapter(kind, api_key="wrong-key").list_models()


@pytest.mark.parametrize("kind", KINDS)
async def test_429_is_rate_limited_with_the_retry_after_seconds(make_adapter, fake, kind):
    fake.state.push(kind, "rate_limit", retry_after=7)
    with pytest.raises(RateLimited) as caught:
        await make_adapter(kind).chat(chat_request(kind))
    err = caught.value
    assert err.status == 429 and err.retryable and err.provider == kind
    if kind != "ollama":  # Ollama says nothing about when to retry
        assert err.retry_after == pytest.approx(7, abs=1)


@pytest.mark.parametrize("kind", KINDS)
async def test_429_on_a_stream_is_raised_before_any_chunk(make_adapter, fake, kind):
    fake.state.push(kind, "rate_limit", retry_after=3)
    with pytest.raises(RateLimited):
        await drain(make_adapter(kind), chat_request(kind))


async def test_next_n_requests_fail_then_the_provider_recovers(make_adapter, fake):
    fake.state.push("groq", "rate_limit", count=2, retry_after=7)
    adapter = make_adapter("groq")
    for _ in range(2):
        with pytest.raises(RateLimited):
            await adapter.chat(chat_request("groq"))
    assert (await adapter.chat(chat_request("groq")))["choices"]


async def test_control_endpoint_scripts_scenarios_over_http(make_adapter, fake):
    import httpx

    async with httpx.AsyncClient() as client:
        await client.post(f"{fake.url}/_control/scenario", json={"provider": "openai", "scenario": "server_error"})
    with pytest.raises(UpstreamUnavailable):
        await make_adapter("openai").chat(chat_request("openai"))


async def test_groq_429_gives_per_day_request_quota_left(make_adapter, fake):
    fake.state.push("groq", "rate_limit", retry_after=7)
    with pytest.raises(RateLimited) as caught:
        await make_adapter("groq").chat(chat_request("groq"))
    info = caught.value.rate_limit
    assert info.window("requests", "day").remaining == 0
    assert info.window("tokens", "minute").limit == 6000
    assert caught.value.provider_code == "rate_limit_exceeded"


async def test_openrouter_429_reads_the_limit_from_its_body(make_adapter, fake):
    fake.state.push("openrouter", "rate_limit", retry_after=30)
    with pytest.raises(RateLimited) as caught:
        await make_adapter("openrouter").chat(chat_request("openrouter"))
    info = caught.value.rate_limit
    window = info.window("requests", "day")
    assert (window.limit, window.remaining) == (50, 0)
    assert window.reset == pytest.approx(30, abs=2)
    assert "free-models-per-day" in caught.value.message


async def test_gemini_429_takes_retry_delay_from_retry_info(make_adapter, fake):
    fake.state.push("gemini", "rate_limit", retry_after=59)
    with pytest.raises(RateLimited) as caught:
        await make_adapter("gemini").chat(chat_request("gemini"))
    assert caught.value.retry_after == 59
    assert caught.value.provider_code == "RESOURCE_EXHAUSTED"


@pytest.mark.parametrize("kind", KINDS)
async def test_5xx_is_upstream_unavailable_and_retryable(make_adapter, fake, kind):
    fake.state.push(kind, "server_error")
    with pytest.raises(UpstreamUnavailable) as caught:
        await make_adapter(kind).chat(chat_request(kind))
    assert caught.value.retryable and caught.value.status >= 500


async def test_anthropic_overloaded_529_is_upstream_unavailable(make_adapter, fake):
    fake.state.push("anthropic", "overloaded")
    with pytest.raises(UpstreamUnavailable) as caught:
        await make_adapter("anthropic").chat(chat_request("anthropic"))
    assert caught.value.status == 529 and caught.value.provider_code == "overloaded_error"


@pytest.mark.parametrize("kind", KINDS)
async def test_context_too_long_is_its_own_error(make_adapter, fake, kind):
    fake.state.push(kind, "context_too_long")
    with pytest.raises(ContextTooLong) as caught:
        await make_adapter(kind).chat(chat_request(kind))
    assert not caught.value.retryable


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "openai_compatible"])
async def test_unknown_model_is_not_found(make_adapter, kind):
    with pytest.raises((NotFoundError, ProviderError)) as caught:
        await make_adapter(kind).chat({**chat_request(kind), "model": "no-such-model"})
    assert isinstance(caught.value, NotFoundError) or caught.value.kind == "bad_request"  # Mistral: 400 invalid_model
    assert not caught.value.retryable


@pytest.mark.parametrize("kind", KINDS)
async def test_hang_times_out(make_adapter, fake, kind):
    fake.state.push(kind, "hang", seconds=3)
    adapter = make_adapter(kind, timeouts=Timeouts(connect=1, read=0.3, write=1, pool=1, total=5))
    with pytest.raises(Timeout) as caught:
        await adapter.chat(chat_request(kind))
    assert caught.value.retryable


async def test_hang_on_a_stream_times_out(make_adapter, fake):
    fake.state.push("anthropic", "hang", seconds=3)
    adapter = make_adapter("anthropic", timeouts=Timeouts(connect=1, read=0.3, write=1, pool=1, total=5))
    with pytest.raises(Timeout):
        await drain(adapter, chat_request("anthropic"))


async def test_slow_first_byte_within_the_read_timeout_still_answers(make_adapter, fake):
    fake.state.push("openai", "slow_first_byte", seconds=0.3)
    reply = await make_adapter("openai").chat(chat_request("openai"))
    assert reply["choices"][0]["message"]["content"]


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_cut_midway_is_upstream_unavailable(make_adapter, fake, kind):
    fake.state.push(kind, "cut")
    chunks: list[dict] = []
    with pytest.raises(UpstreamUnavailable):
        async for item in make_adapter(kind).stream(chat_request(kind)):
            chunks.append(item)
    assert chunks  # what arrived before the cut was passed on


@pytest.mark.parametrize("kind", KINDS)
async def test_reply_cut_midway_is_retryable(make_adapter, fake, kind):
    fake.state.push(kind, "cut")
    with pytest.raises((UpstreamUnavailable, MalformedReply)) as caught:
        await make_adapter(kind).chat(chat_request(kind))
    assert caught.value.retryable


@pytest.mark.parametrize("kind", KINDS)
async def test_malformed_json_reply_is_malformed_reply(make_adapter, fake, kind):
    fake.state.push(kind, "malformed")
    with pytest.raises(MalformedReply) as caught:
        await make_adapter(kind).chat(chat_request(kind))
    assert caught.value.retryable


@pytest.mark.parametrize("kind", KINDS)
async def test_malformed_stream_frame_is_malformed_reply(make_adapter, fake, kind):
    fake.state.push(kind, "malformed")
    with pytest.raises(MalformedReply):
        await drain(make_adapter(kind), chat_request(kind))


@pytest.mark.parametrize("kind", ["openrouter", "anthropic", "ollama", "gemini"])
async def test_error_sent_inside_a_stream_is_raised(make_adapter, fake, kind):
    fake.state.push(kind, "midstream_error")
    with pytest.raises(UpstreamUnavailable):
        await drain(make_adapter(kind), chat_request(kind))


async def test_connection_refused_is_upstream_unavailable():
    from registry.providers import adapter_class

    adapter = adapter_class("openai")(base_url="http://127.0.0.1:9", api_key="k",
                                      timeouts=Timeouts(connect=0.5, read=1, write=1, pool=1, total=2))
    with pytest.raises(UpstreamUnavailable):
        await adapter.chat({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


async def test_magic_model_name_picks_a_scenario(make_adapter):
    with pytest.raises(UpstreamUnavailable):
        await make_adapter("deepseek").chat({**chat_request("deepseek"), "model": MODEL["deepseek"] + "@server_error"})


async def test_scenario_header_picks_a_scenario_for_one_request(make_adapter, fake):
    import httpx

    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake.base_url('openai')}/v1/chat/completions",
                                     headers={"authorization": "Bearer fake-key",
                                              "x-fake-scenario": "rate_limit; retry_after=11"},
                                     json=chat_request("openai"))
    assert response.status_code == 429 and response.headers["retry-after"] == "11"


async def test_scripted_failure_hits_the_public_openrouter_listing(make_adapter, fake):
    fake.state.push("openrouter", "server_error")
    with pytest.raises(UpstreamUnavailable):
        await make_adapter("openrouter", api_key=None).list_models()


@pytest.mark.parametrize("kind", ["gemini", "anthropic", "openai"])
async def test_listing_failures_are_typed_too(make_adapter, fake, kind):
    fake.state.push(kind, "malformed")
    with pytest.raises(MalformedReply):
        await make_adapter(kind).list_models()


async def test_total_deadline_bounds_a_slow_reply_even_within_the_read_timeout(make_adapter, fake):
    fake.state.push("openai", "slow_first_byte", seconds=1)
    adapter = make_adapter("openai", timeouts=Timeouts(connect=1, read=5, write=1, pool=1, total=0.3))
    with pytest.raises(Timeout):
        await adapter.chat(chat_request("openai"))
