"""The router's plan: policies, explicit models and fallbacks, requirements, live state, and a
reason for every model passed over."""

from __future__ import annotations

import pytest

from registry import services
from registry.selectors import snapshot
from routing.router import Live, Requirements, UnknownModel, plan

pytestmark = pytest.mark.django_db


def names(p) -> list[str]:
    return [c.model.public_id for c in p.candidates]


@pytest.fixture
def catalog(make_model):
    make_model("gpt-4o", input_price=2.5, output_price=10, context_window=128_000, latency_ms=700, reliability=0.99,
               capabilities=["text-generation", "vision", "function-calling"])
    make_model("gpt-4o-mini", input_price=0.15, output_price=0.6, context_window=128_000, latency_ms=500,
               reliability=0.99, capabilities=["text-generation", "function-calling"])
    make_model("llama-3.1-8b-instant", provider="groq", is_free=True, context_window=8_192, latency_ms=200,
               reliability=0.99, free_rpm=30)
    make_model("gpt-4o-mini", provider="openrouter", kind="openrouter", input_price=0.15, output_price=0.6,
               context_window=128_000, latency_ms=900, reliability=0.95, capabilities=["text-generation"])
    make_model("text-embedding-3-small", type="embedding", capabilities=["embeddings"], input_price=0.02, output_price=0)


def test_auto_puts_the_free_model_first(catalog):
    p = plan("auto", Requirements(), snapshot())

    assert names(p)[0] == "groq/llama-3.1-8b-instant"
    assert "openai/text-embedding-3-small" not in names(p)


def test_free_policy_routes_to_free_models_only(catalog):
    assert names(plan("free", Requirements(), snapshot())) == ["groq/llama-3.1-8b-instant"]


def test_free_policy_with_nothing_free_explains_why(catalog):
    p = plan("free", Requirements(capabilities=frozenset({"vision"})), snapshot())

    assert p.candidates == []
    assert "groq/llama-3.1-8b-instant: lacks vision" in p.explain()


def test_cheap_and_fast_policies(catalog):
    assert names(plan("cheap", Requirements(), snapshot()))[:2] == ["groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"]
    assert names(plan("fast", Requirements(), snapshot()))[0] == "groq/llama-3.1-8b-instant"


def test_requirements_filter_and_each_rejection_has_a_reason(catalog):
    p = plan("auto", Requirements(capabilities=frozenset({"function-calling"}), min_context=20_000), snapshot(),
             explain=True)

    assert names(p) == ["openai/gpt-4o-mini", "openai/gpt-4o"]
    reasons = {r.model: r.reason for r in p.rejections}
    assert reasons["groq/llama-3.1-8b-instant"].startswith("lacks function-calling")
    assert "openai/text-embedding-3-small" in reasons


def test_context_too_small_is_named(catalog):
    p = plan("free", Requirements(min_context=50_000), snapshot())

    assert p.rejections[0].reason == "context window 8192 < 50000 tokens needed"


def test_explicit_model_then_fallbacks(catalog):
    p = plan("openai/gpt-4o", Requirements(fallbacks=("groq/llama-3.1-8b-instant",)), snapshot())

    assert names(p) == ["openai/gpt-4o", "groq/llama-3.1-8b-instant"]


def test_bare_model_id_matches_every_provider_serving_it(catalog):
    assert sorted(names(plan("gpt-4o-mini", Requirements(), snapshot()))) == ["openai/gpt-4o-mini", "openrouter/gpt-4o-mini"]


def test_unknown_model_raises(catalog):
    with pytest.raises(UnknownModel):
        plan("nope/nothing", Requirements(), snapshot())


def test_excluded_and_preferred_providers(catalog):
    assert "groq/llama-3.1-8b-instant" not in names(plan("auto", Requirements(exclude_providers=frozenset({"groq"})), snapshot()))
    assert names(plan("auto", Requirements(prefer_providers=("openrouter",)), snapshot()))[0] == "openrouter/gpt-4o-mini"


def test_max_price_keeps_out_dear_and_unpriced_models(catalog):
    assert sorted(names(plan("auto", Requirements(max_price=1.0), snapshot()))) == [
        "groq/llama-3.1-8b-instant", "openai/gpt-4o-mini", "openrouter/gpt-4o-mini"
    ]


def test_embedding_requests_get_embedding_models(catalog):
    assert names(plan("auto", Requirements(kind="embedding"), snapshot())) == ["openai/text-embedding-3-small"]


class Blocking(Live):
    def __init__(self, blocked: dict[str, tuple[str, float]], quota: dict[str, float] | None = None):
        self._blocked, self._quota = blocked, quota or {}

    def blocked(self, m, now):
        return self._blocked.get(m.public_id)

    def quota(self, m, now):
        return self._quota.get(m.public_id, 1.0)


def test_live_state_skips_blocked_models_and_says_until_when(catalog):
    live = Blocking({"groq/llama-3.1-8b-instant": ("rate-limited (429)", 1_000_030.0)})

    p = plan("free", Requirements(), snapshot(), live=live, now=1_000_000.0)

    assert p.candidates == []
    assert p.rejections[0].as_dict() == {"model": "groq/llama-3.1-8b-instant", "reason": "rate-limited (429)", "retryAt": 1_000_030.0}
    assert p.retry_at() == 1_000_030.0


def test_remaining_quota_reorders_close_candidates(make_model):
    make_model("a", provider="groq", is_free=True, latency_ms=300, reliability=0.99)
    make_model("b", provider="cerebras", is_free=True, latency_ms=300, reliability=0.99)
    assert names(plan("free", Requirements(), snapshot()))[0] == "cerebras/b"  # public-id order on a tie

    live = Blocking({}, quota={"cerebras/b": 0.1, "groq/a": 0.9})

    assert names(plan("free", Requirements(), snapshot(), live=live))[0] == "groq/a"


def test_demo_providers_are_last_fallbacks_until_a_real_model_answers_then_skipped(make_model, make_provider):
    make_provider("demo-groq", kind="groq", is_demo=True)
    make_model("x", provider="demo-groq", kind="groq", is_free=True, reliability=1.0)
    assert names(plan("free", Requirements(), snapshot())) == ["demo-groq/x"]

    real = make_model("y", provider="groq", is_free=True)  # a placeholder key, say: it has not answered yet
    assert names(plan("free", Requirements(), snapshot())) == ["groq/y", "demo-groq/x"]

    services.model_update(model=real, fields={"reliability": 0.9})  # it answered a call
    assert names(plan("free", Requirements(), snapshot())) == ["groq/y"]


def test_demo_providers_kept_as_last_fallbacks_with_the_setting(make_model, make_provider, settings):
    settings.AFMTS_DEMO_KEEP = True
    make_provider("demo-groq", kind="groq", is_demo=True)
    make_model("x", provider="demo-groq", kind="groq", is_free=True)
    make_model("y", provider="groq", is_free=True, reliability=1.0)

    assert names(plan("free", Requirements(), snapshot())) == ["groq/y", "demo-groq/x"]


def test_aliases_name_models_or_a_policy(catalog):
    aliases = {
        "smart": {"models": ["openai/gpt-4o", "openai/gpt-4o-mini"]},
        "cheap-vision": {"policy": "cheap", "capabilities": ["vision"]},
    }
    assert names(plan("smart", Requirements(), snapshot(), aliases=aliases)) == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    assert names(plan("cheap-vision", Requirements(), snapshot(), aliases=aliases)) == ["openai/gpt-4o"]
