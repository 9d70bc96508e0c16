"""Routing under scripted faults from the fake providers: failover, 429s and quotas, circuit
breakers, streams that break, and errors that say why for each candidate."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from registry.models import Event
from tests.gateway.conftest import FREE, HI, PAID, flush, served


@pytest.mark.parametrize("scenario", ["server_error", "unavailable", "malformed", "cut", "auth"])
def test_a_failing_free_model_fails_over_to_the_next(openai_client, two_providers, fake, scenario):
    fake.state.push("groq", scenario)

    raw = openai_client.chat.completions.with_raw_response.create(model="auto", messages=HI)

    assert served(raw) == ("openai/gpt-4o-mini", "2")
    assert raw.parse().choices[0].message.content


def test_a_hanging_upstream_is_abandoned_after_the_attempt_timeout(openai_client, two_providers, fake):
    fake.state.push("groq", "hang", seconds=30)
    started = time.monotonic()

    raw = openai_client.chat.completions.with_raw_response.create(model="auto", messages=HI)

    assert served(raw) == ("openai/gpt-4o-mini", "2")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("shorter", ["total", "read"])
def test_the_upstream_timeouts_bound_an_attempt_when_they_are_the_shorter(openai_client, two_providers, fake,
                                                                          settings, shorter):
    settings.AFMTS_GATEWAY_ATTEMPT_SECONDS = 30.0
    settings.AFMTS_UPSTREAM_TIMEOUTS = {**settings.AFMTS_UPSTREAM_TIMEOUTS, "read": 20, "total": 20, shorter: 0.5}
    fake.state.push("groq", "hang", seconds=10)
    started = time.monotonic()

    raw = openai_client.chat.completions.with_raw_response.create(model="auto", messages=HI)

    assert served(raw) == ("openai/gpt-4o-mini", "2")
    assert time.monotonic() - started < 3


def test_429_blocks_the_model_until_retry_after_and_free_says_why(openai_client, two_providers, fake):
    fake.state.push("groq", "rate_limit", retry_after=7)
    assert served(openai_client.chat.completions.with_raw_response.create(model="auto", messages=HI)) == ("openai/gpt-4o-mini", "2")

    # The next request does not try it again: it is blocked until its Retry-After.
    assert served(openai_client.chat.completions.with_raw_response.create(model="auto", messages=HI)) == ("openai/gpt-4o-mini", "1")
    with pytest.raises(openai.APIStatusError) as err:
        openai_client.chat.completions.create(model="free", messages=HI)
    assert err.value.status_code == 503
    assert "groq/llama-3.1-8b-instant: rate-limited by the provider (429)" in err.value.message
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 8


def test_when_every_candidate_is_rate_limited_the_client_gets_429(openai_client, provider, fake):
    provider("groq", models=[FREE])
    fake.state.push("groq", "rate_limit", retry_after=5)

    with pytest.raises(openai.RateLimitError) as err:
        openai_client.chat.completions.create(model="groq/llama-3.1-8b-instant", messages=HI)

    assert int(err.value.response.headers["retry-after"]) == 5


def test_when_every_candidate_fails_the_error_names_each(openai_client, two_providers, fake):
    fake.state.push("groq", "server_error")
    fake.state.push("openai", "server_error")

    with pytest.raises(openai.APIStatusError) as err:
        openai_client.chat.completions.create(model="auto", messages=HI)

    assert err.value.status_code == 502
    assert "groq/llama-3.1-8b-instant" in err.value.message and "openai/gpt-4o-mini" in err.value.message


def test_a_bad_request_is_returned_at_once_with_the_upstreams_message(openai_client, two_providers, fake):
    fake.state.push("groq", "context_too_long")

    with pytest.raises(openai.BadRequestError) as err:
        openai_client.chat.completions.create(model="groq/llama-3.1-8b-instant", messages=HI)

    assert err.value.body["code"] == "context_length_exceeded"
    assert len(fake.state.requests("openai")) == 0


def test_a_context_too_long_moves_only_to_a_larger_window(openai_client, provider, fake):
    provider("groq", models=[{**FREE, "context_window": 8192}])
    provider("openai", models=[{**PAID, "context_window": 128000}])
    fake.state.push("groq", "context_too_long")

    raw = openai_client.chat.completions.with_raw_response.create(model="auto", messages=HI)

    assert served(raw) == ("openai/gpt-4o-mini", "2")


def test_the_prompt_size_rules_out_small_windows_before_sending(openai_client, provider):
    provider("groq", models=[{**FREE, "context_window": 1000}])
    provider("openai", models=[{**PAID, "context_window": 128000}])

    raw = openai_client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "word " * 2000}])

    assert served(raw) == ("openai/gpt-4o-mini", "1")


def test_repeated_failures_open_the_circuit_and_it_shows(openai_client, two_providers, fake, gateway, admin_key):
    for _ in range(5):  # five in a row at low traffic
        fake.state.push("groq", "server_error")
        openai_client.chat.completions.create(model="auto", messages=HI)

    raw = openai_client.chat.completions.with_raw_response.create(model="auto", messages=HI)
    assert served(raw) == ("openai/gpt-4o-mini", "1")  # the open circuit keeps groq out
    state = httpx.get(f"{gateway}/api/routing/state", headers={"authorization": f"Bearer {admin_key}"}).json()
    assert state["breakers"]["groq/llama-3.1-8b-instant"]["state"] == "open"
    flush()
    assert Event.objects.filter(event="circuit_opened").exists()


def test_a_stream_fails_over_before_its_first_chunk(openai_client, two_providers, fake):
    fake.state.push("groq", "server_error")

    raw = openai_client.chat.completions.with_raw_response.create(model="auto", messages=HI, stream=True)
    chunks = list(raw.parse())

    assert served(raw) == ("openai/gpt-4o-mini", "2")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_stream_cut_after_its_first_chunk_ends_with_an_error_event(gateway, user_secret, provider, fake):
    provider("groq", models=[FREE])
    fake.state.push("groq", "cut")

    with httpx.stream("POST", f"{gateway}/v1/chat/completions", headers={"authorization": f"Bearer {user_secret}"},
                      json={"model": "free", "messages": HI, "stream": True}, timeout=10) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]

    assert response.status_code == 200
    assert '"error"' in lines[-1] and "stream_interrupted" in lines[-1]
    assert len(lines) >= 2  # content came before the cut


def test_free_policy_with_nothing_free_is_a_clear_503(openai_client, provider):
    provider("openai", models=[PAID])

    with pytest.raises(openai.APIStatusError) as err:
        openai_client.chat.completions.create(model="free", messages=HI)

    assert err.value.status_code == 503 and "No free model can serve" in err.value.message
    assert "openai/gpt-4o-mini: not free" in err.value.message
    assert "retry-after" not in err.value.response.headers  # waiting cannot help: SDKs fail fast


def test_explain_ranks_without_sending(gateway, two_providers, user_secret, fake):
    body = {"model": "auto", "messages": HI}
    response = httpx.post(f"{gateway}/api/routing/explain", json=body, headers={"x-api-key": user_secret})

    assert response.status_code == 200
    ranked = response.json()["candidates"]
    assert [c["model"] for c in ranked] == ["groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"]
    assert ranked[0]["scoreParts"]["free"] == 1.0
    assert fake.state.requests() == []
