"""Anthropic's Messages API on the gateway, through the official `anthropic` SDK."""

from __future__ import annotations

import anthropic
import httpx
import pytest

FREE = {"model_id": "llama-3.1-8b-instant", "is_free": True, "latency_ms": 100, "reliability": 0.99}
PAID = {"model_id": "gpt-4o-mini", "input_price": "0.15", "output_price": "0.6",
        "capabilities": ["text-generation", "streaming", "function-calling"]}
TOOLS = [{"name": "multiply", "description": "Multiply two integers.",
          "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                           "required": ["a", "b"]}}]


@pytest.fixture
def catalog(provider):
    provider("groq", models=[FREE])
    provider("openai", models=[PAID])


@pytest.fixture
def client(gateway, user_secret) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway, api_key=user_secret, max_retries=0)


def test_messages_create_with_a_system_prompt(client, catalog):
    message = client.messages.create(
        model="free", max_tokens=64, system="Be brief.", messages=[{"role": "user", "content": "Hello"}],
    )

    assert message.type == "message" and message.role == "assistant"
    assert message.model == "groq/llama-3.1-8b-instant"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


async def test_async_messages(gateway, user_secret, catalog):
    client = anthropic.AsyncAnthropic(base_url=gateway, api_key=user_secret, max_retries=0)

    message = await client.messages.create(model="openai/gpt-4o-mini", max_tokens=32, messages=[{"role": "user", "content": "Hi"}])

    assert message.model == "openai/gpt-4o-mini"


def test_streaming_text_with_the_sdk_helper(client, catalog):
    with client.messages.stream(model="free", max_tokens=64, messages=[{"role": "user", "content": "Hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text and final.content[0].text == text
    assert final.usage.output_tokens > 0


def test_tool_use_round_trip(client, catalog):
    first = client.messages.create(
        model="auto", max_tokens=128, tools=TOOLS, messages=[{"role": "user", "content": "What is 6 times 7?"}],
    )

    assert first.model == "openai/gpt-4o-mini" and first.stop_reason == "tool_use"
    use = next(block for block in first.content if block.type == "tool_use")
    assert use.name == "multiply" and isinstance(use.input, dict)

    second = client.messages.create(
        model="auto", max_tokens=128, tools=TOOLS,
        messages=[
            {"role": "user", "content": "What is 6 times 7?"},
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "42"}]},
        ],
    )
    assert second.content[0].type == "text"


def test_streaming_tool_use_events(client, catalog):
    with client.messages.stream(model="auto", max_tokens=128, tools=TOOLS,
                                messages=[{"role": "user", "content": "What is 6 times 7?"}]) as stream:
        final = stream.get_final_message()

    use = next(block for block in final.content if block.type == "tool_use")
    assert use.name == "multiply" and final.stop_reason == "tool_use"


def test_errors_come_in_anthropics_format(gateway, user_secret, catalog):
    client = anthropic.Anthropic(base_url=gateway, api_key=user_secret, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.create(model="nope/none", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert err.value.body["type"] == "error" and err.value.body["error"]["type"] == "not_found_error"

    missing = httpx.post(f"{gateway}/v1/messages", headers={"x-api-key": user_secret},
                         json={"model": "free", "messages": [{"role": "user", "content": "x"}]})
    assert missing.status_code == 400 and "max_tokens" in missing.json()["error"]["message"]

    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gateway, api_key="afmts_bad", max_retries=0).messages.create(
            model="free", max_tokens=5, messages=[{"role": "user", "content": "x"}])
