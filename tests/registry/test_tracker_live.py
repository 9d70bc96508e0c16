"""The tracker against the fake providers over real HTTP: discovery cycles, free transitions,
idempotency, slow and failing providers, concurrent workers, probes, quota and live events."""

from __future__ import annotations

import copy
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import close_old_connections, connection
from django.test.utils import CaptureQueriesContext

from afmts.asgi import application
from registry import services, tracker
from registry.fakes import KEY, catalog
from registry.models import AIModel, Event, ModelChange, Provider

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def providers(fake, settings):
    settings.AFMTS_DISCOVERY_TIMEOUT_SECONDS = 3
    settings.AFMTS_UPSTREAM_TIMEOUTS = {"connect": 1, "read": 5, "write": 1, "pool": 1, "total": 10}

    def make(*kinds: str) -> None:
        for kind in kinds:
            services.provider_create(slug=kind.replace("_", "-"), kind=kind, base_url=fake.base_url(kind), api_key=KEY)

    return make


def counts(slug: str) -> tuple[int, int]:
    models = AIModel.objects.filter(provider__slug=slug)
    return models.count(), models.filter(is_free=True).count()


def test_a_cycle_registers_every_providers_models_with_their_free_status(providers):
    providers("groq", "openrouter", "gemini", "ollama")

    results = {r.provider: r for r in tracker.discover()}

    assert all(r.ok for r in results.values()), results
    assert counts("openrouter") == (len(catalog.OPENROUTER) - 0, results["openrouter"].free)
    assert results["openrouter"].free == 3  # the three `:free` ids priced "0"; none of the zero-priced others
    assert counts("gemini")[0] == len(catalog.GEMINI)  # all pages (the fake pages by 3)
    assert counts("ollama") == (len(catalog.OLLAMA), len(catalog.OLLAMA))  # local: all free
    assert AIModel.objects.get(provider__slug="openrouter", model_id="meta-llama/llama-3.3-70b-instruct:free").quota_scope == "account"
    assert Provider.objects.get(slug="groq").status == "up"


def test_an_unchanged_cycle_writes_nothing(providers):
    providers("groq", "openrouter")
    tracker.discover()

    with CaptureQueriesContext(connection) as captured:
        results = tracker.discover()
    # (sync_to_async runs the writes in its own thread: count what every connection did)
    assert all(r.writes == 0 for r in results), [(r.provider, r.writes) for r in results]
    assert sum(r.changed + r.new + r.retired for r in results) == 0
    assert captured is not None


def test_changes_in_a_listing_become_history_and_events(providers, fake, settings):
    settings.AFMTS_RETIRE_GRACE_SECONDS = 0
    providers("openrouter")
    tracker.discover()
    paid, free = "openai/gpt-4o-mini", "google/gemma-3-27b-it:free"
    new_entry = {**copy.deepcopy(catalog.OPENROUTER[0]), "id": "acme/new-model:free", "canonical_slug": "acme/new-model"}

    fake.state.change_listing(
        "openrouter", add=[new_entry], remove=[free],
        patch={paid: {"pricing": {"prompt": "0", "completion": "0"}, "id": paid},
               "deepseek/deepseek-chat-v3-0324:free": {"context_length": 64000}},
    )
    [result] = tracker.discover()

    assert (result.new, result.retired) == (1, 1) and result.changed >= 1
    assert AIModel.objects.get(model_id="acme/new-model:free").is_free
    assert AIModel.objects.get(model_id=free).status == "retired"
    names = list(Event.objects.values_list("event", flat=True))
    assert {"model_registered", "model_updated", "model_retired"} <= set(names)
    assert ModelChange.objects.filter(public_id="openrouter/deepseek/deepseek-chat-v3-0324:free", field="context_window",
                                      new=64000).exists()


def test_a_model_that_turns_free_and_back_is_tracked(providers, fake, user_api):
    providers("openrouter")
    tracker.discover()
    promo = {**copy.deepcopy(catalog.OPENROUTER[0]), "id": "x/promo:free", "canonical_slug": "x/promo"}

    fake.state.change_listing("openrouter", add=[promo])
    tracker.discover()
    fake.state.change_listing("openrouter", patch={"x/promo:free": {"pricing": {"prompt": "0.000001", "completion": "0.000002"}}})
    tracker.discover()

    history = [(h["model"], h["event"]) for h in user_api.get("/api/free-models/history").json()["results"]]
    assert history[:2] == [("openrouter/x/promo:free", "model_stopped_being_free"), ("openrouter/x/promo:free", "model_became_free")]
    assert AIModel.objects.get(model_id="x/promo:free").input_price == 1


def test_zero_price_without_the_free_suffix_is_not_free(providers, fake):
    providers("openrouter")
    fake.state.change_listing("openrouter", patch={"openai/gpt-4o-mini": {"pricing": {"prompt": "0", "completion": "0"}}})

    tracker.discover()

    assert AIModel.objects.get(model_id="openai/gpt-4o-mini").is_free is False


def test_a_hanging_provider_never_delays_the_others(providers, fake, settings):
    settings.AFMTS_DISCOVERY_TIMEOUT_SECONDS = 1.5
    providers("groq", "cerebras", "mistral")
    fake.state.push("mistral", "hang", seconds=20)
    started = time.monotonic()

    results = {r.provider: r for r in tracker.discover()}

    assert time.monotonic() - started < 4
    assert results["groq"].ok and results["cerebras"].ok and "timed out" in results["mistral"].error
    assert counts("groq")[0] == len(catalog.GROQ) and counts("cerebras")[0] == len(catalog.CEREBRAS)
    assert Provider.objects.get(slug="mistral").failures == 1


def test_a_slow_provider_never_holds_back_the_others_writes(providers, fake, settings):
    # Listings are applied one at a time on SQLite, yet each as soon as it has arrived: the fast
    # providers' models are in the database while the slow one has not answered yet.
    settings.AFMTS_DISCOVERY_TIMEOUT_SECONDS = 8
    providers("groq", "cerebras", "mistral")
    fake.state.push("mistral", "slow_first_byte", seconds=4)
    cycle = threading.Thread(target=lambda: (tracker.discover(), close_old_connections()))
    started = time.monotonic()
    cycle.start()
    while counts("groq")[0] < len(catalog.GROQ) or counts("cerebras")[0] < len(catalog.CEREBRAS):
        assert time.monotonic() - started < 3.5, "the fast providers waited for the slow one"
        time.sleep(0.05)

    assert cycle.is_alive() and counts("mistral")[0] == 0
    cycle.join(15)
    assert counts("mistral")[0] == len(catalog.MISTRAL)


def test_a_failing_provider_backs_off_and_goes_down(providers, fake):
    providers("groq")
    fake.state.push("groq", "server_error", count=2)

    tracker.discover()
    assert tracker.discover() == []  # backing off: not due yet
    Provider.objects.filter(slug="groq").update(next_discovery_at=None)
    tracker.discover()

    groq = Provider.objects.get(slug="groq")
    assert groq.status == "down" and groq.failures == 2
    assert Event.objects.filter(event="provider_down").count() == 1


def test_two_workers_discovering_at_once_neither_duplicate_nor_lose_rows(providers):
    providers("openrouter", "groq")
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            tracker.discover()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert counts("openrouter")[0] == len(catalog.OPENROUTER) and counts("groq")[0] == len(catalog.GROQ)
    assert Event.objects.filter(event="model_registered").count() == len(catalog.OPENROUTER) + len(catalog.GROQ)


def test_probes_learn_health_and_nearly_spent_quota_from_headers(providers, fake, user_api, settings):
    providers("groq")
    tracker.discover()
    fake.state.quota["groq"] = {"remaining_requests": 3}

    results = tracker.probe()

    assert results and all(r.ok for r in results)
    model = AIModel.objects.get(model_id="llama-3.1-8b-instant")
    assert model.latency_ms is not None and model.reliability == 1.0
    listed = {m["publicId"]: m for m in user_api.get("/api/free-models").json()["models"]}
    assert listed["groq/llama-3.1-8b-instant"]["quota"]["windows"]["requests/day"]["remaining"] == 3


def test_probe_failures_move_health_and_back_off(providers, fake):
    providers("groq")
    tracker.discover()
    chat_models = [m for m in tracker.health.probe_targets() if m.model_id == "llama-3.1-8b-instant"]
    fake.state.push("groq", "server_error", count=10)

    for _ in range(3):
        tracker.probe(chat_models)

    model = AIModel.objects.get(model_id="llama-3.1-8b-instant")
    assert model.status == "down"
    assert model not in tracker.health.probe_targets()  # backing off
    assert Event.objects.filter(event="health_changed").exists()


async def test_discovery_events_reach_a_websocket_client(providers):
    await sync_to_async(providers)("groq")
    secret = (await sync_to_async(services.apikey_create)(name="ws", scope="user"))[1]
    client = WebsocketCommunicator(application, f"/ws/events/?api_key={secret}")
    assert (await client.connect())[0]

    await sync_to_async(tracker.discover, thread_sensitive=False)()

    seen = []
    while len(seen) < 3:
        seen.append((await client.receive_json_from(timeout=5))["event"])
    assert "model_registered" in seen
    await client.disconnect()


async def test_a_websocket_client_receives_every_event_of_a_big_listing(providers, fake):
    # A channel holds 100 messages: sent one by one, a first cycle's thousands of events overflowed
    # it and a client connected meanwhile lost all but the first hundred.
    await sync_to_async(providers)("groq")
    many = [{**copy.deepcopy(catalog.GROQ[0]), "id": f"bulk/model-{i:03d}"} for i in range(300)]
    fake.state.change_listing("groq", add=many)
    secret = (await sync_to_async(services.apikey_create)(name="ws", scope="user"))[1]
    client = WebsocketCommunicator(application, f"/ws/events/?api_key={secret}")
    assert (await client.connect())[0]

    await sync_to_async(tracker.discover, thread_sensitive=False)()

    registered = set()
    while len(registered) < len(catalog.GROQ) + len(many):
        message = await client.receive_json_from(timeout=5)
        if message["event"] == "model_registered" and message["data"]["provider"] == "groq":
            registered.add(message["data"]["modelId"])
    assert {f"bulk/model-{i:03d}" for i in range(300)} <= registered
    await client.disconnect()


def test_the_celery_task_runs_a_cycle(providers):
    from registry.tasks import discovery_cycle

    providers("cerebras")

    assert discovery_cycle.apply().get() == 1
    assert counts("cerebras")[0] == len(catalog.CEREBRAS)


def test_a_rate_limited_listing_is_no_failure_and_waits_its_retry_after(providers, fake):
    providers("groq")
    tracker.discover()
    Provider.objects.filter(slug="groq").update(last_discovery_at=None)
    fake.state.push("groq", "rate_limit", retry_after=90)

    [result] = tracker.discover()

    groq = Provider.objects.get(slug="groq")
    assert result.error and groq.status == "up" and groq.failures == 0
    assert 85 <= (groq.next_discovery_at - groq.last_discovery_at).total_seconds() <= 90
    assert tracker.discover() == []  # waiting for the Retry-After


def test_failed_listings_a_429_included_leave_the_providers_models_routable(providers, fake):
    from registry import selectors, version

    providers("groq")
    tracker.discover()
    fake.state.push("groq", "rate_limit", retry_after=1)
    fake.state.push("groq", "server_error", count=2)

    for _ in range(3):
        Provider.objects.filter(slug="groq").update(next_discovery_at=None)
        tracker.discover()

    version.bump_local()
    routable = [m.public_id for m in selectors.rank(selectors.Criteria(provider="groq"))]
    assert "groq/llama-3.1-8b-instant" in routable


def test_a_paid_model_passive_health_marked_down_comes_back_through_a_probe(providers, fake):
    from datetime import timedelta

    from django.utils import timezone

    from registry.health import Sample, health_record

    providers("openai")
    tracker.discover()
    paid = AIModel.objects.get(provider__slug="openai", model_id="gpt-4o-mini")
    assert not paid.is_free
    t0 = timezone.now() - timedelta(minutes=10)
    health_record([Sample(paid.pk, False, error="UpstreamUnavailable", at=t0) for _ in range(3)], now=t0)
    assert AIModel.objects.get(pk=paid.pk).status == "down"

    targets = [m for m in tracker.health.probe_targets() if m.pk == paid.pk]
    results = tracker.probe(targets)

    assert [r.ok for r in results] == [True]
    assert AIModel.objects.get(pk=paid.pk).status == "degraded"
    probes = [r for r in fake.state.requests("openai") if r.get("path", "").endswith("/chat/completions")]
    assert probes and probes[-1]["body"]["max_tokens"] == 1
