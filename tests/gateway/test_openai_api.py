"""The OpenAI API on the gateway, used through the official `openai` SDK as its users use it."""

from __future__ import annotations

import httpx
import openai
import pytest

from analytics.models import UsageRecord
from tests.gateway.conftest import flush

FREE = {"model_id": "llama-3.1-8b-instant", "is_free": True, "free_rpm": 30}
PAID = {"model_id": "gpt-4o-mini", "input_price": "0.15", "output_price": "0.6",
        "capabilities": ["text-generation", "streaming", "function-calling", "vision"]}


@pytest.fixture
def catalog(provider):
    provider("groq", models=[FREE])
    provider("openai", models=[PAID, {"model_id": "text-embedding-3-small", "type": "embedding",
                                      "capabilities": ["embeddings"], "input_price": "0.02", "output_price": "0"}])


@pytest.fixture
def aclient(gateway, user_secret) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key=user_secret, max_retries=0)


def test_auto_routes_to_the_free_model_and_says_so(openai_client, catalog):
    raw = openai_client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    completion = raw.parse()

    assert completion.model == "groq/llama-3.1-8b-instant"
    assert completion.choices[0].message.role == "assistant" and completion.choices[0].message.content
    assert completion.usage.prompt_tokens > 0
    assert raw.headers["x-afmts-model"] == "groq/llama-3.1-8b-instant"
    assert raw.headers["x-afmts-provider"] == "groq"
    assert raw.headers["x-afmts-attempts"] == "1"
    assert raw.headers["x-request-id"]
    assert float(raw.headers["x-afmts-overhead-ms"]) < 1000


async def test_async_client_works_too(aclient, catalog):
    completion = await aclient.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    assert completion.model == "openai/gpt-4o-mini"


def test_a_bare_model_id_is_served_by_whoever_has_it(openai_client, catalog):
    assert openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]).model == "openai/gpt-4o-mini"


def test_streaming_yields_chunks_and_usage_when_asked(openai_client, catalog):
    stream = openai_client.chat.completions.create(
        model="free", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert all(c.model == "groq/llama-3.1-8b-instant" for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_streaming_without_include_usage_sends_no_usage_chunk(openai_client, catalog):
    chunks = list(openai_client.chat.completions.create(model="free", messages=[{"role": "user", "content": "hi"}], stream=True))

    assert all(c.choices for c in chunks)


def test_tools_route_to_a_model_that_can_call_them(openai_client, catalog):
    tools = [{"type": "function", "function": {"name": "multiply", "description": "Multiply",
                                               "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}]
    completion = openai_client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "What is 6 times 7?"}], tools=tools,
    )

    assert completion.model == "openai/gpt-4o-mini"  # the free model lacks function-calling
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "multiply" and completion.choices[0].finish_reason == "tool_calls"


def test_embeddings(openai_client, catalog):
    result = openai_client.embeddings.create(model="text-embedding-3-small", input=["one", "two"])

    assert len(result.data) == 2 and len(result.data[0].embedding) > 0
    assert result.model == "openai/text-embedding-3-small"


def test_legacy_completions(openai_client, catalog):
    result = openai_client.completions.create(model="free", prompt="Say hi", max_tokens=5)

    assert result.object == "text_completion" and result.choices[0].text


def test_models_lists_registry_models_policies_and_aliases(openai_client, catalog):
    ids = {m.id for m in openai_client.models.list()}

    assert {"groq/llama-3.1-8b-instant", "openai/gpt-4o-mini", "auto", "free", "cheap", "fast"} <= ids
    assert openai_client.models.retrieve("groq/llama-3.1-8b-instant").owned_by == "groq"


def test_unknown_model_is_a_404_in_openai_format(openai_client, catalog):
    with pytest.raises(openai.NotFoundError) as err:
        openai_client.chat.completions.create(model="nope/nothing", messages=[{"role": "user", "content": "x"}])

    assert err.value.body["code"] == "model_not_found" and err.value.body["param"] == "model"


def test_bad_key_and_bad_requests(gateway, catalog, user_secret):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway}/v1", api_key="afmts_wrong", max_retries=0).models.list()

    def post(body, key=user_secret):
        headers = {"authorization": f"Bearer {key}"} if key else {}
        payload = {"content": body} if isinstance(body, bytes) else {"json": body}
        return httpx.post(f"{gateway}/v1/chat/completions", headers=headers, timeout=5, **payload)

    missing = post({"model": "auto"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "messages"
    broken = post(b"{not json")
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"
    assert post({"model": "auto", "messages": "hi"}).status_code == 400
    assert post({"model": "auto", "messages": [{"role": "user", "content": "x"}]}, key=None).status_code == 401


def test_oversized_body_is_413(gateway, catalog, user_secret, settings):
    settings.AFMTS_GATEWAY_MAX_BODY_BYTES = 1000
    response = httpx.post(f"{gateway}/v1/chat/completions", headers={"authorization": f"Bearer {user_secret}"},
                          json={"model": "auto", "messages": [{"role": "user", "content": "x" * 5000}]}, timeout=5)

    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


def test_every_request_is_recorded_off_the_request_path(openai_client, catalog):
    openai_client.chat.completions.create(model="free", messages=[{"role": "user", "content": "hi"}])
    assert UsageRecord.objects.count() == 0  # not written on the request

    assert flush() == 1
    record = UsageRecord.objects.get()
    assert record.public_id == "groq/llama-3.1-8b-instant" and record.is_free
    assert record.tokens_in > 0 and record.tokens_out > 0 and record.attempts == 1 and record.status == "ok"
    assert record.cost == 0
    assert record.reference_model == "openai/gpt-4o-mini" and record.reference_cost > 0
