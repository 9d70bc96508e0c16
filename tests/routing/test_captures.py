"""Every real capture in ../shared/provider-captures parses to what SOURCES.md says it holds."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from registry.providers import adapter_class, tables
from registry.providers.base import assemble
from registry.providers.ratelimits import parse_rate_limit_headers


def listing(kind: str, payload, **kwargs):
    return adapter_class(kind)(**kwargs).parse_listing(payload)


# file, adapter kind, adapter kwargs, models, free  (SOURCES.md, "free by the provider's rule")
LISTINGS = [
    ("openrouter_models_2025-05-23.json", "openrouter", {}, 321, 68),
    ("openrouter_models_2025-04-23.json", "openrouter", {}, 302, 60),
    ("openrouter_models_supported_parameters_structured_outputs_2025-04-23.json", "openrouter", {}, 81, 4),
    ("groq_models_Rushi-Sh.json", "groq", {}, 16, 16),
    ("openai_models_2025-03.json", "openai", {}, 57, 0),
    ("mistral_models_8_from_rust_client_test.json", "mistral", {}, 8, 8),
    ("cerebras_models_data_array_2025-09-03.json", "cerebras", {}, 9, 9),
    ("nvidia_nim_models_2026-02-24.json", "openai_compatible", {"base_url": "https://integrate.api.nvidia.com"}, 186, 186),
    ("deepseek_models_curl_capture.json", "deepseek", {}, 2, 0),
    ("ollama_api_tags_real_capture_2024-04-30.json", "ollama", {}, 7, 7),
    ("ollama_api_tags_docs_example.json", "ollama", {}, 2, 2),
    ("gemini_models_v1beta_2026-08-05_page1.json", "gemini", {}, 50, None),
    ("gemini_models_v1beta_2026-03-10.json", "gemini", {}, 45, None),
]


@pytest.mark.parametrize(("name", "kind", "kwargs", "models", "free"), LISTINGS, ids=[row[0] for row in LISTINGS])
def test_every_listing_capture_parses_to_its_counts(listing_capture, name, kind, kwargs, models, free):
    parsed = listing(kind, listing_capture(name), **kwargs)
    assert parsed.skipped == 0
    assert len(parsed.models) == models
    if free is not None:
        assert len(parsed.free) == free


def test_every_listing_capture_has_a_test(captures):
    tested = {row[0] for row in LISTINGS} | {
        "huggingface_router_v1_models_entry_docs_example.json", "groq_free_tier_limits_table_Leyber91.json",
        "litellm_model_prices_and_context_window_subset.json", "openrouter_key_response_from_openrouter_crate.json",
        "ollama_api_show_docs_example.json5"}
    assert {p.name for p in (captures / "listings").iterdir()} <= tested


def test_openrouter_free_is_a_free_id_priced_zero_and_nothing_else(listing_capture):
    parsed = listing("openrouter", listing_capture("openrouter_models_2025-05-23.json")).by_id()
    zero = [m for m in parsed.values() if m.input_price == 0 and m.output_price == 0]
    assert len(zero) == 69
    assert not parsed["google/gemini-2.5-pro-exp-03-25"].is_free  # zero-priced, but no ":free"
    assert all(m.id.endswith(":free") for m in parsed.values() if m.is_free)
    assert all(m.quota_scope == "account" and m.quota["rpm"] == 20 and m.quota["rpd"] == 50
               for m in parsed.values() if m.is_free)


def test_openrouter_router_priced_minus_one_is_variable_not_free(listing_capture):
    auto = listing("openrouter", listing_capture("openrouter_models_2025-05-23.json")).by_id()["openrouter/auto"]
    assert auto.input_price is None and auto.output_price is None
    assert not auto.is_free
    assert auto.metadata["variable_price"] is True and auto.metadata["router"] is True


def test_openrouter_prices_per_token_strings_become_usd_per_million(listing_capture):
    opus = listing("openrouter", listing_capture("openrouter_models_2025-05-23.json")).by_id()["anthropic/claude-opus-4"]
    assert (opus.input_price, opus.output_price) == (Decimal("15"), Decimal("75"))
    assert opus.context_window == 200000 and opus.max_output_tokens == 32000
    assert "vision" in opus.capabilities and "function-calling" in opus.capabilities
    assert opus.metadata["pricing"]["image"] == "0.024"  # unknown price kinds kept as given


def test_openrouter_key_response_says_whether_the_account_is_on_the_free_tier(listing_capture):
    key = adapter_class("openrouter")().parse_key(listing_capture("openrouter_key_response_from_openrouter_crate.json"))
    assert key["is_free_tier"] is False
    assert key["rate_limit"] == {"requests": 50, "interval": "10s"}


@pytest.mark.parametrize(("name", "generate", "gemma", "paged"), [
    ("gemini_models_v1beta_2026-08-05_page1.json", 42, 2, True),
    ("gemini_models_v1beta_2026-03-10.json", 32, 6, False),
])
def test_gemini_listing_counts_generate_content_models_gemma_and_pages(listing_capture, name, generate, gemma, paged):
    adapter = adapter_class("gemini")()
    payload = listing_capture(name)
    parsed = adapter.parse_listing(payload)
    assert sum("generateContent" in m.metadata["supportedGenerationMethods"] for m in parsed.models) == generate
    assert sum(m.id.startswith("gemma") for m in parsed.models) == gemma
    assert all(not m.id.startswith("models/") for m in parsed.models)
    assert (adapter.next_page(payload) is not None) is paged
    flash = parsed.by_id().get("gemini-2.5-flash")
    if flash is not None:
        assert flash.is_free and flash.quota == {"rpm": 5, "rpd": 20, "tpm": 250000, "tpd": None}
        assert flash.context_window == 1048576 and flash.input_price is None


def test_gemini_embedding_models_are_typed_embedding(listing_capture):
    parsed = listing("gemini", listing_capture("gemini_models_v1beta_2026-08-05_page1.json")).by_id()
    assert parsed["gemini-embedding-001"].type == "embedding"
    assert parsed["imagen-4.0-generate-001"].type == "image"


def test_groq_whisper_models_are_audio_and_every_model_is_free(listing_capture):
    parsed = listing("groq", listing_capture("groq_models_Rushi-Sh.json"))
    assert sum(m.type == "audio" for m in parsed.models) == 3
    assert all(m.is_free for m in parsed.models)
    assert parsed.by_id()["llama-3.3-70b-versatile"].context_window == 32768


def test_groq_free_tier_table_matches_the_published_limits(listing_capture):
    for row in listing_capture("groq_free_tier_limits_table_Leyber91.json"):
        tier = tables.free_tier("groq", row["id"])
        assert tier is not None, row["id"]
        assert (tier.quota["rpm"], tier.quota["rpd"], tier.quota["tpm"], tier.quota["tpd"]) == (
            row["requestsPerMinute"], row["requestsPerDay"], row["tokensPerMinute"], row["tokensPerDay"]), row["id"]


def test_openai_listing_keeps_owned_by_and_prices_known_models_from_the_table(listing_capture):
    parsed = listing("openai", listing_capture("openai_models_2025-03.json")).by_id()
    assert {m.metadata["owned_by"] for m in parsed.values()} == {"system", "openai", "openai-internal"}
    assert (parsed["gpt-4o-mini-2024-07-18"].input_price, parsed["gpt-4o-mini-2024-07-18"].output_price) == (
        Decimal("0.15"), Decimal("0.6"))
    assert parsed["gpt-4o-realtime-preview-2024-12-17"].input_price is None  # not in the table: unknown, not $0
    assert parsed["text-embedding-3-small"].type == "embedding"


def test_mistral_listing_reads_capabilities_and_marks_the_experiment_plan_free(listing_capture):
    parsed = listing("mistral", listing_capture("mistral_models_8_from_rust_client_test.json"))
    assert sum("text-generation" in m.capabilities for m in parsed.models) == 7
    ocr = parsed.by_id()["mistral-ocr-latest"]
    assert "text-generation" not in ocr.capabilities
    large = parsed.by_id()["mistral-large-latest"]
    assert large.context_window == 131072 and "function-calling" in large.capabilities
    assert large.quota["rpm"] == 60 and large.quota["tpm"] == 500000 and large.quota_scope == "model"


def test_nvidia_nim_through_openai_compatible_is_free_at_forty_requests_a_minute(listing_capture):
    parsed = listing("openai_compatible", listing_capture("nvidia_nim_models_2026-02-24.json"),
                     base_url="https://integrate.api.nvidia.com")
    assert {m.quota["rpm"] for m in parsed.models} == {40}
    assert {m.metadata["created"] for m in parsed.models} == {735790403}


def test_deepseek_listing_without_created_is_priced_from_the_table(listing_capture):
    parsed = listing("deepseek", listing_capture("deepseek_models_curl_capture.json")).by_id()
    assert parsed["deepseek-chat"].input_price == Decimal("0.28")
    assert "reasoning" in parsed["deepseek-reasoner"].capabilities


def test_huggingface_router_entry_prices_the_cheapest_live_host(listing_capture):
    entry = listing_capture("huggingface_router_v1_models_entry_docs_example.json")
    parsed = listing("huggingface", {"object": "list", "data": [entry]})
    model = parsed.models[0]
    assert (model.input_price, model.output_price) == (Decimal("1.69"), Decimal("3.38"))
    assert model.context_window == 1048576 and not model.is_free
    assert len(model.metadata["providers"]) == 5


def test_ollama_models_are_local_free_without_quota(listing_capture):
    parsed = listing("ollama", listing_capture("ollama_api_tags_real_capture_2024-04-30.json"))
    assert all(m.is_free and m.free_reason == "local server" for m in parsed.models)
    assert all(set(m.quota.values()) == {None} for m in parsed.models)
    assert all(m.input_price == 0 for m in parsed.models)


def test_ollama_show_gives_context_window_and_capabilities(captures):
    text = (captures / "listings" / "ollama_api_show_docs_example.json5").read_text()
    text = re.sub(r"//[^\n]*", "", text)  # JSON5: comments,
    text = re.sub(r",(\s*[}\]])", r"\1", text)  # trailing commas,
    text = re.sub(r"^(\s*)([A-Za-z_]+):", r'\1"\2":', text, flags=re.M)  # bare keys,
    text = re.sub(r"'((?:[^'\\]|\\.)*)'", lambda m: json.dumps(m.group(1).encode().decode("unicode_escape")), text)
    show = adapter_class("ollama")().parse_show(json.loads(text))
    assert show["context_window"] == 8192
    assert "vision" in show["capabilities"]


def test_shipped_prices_agree_with_litellm_price_file(listing_capture):
    litellm = listing_capture("litellm_model_prices_and_context_window_subset.json")
    for kind, models in tables.prices()["providers"].items():
        for mid in models:
            ref = litellm.get(mid) or litellm[f"{kind}/{mid}"]
            price = tables.price(kind, mid)
            assert price.input == Decimal(repr(ref["input_cost_per_token"])) * 1_000_000, mid
            assert price.output == Decimal(repr(ref["output_cost_per_token"])) * 1_000_000, mid


# ------------------------------------------------------------------------------------------- chat
def replay(captures, kind: str, name: str, piece: int = 0) -> list[dict]:
    return adapter_class(kind)().parse_stream((captures / "chat" / name).read_bytes(), piece=piece)


CHATS = [
    ("openai", "openai_chat_completions_stream_tool_calls_2025-05-13_turn1.sse.txt", None,
     ("multiply", {"a": 1231, "b": 2331}), "tool_calls", (54, 20, 74)),
    ("openai", "openai_chat_completions_stream_tool_calls_2025-05-13_turn2.sse.txt",
     "The result of \\( 1231 \\times 2331 \\) is \\( 2,869,461 \\).", None, "stop", (87, 26, 113)),
    ("openrouter", "openrouter_chat_completions_stream_2025-08-06.sse.txt", "Pebbles and Skipper.", None, "stop",
     (17, 6, 23)),
    ("openrouter", "openrouter_chat_completions_stream_tool_calls_2025-08-06_turn1.sse.txt", None,
     ("llm_version", {}), "tool_calls", (48, 11, 59)),
    ("openrouter", "openrouter_chat_completions_stream_tool_calls_2025-08-06_turn2.sse.txt",
     "The current LLM version is 0.0+test.", None, "stop", (73, 14, 87)),
    ("anthropic", "anthropic_chat_stream_text_2026-02-17.sse.txt", "- Captain\n- Scoop", None, "stop", (17, 10, 27)),
    ("anthropic", "anthropic_chat_stream_tool_use_2026-04-05.sse.txt", None, ("pelican_name_generator", {}),
     "tool_calls", (543, 40, 583)),
    ("gemini", "gemini_chat_streamGenerateContent_response_2026-04-05.json", "Hello", None, "stop", (4, 28, 32)),
    ("gemini", "gemini_chat_streamGenerateContent_thinking_response_2026-08-05.json", "Scoop", None, "stop",
     (11, 293, 304)),
    ("ollama", "ollama_chat_stream_docs_example.ndjson", "The", None, "stop", (26, 282, 308)),
    ("ollama", "ollama_chat_stream_tools_docs_example.ndjson", None, ("get_weather", {"city": "Tokyo"}), "tool_calls",
     (169, 15, 184)),
]


@pytest.mark.parametrize(("kind", "name", "text", "tool", "finish", "tokens"), CHATS, ids=[row[1] for row in CHATS])
@pytest.mark.parametrize("piece", [0, 7])
def test_every_chat_capture_replays_to_its_text_tool_calls_usage_and_finish(captures, kind, name, text, tool,
                                                                            finish, tokens, piece):
    chunks = replay(captures, kind, name, piece)
    reply = assemble(chunks)
    message = reply["choices"][0]["message"]
    if text is not None:
        assert message["content"] == text
    if tool is not None:
        (call,) = message["tool_calls"]
        assert call["function"]["name"] == tool[0]
        assert json.loads(call["function"]["arguments"]) == tool[1]
        assert call["id"]
    assert reply["choices"][0]["finish_reason"] == finish
    use = chunks[-1]["usage"]  # the final chunk carries usage
    assert (use["prompt_tokens"], use["completion_tokens"], use["total_tokens"]) == tokens
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_every_chat_capture_has_a_test(captures):
    streams = {p.name for p in (captures / "chat").iterdir() if not p.name.endswith(("request.json", "headers.json"))}
    tested = {row[1] for row in CHATS} | {"ollama_chat_nostream_docs_example.response.json",
                                          "gemini_chat_streamGenerateContent_request_2026-04-05.json"}
    assert streams <= tested


def test_openrouter_usage_keeps_its_cost(captures):
    chunks = replay(captures, "openrouter", "openrouter_chat_completions_stream_2025-08-06.sse.txt")
    assert chunks[-1]["usage"]["cost"] == 0.0001025


def test_gemini_thoughts_become_reasoning_content_not_text(captures):
    reply = assemble(replay(captures, "gemini", "gemini_chat_streamGenerateContent_thinking_response_2026-08-05.json"))
    assert reply["choices"][0]["message"]["reasoning_content"].startswith("**Considering the Constraint**")
    assert reply["usage"]["completion_tokens_details"]["reasoning_tokens"] == 291


def test_ollama_non_streaming_reply_parses(captures):
    payload = json.loads((captures / "chat" / "ollama_chat_nostream_docs_example.response.json").read_text())
    reply = adapter_class("ollama")().parse_chat(payload)
    assert reply["choices"][0]["message"]["content"] == "Hello! How are you today?"
    assert reply["usage"] == {"prompt_tokens": 26, "completion_tokens": 298, "total_tokens": 324}


def openai_form(anthropic_body: dict) -> dict:
    messages = [{"role": m["role"], "content": "".join(b["text"] for b in m["content"])} for m in anthropic_body["messages"]]
    tools = [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                               "parameters": t["input_schema"]}} for t in anthropic_body.get("tools", [])]
    return {"model": anthropic_body["model"], "messages": messages, "max_tokens": anthropic_body["max_tokens"],
            "temperature": anthropic_body["temperature"], "stream": True, **({"tools": tools} if tools else {})}


@pytest.mark.parametrize("name", ["anthropic_chat_stream_text_2026-02-17.request.json",
                                  "anthropic_chat_stream_tool_use_2026-04-05.request.json"])
def test_anthropic_request_is_built_as_anthropic_received_it(captures, name):
    captured = json.loads((captures / "chat" / name).read_text())
    path, headers, body = adapter_class("anthropic")(api_key="k").build_chat(openai_form(captured))
    assert path == "/v1/messages" and headers["anthropic-version"] == "2023-06-01" and headers["x-api-key"] == "k"
    assert body == captured


@pytest.mark.parametrize("name", ["openai_chat_completions_stream_tool_calls_2025-05-13_turn1.request.json",
                                  "openai_chat_completions_stream_tool_calls_2025-05-13_turn2.request.json"])
def test_openai_request_passes_through_unchanged(captures, name):
    captured = json.loads((captures / "chat" / name).read_text())
    assert adapter_class("openai")().build_chat(captured)[2] == captured


def test_gemini_request_contents_are_built_as_gemini_received_them(captures):
    captured = json.loads((captures / "chat" / "gemini_chat_streamGenerateContent_request_2026-04-05.json").read_text())
    path, headers, body = adapter_class("gemini")(api_key="k").build_chat(
        {"model": "gemini-3-flash-preview", "messages": [{"role": "user", "content": "Say just hello"}], "stream": True})
    assert path == "/v1beta/models/gemini-3-flash-preview:streamGenerateContent"
    assert headers["x-goog-api-key"] == "k"
    assert body["contents"] == captured["contents"]


def test_openai_response_headers_give_remaining_requests_and_tokens(captures):
    headers = json.loads((captures / "chat" / "openai_chat_completions_stream_tool_calls_2025-05-13_turn1"
                                                 ".response_headers.json").read_text())["headers"]
    info = adapter_class("openai")().parse_rate_limit({k: v[0] for k, v in headers.items()})
    requests = info.window("requests", "minute")
    assert (requests.limit, requests.remaining, requests.reset) == (30000, 29999, 0.002)
    assert info.window("tokens", "minute").remaining == 149999993


def test_anthropic_response_headers_give_each_window(captures):
    headers = json.loads((captures / "chat" / "anthropic_chat_stream_text_2026-02-17.response_headers.json").read_text())
    flat = {k: v[0] for k, v in headers["headers"].items()}
    info = parse_rate_limit_headers(flat, now=1771371850.0)  # 2026-02-17T23:44:10Z, 1 s before the reset
    assert info.window("requests", "minute").remaining == 19999
    assert info.window("output-tokens", "minute").limit == 400000
    assert info.window("input-tokens", "minute").reset == pytest.approx(1.0)
