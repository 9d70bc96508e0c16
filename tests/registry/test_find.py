"""POST /api/models/find and the one scoring function: ranked best first, each with its score parts."""

from __future__ import annotations

import pytest

from registry import selectors
from registry.models import AIModel
from registry.scoring import POLICIES, score_parts, static_parts

pytestmark = pytest.mark.django_db


def find(client, **criteria) -> list[dict]:
    response = client.post("/api/models/find", criteria, format="json")
    assert response.status_code == 200, response.content
    return response.json()["models"]


def ids(models: list[dict]) -> list[str]:
    return [m["publicId"] for m in models]


def test_free_model_outranks_paid_one_of_equal_quality(user_api, make_model):
    make_model("gpt-4o", input_price=2.5, output_price=10, latency_ms=800, reliability=0.99)
    make_model("llama-3.3-70b", provider="groq", is_free=True, latency_ms=800, reliability=0.99)

    assert ids(find(user_api, capability="text-generation")) == ["groq/llama-3.3-70b", "openai/gpt-4o"]


def test_cheaper_model_outranks_pricier_one(user_api, make_model):
    make_model("expensive", input_price=15, output_price=60, latency_ms=500, reliability=0.99)
    make_model("cheap", input_price=0.15, output_price=0.6, latency_ms=500, reliability=0.99)

    assert ids(find(user_api, capability="text-generation")) == ["openai/cheap", "openai/expensive"]


def test_faster_model_outranks_slower_one(user_api, make_model):
    make_model("slow", input_price=1, output_price=1, latency_ms=4000, reliability=0.99)
    make_model("fast", input_price=1, output_price=1, latency_ms=200, reliability=0.99)

    assert ids(find(user_api, capability="text-generation")) == ["openai/fast", "openai/slow"]


def test_more_reliable_model_outranks_flaky_one(user_api, make_model):
    make_model("flaky", input_price=1, output_price=1, latency_ms=500, reliability=0.5)
    make_model("solid", input_price=1, output_price=1, latency_ms=500, reliability=0.999)

    assert ids(find(user_api, capability="text-generation")) == ["openai/solid", "openai/flaky"]


def test_known_price_ranks_before_unknown_price(user_api, make_model):
    make_model("unknown-price", latency_ms=500, reliability=0.99)
    make_model("priced", input_price=30, output_price=60, latency_ms=500, reliability=0.99)

    assert ids(find(user_api, capability="text-generation")) == ["openai/priced", "openai/unknown-price"]


def test_operator_priority_lifts_a_model(user_api, make_model):
    make_model("a", input_price=1, output_price=1)
    make_model("b", input_price=1, output_price=1, priority=2)

    assert ids(find(user_api, capability="text-generation"))[0] == "openai/b"


def test_fast_policy_prefers_latency_over_price(user_api, make_model):
    make_model("cheap-slow", input_price=0.1, output_price=0.1, latency_ms=5000, reliability=0.99)
    make_model("pricey-fast", input_price=5, output_price=15, latency_ms=100, reliability=0.99)

    assert ids(find(user_api, capability="text-generation"))[0] == "openai/cheap-slow"
    assert ids(find(user_api, capability="text-generation", policy="fast"))[0] == "openai/pricey-fast"


def test_each_result_carries_its_score_and_parts(user_api, make_model):
    make_model("gpt-4o", input_price=1, output_price=3, latency_ms=1000, reliability=0.9)

    [model] = find(user_api, capability="text-generation")

    parts = model["scoreParts"]
    assert parts["free"] == 0 and parts["price"] == pytest.approx(1 / 3)
    assert parts["latency"] == pytest.approx(0.5) and parts["reliability"] == pytest.approx(0.9)
    weights = POLICIES["auto"]
    expected = sum(getattr(weights, k) * parts[k] for k in ("free", "price", "latency", "reliability", "load", "quota"))
    assert model["score"] == pytest.approx(expected, abs=1e-5)


def test_seed_criteria_filter_as_documented(user_api, make_model):
    make_model("slow", input_price=0.5, output_price=0.5, latency_ms=9000, reliability=0.99)
    make_model("flaky", input_price=0.5, output_price=0.5, latency_ms=100, reliability=0.5)
    make_model("costly", input_price=30, output_price=60, latency_ms=100, reliability=0.99)
    make_model("unpriced", latency_ms=100, reliability=0.99)
    make_model("good", input_price=0.5, output_price=0.5, latency_ms=100, reliability=0.99)
    make_model("new", input_price=0.5, output_price=0.5)  # not observed yet: passes latency/reliability
    make_model("local", provider="ollama", is_free=True)

    found = find(user_api, capability="text-generation", maxLatency=5000, minReliability=0.9, maxCostPerToken=0.00001)

    assert sorted(ids(found)) == ["ollama/local", "openai/good", "openai/new"]


def test_max_cost_per_token_bounds_input_and_output_price(user_api, make_model):
    make_model("cheap-in-dear-out", input_price=1, output_price=20)
    make_model("both-cheap", input_price=1, output_price=2)

    assert ids(find(user_api, maxCostPerToken=0.000005)) == ["openai/both-cheap"]


def test_free_only_type_provider_context_and_tags(user_api, make_model):
    make_model("big", input_price=1, output_price=1, context_window=200_000, tags=["prod"])
    make_model("small", input_price=1, output_price=1, context_window=8_000, tags=["prod", "eu"])
    make_model("emb", type="embedding", capabilities=["embeddings"], input_price=0.02, output_price=0)
    make_model("free-one", provider="groq", is_free=True, context_window=131_072)

    assert ids(find(user_api, freeOnly=True)) == ["groq/free-one"]
    assert ids(find(user_api, type="embedding")) == ["openai/emb"]
    assert sorted(ids(find(user_api, provider="openai"))) == ["openai/big", "openai/emb", "openai/small"]
    assert sorted(ids(find(user_api, minContext=100_000))) == ["groq/free-one", "openai/big"]
    assert ids(find(user_api, tags=["prod", "eu"])) == ["openai/small"]


def test_down_disabled_and_retired_models_are_not_found(user_api, make_model):
    make_model("down", status="down")
    make_model("retired", status="retired")
    make_model("off", disabled=True)
    make_model("up")

    assert ids(find(user_api, capability="text-generation")) == ["openai/up"]
    everything = find(user_api, capability="text-generation", includeUnavailable=True)
    assert len(everything) == 4


def test_a_disabled_provider_hides_its_models(user_api, make_model, make_provider):
    model = make_model("m")
    from registry.models import Provider

    Provider.objects.filter(pk=model.provider_id).update(enabled=False)
    from registry import version

    version.bump_local()
    assert find(user_api, capability="text-generation") == []


def test_find_limit_and_bad_criteria(user_api, make_model):
    for i in range(5):
        make_model(f"m{i}", input_price=i + 1, output_price=i + 1)

    assert len(find(user_api, limit=2)) == 2
    response = user_api.post("/api/models/find", {"minReliability": 2, "policy": "random"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"minReliability", "policy"}


def test_find_sees_updates_immediately(user_api, admin_api, make_model):
    slow = make_model("slow", input_price=1, output_price=1, latency_ms=5000)
    make_model("other", input_price=1, output_price=1, latency_ms=1000)
    assert ids(find(user_api))[0] == "openai/other"

    admin_api.patch(f"/api/models/{slow.id}", {"priority": 10}, format="json")

    assert ids(find(user_api))[0] == "openai/slow"


def test_agent_models_are_those_matching_its_capabilities(admin_api, make_model):
    make_model("coder", capabilities=["code-generation"])
    make_model("writer", capabilities=["text-generation"])
    agent = admin_api.post("/api/agents/register", {"name": "a", "capabilities": ["code-generation"]}, format="json").json()

    body = admin_api.get(f"/api/agents/{agent['id']}/models").json()

    assert ids(body["models"]) == ["openai/coder"]


def test_ranking_function_is_the_same_one_the_api_uses(make_model):
    make_model("x", input_price=1, output_price=1, latency_ms=300, reliability=0.95)
    view = selectors.snapshot().models[0]
    model = AIModel.objects.get()

    parts = static_parts(is_free=False, input_price=1.0, output_price=1.0, latency_ms=300, reliability=0.95)
    total, _ = score_parts(parts, POLICIES["auto"], priority=model.priority)

    assert view.base["auto"] == pytest.approx(total)
