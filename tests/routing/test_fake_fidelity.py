"""The fake providers speak what the real ones do: same keys, value types and stream framing as the
real captures of the same provider (so the fake cannot simply share the adapters' misreadings)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from registry.fakes import KEY
from tests.routing.conftest import MODEL, TOOLS

# Keys the fake sends that a capture lacks, each documented in wire_formats.md or the provider's docs.
EXTRA = {
    "openrouter": {"canonical_slug", "default_parameters", "expiration_date"},  # newer listing fields
    "groq": {"max_completion_tokens"},  # newer Groq listing field
    "openai_compatible": {"max_model_len"},  # vLLM's listing field (the capture is NVIDIA NIM)
    "ollama": {"done_reason"},  # in the docs' tool-call example, not in the older plain one
}


def kinds_of(value) -> str:
    return "null" if value is None else "number" if isinstance(value, int | float) and not isinstance(value, bool) \
        else type(value).__name__


def assert_like(fake: dict, real: list[dict], where: str, extra: set[str] = frozenset()) -> None:
    """Every key of `fake` appears in some `real` record with the same JSON type (null matches anything)."""
    known: dict[str, set[str]] = {}
    for record in real:
        for key, value in record.items():
            known.setdefault(key, set()).add(kinds_of(value))
    for key, value in fake.items():
        if key in extra:
            continue
        assert key in known, f"{where}: the fake sends {key!r}, the real provider does not"
        kind = kinds_of(value)
        assert kind == "null" or kind in known[key] or known[key] == {"null"}, \
            f"{where}.{key}: fake {kind}, real {known[key]}"


def get(url: str, **kwargs) -> httpx.Response:
    return httpx.get(url, headers={"authorization": f"Bearer {KEY}", "x-api-key": KEY, "x-goog-api-key": KEY},
                     timeout=5, **kwargs)


def post(url: str, body: dict, **kwargs) -> httpx.Response:
    return httpx.post(url, json=body, headers={"authorization": f"Bearer {KEY}", "x-api-key": KEY,
                                               "x-goog-api-key": KEY, "anthropic-version": "2023-06-01"},
                      timeout=5, **kwargs)


LISTINGS = [
    ("openrouter", "/v1/models", "openrouter_models_2025-05-23.json", "data"),
    ("openai", "/v1/models", "openai_models_2025-03.json", "data"),
    ("groq", "/v1/models", "groq_models_Rushi-Sh.json", "data"),
    ("mistral", "/v1/models", "mistral_models_8_from_rust_client_test.json", "data"),
    ("cerebras", "/v1/models", "cerebras_models_data_array_2025-09-03.json", None),
    ("deepseek", "/models", "deepseek_models_curl_capture.json", "data"),
    ("gemini", "/v1beta/models", "gemini_models_v1beta_2026-08-05_page1.json", "models"),
    ("ollama", "/api/tags", "ollama_api_tags_real_capture_2024-04-30.json", "models"),
    ("openai_compatible", "/v1/models", "nvidia_nim_models_2026-02-24.json", "data"),
]


@pytest.mark.parametrize(("kind", "path", "capture", "envelope"), LISTINGS, ids=[row[0] for row in LISTINGS])
def test_fake_listing_has_the_keys_and_types_of_the_real_one(fake, listing_capture, kind, path, capture, envelope):
    real = listing_capture(capture)
    body = get(fake.base_url(kind) + path).json()
    real_items = real[envelope] if envelope else real
    fake_items = body[envelope or "data"]
    if envelope and isinstance(real, dict):
        assert set(body) <= set(real) | {"nextPageToken"}, f"{kind} envelope"
    for item in fake_items:
        assert_like(item, real_items, kind, EXTRA.get(kind, set()))
        for nested in ("architecture", "pricing", "top_provider", "capabilities", "details"):
            if isinstance(item.get(nested), dict):
                assert_like(item[nested], [r[nested] for r in real_items if isinstance(r.get(nested), dict)],
                            f"{kind}.{nested}")


def test_fake_huggingface_listing_matches_the_documented_entry(fake, listing_capture):
    real = listing_capture("huggingface_router_v1_models_entry_docs_example.json")
    for item in get(fake.base_url("huggingface") + "/v1/models").json()["data"]:
        assert_like(item, [real], "huggingface")
        for host in item["providers"]:
            assert_like(host, real["providers"], "huggingface.providers")


def test_fake_gemini_listing_pages_with_next_page_token_like_the_real_one(fake, listing_capture):
    first = get(fake.base_url("gemini") + "/v1beta/models").json()
    assert isinstance(first["nextPageToken"], str)
    assert isinstance(listing_capture("gemini_models_v1beta_2026-08-05_page1.json")["nextPageToken"], str)
    second = get(fake.base_url("gemini") + "/v1beta/models", params={"pageToken": first["nextPageToken"]}).json()
    assert "nextPageToken" not in second and second["models"]


def sse_frames(text: str) -> list[list[str]]:
    return [block.split("\n") for block in text.replace("\r\n", "\n").split("\n\n") if block.strip()]


def sse_data(text: str) -> list[dict]:
    out = []
    for frame in sse_frames(text):
        for line in frame:
            if line.startswith("data: ") and line != "data: [DONE]":
                out.append(json.loads(line[6:]))
    return out


@pytest.mark.parametrize(("kind", "capture", "tools"), [
    ("openai", "openai_chat_completions_stream_tool_calls_2025-05-13_turn2", False),
    ("openai", "openai_chat_completions_stream_tool_calls_2025-05-13_turn1", True),
    ("openrouter", "openrouter_chat_completions_stream_2025-08-06", False),
    ("openrouter", "openrouter_chat_completions_stream_tool_calls_2025-08-06_turn1", True),
])
def test_fake_openai_style_stream_has_the_real_framing_and_chunk_keys(fake, captures, kind, capture, tools):
    real_text = (captures / "chat" / f"{capture}.sse.txt").read_text()
    request = {"model": MODEL[kind], "messages": [{"role": "user", "content": "hi"}], "stream": True,
               "stream_options": {"include_usage": True}, **({"tools": TOOLS} if tools else {})}
    response = post(fake.base_url(kind) + "/v1/chat/completions", request)
    text = response.text
    # framing: data lines and blank lines only (OpenRouter adds ": comment" keep-alives), [DONE] last
    for frames in (sse_frames(real_text), sse_frames(text)):
        assert all(line.startswith(("data: ", ":")) for frame in frames for line in frame)
        assert frames[-1] == ["data: [DONE]"]
    assert real_text.startswith(": OPENROUTER") == text.startswith(": OPENROUTER")
    headers = json.loads((captures / "chat" / f"{capture}.response_headers.json").read_text())["headers"] \
        if (captures / "chat" / f"{capture}.response_headers.json").exists() else None
    if headers:
        assert response.headers["content-type"] == headers["Content-Type"][0]
    real, ours = sse_data(real_text), sse_data(text)
    for chunk in ours:
        assert_like(chunk, real, f"{kind} chunk")
        for choice in chunk["choices"]:
            assert_like(choice, [c for r in real for c in r["choices"]], f"{kind} choice")
            assert_like(choice["delta"], [c["delta"] for r in real for c in r["choices"]], f"{kind} delta")
    real_usage = [r["usage"] for r in real if r.get("usage")]
    our_usage = [r["usage"] for r in ours if r.get("usage")]
    assert len(our_usage) == len(real_usage) == 1
    assert set(our_usage[0]) == set(real_usage[0])
    # where the usage chunk sits: OpenAI's has no choices, OpenRouter's has one with an empty delta
    assert bool([r for r in real if r.get("usage")][0]["choices"]) == bool([r for r in ours if r.get("usage")][0]["choices"])


@pytest.mark.parametrize(("capture", "tools"), [("anthropic_chat_stream_text_2026-02-17", False),
                                                ("anthropic_chat_stream_tool_use_2026-04-05", True)])
def test_fake_anthropic_stream_has_the_real_event_sequence_and_keys(fake, captures, capture, tools):
    real_text = (captures / "chat" / f"{capture}.sse.txt").read_text()
    request = {"model": MODEL["anthropic"], "max_tokens": 100, "stream": True,
               "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
               **({"tools": [{"name": "multiply", "description": "", "input_schema": TOOLS[0]["function"]["parameters"]}]}
                  if tools else {})}
    response = post(fake.base_url("anthropic") + "/v1/messages", request)
    real_headers = json.loads((captures / "chat" / f"{capture}.response_headers.json").read_text())["headers"]
    assert response.headers["content-type"] == real_headers["Content-Type"][0]

    def events(text: str) -> list[tuple[str, dict]]:
        out = []
        for frame in sse_frames(text):
            assert frame[0].startswith("event: ") and frame[1].startswith("data: ") and len(frame) == 2
            out.append((frame[0][7:], json.loads(frame[1][6:])))
        return out

    real, ours = events(real_text), events(response.text)

    def pattern(seq: list[tuple[str, dict]]) -> str:
        return re.sub(r"(content_block_delta )+", "content_block_delta+ ", " ".join(e for e, _ in seq) + " ")

    assert pattern(ours) == pattern(real)
    assert all(event == data["type"] for event, data in ours)
    real_by, ours_by = {}, {}
    for event, data in real:
        real_by.setdefault(event, []).append(data)
    for event, data in ours:
        ours_by.setdefault(event, []).append(data)
    for event, datas in ours_by.items():
        for data in datas:
            assert_like(data, real_by[event], event)
    assert_like(ours_by["message_start"][0]["message"], [d["message"] for d in real_by["message_start"]], "message")
    assert set(ours_by["message_start"][0]["message"]["usage"]) == set(real_by["message_start"][0]["message"]["usage"])
    assert set(ours_by["message_delta"][0]["usage"]) == set(real_by["message_delta"][0]["usage"])
    assert_like(ours_by["content_block_start"][0]["content_block"],
                [d["content_block"] for d in real_by["content_block_start"]], "content_block")
    assert any(line.endswith(" ") for line in response.text.split("\n"))  # the padded data lines


def test_anthropic_rate_limit_header_names_match_the_real_ones(fake, captures):
    real = json.loads((captures / "chat" / "anthropic_chat_stream_text_2026-02-17.response_headers.json").read_text())
    real_names = {k.lower() for k in real["headers"] if "ratelimit" in k.lower()}
    response = post(fake.base_url("anthropic") + "/v1/messages", {
        "model": MODEL["anthropic"], "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    assert {k.lower() for k in response.headers if "ratelimit" in k.lower()} == real_names


def test_openai_rate_limit_header_names_match_the_real_ones(fake, captures):
    real = json.loads((captures / "chat" / "openai_chat_completions_stream_tool_calls_2025-05-13_turn1"
                                           ".response_headers.json").read_text())
    real_names = {k.lower() for k in real["headers"] if "ratelimit" in k.lower()}
    response = post(fake.base_url("openai") + "/v1/chat/completions", {
        "model": MODEL["openai"], "messages": [{"role": "user", "content": "hi"}]})
    assert {k.lower() for k in response.headers if "ratelimit" in k.lower()} == real_names


@pytest.mark.parametrize("capture", ["gemini_chat_streamGenerateContent_response_2026-04-05.json",
                                     "gemini_chat_streamGenerateContent_thinking_response_2026-08-05.json"])
def test_fake_gemini_stream_is_one_json_array_in_pieces_like_the_real_one(fake, captures, capture):
    real_text = (captures / "chat" / capture).read_bytes().decode()  # keep its \r\n
    response = post(fake.base_url("gemini") + f"/v1beta/models/{MODEL['gemini']}:streamGenerateContent",
                    {"contents": [{"role": "user", "parts": [{"text": "Say just hello"}]}]})
    text = response.text
    assert response.headers["content-type"].startswith("application/json")
    for body in (real_text, text):
        assert body.startswith("[{") and body.rstrip().endswith("]")
        assert "\n,\r\n{" in body or body.count("{\n  \"candidates\"") == 1
    real, ours = json.loads(real_text), json.loads(text)
    for element in ours:
        assert_like(element, real, "element")
        assert_like(element["candidates"][0], [r["candidates"][0] for r in real], "candidate")
        assert_like(element["usageMetadata"], [r["usageMetadata"] for r in real], "usageMetadata")
    assert "finishReason" in ours[-1]["candidates"][0] and "finishReason" in real[-1]["candidates"][0]


def test_fake_gemini_sse_stream_uses_data_frames(fake):
    response = post(fake.base_url("gemini") + f"/v1beta/models/{MODEL['gemini']}:streamGenerateContent?alt=sse",
                    {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert all(line.startswith("data: {") for line in response.text.split("\r\n\r\n") if line)


@pytest.mark.parametrize(("capture", "tools"), [("ollama_chat_stream_docs_example.ndjson", False),
                                                ("ollama_chat_stream_tools_docs_example.ndjson", True)])
def test_fake_ollama_stream_is_ndjson_with_the_real_keys(fake, captures, capture, tools):
    real = [json.loads(line) for line in (captures / "chat" / capture).read_text().splitlines() if line.strip()]
    response = post(fake.base_url("ollama") + "/api/chat", {
        "model": MODEL["ollama"], "messages": [{"role": "user", "content": "hi"}], **({"tools": TOOLS} if tools else {})})
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = response.text.split("\n")
    assert lines[-1] == "" and all(line.startswith("{") for line in lines[:-1])
    ours = [json.loads(line) for line in lines[:-1]]
    real_final = [r for r in real if r["done"]]
    real_parts = [r for r in real if not r["done"]]
    for line in ours:
        assert_like(line, real_final if line["done"] else real_parts, "ollama line", EXTRA["ollama"])
        assert_like(line["message"], [r["message"] for r in real], "ollama message")
    assert set(ours[-1]) >= set(real_final[0]) - {"done_reason"}


def test_fake_ollama_reply_has_the_real_keys(fake, captures):
    real = json.loads((captures / "chat" / "ollama_chat_nostream_docs_example.response.json").read_text())
    ours = post(fake.base_url("ollama") + "/api/chat", {"model": MODEL["ollama"], "stream": False,
                                                        "messages": [{"role": "user", "content": "hi"}]}).json()
    assert_like(ours, [real], "ollama reply", {"done_reason"})
    assert set(real) <= set(ours)
