"""GET /metrics across processes: two servers' traffic is summed by a scrape of either, a worker in
a container of its own serves its series, serve removes dead processes' files; a scrape's queries do
not grow with the registry; discovery is timed and lost usage records counted. (After known gateway
traffic, names and values: tests/gateway/test_metrics.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from afmts import metrics as series
from registry import services, version
from registry.fakes import KEY
from registry.models import AIModel
from tests.analytics.test_usage_durability import database_url_under_test, seed, server_env, start_gateway

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


def test_a_scrape_queries_the_same_whatever_the_number_of_models(client, db, make_provider, settings):
    # The registry version's poll re-reads the database once a second: a measurement the poll fell
    # into counted one query more than one it did not (this test failed now and then in CI).
    settings.AFMTS_REGISTRY_POLL_SECONDS = 3600
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

    assert many == few <= 1  # the agents count


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


def test_a_usage_record_the_database_refuses_is_counted_as_dropped(client, db, settings, tmp_path):
    from analytics.recorder import Outcome, Recorder

    settings.AFMTS_USAGE_FLUSH_SECONDS = 3600
    settings.AFMTS_USAGE_SPILL_DIR = str(tmp_path / "spill")
    rec = Recorder()
    try:
        before, _ = scrape(client)
        for n, tokens in enumerate((5, -1, 7)):  # a negative count breaks the column's check
            rec.add(Outcome(ts=time.time(), request_id=f"req-{n}", endpoint="chat.completions", requested_model="auto",
                            tokens_in=tokens))
        rec.flush()
        after, _ = scrape(client)
    finally:
        rec._stopping = True
        rec._wake.set()

    assert rec.dropped == 1
    assert delta(after, before, "afmts_usage_records_dropped_total") == 1
    # Counted as requests whatever became of their rows.
    assert delta(after, before, "afmts_gateway_requests_total", endpoint="chat.completions", provider="none",
                 model="none", status="ok") == 3


def test_a_worker_in_a_container_of_its_own_serves_its_series(tmp_path):
    env = server_env("", tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    env.pop("AFMTS_METRICS_DIR", None)
    port = _free_port()
    env.update({"AFMTS_WORKER_METRICS_PORT": str(port), "AFMTS_WORKER_METRICS_ADDRESS": "127.0.0.1"})
    # A discovery error counted by one of the worker's processes (here: an earlier one).
    code = "from afmts.metrics import discovery_errors; discovery_errors.labels('groq').inc(3)"
    subprocess.run([*MANAGE, "shell", "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen([*CELERY, "worker", "--pool", "solo", "-l", "warning"], cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert worker.poll() is None, log.read_text()[-3000:]
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()

    assert value(_parse(text), "afmts_discovery_errors_total", provider="groq") == 3


ROOT = Path(__file__).resolve().parent.parent.parent
MANAGE = [sys.executable, "manage.py"]
CELERY = [sys.executable, "-m", "celery", "-A", "afmts"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_served_text_says_what_prometheus_client_would(db, make_provider):
    from prometheus_client import generate_latest

    from analytics.metrics import observe_usage, render, scrape_registry
    from analytics.recorder import Outcome

    make_provider("groq")
    before = _parse(render().decode())
    odd = 'groq/a "quoted" \\ model\nid'  # model ids come from providers: escaped, never broken
    observe_usage([
        Outcome(ts=time.time(), request_id=f"r{n}", endpoint="chat.completions", requested_model="auto",
                public_id=public_id, provider="groq", latency_ms=40.0 * n, ttft_ms=5.0, overhead_ms=0.3,
                tokens_in=3, tokens_out=4, attempts=1 + n % 2, status="ok" if n % 3 else "upstream_timeout",
                http_status=200 if n % 3 else 504)
        for n, public_id in enumerate(["groq/llama", odd] * 5)
    ])

    served, reference = _parse(render().decode()), _parse(generate_latest(scrape_registry()).decode())

    assert served == reference
    assert delta(served, before, "afmts_ttft_seconds_count", provider="groq", model=odd) == 5
