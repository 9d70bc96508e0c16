"""`manage.py benchmark_models` against the fake providers over real HTTP: the report and its top
performer, filters, failing and rate-limited providers, JSON export, model types never benchmarked,
and the health evidence and free quota each call leaves behind."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from registry import benchmark, services, tracker
from registry.fakes import KEY
from registry.models import AIModel, HealthSample, QuotaState

pytestmark = pytest.mark.django_db(transaction=True)

PROMPTS = len(benchmark.PROMPTS)


@pytest.fixture
def providers(fake, settings):
    settings.AFMTS_DISCOVERY_TIMEOUT_SECONDS = 3
    settings.AFMTS_UPSTREAM_TIMEOUTS = {"connect": 1, "read": 5, "write": 1, "pool": 1, "total": 10}

    def make(*kinds: str) -> None:
        for kind in kinds:
            services.provider_create(slug=kind, kind=kind, base_url=fake.base_url(kind), api_key=KEY)
        results = tracker.discover()
        assert results and all(r.ok for r in results), results

    return make


def run(*args: str) -> tuple[dict, str]:
    """The command's JSON report (from --json) and what it wrote on stderr."""
    out, err = StringIO(), StringIO()
    call_command("benchmark_models", "--json", "--timeout", "5", *args, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def chat_models(slug: str, **filters) -> set[str]:
    return {
        m.public_id for m in AIModel.objects.select_related("provider")
        .filter(provider__slug=slug, type__in=["llm", "chat", "vision"], **filters)
    }


def by_model(report: dict) -> dict[str, dict]:
    return {m["model"]: m for m in report["models"]}


def test_a_report_over_two_providers_names_the_faster_one_top_performer(providers, fake):
    providers("groq", "cerebras")
    cerebras = chat_models("cerebras")
    # Every cerebras call waits 0.3 s before its first byte: groq must win.
    fake.state.push("cerebras", "slow_first_byte", count=len(cerebras) * PROMPTS, seconds=0.3)

    report, _ = run()

    models = by_model(report)
    assert set(models) == chat_models("groq") | cerebras
    for row in models.values():
        assert row["calls"] == PROMPTS and row["successRate"] == 1.0, row
        assert row["latencyMs"]["p50"] > 0 and row["latencyMs"]["mean"] > 0
        assert row["ttftMs"]["p50"] > 0
        assert row["completionTokens"] > 0 and row["tokensPerSecond"] > 0
        assert 0 < row["score"] <= 1
    for public_id in cerebras:
        assert models[public_id]["latencyMs"]["p50"] >= 300
    summary = report["summary"]
    assert summary["topPerformer"].startswith("groq/")
    assert summary["topScore"] == max(row["score"] for row in models.values())
    assert max(models[p]["score"] for p in cerebras) < summary["topScore"]
    assert summary["modelsTested"] == len(models) and summary["successRate"] == 1.0
    assert summary["averageScore"] == pytest.approx(sum(r["score"] for r in models.values()) / len(models), abs=1e-3)


def test_the_table_lists_every_model_and_names_the_top_performer(providers):
    providers("groq")
    out = StringIO()

    call_command("benchmark_models", "--provider", "groq", stdout=out, stderr=StringIO())

    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0].split() == ["model", "calls", "ok", "%", "p50", "ms", "ttft", "ms", "tokens/s", "score"]
    for public_id in chat_models("groq"):
        [row] = [line for line in lines if line.startswith(public_id + " ")]
        assert row.split()[1:3] == [str(PROMPTS), "100.0"]
    assert "Top performer: groq/" in text
    assert f"{len(chat_models('groq'))} model(s) tested" in text


def test_filters_select_the_right_models(providers):
    providers("groq", "openai", "openrouter")

    only_groq, _ = run("--provider", "groq")
    free, warnings = run("--free-only")
    scarce, _ = run("--free-only", "--include-scarce", "--provider", "openrouter")
    named, _ = run("--model", "openai/gpt-4o-mini", "--model", "groq/llama-3.1-8b-instant")
    limited, _ = run("--provider", "openai", "--limit", "2")
    reasoning, _ = run("--provider", "openai", "--capability", "reasoning")

    assert set(by_model(only_groq)) == chat_models("groq")
    # Free: all of groq's; OpenRouter's :free models share a scarce account-wide quota, so are skipped.
    openrouter_free = chat_models("openrouter", is_free=True)
    assert openrouter_free and not chat_models("openai", is_free=True)
    assert set(by_model(free)) == chat_models("groq", is_free=True) == chat_models("groq")
    assert "scarce" in warnings and all(p in warnings for p in openrouter_free)
    assert set(by_model(scarce)) == openrouter_free
    assert set(by_model(named)) == {"openai/gpt-4o-mini", "groq/llama-3.1-8b-instant"}
    assert len(limited["models"]) == 2 and all(m["provider"] == "openai" for m in limited["models"])
    assert set(by_model(reasoning)) == {"openai/o4-mini"}


def test_a_failing_provider_scores_lower_and_never_stops_the_others(providers, fake):
    providers("groq", "cerebras")
    fake.state.push("groq", "server_error", count=2)

    report, _ = run("--model", "groq/llama-3.1-8b-instant", "--model", "cerebras/llama3.1-8b")

    models = by_model(report)
    groq, cerebras = models["groq/llama-3.1-8b-instant"], models["cerebras/llama3.1-8b"]
    assert (groq["calls"], groq["successes"]) == (PROMPTS, PROMPTS - 2)
    assert groq["errors"] == {"upstream_unavailable": 2} and "500" in groq["lastError"]
    assert [p["ok"] for p in groq["prompts"]].count(False) == 2
    assert (cerebras["calls"], cerebras["successes"], cerebras["errors"]) == (PROMPTS, PROMPTS, {})
    assert groq["score"] < cerebras["score"]
    assert report["summary"]["topPerformer"] == "cerebras/llama3.1-8b"
    assert report["summary"]["successRate"] == pytest.approx((2 * PROMPTS - 2) / (2 * PROMPTS), abs=1e-4)
    failed = HealthSample.objects.filter(model__model_id="llama-3.1-8b-instant", source="benchmark", ok=False)
    assert failed.count() == 2


def test_a_provider_failing_every_call_leaves_no_top_performer(providers, fake):
    providers("groq")
    fake.state.push("groq", "server_error", count=PROMPTS)

    report, _ = run("--model", "groq/llama-3.1-8b-instant")

    [row] = report["models"]
    assert row["successes"] == 0 and row["score"] == 0 and row["latencyMs"]["p50"] is None
    assert report["summary"]["topPerformer"] is None and report["summary"]["averageScore"] == 0


def test_a_rate_limited_model_is_reported_and_not_recorded_as_unhealthy(providers, fake):
    providers("groq")
    fake.state.push("groq", "rate_limit", count=1, retry_after=7)

    report, _ = run("--model", "groq/llama-3.1-8b-instant")

    [row] = report["models"]
    assert row["rateLimited"] == 1 and row["errors"] == {"rate_limited": 1}
    assert (row["calls"], row["successes"], row["skipped"]) == (1, 0, PROMPTS - 1)  # the provider said stop
    assert row["lastError"].startswith("rate limited")
    model = AIModel.objects.get(provider__slug="groq", model_id="llama-3.1-8b-instant")
    assert not HealthSample.objects.filter(model=model).exists()
    assert model.status == "available"
    assert QuotaState.objects.filter(provider__slug="groq", model=model, window="blocked").exists()


def test_a_hanging_call_times_out_without_holding_up_the_others(providers, fake):
    providers("groq", "cerebras")
    fake.state.push("groq", "hang", count=1, seconds=20)

    out = StringIO()
    call_command("benchmark_models", "--json", "--timeout", "1", "--model", "groq/llama-3.1-8b-instant",
                 "--model", "cerebras/llama3.1-8b", stdout=out, stderr=StringIO())

    models = by_model(json.loads(out.getvalue()))
    groq = models["groq/llama-3.1-8b-instant"]
    assert groq["errors"] == {"timeout": 1} and groq["successes"] == PROMPTS - 1
    assert models["cerebras/llama3.1-8b"]["successRate"] == 1.0


def test_the_json_export_parses_and_has_the_summary_keys(providers, tmp_path):
    providers("groq")
    target = tmp_path / "benchmark-report.json"
    out = StringIO()

    call_command("benchmark_models", "--provider", "groq", "--output", str(target), stdout=out, stderr=StringIO())

    data = json.loads(target.read_text())
    assert {"generatedAt", "models", "summary"} <= set(data)
    assert {"topPerformer", "averageScore", "modelsTested", "successRate"} <= set(data["summary"])
    assert data["summary"]["modelsTested"] == len(chat_models("groq")) == len(data["models"])
    assert data["generatedAt"].endswith("Z")
    assert data["summary"]["topPerformer"] in out.getvalue()  # the table was still printed


def test_embedding_image_and_audio_models_are_never_benchmarked(providers, fake):
    providers("openai", "mistral", "groq")
    others = set(AIModel.objects.exclude(type__in=["llm", "chat", "vision"]).values_list("model_id", flat=True))
    assert {"text-embedding-3-small", "whisper-1", "dall-e-3", "mistral-embed", "whisper-large-v3"} <= others

    report, _ = run()
    named, warnings = run("--model", "openai/text-embedding-3-small")

    tested = {m["modelId"] for m in report["models"]}
    assert tested and not tested & others
    sent = {(entry["body"] or {}).get("model") for entry in fake.state.log if entry["method"] == "POST"}
    assert sent and not sent & others
    assert not any("embed" in entry["path"] for entry in fake.state.log)
    assert named["models"] == [] and "openai/text-embedding-3-small" in warnings


def test_every_call_is_recorded_as_benchmark_health_evidence_and_free_quota(providers, fake):
    providers("groq")
    fake.state.quota["groq"] = {"remaining_requests": 3}

    run("--model", "groq/llama-3.1-8b-instant", "--rounds", "2")

    model = AIModel.objects.get(provider__slug="groq", model_id="llama-3.1-8b-instant")
    samples = HealthSample.objects.filter(model=model)
    assert samples.count() == 2 * PROMPTS
    assert set(samples.values_list("source", "ok")) == {("benchmark", True)}
    assert all(s.latency_ms > 0 for s in samples)
    assert model.reliability == 1.0 and model.latency_ms is not None
    # Counted where the provider says nothing (requests/minute), observed where it does.
    assert QuotaState.objects.get(model=model, window="requests/minute").used == 2 * PROMPTS
    assert QuotaState.objects.get(model=model, window="requests/day").remaining == 3
