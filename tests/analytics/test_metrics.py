"""GET /metrics sees the gateway: after known traffic, parsed with prometheus_client's own text
parser, the gateway series and the seed's names carry the values the traffic implies; labels carry
no user input and no secret; a scrape's queries do not grow with the registry; discovery is timed;
and two processes' traffic is summed by a scrape of either."""

from __future__ import annotations

import os
import subprocess
import time
from decimal import Decimal

import httpx
import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from afmts import metrics as series
from analytics.models import UsageRecord
from registry import services, version
from registry.models import AIModel
from registry.selectors import snapshot
from routing.fakes import KEY
from routing.gateway.runtime import runtime
from tests.analytics.test_usage_durability import database_url_under_test, seed, server_env, start_gateway
from tests.gateway.conftest import flush, gateway, gateway_url, provider, user_secret  # noqa: F401 - fixtures

FREE = {"model_id": "llama-3.1-8b-instant", "is_free": True, "free_rpm": 30}
# The paid model savings are measured against (same type, a superset of the free model's capabilities).
PAID = {"model_id": "gpt-4o-mini", "input_price": "0.15", "output_price": "0.6"}
CHAT = [{"role": "user", "content": "hi"}]

Samples = dict[tuple[str, frozenset], float]


def scrape(client) -> tuple[Samples, str]:
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, text


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def catalog(provider):
    series.clean_dead()  # earlier runs' files: this process's counts are what the deltas measure
    provider("groq", models=[FREE])
    provider("openai", models=[PAID])


def test_metrics_after_known_traffic_carry_its_names_and_values(client, gateway, catalog, user_secret):
    before, _ = scrape(client)
    auth = {"authorization": f"Bearer {user_secret}"}
    with httpx.Client(base_url=gateway, timeout=10) as http:
        for _ in range(3):
            assert http.post("/v1/chat/completions", json={"model": "free", "messages": CHAT}, headers=auth).status_code == 200
        with http.stream("POST", "/v1/chat/completions", headers=auth,
                         json={"model": "groq/llama-3.1-8b-instant", "messages": CHAT, "stream": True}) as reply:
            assert reply.status_code == 200
            reply.read()
        assert http.post("/v1/chat/completions", json={"model": "openai/gpt-4o-mini", "messages": CHAT},
                         headers=auth).status_code == 200
        assert http.post("/v1/chat/completions", json={"model": "no-such/model", "messages": CHAT},
                         headers=auth).status_code == 404
        assert http.post("/v1/chat/completions", json={"model": "free", "messages": CHAT}).status_code == 401
    assert flush() == 5  # the usage series are counted from the recorder's batches
    after, _ = scrape(client)

    free, paid = "groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"
    requests = "afmts_gateway_requests_total"
    assert delta(after, before, requests, endpoint="chat.completions", provider="groq", model=free, status="ok") == 4
    assert delta(after, before, requests, endpoint="chat.completions", provider="openai", model=paid, status="ok") == 1
    assert delta(after, before, requests, endpoint="chat.completions", provider="none", model="none",
                 status="model_not_found") == 1
    assert delta(after, before, requests, endpoint="chat.completions", provider="none", model="none",
                 status="missing_api_key") == 1
    assert delta(after, before, "registry_requests_total") == 7  # the refused ones too
    assert delta(after, before, "registry_response_time_seconds_count") == 5
    assert delta(after, before, "afmts_gateway_latency_seconds_count", endpoint="chat.completions", provider="groq",
                 model=free) == 4
    assert delta(after, before, "afmts_gateway_latency_seconds_bucket", endpoint="chat.completions", provider="groq",
                 model=free, le="+Inf") == 4
    assert delta(after, before, "afmts_ttft_seconds_count", provider="groq", model=free) == 1
    assert delta(after, before, "afmts_gateway_overhead_seconds_count", endpoint="chat.completions") == 5
    assert delta(after, before, "afmts_fallbacks_total", endpoint="chat.completions") == 0

    rows = UsageRecord.objects.all()
    for direction, column in (("in", "tokens_in"), ("out", "tokens_out")):
        for slug in ("groq", "openai"):
            expected = rows.filter(provider=slug).aggregate(n=Sum(column))["n"]
            assert expected > 0
            assert delta(after, before, "afmts_tokens_total", direction=direction, provider=slug) == expected
    # Spend and savings, exact in Decimal in the rows, as floats here.
    spent = rows.filter(provider="openai").aggregate(c=Sum("cost"))["c"]
    assert spent > 0
    assert delta(after, before, "afmts_cost_usd_total", provider="openai") == pytest.approx(float(spent), rel=1e-9)
    assert delta(after, before, "afmts_cost_usd_total", provider="groq") == 0
    reference = rows.filter(provider="groq").aggregate(r=Sum("reference_cost"))["r"]
    assert reference > Decimal(0) and set(rows.filter(provider="groq").values_list("reference_model", flat=True)) == {paid}
    assert delta(after, before, "afmts_saved_usd_total", provider="groq") == pytest.approx(float(reference), rel=1e-9)
    assert delta(after, before, "afmts_saved_usd_total", provider="openai") == 0  # it is the reference

    # The seed's names: gauges from the registry and from the summed series.
    assert value(after, "registry_models_active") == 2
    assert value(after, "registry_agents_total") == 0
    assert value(after, "afmts_free_models", provider="groq") == 1
    assert value(after, "afmts_free_models", provider="openai") == 0
    latency_sum = value(after, "registry_response_time_seconds_sum")
    latency_count = value(after, "registry_response_time_seconds_count")
    assert value(after, "registry_response_time_avg") == pytest.approx(latency_sum / latency_count * 1000, rel=1e-3)
    errors = sum(v for (n, ls), v in after.items() if n == requests and ("status", "ok") not in ls)
    assert value(after, "registry_error_rate") == pytest.approx(errors / total(after, requests), abs=1e-6)

    # Quota left and breakers: this process's live routing state, as the router reads it.
    model = snapshot().by_public_id[free]
    left = runtime.live.quota_view(model, time.time())["windows"]["requests/minute"]["remaining"]
    assert left <= 30 - 4
    assert value(after, "afmts_free_quota_remaining", provider="groq", model=free, window="requests/minute") == left
    runtime.live.breakers.trip(f"model:{model.pk}", time.time())
    runtime.live.breakers.trip("provider:openai", time.time())
    now, _ = scrape(client)
    assert value(now, "afmts_circuit_state", provider="groq", model=free) == 2
    assert value(now, "afmts_circuit_state", provider="openai", model="") == 2


def test_labels_carry_neither_user_input_nor_a_secret(client, gateway, catalog, user_secret):
    typed = "sk-user-typed-0123456789abcdef"
    with httpx.Client(base_url=gateway, timeout=10) as http:
        http.post("/v1/chat/completions", json={"model": typed, "messages": CHAT},
                  headers={"authorization": f"Bearer {user_secret}", "x-request-id": "req-label-probe-42"})
        http.post("/v1/chat/completions", json={"model": "free", "messages": CHAT},
                  headers={"authorization": f"Bearer {user_secret}", "x-request-id": "req-label-probe-43"})
        http.post("/v1/chat/completions", json={"model": "free", "messages": CHAT},
                  headers={"authorization": "Bearer afmts_not-a-real-key-0123456789"})
    flush()
    _, text = scrape(client)

    for leaked in (typed, "req-label-probe", user_secret, user_secret[:16], "afmts_not-a-real-key", KEY):
        assert leaked not in text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if "model" in s.labels:
                assert s.labels["model"] in ("", "none") or s.labels["model"] in {
                    "groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"}, s


def test_a_scrape_queries_the_same_whatever_the_number_of_models(client, db, make_provider):
    provider = make_provider("groq")

    def queries() -> int:
        client.get("/metrics")  # builds the snapshot once for this registry version
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/metrics").status_code == 200
        return len(captured)

    AIModel.objects.create(provider=provider, model_id="one", name="one", is_free=True, free_rpm=10)
    version.bump_local()
    few = queries()
    AIModel.objects.bulk_create([
        AIModel(provider=provider, model_id=f"m-{i}", name=f"m-{i}", is_free=i % 2 == 0, free_rpm=10, free_rpd=100)
        for i in range(500)
    ])
    version.bump_local()
    many = queries()

    assert many == few <= 2  # the agents count, and at most the registry version's poll


def test_discovery_times_each_provider_and_counts_its_failures(db, fake, transactional_db):
    from registry import tracker

    services.provider_create(slug="groq", kind="groq", base_url=fake.base_url("groq"), api_key=KEY)
    services.provider_create(slug="gone", kind="groq", base_url="http://127.0.0.1:9/openai/v1", api_key=KEY)
    before = {p: (series.discovery_duration.labels(p)._sum.get(), series.discovery_errors.labels(p)._value.get())
              for p in ("groq", "gone")}

    results = {r.provider: r for r in tracker.discover(["groq", "gone"])}

    assert results["groq"].ok and not results["gone"].ok
    for slug in ("groq", "gone"):
        seconds, errors = before[slug]
        assert series.discovery_duration.labels(slug)._sum.get() - seconds == pytest.approx(results[slug].seconds)
        assert series.discovery_errors.labels(slug)._value.get() - errors == (0 if slug == "groq" else 1)


def test_a_scrape_of_either_process_sums_both_processes_traffic(fake, transactional_db, tmp_path):
    secret = seed(fake)[0]
    # Two servers, one data folder: one metrics folder, as `serve --workers 2` gives its workers.
    env = server_env(database_url_under_test(), tmp_path, AFMTS_USAGE_FLUSH_SECONDS="0.1")
    env.pop("AFMTS_METRICS_DIR", None)
    servers = []
    try:
        for name in ("a", "b"):
            servers.append(start_gateway(env, tmp_path / f"{name}.log"))
        (_, a), (_, b) = servers
        pids = {proc.pid for proc, _ in servers}
        sent = {a: 3, b: 2}
        for url, n in sent.items():
            for _ in range(n):
                reply = httpx.post(f"{url}/v1/chat/completions", json={"model": "free", "messages": CHAT},
                                   headers={"authorization": f"Bearer {secret}"}, timeout=10)
                assert reply.status_code == 200

        name = "afmts_gateway_requests_total"
        labels = {"endpoint": "chat.completions", "provider": "groq", "model": "groq/llama-3.1-8b-instant", "status": "ok"}
        deadline = time.monotonic() + 15
        while True:
            seen = {url: value(_parse(httpx.get(f"{url}/metrics", timeout=10).text), name, **labels) for url in (a, b)}
            if seen == {a: 5, b: 5} or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert seen == {a: 5, b: 5}
        files = {p.name for p in (tmp_path / "metrics").glob("*.db")}
        assert {f"counter_{pid}.db" for pid in pids} <= files
    finally:
        for proc, _ in servers:
            proc.terminate()
        for proc, _ in servers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_serve_removes_the_files_of_processes_no_longer_running(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"counter_{dead.pid}.db").write_bytes(b"")
    (tmp_path / f"histogram_{dead.pid}.db").write_bytes(b"")
    running = tmp_path / f"counter_{os.getpid()}.db"
    running.write_bytes(b"")

    assert series.clean_dead(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir()] == [running.name]
