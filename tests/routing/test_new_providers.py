"""NVIDIA NIM, Cohere, Cloudflare Workers AI, GitHub Models and Codestral: each provider's documented
listing and replies parse to its free rules and quotas, and the fake speaks what the docs show.
(The chat, stream, tool-call and error behaviour of these kinds over HTTP is in the tests parametrised
over every kind: test_chat.py, test_errors.py, test_listings.py.)"""

from __future__ import annotations

import io
import json
from decimal import Decimal

import httpx
import pytest

from registry.fakes import KEY
from registry.providers import adapter_class
from registry.providers.base import assemble
from registry.providers.errors import AuthError, NotFoundError, RateLimited
from tests.routing.conftest import DATA, chat_request
from tests.routing.test_fake_fidelity import assert_like

NEW = ("nvidia", "cohere", "cloudflare", "github", "codestral")
LISTINGS = {"nvidia": "nvidia_models_docs_example.json", "cohere": "cohere_models_docs_example.json",
            "cloudflare": "cloudflare_models_search_docs_example.json",
            "github": "github_catalog_models_docs_example.json", "codestral": "codestral_models_docs_example.json"}
# models, free, the quota every free model carries, its scope (free_tiers.json, sources in each module)
EXPECTED = {"nvidia": (6, 6, {"rpm": 40}, "account"),
            "cohere": (5, 5, {"rpm": 20, "requests_per_month": 1000}, "account"),
            "cloudflare": (5, 4, {"neurons_per_day": 10000}, "account"),
            "github": (4, 4, None, "model"),
            "codestral": (2, 2, {"rpm": 30, "rpd": 2000}, "account")}


def parse(kind: str, data, **kwargs):
    return adapter_class(kind)(**kwargs).parse_listing(data(LISTINGS[kind]))


@pytest.mark.parametrize("kind", NEW)
def test_documented_listing_parses_to_its_free_models_and_quota_pool(data, kind):
    listing = parse(kind, data)
    models, free, quota, scope = EXPECTED[kind]
    assert (len(listing.models), len(listing.free), listing.skipped) == (models, free, 0)
    for model in listing.free:
        assert model.quota_scope == scope and model.free_reason
        assert model.input_price is None and model.output_price is None  # free within the quota, not "$0"
        if quota:
            assert {k: model.quota[k] for k in quota} == quota


def test_nvidia_types_embedders_by_the_model_name_after_the_organisation(data):
    by_id = parse("nvidia", data).by_id()
    assert by_id["baai/bge-m3"].type == "embedding" and by_id["nvidia/nv-embedqa-e5-v5"].type == "embedding"
    assert by_id["deepseek-ai/deepseek-r1"].type == "chat" and "reasoning" in by_id["deepseek-ai/deepseek-r1"].capabilities
    assert "code-generation" in by_id["qwen/qwen2.5-coder-32b-instruct"].capabilities


def test_cohere_leaves_deprecated_models_out_and_types_by_endpoint(data):
    by_id = parse("cohere", data).by_id()
    assert "command-r-plus-04-2024" not in by_id  # is_deprecated
    assert by_id["command-a-03-2025"].context_window == 256000
    assert {"function-calling", "json-mode", "structured-outputs"} <= set(by_id["command-a-03-2025"].capabilities)
    assert "vision" in by_id["command-a-vision-07-2025"].capabilities
    assert (by_id["embed-v4.0"].type, by_id["rerank-v3.5"].type) == ("embedding", "rerank")


def test_cohere_listing_follows_next_page_token(data):
    adapter = adapter_class("cohere")()
    assert adapter.next_page(data(LISTINGS["cohere"])) == {"page_token": "eyJvZmZzZXQiOjZ9"}
    assert adapter.next_page({"models": []}) is None


def test_cloudflare_model_needing_workers_paid_is_paid_at_its_listed_price(data):
    by_id = parse("cloudflare", data).by_id()
    paid = by_id["@cf/openai/gpt-oss-120b"]
    assert not paid.is_free and (paid.input_price, paid.output_price) == (Decimal("0.35"), Decimal("0.75"))
    free = by_id["@cf/meta/llama-3.1-8b-instruct"]
    assert free.is_free and free.context_window == 7968 and "function-calling" in free.capabilities
    assert free.metadata["properties"]["price"][0]["price"] == 0.282  # what a paid account pays, kept
    assert by_id["@cf/baai/bge-large-en-v1.5"].type == "embedding"


def test_cloudflare_base_url_names_the_account_and_the_openai_one_is_cut_back():
    given = "https://api.cloudflare.com/client/v4/accounts/abc123/ai/v1"
    adapter = adapter_class("cloudflare")(base_url=given)
    assert adapter.base_url == "https://api.cloudflare.com/client/v4/accounts/abc123"
    assert adapter.build_chat({"model": "@cf/meta/llama-3.1-8b-instruct", "messages": []})[0] == "/ai/v1/chat/completions"
    assert adapter_class("cloudflare").communication(given, "m")["endpoint"] == adapter.base_url + "/ai/v1/chat/completions"


def test_github_quota_comes_from_the_models_rate_limit_tier(data):
    by_id = parse("github", data).by_id()
    assert (by_id["openai/gpt-4o-mini"].quota["rpm"], by_id["openai/gpt-4o-mini"].quota["rpd"]) == (15, 150)
    assert (by_id["openai/gpt-4.1"].quota["rpm"], by_id["openai/gpt-4.1"].quota["rpd"]) == (10, 50)
    assert (by_id["deepseek/deepseek-r1"].quota["rpm"], by_id["deepseek/deepseek-r1"].quota["rpd"]) == (1, 8)
    assert by_id["openai/text-embedding-3-small"].type == "embedding"
    assert by_id["openai/gpt-4.1"].context_window == 1048576 and "vision" in by_id["openai/gpt-4.1"].capabilities
    assert "function-calling" in by_id["openai/gpt-4.1"].capabilities


@pytest.mark.parametrize(("kind", "name", "text"), [
    ("nvidia", "nvidia_chat_docs_example.json", "Hello! How can I help you today?"),
    ("cloudflare", "cloudflare_chat_docs_example.json", "Beep boop! *whirr* Greetings, human."),
    ("github", "github_chat_docs_example.json", "The capital of France is Paris."),
    ("codestral", "codestral_chat_docs_example.json", "def is_odd(n):\n    return n % 2 == 1"),
    ("cohere", "cohere_chat_docs_example.json", "LLMs, or Large Language Models, are a type of neural network "
                                                "trained on large amounts of text."),
])
def test_documented_chat_reply_parses_to_an_openai_completion(data, kind, name, text):
    reply = adapter_class(kind)().parse_chat(data(name), {"model": "m"})
    (choice,) = reply["choices"]
    assert choice["message"]["content"] == text and choice["finish_reason"] == "stop"
    assert reply["usage"]["total_tokens"] == reply["usage"]["prompt_tokens"] + reply["usage"]["completion_tokens"]


def test_cohere_tool_call_reply_becomes_openai_tool_calls(data):
    reply = adapter_class("cohere")().parse_chat(data("cohere_chat_tool_call_docs_example.json"), {"model": "m"})
    (call,) = reply["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {
        "location": "Toronto"}
    assert reply["choices"][0]["finish_reason"] == "tool_calls" and reply["usage"]["prompt_tokens"] == 913


@pytest.mark.parametrize("piece", [0, 1, 7])
def test_cohere_documented_stream_replays_in_any_pieces(piece):
    adapter = adapter_class("cohere")()
    chunks = adapter.parse_stream((DATA / "cohere_chat_stream_docs_example.sse.txt").read_bytes(), piece=piece)
    reply = assemble(chunks)
    assert reply["choices"][0]["message"]["content"] == "A large language model."
    assert reply["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"]["completion_tokens"] == 4
    tools = assemble(adapter.parse_stream((DATA / "cohere_chat_stream_tool_call_docs_example.sse.txt").read_bytes(),
                                          piece=piece))
    (call,) = tools["choices"][0]["message"]["tool_calls"]
    assert call["id"] == "get_weather_nsz5zm3w56q3" and json.loads(call["function"]["arguments"]) == {
        "location": "Toronto"}


def test_cohere_gets_its_own_request_fields(make_adapter, fake):
    request = chat_request("cohere", top_p=0.5, stop="END", max_completion_tokens=50, user="u1", logprobs=True)
    request["messages"] += [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "4"}]
    path, _, body = adapter_class("cohere")().build_chat(request)
    assert path == "/v2/chat" and body["p"] == 0.5 and body["stop_sequences"] == ["END"] and body["max_tokens"] == 50
    assert "user" not in body and "logprobs" not in body and "top_p" not in body
    assert body["messages"][2] == {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "4"}


async def test_codestral_domain_without_a_listing_lists_its_documented_models(make_adapter, fake):
    fake.state.push("codestral", "not_found", status=404)
    listing = await make_adapter("codestral").list_models()
    assert sorted(m.id for m in listing.models) == ["codestral-2508", "codestral-latest"]
    assert all(m.is_free and m.quota["rpd"] == 2000 for m in listing.models)
    with pytest.raises(AuthError):  # a wrong key still fails the listing
        await make_adapter("codestral", api_key="wrong-key").list_models()


async def test_cloudflare_spent_neurons_are_rate_limited_and_an_unknown_model_is_not_found(make_adapter, fake):
    fake.state.push("cloudflare", "quota_exhausted", retry_after=30)
    with pytest.raises(RateLimited) as caught:
        await make_adapter("cloudflare").chat(chat_request("cloudflare"))
    assert caught.value.provider_code == "3036" and "neurons" in caught.value.message
    fake.state.push("cloudflare", "rate_limit", retry_after=30)  # 3040, out of capacity: a short wait
    with pytest.raises(RateLimited) as caught:
        await make_adapter("cloudflare").chat(chat_request("cloudflare"))
    assert caught.value.provider_code == "3040" and caught.value.retry_after == pytest.approx(30, abs=1)
    with pytest.raises(NotFoundError):
        await make_adapter("cloudflare").chat({**chat_request("cloudflare"), "model": "@cf/no/such-model"})


async def test_github_sends_its_api_version_and_an_unknown_model_is_not_found(make_adapter, fake):
    await make_adapter("github").chat(chat_request("github"))
    (seen,) = fake.state.requests("github")
    assert seen["path"] == "/github/inference/chat/completions"
    assert seen["headers"]["x-github-api-version"] == "2022-11-28"
    with pytest.raises(NotFoundError):
        await make_adapter("github").chat({**chat_request("github"), "model": "openai/no-such-model"})


def get(url: str, **params) -> httpx.Response:
    return httpx.get(url, headers={"authorization": f"Bearer {KEY}"}, params=params, timeout=5)


@pytest.mark.parametrize(("kind", "path", "envelope", "nested"), [
    ("nvidia", "/v1/models", "data", ()),
    ("cohere", "/v1/models", "models", ()),
    ("cloudflare", "/ai/models/search", "result", ("task",)),
    ("github", "/catalog/models", None, ("limits",)),
    ("codestral", "/v1/models", "data", ("capabilities",)),
])
def test_fake_listing_has_the_keys_and_types_of_the_documented_one(fake, data, kind, path, envelope, nested):
    real = data(LISTINGS[kind])
    body = get(fake.base_url(kind) + path).json()
    if envelope:
        assert set(body) <= set(real), f"{kind} envelope"
    items, real_items = (body[envelope], real[envelope]) if envelope else (body, real)
    assert items
    for item in items:
        assert_like(item, real_items, kind)
        for key in nested:
            assert_like(item[key], [r[key] for r in real_items], f"{kind}.{key}")


@pytest.mark.parametrize(("kind", "name"), [
    ("nvidia", "nvidia_chat_docs_example.json"), ("cloudflare", "cloudflare_chat_docs_example.json"),
    ("cohere", "cohere_chat_docs_example.json"), ("codestral", "codestral_chat_docs_example.json"),
])
def test_fake_chat_reply_has_the_keys_of_the_documented_one(fake, data, kind, name):
    adapter = adapter_class(kind)(base_url=fake.base_url(kind), api_key=KEY)
    path, headers, body = adapter.build_chat(chat_request(kind))
    reply = httpx.post(fake.base_url(kind) + path, json=body, headers=headers, timeout=5).json()
    real = data(name)
    assert set(reply) <= set(real) | {"system_fingerprint"}, kind
    if kind == "cohere":
        assert set(reply["message"]) <= {"role", "content", "tool_plan", "tool_calls", "citations"}
        assert set(reply["usage"]) == set(real["usage"])
    else:
        # `logprobs: null` is OpenAI's and the shared Mistral fake's; Mistral's docs example omits it.
        assert set(reply["choices"][0]) <= set(real["choices"][0]) | {"logprobs"}, kind


def test_fake_cohere_stream_has_the_documented_event_sequence(fake):
    adapter = adapter_class("cohere")(base_url=fake.base_url("cohere"), api_key=KEY)
    path, headers, body = adapter.build_chat(chat_request("cohere", stream=True))
    text = httpx.post(fake.base_url("cohere") + path, json=body, headers=headers, timeout=5).text
    real = (DATA / "cohere_chat_stream_docs_example.sse.txt").read_text()

    def kinds(sse: str) -> list[str]:
        names = [line[7:] for line in sse.splitlines() if line.startswith("event: ")]
        return [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]  # runs of deltas as one

    assert kinds(text) == kinds(real)


def test_auto_register_takes_the_cloudflare_account_from_its_url(db, monkeypatch):
    from django.core.management import call_command

    from registry.models import Provider
    from registry.providers import ADAPTERS

    for cls in ADAPTERS.values():
        monkeypatch.delenv(cls.env_var or "UNSET", raising=False)
    account = "https://api.cloudflare.com/client/v4/accounts/0123456789abcdef"
    monkeypatch.setenv("CLOUDFLARE_AI_URL", account)
    monkeypatch.setenv("CLOUDFLARE_AI_API_KEY", "cf-token")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_actions")  # GitHub Actions' own token registers nothing
    call_command("auto_register", stdout=io.StringIO())
    (provider,) = Provider.objects.all()
    assert (provider.kind, provider.base_url, provider.api_key) == ("cloudflare", account, "cf-token")
