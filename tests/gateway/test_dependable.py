"""The gateway under the faults free tiers really have: hung and slow upstreams are abandoned in
time, a producing stream is never cut by the failover deadline, 503s say the truth and carry a
Retry-After only when waiting helps, a client's bad request never counts against a model, and a
bug answers in the endpoint's own envelope with its usage recorded."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from analytics.models import UsageRecord
from registry import services
from routing.gateway import runtime as runtime_module
from tests.gateway.conftest import FREE, HI, PAID, flush, served, stream_lines


def breaker(model_public_id: str) -> dict | None:
    live = runtime_module.runtime.live
    from registry.selectors import snapshot

    m = snapshot().by_public_id[model_public_id]
    s = live.breakers.states.get(f"model:{m.pk}")
    return None if s is None else s.as_dict(time.time())


def test_a_stream_without_a_first_chunk_in_time_fails_over(openai_client, two_providers, fake, settings):
    settings.AFMTS_GATEWAY_FIRST_BYTE_SECONDS = 0.5
    fake.state.push("groq", "slow_first_byte", seconds=5)
    started = time.monotonic()

    raw = openai_client.chat.completions.with_raw_response.create(model="auto", messages=HI, stream=True)
    chunks = list(raw.parse())

    assert served(raw) == ("openai/gpt-4o-mini", "2")
    assert chunks and time.monotonic() - started < 3


def test_a_producing_stream_outlives_the_failover_deadline(gateway, user_secret, provider, fake, settings):
    settings.AFMTS_GATEWAY_DEADLINE_SECONDS = 1.0
    provider("groq", models=[FREE])
    fake.state.push("groq", "ok", delay=0.3)

    lines = stream_lines(gateway, user_secret, model="free", messages=HI)

    assert lines[-1] == "data: [DONE]" and not any('"error"' in line for line in lines)
    assert len(lines) > 5  # more than a second of chunks
    flush()
    assert UsageRecord.objects.get().status == "ok"
    assert breaker("groq/llama-3.1-8b-instant") is None or breaker("groq/llama-3.1-8b-instant")["recentFailures"] == 0


def test_a_stream_that_goes_silent_ends_with_an_error_and_counts(gateway, user_secret, provider, fake, settings):
    settings.AFMTS_GATEWAY_IDLE_SECONDS = 0.5
    provider("groq", models=[FREE])
    fake.state.push("groq", "ok", delay=4.0)

    lines = stream_lines(gateway, user_secret, model="free", messages=HI)

    assert "stream_interrupted" in lines[-1]
    assert breaker("groq/llama-3.1-8b-instant")["recentFailures"] == 1


def test_context_too_long_on_a_stream_moves_to_a_larger_window(openai_client, provider, fake):
    provider("groq", models=[{**FREE, "context_window": 8192}])
    provider("openai", models=[{**PAID, "context_window": 128000}])
    fake.state.push("groq", "context_too_long")

    raw = openai_client.chat.completions.with_raw_response.create(model="auto", messages=HI, stream=True)
    chunks = list(raw.parse())

    assert served(raw) == ("openai/gpt-4o-mini", "2") and chunks


def test_a_client_bad_request_never_counts_against_the_model(openai_client, provider, fake):
    provider("groq", models=[FREE])
    for _ in range(8):
        fake.state.push("groq", "server_error", status=400)
        with pytest.raises(openai.BadRequestError):
            openai_client.chat.completions.create(model="groq/llama-3.1-8b-instant", messages=HI)

    assert breaker("groq/llama-3.1-8b-instant") is None
    openai_client.chat.completions.create(model="groq/llama-3.1-8b-instant", messages=HI)


def test_a_503_with_nothing_that_waiting_fixes_has_no_retry_after(openai_client, provider):
    from registry.models import AIModel

    provider("groq", models=[FREE])
    services.model_update(model=AIModel.objects.get(model_id=FREE["model_id"]), fields={"disabled": True})

    with pytest.raises(openai.APIStatusError) as err:
        openai_client.chat.completions.create(model="groq/llama-3.1-8b-instant", messages=HI)

    assert err.value.status_code == 503
    assert "retry-after" not in err.value.response.headers
    assert "disabled" in err.value.message


def test_a_503_while_the_quota_resets_says_when(openai_client, provider):
    provider("groq", models=[{**FREE, "free_rpm": 1}])
    openai_client.chat.completions.create(model="free", messages=HI)

    with pytest.raises(openai.APIStatusError) as err:
        openai_client.chat.completions.create(model="free", messages=HI)

    assert err.value.status_code == 503
    assert "free quota used up (requests/minute)" in err.value.message
    wait = int(err.value.response.headers["retry-after"])
    assert abs(wait - (60 - time.time() % 60)) <= 2


def test_a_bug_answers_in_the_endpoints_envelope_and_is_recorded(gateway, user_secret, provider, monkeypatch):
    provider("groq", models=[FREE])

    def broken(result, call):
        raise RuntimeError("a bug in shaping the reply")

    from routing.gateway import app

    monkeypatch.setattr(app, "_served", broken)  # a stand-in for any bug after the upstream answered
    response = httpx.post(f"{gateway}/v1/chat/completions", headers={"authorization": f"Bearer {user_secret}"},
                          json={"model": "free", "messages": HI}, timeout=10)

    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "internal_error"
    assert response.headers["x-request-id"] in response.json()["error"]["message"]
    flush()
    record = UsageRecord.objects.get()
    assert (record.status, record.http_status) == ("internal_error", 500)


def test_a_bug_on_the_anthropic_endpoint_answers_in_anthropics_envelope(gateway, user_secret, provider, monkeypatch):
    provider("groq", models=[FREE])
    from routing.gateway import anthropic

    def broken(result, call):
        raise RuntimeError("a bug")

    monkeypatch.setattr(anthropic, "from_openai_response", broken)
    response = httpx.post(f"{gateway}/v1/messages", headers={"x-api-key": user_secret},
                          json={"model": "free", "max_tokens": 16, "messages": HI}, timeout=10)

    assert response.status_code == 500
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "api_error"


def test_a_stream_cut_mid_way_goes_on_from_the_next_candidate(gateway, user_secret, two_providers, fake):
    fake.state.push("groq", "cut")

    lines = stream_lines(gateway, user_secret, model="auto", messages=HI)

    assert lines[-1] == "data: [DONE]" and not any('"error"' in line for line in lines)
    models = {__import__("json").loads(line[6:])["model"] for line in lines[:-1]}
    assert models == {"groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"}
    continued = fake.state.requests("openai")[-1]["body"]["messages"]
    assert continued[0] == HI[0] and continued[1]["role"] == "assistant" and continued[1]["content"]
    assert continued[2]["role"] == "user"  # asked to continue where the text stopped
    flush()
    record = UsageRecord.objects.get()
    assert (record.status, record.public_id, record.attempts) == ("ok", "openai/gpt-4o-mini", 2)
    assert breaker("groq/llama-3.1-8b-instant")["recentFailures"] == 1


def test_a_cut_tool_call_stream_is_not_continued(gateway, user_secret, provider, fake):
    caps = {"capabilities": ["text-generation", "streaming", "function-calling"]}
    provider("groq", models=[{**FREE, **caps}])
    provider("openai", models=[{**PAID, **caps}])
    fake.state.push("groq", "cut")
    tools = [{"type": "function", "function": {"name": "multiply", "parameters": {"type": "object", "properties": {}}}}]

    lines = stream_lines(gateway, user_secret, model="auto", messages=HI, tools=tools)

    assert any("tool_calls" in line for line in lines)  # half a tool call reached the client ...
    assert "stream_interrupted" in lines[-1]  # ... so the stream ends honestly
    assert fake.state.requests("openai") == []


# ------------------------------------------------------------------ the registry while the database is away


def _database_down_for_the_view(monkeypatch) -> list[int]:
    """The routing view's first query fails as an unreachable PostgreSQL does; returns the tries."""
    from django.db import OperationalError

    from registry.models import Provider

    tries: list[int] = []

    def down(*args, **kwargs):
        tries.append(1)
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(Provider.objects, "all", down)
    return tries


def test_a_view_that_cannot_be_rebuilt_leaves_the_last_one_serving(gateway, provider, user_secret, monkeypatch,
                                                                   settings):
    """The faults bench's PostgreSQL stop: a health write the database refused still marked the view
    stale, and every request then failed with a 500 trying to rebuild it."""
    from registry import version

    settings.AFMTS_REGISTRY_POLL_SECONDS = 60  # the watcher stays out of it
    monkeypatch.setattr(runtime_module.runtime, "_retry_at", 0.0)  # and its pause ends with the test
    provider("groq", models=[FREE])
    headers = {"Authorization": f"Bearer {user_secret}"}
    body = {"model": "free", "messages": HI}
    assert httpx.post(f"{gateway}/v1/chat/completions", headers=headers, json=body, timeout=10).status_code == 200
    tries = _database_down_for_the_view(monkeypatch)
    version.bump_local()  # this process wrote to the registry just before the database went away

    replies = [httpx.post(f"{gateway}/v1/chat/completions", headers=headers, json=body, timeout=10) for _ in range(5)]

    assert [r.status_code for r in replies] == [200] * 5, replies[-1].text
    assert replies[-1].headers["x-afmts-model"] == "groq/llama-3.1-8b-instant"
    assert len(tries) == 1  # one try a poll interval, not one per request


def test_no_view_at_all_is_a_503_that_says_so(gateway, provider, user_secret, monkeypatch):
    from registry import version

    provider("groq", models=[FREE])
    monkeypatch.setattr(runtime_module, "_view", version.Versioned(runtime_module._build_view))  # a fresh process
    _database_down_for_the_view(monkeypatch)

    reply = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {user_secret}"},
                       json={"model": "free", "messages": HI}, timeout=10)

    assert reply.status_code == 503, reply.text
    assert reply.json()["error"]["code"] == "registry_unavailable"


def test_a_bug_before_the_call_is_counted_though_it_has_no_usage_record(gateway, user_secret, provider, monkeypatch,
                                                                        client):
    from tests.analytics.test_metrics import delta, scrape

    provider("groq", models=[FREE])
    from routing.gateway import app

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in reading the request's requirements")

    monkeypatch.setattr(app, "requirements", broken)
    before, _ = scrape(client)
    response = httpx.post(f"{gateway}/v1/chat/completions", headers={"authorization": f"Bearer {user_secret}"},
                          json={"model": "free", "messages": HI}, timeout=10)
    after, _ = scrape(client)

    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    assert delta(after, before, "afmts_gateway_requests_total", endpoint="chat.completions", provider="none",
                 model="none", status="internal_error") == 1
