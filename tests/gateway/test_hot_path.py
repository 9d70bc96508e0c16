"""What the gateway promises about its request path: no database query, streams that flow as the
upstream produces them, upstream work cancelled when the client leaves, and everything learned
from a request (usage, passive health, free quota) recorded afterwards, in batches."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest
from django.db.backends.utils import CursorWrapper

from registry.models import AIModel, HealthSample
from tests.gateway.conftest import flush

FREE = {"model_id": "llama-3.1-8b-instant", "is_free": True, "free_rpd": 14400, "latency_ms": 100, "reliability": 0.99}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def client(gateway, user_secret) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=user_secret, max_retries=0)


class QueryCounter:
    """Counts SQL statements run by any thread, but for the background watcher's read of the
    registry version (once a second, off the request path)."""

    def __init__(self, monkeypatch):
        self.count = 0
        self.lock = threading.Lock()
        original = CursorWrapper.execute

        self.statements: list[str] = []

        def execute(cursor, sql, *args, **kwargs):
            if "registry_registrystate" not in sql:
                with self.lock:
                    self.count += 1
                    self.statements.append(f"{threading.current_thread().name}: {sql[:120]}")
            return original(cursor, sql, *args, **kwargs)

        monkeypatch.setattr(CursorWrapper, "execute", execute)


def test_a_warm_request_makes_no_database_query(client, provider, monkeypatch):
    provider("groq", models=[FREE])
    for _ in range(2):  # the first builds the routing view and caches the key
        client.chat.completions.create(model="free", messages=HI)
    flush()  # what they taught (health) changes the registry: the next request sees the new view
    client.chat.completions.create(model="free", messages=HI)
    # The background watcher and flusher query on their own timers, off the request path: pause them.
    from routing.gateway.runtime import runtime

    for task in runtime._tasks:
        runtime._loop.call_soon_threadsafe(task.cancel)
    time.sleep(0.2)
    from registry import version

    try:
        for _ in range(3):
            # A registry change in the window (another test's leftover thread publishing) rightly
            # costs one rebuild; what is asserted is that warm requests without one query nothing.
            client.chat.completions.create(model="free", messages=HI)  # takes in any change made so far
            before = (version._db_version, version._local_generation)
            counter = QueryCounter(monkeypatch)
            for _ in range(5):
                client.chat.completions.create(model="free", messages=HI)
                list(client.chat.completions.create(model="free", messages=HI, stream=True))
            if (version._db_version, version._local_generation) == before:
                break
    finally:
        runtime._loop = None  # the next request starts them again

    assert (version._db_version, version._local_generation) == before, "the registry kept changing"
    assert counter.count == 0, counter.statements


def test_stream_chunks_reach_the_client_before_the_upstream_is_done(gateway, user_secret, provider, fake):
    provider("groq", models=[FREE])
    fake.state.chunk_delay = 0.15

    with httpx.stream("POST", f"{gateway}/v1/chat/completions", headers={"authorization": f"Bearer {user_secret}"},
                      json={"model": "free", "messages": HI, "stream": True}, timeout=10) as response:
        arrivals = [time.monotonic() for line in response.iter_lines() if line.startswith("data: ")]
    upstream = fake.state.requests("groq")[-1]

    assert len(arrivals) >= 4
    assert arrivals[0] < upstream["t_last_frame"]  # the first chunk arrived before the last was sent
    assert arrivals[-1] - arrivals[0] >= 0.15 * 2


def test_a_client_that_leaves_mid_stream_cancels_the_upstream(gateway, user_secret, provider, fake):
    provider("groq", models=[FREE])
    fake.state.chunk_delay = 0.3

    with httpx.stream("POST", f"{gateway}/v1/chat/completions", headers={"authorization": f"Bearer {user_secret}"},
                      json={"model": "free", "messages": HI, "stream": True}, timeout=10) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                break  # leave after the first chunk
    time.sleep(1.0)

    upstream = fake.state.requests("groq")[-1]
    assert upstream["t_last_frame"] is None  # the upstream never got to send its last chunk


def test_a_client_that_leaves_before_the_reply_cancels_the_upstream_call(gateway, user_secret, provider, fake):
    from analytics.models import UsageRecord

    provider("groq", models=[FREE])
    fake.state.push("groq", "hang", seconds=1.5)

    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway}/v1/chat/completions", headers={"authorization": f"Bearer {user_secret}"},
                   json={"model": "free", "messages": HI}, timeout=0.4)
    deadline = time.monotonic() + 5
    while not flush() and time.monotonic() < deadline:
        time.sleep(0.05)

    record = UsageRecord.objects.get()
    assert (record.status, record.http_status) == ("client_disconnected", 499)
    # Ended when the client left (0.4 s), not when the upstream would have answered (1.5 s).
    assert record.latency_ms < 1200


def test_results_feed_passive_health_and_free_quota(client, provider, fake, user_api):
    provider("groq", models=[FREE])
    fake.state.quota["groq"] = {"remaining_requests": 2}

    client.chat.completions.create(model="free", messages=HI)
    flush()

    model = AIModel.objects.get(model_id="llama-3.1-8b-instant")
    assert HealthSample.objects.filter(model=model, source="traffic", ok=True).count() == 1
    quota = user_api.get("/api/free-models").json()["models"][0]["quota"]
    assert quota["windows"]["requests/day"]["remaining"] == 2  # the provider's word
    assert quota["windows"]["requests/day"]["source"] == "headers"


def test_failures_feed_health_too(client, provider, fake):
    provider("groq", models=[FREE])
    provider("openai", models=[{"model_id": "gpt-4o-mini", "input_price": "0.15", "output_price": "0.6"}])
    fake.state.push("groq", "server_error")

    client.chat.completions.create(model="auto", messages=HI)
    flush()

    failed = HealthSample.objects.get(model__model_id="llama-3.1-8b-instant")
    assert failed.ok is False and failed.source == "traffic"
    assert AIModel.objects.get(model_id="llama-3.1-8b-instant").status == "degraded"


def test_a_new_model_is_routable_without_restarting(client, provider, admin_api):
    provider("groq", models=[FREE])
    client.chat.completions.create(model="free", messages=HI)

    provider("cerebras", models=[{"model_id": "llama3.1-8b", "is_free": True, "priority": 10}])

    assert client.chat.completions.create(model="free", messages=HI).model == "cerebras/llama3.1-8b"
