"""Chat, streaming, tool calls and embeddings for every adapter, over real HTTP to the fake providers."""

from __future__ import annotations

import json
import time

import pytest

from registry.providers.base import assemble
from registry.providers.errors import BadRequest
from tests.routing.conftest import EMBED_MODEL, KINDS, MODEL, TOOLS, chat_request


@pytest.mark.parametrize("kind", KINDS)
async def test_chat_round_trip_returns_an_openai_completion_with_usage(make_adapter, kind):
    reply = await make_adapter(kind).chat(chat_request(kind))
    assert reply["object"] == "chat.completion"
    (choice,) = reply["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("Hello from the fake")
    assert choice["finish_reason"] == "stop"
    use = reply["usage"]
    assert use["prompt_tokens"] > 0 and use["completion_tokens"] > 0
    assert use["total_tokens"] == use["prompt_tokens"] + use["completion_tokens"]


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_yields_chunks_in_order_and_ends_with_usage(make_adapter, kind):
    adapter = make_adapter(kind)
    chunks = [c async for c in adapter.stream(chat_request(kind))]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    reply = assemble(chunks)
    text = reply["choices"][0]["message"]["content"]
    assert text.startswith("Hello from the fake") and "You said:" in text
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert all(c.get("usage") is None for c in chunks[:-1])
    whole = (await adapter.chat(chat_request(kind)))["choices"][0]["message"]["content"]
    assert text == whole


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_is_incremental_first_chunk_arrives_before_the_last_is_sent(make_adapter, fake, kind):
    fake.state.chunk_delay = 0.02
    adapter = make_adapter(kind)
    arrivals = []
    async for _ in adapter.stream(chat_request(kind)):
        arrivals.append(time.monotonic())
    (seen,) = fake.state.requests(kind)
    assert arrivals[0] < seen["t_last_frame"] - 0.1  # at least five pauses of 20 ms still to come
    assert arrivals == sorted(arrivals)


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_calls_come_back_as_openai_tool_calls(make_adapter, kind):
    reply = await make_adapter(kind).chat(chat_request(kind, tools=TOOLS))
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == "multiply"
    assert json.loads(call["function"]["arguments"]) == {"a": 2, "b": 2}


@pytest.mark.parametrize("kind", KINDS)
async def test_streamed_tool_calls_assemble_by_index(make_adapter, kind):
    chunks = [c async for c in make_adapter(kind).stream(chat_request(kind, tools=TOOLS))]
    reply = assemble(chunks)
    (call,) = reply["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "multiply" and json.loads(call["function"]["arguments"]) == {"a": 2, "b": 2}
    assert reply["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] is not None


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_result_turn_gets_a_text_answer(make_adapter, kind):
    first = await make_adapter(kind).chat(chat_request(kind, tools=TOOLS))
    call = first["choices"][0]["message"]["tool_calls"][0]
    request = chat_request(kind, tools=TOOLS)
    request["messages"] += [{"role": "assistant", "content": None, "tool_calls": [call]},
                            {"role": "tool", "tool_call_id": call["id"], "name": "multiply", "content": "4"}]
    reply = await make_adapter(kind).chat(request)
    assert reply["choices"][0]["message"]["content"].endswith("The tool answered.")


@pytest.mark.parametrize("kind", KINDS)
async def test_max_tokens_cuts_the_reply_with_finish_reason_length(make_adapter, kind):
    reply = await make_adapter(kind).chat(chat_request(kind, max_tokens=3))
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("kind", sorted(EMBED_MODEL))
async def test_embeddings_return_one_vector_per_input(make_adapter, kind):
    reply = await make_adapter(kind).embed({"model": EMBED_MODEL[kind], "input": ["alpha", "beta gamma"]})
    assert reply["object"] == "list"
    assert [d["index"] for d in reply["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 8 for d in reply["data"])


@pytest.mark.parametrize("kind", ["anthropic", "cerebras", "deepseek", "huggingface"])
async def test_embeddings_where_the_provider_has_none_are_a_bad_request(make_adapter, kind):
    with pytest.raises(BadRequest):
        await make_adapter(kind).embed({"model": MODEL[kind], "input": "x"})


async def test_anthropic_gets_system_apart_and_a_required_max_tokens(make_adapter, fake):
    await make_adapter("anthropic").chat(chat_request("anthropic"))
    (seen,) = fake.state.requests("anthropic")
    assert seen["body"]["system"] == "Be brief."
    assert seen["body"]["max_tokens"] == 4096
    assert [m["role"] for m in seen["body"]["messages"]] == ["user"]
    assert seen["headers"]["anthropic-version"] == "2023-06-01"


async def test_gemini_gets_system_instruction_and_generation_config(make_adapter, fake):
    await make_adapter("gemini").chat(chat_request("gemini", temperature=0.2, max_tokens=50, stop="END"))
    (seen,) = fake.state.requests("gemini")
    assert seen["path"].endswith("/models/gemini-2.5-flash:generateContent")
    assert seen["body"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert seen["body"]["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 50, "stopSequences": ["END"]}


async def test_ollama_gets_options_and_streams_ndjson(make_adapter, fake):
    chunks = [c async for c in make_adapter("ollama").stream(chat_request("ollama", temperature=0.1, max_tokens=64))]
    (seen,) = fake.state.requests("ollama")
    assert seen["body"]["options"] == {"temperature": 0.1, "num_predict": 64}
    assert seen["body"]["stream"] is True
    assert chunks[-1]["usage"]["prompt_tokens"] > 0


async def test_openai_style_streams_always_ask_for_usage(make_adapter, fake):
    [c async for c in make_adapter("groq").stream(chat_request("groq"))]
    (seen,) = fake.state.requests("groq")
    assert seen["body"]["stream_options"] == {"include_usage": True}


async def test_mistral_gets_its_own_parameter_names(make_adapter, fake):
    await make_adapter("mistral").chat(chat_request("mistral", seed=7, tools=TOOLS, tool_choice="required"))
    (seen,) = fake.state.requests("mistral")
    assert seen["body"]["random_seed"] == 7 and "seed" not in seen["body"]
    assert seen["body"]["tool_choice"] == "any"


async def test_last_rate_limit_is_kept_and_passed_to_the_observer(make_adapter, fake):
    seen = []
    adapter = make_adapter("groq", on_rate_limit=lambda a, info: seen.append(info))
    fake.state.quota["groq"] = {"remaining_requests": 1}
    await adapter.chat(chat_request("groq"))
    assert adapter.last_rate_limit.window("requests", "day").remaining == 1
    assert adapter.last_rate_limit.window("requests", "day").reset == pytest.approx(179.56)
    assert seen and seen[-1] is adapter.last_rate_limit


async def test_shared_client_is_pooled_per_provider(make_adapter):
    one, two = make_adapter("openai"), make_adapter("openai")
    assert one.client is two.client
    assert make_adapter("groq").client is not one.client
