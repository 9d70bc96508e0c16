"""Listings: the parse rules on our own recorded fixtures, and every adapter listing the fake over HTTP."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from registry.providers import adapter_class, tables
from tests.routing.conftest import KINDS

# Models and free models each fake provider lists (registry/fakes/catalog.py), as the adapters count them.
FAKE_COUNTS = {"openai": (7, 0), "anthropic": (4, 0), "ollama": (3, 3), "openrouter": (9, 3), "groq": (5, 5),
               "gemini": (6, 3), "mistral": (5, 5), "huggingface": (3, 0), "together": (4, 1), "cerebras": (3, 3),
               "deepseek": (2, 0), "openai_compatible": (2, 2), "nvidia": (4, 4), "cohere": (5, 5), "cloudflare": (5, 4),
               "github": (5, 5), "codestral": (2, 2)}


def test_openrouter_500_model_listing_counts_free_models_by_the_rule(data):
    parsed = adapter_class("openrouter")().parse_listing(data("openrouter_models_500.json"))
    assert len(parsed.models) == 497 and parsed.skipped == 3
    assert len(parsed.free) == 60
    by_id = parsed.by_id()
    assert not by_id["nousresearch/priced-but-named:free"].is_free  # ":free" but priced
    assert not any(by_id[f"google/zero-priced-exp-{i}"].is_free for i in range(5))  # $0 but no ":free"
    assert not by_id["openrouter/free"].is_free and not by_id["openrouter/auto"].is_free
    assert sum(m.type == "image" for m in parsed.models) == 4
    assert sum(m.type == "embedding" for m in parsed.models) == 2


def test_openrouter_listing_keeps_canonical_slug_and_unknown_fields(data):
    parsed = adapter_class("openrouter")().parse_listing(data("openrouter_models_500.json"))
    model = parsed.models[0]
    assert model.metadata["canonical_slug"].startswith(model.id.split(":")[0])
    assert "default_parameters" in model.metadata and "expiration_date" in model.metadata


def test_unparseable_records_are_skipped_and_counted_not_fatal():
    payload = {"data": [{"id": "ok/model", "pricing": {"prompt": "0.000001", "completion": "0.000002"}},
                        {"name": "no id"}, "not an object", {"id": "bad/price", "pricing": {"prompt": "x"}}]}
    parsed = adapter_class("openrouter")().parse_listing(payload)
    assert [m.id for m in parsed.models] == ["ok/model"]
    assert parsed.skipped == 3 and len(parsed.errors) == 3
    assert (parsed.models[0].input_price, parsed.models[0].output_price) == (Decimal("1"), Decimal("2"))


@pytest.mark.parametrize("kind", ["openai", "groq", "mistral", "cerebras", "deepseek", "huggingface",
                                  "openai_compatible"])
def test_openai_style_listings_skip_broken_entries(kind):
    parsed = adapter_class(kind)().parse_listing({"object": "list", "data": [{"id": "m1"}, {"id": None}, {}, 7]})
    assert [m.id for m in parsed.models] == ["m1"] and parsed.skipped == 3


def test_local_openai_compatible_server_models_are_free_without_quota():
    parsed = adapter_class("openai_compatible")(base_url="http://127.0.0.1:1234").parse_listing(
        {"object": "list", "data": [{"id": "qwen2.5-7b", "object": "model", "owned_by": "lmstudio"}]})
    model = parsed.models[0]
    assert model.is_free and model.free_reason == "local server" and model.quota["rpm"] is None


def test_remote_openai_compatible_server_models_have_unknown_price():
    parsed = adapter_class("openai_compatible")(base_url="https://llm.example.com").parse_listing(
        {"object": "list", "data": [{"id": "qwen2.5-7b", "object": "model", "max_model_len": 32768}]})
    model = parsed.models[0]
    assert not model.is_free and model.input_price is None and model.context_window == 32768


def test_together_listing_is_a_bare_array_priced_per_million(data):
    parsed = adapter_class("together")().parse_listing(data("together_models.json")).by_id()
    turbo = parsed["meta-llama/Llama-3.3-70B-Instruct-Turbo"]
    assert (turbo.input_price, turbo.output_price) == (Decimal("0.88"), Decimal("0.88"))
    assert parsed["meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"].is_free
    assert parsed["BAAI/bge-large-en-v1.5"].type == "embedding"
    assert parsed["black-forest-labs/FLUX.1-schnell"].type == "image"


def test_anthropic_listing_pages_by_after_id(data):
    adapter = adapter_class("anthropic")()
    first, last = data("anthropic_models_page1.json"), data("anthropic_models_page2.json")
    assert adapter.next_page(first) == {"after_id": first["last_id"]}
    assert adapter.next_page(last) is None
    models = adapter.parse_listing(first).models + adapter.parse_listing(last).models
    assert [m.name for m in models][:2] == ["Claude Opus 4.5", "Claude Haiku 4.5"]
    haiku = next(m for m in models if m.id == "claude-haiku-4-5-20251001")
    assert (haiku.input_price, haiku.output_price) == (Decimal("1"), Decimal("5"))  # from the price table


def test_free_tier_table_can_be_replaced_by_the_operator(settings, tmp_path):
    table = {"as_of": "2030-01-01", "providers": {"deepseek": {"scope": "model", "all_models_free": True,
                                                               "reason": "promo", "default": {"rpd": 10}}}}
    path = tmp_path / "free.json"
    path.write_text(json.dumps(table))
    settings.AFMTS_FREE_TIERS_FILE = str(path)
    parsed = adapter_class("deepseek")().parse_listing({"object": "list", "data": [{"id": "deepseek-chat"}]})
    assert parsed.models[0].is_free and parsed.models[0].free_reason == "promo"
    assert parsed.models[0].quota == {"rpm": None, "rpd": 10, "tpm": None, "tpd": None}


def test_price_table_matches_dated_snapshots_only():
    assert tables.price("openai", "gpt-4o-2024-08-06").input == Decimal("2.5")
    assert tables.price("anthropic", "claude-sonnet-4-5-20250929").output == Decimal("15")
    assert tables.price("openai", "gpt-4o-realtime-preview") is None
    assert tables.price("openai", "gpt-4o-mini").input == Decimal("0.15")  # the longest family, not gpt-4o


@pytest.mark.parametrize("kind", KINDS)
async def test_each_adapter_lists_the_fake_provider_with_its_free_models(make_adapter, kind):
    listing = await make_adapter(kind).list_models()
    assert (len(listing.models), len(listing.free)) == FAKE_COUNTS[kind]
    assert listing.skipped == 0
    assert all(m.type in ("llm", "chat", "embedding", "vision", "image", "audio", "rerank") for m in listing.models)


async def test_gemini_listing_follows_next_page_token(make_adapter, fake):
    listing = await make_adapter("gemini").list_models()
    assert len(listing.models) == 6
    pages = fake.state.requests("gemini")
    assert [r["query"].get("pageToken") for r in pages] == [None, "3"]


async def test_anthropic_listing_follows_has_more_and_after_id(make_adapter, fake):
    fake.state.page_size = 2
    listing = await make_adapter("anthropic").list_models()
    assert [m.id for m in listing.models] == ["claude-opus-4-5-20251101", "claude-haiku-4-5-20251001",
                                              "claude-sonnet-4-5-20250929", "claude-3-haiku-20240307"]
    assert [r["query"].get("after_id") for r in fake.state.requests("anthropic")] == [
        None, "claude-haiku-4-5-20251001"]


async def test_openrouter_listing_needs_no_key(make_adapter):
    listing = await make_adapter("openrouter", api_key=None).list_models()
    assert len(listing.models) == 9


async def test_ollama_tags_of_the_same_weights_are_shown_once(make_adapter, fake):
    from registry.fakes import catalog
    from registry.providers.ollama import OllamaAdapter

    OllamaAdapter.shown_by_digest.clear()
    latest = next(m for m in catalog.OLLAMA if m["name"] == "llama3.2:latest")
    fake.state.change_listing("ollama", add=[{**latest, "name": "llama3.2:3b", "model": "llama3.2:3b"}])

    listing = await make_adapter("ollama").list_models()

    models = {m.id: m for m in listing.models}
    assert models["llama3.2:3b"].context_window == models["llama3.2:latest"].context_window == 131072
    shown = [r["body"]["model"] for r in fake.state.requests("ollama") if r["path"].endswith("/api/show")]
    assert len(shown) == len(listing.models) - 1 and len(set(shown) & {"llama3.2:3b", "llama3.2:latest"}) == 1


async def test_listing_reports_the_rate_limit_headers_it_saw(make_adapter):
    listing = await make_adapter("groq").list_models()
    assert listing.rate_limit is None or listing.rate_limit.window("requests", "day") is not None


async def test_ollama_listing_is_completed_by_api_show_once_per_model_version(make_adapter, fake):
    from registry.providers.ollama import OllamaAdapter

    OllamaAdapter.shown_by_digest.clear()
    listing = await make_adapter("ollama").list_models()
    models = {m.id: m for m in listing.models}

    assert models["llama3.2:latest"].context_window == 131072  # from /api/show's model_info
    assert "vision" in models["llava:7b"].capabilities
    assert "text-generation" not in models["nomic-embed-text:latest"].capabilities
    shows = len([r for r in fake.state.requests("ollama") if r["path"].endswith("/api/show")])
    assert shows == len(listing.models)

    await make_adapter("ollama").list_models()
    assert len([r for r in fake.state.requests("ollama") if r["path"].endswith("/api/show")]) == shows
