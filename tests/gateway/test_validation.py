"""Request bodies are checked against the OpenAI and Anthropic shapes before anything goes upstream:
a malformed body is a 400 in the endpoint's own envelope naming the field, nothing reaches a provider,
and no model is blamed. A body that passes translates for every adapter."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.providers import ADAPTERS, adapter_class
from registry.providers.http import Timeouts
from routing.gateway import anthropic, validate
from routing.gateway.engine import GatewayError
from routing.gateway.requests import requirements, upstream_body

FREE = {"model_id": "llama-3.1-8b-instant", "is_free": True, "latency_ms": 100, "reliability": 0.99}
TOOLS_CAPS = ["text-generation", "streaming", "function-calling", "vision"]
KINDS_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5-20251001", "gemini": "gemini-2.5-flash",
                "ollama": "llama3.2:latest", "mistral": "mistral-small-latest"}
TOOLS = [{"type": "function", "function": {
    "name": "multiply", "description": "Multiply two numbers.",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                   "required": ["a", "b"]}}}]
A_TOOLS = [{"name": "multiply", "description": "Multiply two integers.",
            "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                             "required": ["a", "b"]}}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def chat_body(model: str = "openai/gpt-4o-mini") -> dict[str, Any]:
    """A chat request using most of what the API defines, all valid."""
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use the tools."}]},
            {"role": "user", "name": "ann", "content": [
                {"type": "text", "text": "What is in this picture, and what is 6 times 7?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "multiply", "arguments": '{"a": 6, "b": 7}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ],
        "tools": TOOLS, "tool_choice": "auto", "parallel_tool_calls": True, "temperature": 0.5, "top_p": 1,
        "max_tokens": 64, "stop": ["\n\n"], "seed": 1, "user": "u-1", "n": 1, "presence_penalty": 0,
        "response_format": {"type": "text"}, "stream": False, "logit_bias": {"50256": -100},
        "x_vendor_field": {"anything": [1]},
    }


def messages_body(model: str = "openai/gpt-4o-mini") -> dict[str, Any]:
    """An Anthropic Messages request using most of what the API defines, all valid."""
    return {
        "model": model, "max_tokens": 64,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture, and what is 6 times 7?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "multiply", "signature": "sig"},
                {"type": "text", "text": "Let me compute."},
                {"type": "tool_use", "id": "toolu_1", "name": "multiply", "input": {"a": 6, "b": 7}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "42"}]},
                {"type": "text", "text": "Thanks."}]},
        ],
        "tools": A_TOOLS, "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u-1"}, "stop_sequences": ["\n\n"], "temperature": 0.5, "top_p": 1, "top_k": 5,
        "stream": False, "x_vendor_field": 1,
    }


def completion_body() -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "prompt": ["Say", "hello"], "max_tokens": 16, "temperature": 1,
            "stop": "\n", "echo": False, "logprobs": 0, "suffix": None, "stream": False}


def embedding_body() -> dict[str, Any]:
    return {"model": "openai/text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float", "dimensions": 8}


BODIES = {"/v1/chat/completions": chat_body, "/v1/completions": completion_body, "/v1/embeddings": embedding_body,
          "/v1/messages": messages_body}


@pytest.fixture
def catalog(provider):
    provider("groq", models=[FREE])
    provider("openai", models=[
        {"model_id": "gpt-4o-mini", "input_price": "0.15", "output_price": "0.6", "capabilities": TOOLS_CAPS},
        {"model_id": "text-embedding-3-small", "type": "embedding", "capabilities": ["embeddings"],
         "input_price": "0.02", "output_price": "0"}])


@pytest.fixture
def post(gateway, user_secret):
    with httpx.Client(base_url=gateway, headers={"authorization": f"Bearer {user_secret}"}, timeout=10) as client:
        yield lambda path, body: client.post(path, json=body)


def upstream_calls(fake) -> list[dict]:
    return [e for e in fake.state.requests() if e["method"] == "POST"]


def assert_envelope(path: str, response: httpx.Response) -> dict[str, Any]:
    """The endpoint's own JSON error shape; returns the inner error."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    if path == "/v1/messages":
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
        assert isinstance(body["error"]["message"], str) and isinstance(body["error"]["type"], str)
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert isinstance(body["error"]["message"], str) and isinstance(body["error"]["type"], str)
    return body["error"]


FOUND = [  # the bodies that gave text/plain 500s or went upstream, and the field each one names
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi", "tool_calls": 5}]}, "messages[0].tool_calls"),
    ("/v1/chat/completions", {"messages": [{"role": "assistant", "content": "x", "tool_calls": 5}]},
     "messages[0].tool_calls"),
    ("/v1/chat/completions", {"stream": True, "stream_options": "yes"}, "stream_options"),
    ("/v1/chat/completions", {"tools": TOOLS, "tool_choice": {"type": ["x"]}}, "tool_choice.type"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
     "messages[0].content[0].text"),
    ("/v1/messages", {"metadata": "x"}, "metadata"),
    ("/v1/messages", {"messages": [{"role": "user", "content": "Look:"},
                                   {"role": "user", "content": [{"type": "image", "source": "x"}]}]},
     "messages[1].content[0].source"),
    ("/v1/messages", {"tools": A_TOOLS, "tool_choice": {"type": ["x"]}}, "tool_choice.type"),
    ("/v1/messages", {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
     "messages[0].content[0].text"),
    ("/v1/messages", {"system": 5}, "system"),
]


@pytest.mark.parametrize(("path", "change", "param"), FOUND, ids=[f"{p}:{w}" for p, _, w in FOUND])
def test_a_malformed_body_is_a_400_naming_the_field_and_nothing_goes_upstream(post, fake, catalog, path, change, param):
    base = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    if path == "/v1/messages":
        base["max_tokens"] = 16

    response = post(path, {**base, **change})

    assert response.status_code == 400
    error = assert_envelope(path, response)
    assert error["type"] == "invalid_request_error"
    if path == "/v1/messages":
        assert error["message"].startswith(f"Invalid type for '{param}'")
    else:
        assert error["param"] == param and error["code"] == "invalid_type"
    assert upstream_calls(fake) == []


def test_a_clients_bad_request_never_counts_against_a_model(post, fake, catalog, gateway, user_secret):
    for _ in range(12):
        assert post("/v1/messages", {"model": "groq/llama-3.1-8b-instant", "max_tokens": 16, "system": 5,
                                     "messages": [{"role": "user", "content": "hi"}]}).status_code == 400

    state = httpx.get(f"{gateway}/api/routing/state", headers={"authorization": f"Bearer {user_secret}"}).json()
    assert state["breakers"] == {}
    assert upstream_calls(fake) == []
    good = post("/v1/messages", {"model": "groq/llama-3.1-8b-instant", "max_tokens": 16, "system": "Be brief.",
                                 "messages": [{"role": "user", "content": "hi"}]})
    assert good.status_code == 200 and good.json()["model"] == "groq/llama-3.1-8b-instant"


def test_explaining_a_malformed_body_is_no_500(gateway, catalog, user_secret):
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi", "tool_calls": 5}]}

    response = httpx.post(f"{gateway}/api/routing/explain", json=body, headers={"x-api-key": user_secret})

    assert response.status_code == 200 and response.json()["candidates"]


def test_missing_and_out_of_range_fields_name_the_field(post, fake, catalog):
    cases = [
        ("/v1/chat/completions", {"model": "auto"}, "messages", "missing_required_parameter"),
        ("/v1/chat/completions", {"model": "auto", "messages": []}, "messages", "invalid_value"),
        ("/v1/chat/completions", {"model": "auto", "messages": [{"role": "robot", "content": "x"}]},
         "messages[0].role", "invalid_value"),
        ("/v1/chat/completions", {"model": "auto", "messages": [{"role": "user"}]}, "messages[0].content",
         "missing_required_parameter"),
        ("/v1/chat/completions", {"model": "auto", "temperature": 3, "messages": [{"role": "user", "content": "x"}]},
         "temperature", "invalid_value"),
        ("/v1/chat/completions", {"model": "auto", "stream": "yes", "messages": [{"role": "user", "content": "x"}]},
         "stream", "invalid_type"),
        ("/v1/chat/completions", {"model": "auto", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]},
         "messages[0].tool_calls[0].function.arguments", "invalid_value"),
        ("/v1/completions", {"model": "auto", "prompt": [1, 2]}, "prompt[0]", "invalid_type"),
        ("/v1/embeddings", {"model": "auto", "input": ["a", 5]}, "input[1]", "invalid_type"),
        ("/v1/embeddings", {"model": "auto", "input": "x", "dimensions": 0}, "dimensions", "invalid_value"),
    ]
    for path, body, param, code in cases:
        response = post(path, body)
        assert response.status_code == 400, (body, response.text)
        error = assert_envelope(path, response)
        assert (error["param"], error["code"]) == (param, code), body
    hot = post("/v1/messages", {"model": "auto", "max_tokens": 5, "temperature": 1.5,
                                "messages": [{"role": "user", "content": "x"}]})
    assert hot.status_code == 400 and "'temperature'" in assert_envelope("/v1/messages", hot)["message"]
    document = post("/v1/messages", {"model": "auto", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "document", "source": {}}]}]})
    assert document.status_code == 400
    assert "'messages[0].content[0].type'" in assert_envelope("/v1/messages", document)["message"]
    assert upstream_calls(fake) == []


@pytest.mark.parametrize("kind", sorted(KINDS_MODELS))
def test_rich_valid_bodies_are_served_through_every_kind_of_adapter(post, fake, provider, gateway, kind):
    provider(kind, models=[{"model_id": KINDS_MODELS[kind], "capabilities": TOOLS_CAPS, "input_price": "1",
                            "output_price": "1"}])
    model = f"{kind.replace('_', '-')}/{KINDS_MODELS[kind]}"

    chat = post("/v1/chat/completions", chat_body(model))
    streamed = post("/v1/chat/completions", {**chat_body(model), "stream": True,
                                             "stream_options": {"include_usage": True}})
    message = post("/v1/messages", messages_body(model))

    assert chat.status_code == 200, chat.text
    assert chat.json()["model"] == model
    assert streamed.status_code == 200 and "data: [DONE]" in streamed.text
    assert message.status_code == 200, message.text
    assert message.json()["type"] == "message"


# ------------------------------------------------------------------------------------------- fuzzing

WRONG = [5, -1.5, "x", True, None, [], {}, [5], {"x": 5}]
FREE_FORM = {"parameters", "input_schema", "schema", "x_vendor_field", "cache_control", "logit_bias"}


def paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every field path in a body, not descending into free-form objects (JSON schemas)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            if key not in FREE_FORM:
                yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield (*prefix, i)
            yield from paths(item, (*prefix, i))


def replaced(body: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def mutations() -> Iterator[tuple[str, dict[str, Any]]]:
    for endpoint, make in BODIES.items():
        base = make()
        for path in paths(base):
            for value in WRONG:
                yield endpoint, replaced(base, path, value)


def test_every_known_field_of_the_wrong_type_gets_a_json_error_never_a_5xx(post, fake, catalog):
    seen = 0
    for endpoint, body in mutations():
        response = post(endpoint, body)
        seen += 1
        assert response.status_code < 500, (endpoint, body, response.text)
        if response.status_code != 200:
            assert_envelope(endpoint, response)
    assert seen > 1000


# Any JSON value, with the API's own keys and type names likely, so deep shapes come up often.
KEYS = st.sampled_from(["type", "text", "role", "content", "function", "name", "arguments", "id", "source", "url",
                        "image_url", "tool_calls", "input", "data", "media_type", "json_schema", "schema"])
WORDS = st.sampled_from(["function", "text", "image_url", "image", "base64", "url", "tool_use", "tool_result",
                         "user", "assistant", "tool", "system", "json_schema", "auto", "{}", "x"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-3, 3, allow_nan=False) | WORDS | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS | st.text(max_size=3), inner, max_size=4),
    max_leaves=12,
)
CASES = [(endpoint, path) for endpoint, make in BODIES.items() for path in paths(make())]
# database=None below: no example database left in the working tree; a failure prints its example.


def translate(endpoint: str, body: dict[str, Any]) -> None:
    """What the gateway does with a body after validation, through every adapter's request builder."""
    timeouts = Timeouts(connect=1, read=1, write=1, pool=1, total=1)
    adapters = [adapter_class(kind)(base_url="http://127.0.0.1:9", api_key="k", timeouts=timeouts) for kind in ADAPTERS]
    if endpoint == "/v1/embeddings":
        requirements(body, {}, kind="embedding")
        for adapter in adapters:
            if adapter.embeddings_path:
                adapter.build_embed({**upstream_body(body), "model": "m"})
        return
    if endpoint == "/v1/messages":
        body = anthropic.to_openai_request(body)
        validate.chat(body)  # the translation is itself a valid OpenAI request
    elif endpoint == "/v1/completions":
        prompt = body["prompt"]
        body = {**body, "messages": [{"role": "user", "content": prompt if isinstance(prompt, str) else "\n".join(prompt)}]}
    requirements(body, {}, kind="chat")
    for adapter in adapters:
        for stream in (False, True):
            path, headers, sent = adapter.build_chat({**upstream_body(body), "model": "m", "stream": stream})
            json.dumps(sent)


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), value=JSON)
def test_a_body_that_passes_validation_translates_for_every_adapter(case, value):
    endpoint, path = case
    body = replaced(BODIES[endpoint](), path, value)
    check = {"/v1/chat/completions": validate.chat, "/v1/completions": validate.completion,
             "/v1/embeddings": validate.embedding, "/v1/messages": validate.messages}[endpoint]
    try:
        check(body)
    except GatewayError as exc:
        assert exc.status == 400 and exc.param and exc.code
        return
    translate(endpoint, body)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), value=JSON)
def test_random_values_anywhere_get_a_json_answer_never_a_5xx(post, fake, catalog, case, value):
    endpoint, path = case
    response = post(endpoint, replaced(BODIES[endpoint](), path, value))

    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert_envelope(endpoint, response)
