"""manage.py monitor status|report|performance|metrics, from UsageRecord rows with known values."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from analytics import monitor
from analytics.models import UsageRecord
from registry.models import Agent, AgentStatus, Event, ModelChange, ModelStatus, Provider, ProviderStatus


def run(*args: str) -> str:
    out = StringIO()
    call_command("monitor", *args, stdout=out)
    return out.getvalue()


def usage(model, *, minutes_ago: float = 1, status: str = "ok", latency: float = 100, ttft: float | None = None,
          tokens_in: int = 10, tokens_out: int = 20, cost: str | None = "0", reference: str | None = "0") -> UsageRecord:
    return UsageRecord.objects.create(
        ts=timezone.now() - timedelta(minutes=minutes_ago), request_id="r", endpoint="chat",
        requested_model=model.public_id, model=model, public_id=model.public_id, provider=model.provider.slug,
        is_free=model.is_free, tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=latency, ttft_ms=ttft,
        status=status, http_status=200 if status == "ok" else 502,
        cost=None if cost is None else Decimal(cost), reference_cost=None if reference is None else Decimal(reference),
    )


@pytest.fixture
def seeded(make_model):
    """Two models: a free one with 2 requests (one failed), a paid one with 1; one old request."""
    free = make_model("llama", provider="groq", is_free=True)
    paid = make_model("gpt-4o", provider="openai", input_price=5, output_price=15)
    usage(free, latency=100, ttft=40, tokens_in=10, tokens_out=100, reference="0.002")
    usage(free, latency=300, status="upstream_error", tokens_in=5, tokens_out=0, reference="0.001")
    usage(paid, latency=200, ttft=50, tokens_in=20, tokens_out=40, cost="0.003", reference="0.004")
    usage(paid, minutes_ago=60 * 30, latency=999, cost="1", reference="1")  # outside the last 24 h
    return free, paid


def test_percentile_interpolates():
    assert monitor.percentile([], 0.5) is None
    assert monitor.percentile([300, 100, 200], 0.5) == 200
    assert monitor.percentile([100, 200, 300], 0.95) == 290


@pytest.mark.django_db
def test_status_counts(seeded, make_model):
    make_model("old", provider="groq", status=ModelStatus.RETIRED)
    make_model("slow", provider="openai", status=ModelStatus.DEGRADED)
    Provider.objects.filter(slug="groq").update(status=ProviderStatus.DOWN, last_error="HTTP 503 from listing")
    Provider.objects.filter(slug="openai").update(status=ProviderStatus.UP)
    Agent.objects.create(name="a1", status=AgentStatus.ONLINE)
    Agent.objects.create(name="a2", status=AgentStatus.OFFLINE)

    data = monitor.status()
    assert data["models"] == {
        "total": 4, "available": 2, "degraded": 1, "down": 0, "retired": 1, "free": 1, "freeNow": 1,
    }
    assert data["agents"] == {"total": 2, "online": 1}
    assert (data["providers"]["up"], data["providers"]["down"], data["providers"]["unknown"]) == (1, 1, 0)
    assert data["requests"]["last1h"] == {"requests": 3, "errors": 1, "errorRate": 0.3333, "p50LatencyMs": 200}
    assert data["checks"]["database"]["ok"]

    text = run("status")
    assert "Models     4 total: 2 available, 1 degraded, 0 down, 1 retired; 1 free now" in text
    assert "Agents     1/2 online" in text
    assert "1 up, 1 down, 0 unknown" in text
    assert "HTTP 503 from listing" in text
    assert "database" in text and "broker" in text

    as_json = json.loads(run("status", "--json"))
    assert as_json["models"]["total"] == 4
    assert as_json["mode"] in ("embedded", "server")


@pytest.mark.django_db
def test_report_totals_and_models(seeded):
    free, paid = seeded
    now = timezone.now()
    ModelChange.objects.create(model=free, public_id=free.public_id, event="model_became_free", field="is_free",
                               old=False, new=True, at=now - timedelta(hours=1))
    ModelChange.objects.create(model=free, public_id=free.public_id, event="model_updated", field="name",
                               old="a", new="b", at=now - timedelta(hours=1))
    Event.objects.create(event="provider_down", data={"provider": "groq", "error": "boom"}, ts=now, version=1)
    Event.objects.create(event="model_registered", data={}, ts=now, version=2)

    data = json.loads(run("report"))
    totals = data["totals"]
    assert (totals["requests"], totals["errors"], totals["errorRate"]) == (3, 1, 0.3333)
    assert (totals["tokensIn"], totals["tokensOut"]) == (35, 140)
    assert totals["cost"] == pytest.approx(0.003)
    assert totals["referenceCost"] == pytest.approx(0.007)
    assert totals["savings"] == pytest.approx(0.007 - 0.003)
    assert totals["freeShare"] == pytest.approx(0.6667)
    assert data["period"]["hours"] == 24

    by_model = {row["model"]: row for row in data["byModel"]}
    assert [row["model"] for row in data["byModel"]] == ["groq/llama", "openai/gpt-4o"]  # busiest first
    assert by_model["groq/llama"]["requests"] == 2 and by_model["groq/llama"]["errors"] == 1
    assert by_model["groq/llama"]["p50LatencyMs"] == 200
    assert by_model["openai/gpt-4o"]["savings"] == pytest.approx(0.001)
    assert {row["provider"] for row in data["byProvider"]} == {"groq", "openai"}

    assert data["freeModelChanges"]["count"] == 1
    assert data["freeModelChanges"]["list"][0]["new"] is True
    assert data["healthIncidents"]["count"] == 1
    assert data["healthIncidents"]["list"][0] == {
        "event": "provider_down", "ts": data["healthIncidents"]["list"][0]["ts"], "provider": "groq", "error": "boom",
    }


@pytest.mark.django_db
def test_report_period_options(seeded):
    assert json.loads(run("report", "--hours", "48"))["totals"]["requests"] == 4
    assert json.loads(run("report", "--hours", "0.5"))["totals"]["requests"] == 3
    since = (timezone.now() - timedelta(hours=31)).isoformat()
    until = (timezone.now() - timedelta(hours=29)).isoformat()
    data = json.loads(run("report", "--since", since, "--until", until))
    assert data["totals"]["requests"] == 1
    assert data["totals"]["cost"] == 1


@pytest.mark.django_db
def test_performance_orders_by_requests(seeded):
    free, paid = seeded
    free.latency_ms, free.reliability = 150.0, 0.5
    free.save(update_fields=["latency_ms", "reliability"])

    rows = json.loads(run("performance", "--json"))
    assert [r["model"] for r in rows] == ["groq/llama", "openai/gpt-4o"]
    llama, gpt = rows
    assert llama["requests"] == 2 and llama["successRate"] == 50.0
    assert llama["p50LatencyMs"] == 200 and llama["p50TtftMs"] == 40
    assert llama["registryLatencyMs"] == 150 and llama["registryReliability"] == 0.5
    assert llama["tokensPerSecond"] == 1000.0  # 100 tokens in 100 ms (the failed request is not timed)
    assert gpt["p50LatencyMs"] == 200 and gpt["status"] == "available"

    text = run("performance")
    assert text.index("groq/llama") < text.index("openai/gpt-4o")
    assert "200ms" in text

    assert [r["requests"] for r in json.loads(run("performance", "--json", "--hours", "48"))] == [2, 2]


@pytest.mark.django_db
def test_metrics_parse(seeded, make_model):
    make_model("gone", provider="openai", status=ModelStatus.RETIRED)
    Agent.objects.create(name="a1")
    Provider.objects.filter(slug="openai").update(status=ProviderStatus.UP)

    text = run("metrics")
    samples = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples["registry_requests_total"] == 4
    assert samples["registry_models_active"] == 2
    assert samples["registry_models_free"] == 1
    assert samples["registry_agents_total"] == 1
    assert samples["registry_providers_up"] == 1
    assert samples["registry_response_time_avg"] == 200  # (100 + 300 + 200) / 3, last hour only
    assert samples["registry_error_rate"] == pytest.approx(0.3333)
    for name in ("registry_requests_total", "registry_models_active", "registry_agents_total",
                 "registry_response_time_avg", "registry_error_rate"):
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text


@pytest.mark.django_db
def test_metrics_without_traffic():
    samples = {s.name: s.value for f in text_string_to_metric_families(monitor.metrics_text()) for s in f.samples}
    assert samples["registry_requests_total"] == 0
    assert samples["registry_error_rate"] == 0 and samples["registry_response_time_avg"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bogus",), "invalid choice: 'bogus'"),
        (("report", "--since", "yesterday"), "--since: 'yesterday' is not an ISO 8601 time"),
        (("report", "--until", "2026-13-45"), "--until"),
        (("report", "--since", "2026-01-02", "--until", "2026-01-01"), "--since must be before --until"),
        (("report", "--hours", "-1"), "--hours must be a positive number"),
        (("report", "--hours", "2", "--since", "2026-01-01"), "not both"),
        (("status", "--since", "2026-01-01"), "apply to `report` only"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(CommandError) as exc:
        run(*args)
    assert message in str(exc.value)
