"""Pure translation: OpenAI-style requests into each provider's body, no I/O."""

from __future__ import annotations

import pytest

from registry.providers import ADAPTERS, adapter_class
from tests.routing.conftest import TOOLS

PNG = "data:image/png;base64,iVBORw0KGgo="
CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                 {"type": "image_url", "image_url": {"url": PNG}}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "multiply", "arguments": "{\"a\": 2, \"b\": 3}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "name": "multiply", "content": "6"},
]


def build(kind: str, **request) -> dict:
    return adapter_class(kind)(api_key="k").build_chat({"model": "m", "messages": CONVERSATION, **request})[2]


def test_anthropic_translates_images_tool_calls_and_tool_results():
    body = build("anthropic", tools=TOOLS, tool_choice="required", stop="END", temperature=1.7, user="u1")
    assert body["system"] == "You are terse."
    user, assistant, result = body["messages"]
    assert user["content"][1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                              "data": "iVBORw0KGgo="}}
    assert assistant["content"] == [{"type": "tool_use", "id": "call_1", "name": "multiply", "input": {"a": 2, "b": 3}}]
    assert result == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "6"}]}
    assert body["tools"][0]["input_schema"] == TOOLS[0]["function"]["parameters"]
    assert body["tool_choice"] == {"type": "any"}
    assert body["stop_sequences"] == ["END"] and body["temperature"] == 1.0 and body["metadata"] == {"user_id": "u1"}


def test_anthropic_merges_consecutive_tool_results_into_one_user_turn():
    messages = CONVERSATION[:3] + [{"role": "tool", "tool_call_id": "call_1", "content": "6"},
                                   {"role": "tool", "tool_call_id": "call_2", "content": "7"}]
    body = adapter_class("anthropic")().build_chat({"model": "m", "messages": messages})[2]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert len(body["messages"][-1]["content"]) == 2


def test_anthropic_named_tool_choice_and_parallel_off():
    body = build("anthropic", tools=TOOLS, tool_choice={"type": "function", "function": {"name": "multiply"}},
                 parallel_tool_calls=False)
    assert body["tool_choice"] == {"type": "tool", "name": "multiply", "disable_parallel_tool_use": True}


def test_anthropic_max_completion_tokens_wins_over_the_default():
    assert build("anthropic", max_completion_tokens=77)["max_tokens"] == 77


def test_gemini_translates_roles_images_and_function_responses_by_name():
    body = build("gemini", tools=TOOLS, tool_choice="auto", seed=3, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}})
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    user, model, result = body["contents"]
    assert user["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    assert model == {"role": "model", "parts": [{"functionCall": {"name": "multiply", "args": {"a": 2, "b": 3}}}]}
    assert result["parts"] == [{"functionResponse": {"name": "multiply", "response": {"result": 6}}}]
    assert body["tools"] == [{"functionDeclarations": [{"name": "multiply", "description": "Multiply two numbers.",
                                                        "parameters": TOOLS[0]["function"]["parameters"]}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert body["generationConfig"] == {"seed": 3, "responseMimeType": "application/json",
                                        "responseJsonSchema": {"type": "object"}}


def test_gemini_model_prefix_is_not_doubled():
    path = adapter_class("gemini")().build_chat({"model": "models/gemini-2.5-flash", "messages": []})[0]
    assert path == "/v1beta/models/gemini-2.5-flash:generateContent"


def test_ollama_translates_images_tool_calls_and_json_format():
    body = build("ollama", response_format={"type": "json_object"}, stop=["a", "b"], seed=1, top_p=0.5)
    system, user, assistant, tool = body["messages"]
    assert user["images"] == ["iVBORw0KGgo="] and user["content"] == "What is this?"
    assert assistant["tool_calls"] == [{"function": {"name": "multiply", "arguments": {"a": 2, "b": 3}}}]
    assert tool == {"role": "tool", "content": "6", "tool_name": "multiply"}
    assert body["format"] == "json" and body["stream"] is False
    assert body["options"] == {"top_p": 0.5, "seed": 1, "stop": ["a", "b"]}


@pytest.mark.parametrize("kind", ["openai", "groq", "together", "deepseek", "huggingface", "openrouter",
                                  "openai_compatible"])
def test_openai_compatible_kinds_pass_the_request_through(kind):
    body = build(kind, tools=TOOLS, temperature=0.3, seed=5, stream=True)
    assert body["messages"] == CONVERSATION and body["tools"] == TOOLS and body["seed"] == 5
    assert body["stream_options"] == {"include_usage": True}


def test_cerebras_drops_parameters_it_rejects():
    body = build("cerebras", frequency_penalty=0.5, presence_penalty=0.1, temperature=0.2)
    assert "frequency_penalty" not in body and "presence_penalty" not in body and body["temperature"] == 0.2


def test_non_streaming_body_has_no_stream_fields():
    body = build("openai", stream=False, stream_options={"include_usage": True})
    assert "stream" not in body and "stream_options" not in body


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
def test_credentials_go_where_the_provider_expects_them(kind):
    headers = adapter_class(kind)(api_key="secret").build_chat({"model": "m", "messages": []})[1]
    where = {"anthropic": "x-api-key", "gemini": "x-goog-api-key"}.get(kind, "authorization")
    assert "secret" in headers[where]
    assert "secret" not in repr(adapter_class(kind)(api_key="secret"))


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
def test_communication_schema_comes_from_the_adapter(kind):
    cls = adapter_class(kind)
    schema = cls.communication(cls.default_base_url, "some-model")
    assert schema["requestFormat"] == cls.request_format and schema["authMethod"] == cls.auth_method
    assert schema["endpoint"].startswith(cls.default_base_url)
    assert "{model}" not in schema["endpoint"]
