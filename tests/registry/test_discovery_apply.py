"""apply_listing: how one provider's listing is folded into the registry."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry import selectors
from registry.discovery import apply_listing, due_providers, record_failure, run_cycle
from registry.models import AIModel, Event, ModelChange, Provider, QuotaState
from registry.providers.types import Listing, ModelRecord, RateLimitInfo, RateLimitWindow

pytestmark = pytest.mark.django_db


def record(model_id: str, **fields) -> ModelRecord:
    fields.setdefault("name", model_id)
    fields.setdefault("capabilities", ["text-generation"])
    return ModelRecord(id=model_id, **fields)


def listing(*records: ModelRecord) -> Listing:
    return Listing(models=list(records))


@pytest.fixture
def provider(make_provider) -> Provider:
    return make_provider("openrouter")


def events_since(start: int) -> list[str]:
    return list(Event.objects.filter(id__gt=start).values_list("event", flat=True))


def last_event_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_new_models_are_registered_with_history_and_events(provider):
    start = last_event_id()
    result = apply_listing(provider.pk, listing(
        record("openai/gpt-4o", input_price=Decimal("2.5"), output_price=Decimal("10")),
        record("meta/llama:free", is_free=True, free_reason=":free variant", quota={"rpm": 20, "rpd": 50}, quota_scope="account"),
    ))

    assert (result.seen, result.new, result.changed, result.free) == (2, 2, 0, 1)
    free = AIModel.objects.get(model_id="meta/llama:free")
    assert free.source == "discovered" and free.is_free and free.free_rpm == 20 and free.quota_scope == "account"
    assert events_since(start) == ["model_registered", "model_registered", "model_became_free", "provider_up"]
    assert ModelChange.objects.filter(event="model_became_free", public_id="openrouter/meta/llama:free").exists()


def test_the_same_listing_twice_changes_nothing_and_writes_nothing(provider):
    same = listing(record("a", input_price=Decimal("1")), record("b", is_free=True))
    apply_listing(provider.pk, same)
    before = (AIModel.objects.count(), Event.objects.count(), ModelChange.objects.count())

    with CaptureQueriesContext(connection) as queries:
        result = apply_listing(provider.pk, same)

    writes = [q["sql"] for q in queries.captured_queries if not q["sql"].lstrip().upper().startswith(("SELECT", "SAVEPOINT", "RELEASE", "BEGIN"))]
    assert writes == []
    assert (result.new, result.changed, result.retired, result.writes) == (0, 0, 0, 0)
    assert (AIModel.objects.count(), Event.objects.count(), ModelChange.objects.count()) == before


def test_changed_fields_are_updated_with_old_and_new_in_history(provider):
    apply_listing(provider.pk, listing(record("a", input_price=Decimal("1"), output_price=Decimal("2"), context_window=8000)))
    start = last_event_id()

    result = apply_listing(provider.pk, listing(record("a", input_price=Decimal("0.5"), output_price=Decimal("2"), context_window=128000)))

    assert result.changed == 1
    model = AIModel.objects.get(model_id="a")
    assert model.input_price == Decimal("0.5") and model.context_window == 128000
    history = {c.field: (c.old, c.new) for c in ModelChange.objects.filter(event="model_updated")}
    assert history == {"input_price": (1.0, 0.5), "context_window": (8000, 128000)}
    assert events_since(start) == ["model_updated"]
    assert Event.objects.get(id__gt=start).data["changed"] == ["context_window", "input_price"]


def test_free_transitions_publish_their_own_events(provider):
    apply_listing(provider.pk, listing(record("a", input_price=Decimal("1"), output_price=Decimal("1"))))
    start = last_event_id()

    apply_listing(provider.pk, listing(record("a", is_free=True, free_reason="promo", input_price=Decimal(0), output_price=Decimal(0))))
    apply_listing(provider.pk, listing(record("a", input_price=Decimal("1"), output_price=Decimal("1"))))

    assert [e for e in events_since(start) if "free" in e] == ["model_became_free", "model_stopped_being_free"]
    free_history = list(ModelChange.objects.filter(field="is_free").order_by("id").values_list("old", "new"))
    assert free_history == [(False, True), (True, False)]


def test_models_gone_from_the_listing_are_retired_after_the_grace(provider, settings):
    settings.AFMTS_RETIRE_GRACE_SECONDS = 3600
    t0 = timezone.now()
    apply_listing(provider.pk, listing(record("stays"), record("goes")), now=t0)

    soon = apply_listing(provider.pk, listing(record("stays")), now=t0 + timedelta(minutes=10))
    assert soon.retired == 0 and AIModel.objects.get(model_id="goes").status == "available"

    later = apply_listing(provider.pk, listing(record("stays")), now=t0 + timedelta(hours=2))
    assert later.retired == 1
    gone = AIModel.objects.get(model_id="goes")
    assert gone.status == "retired"  # kept, not deleted
    assert AIModel.objects.get(model_id="stays").status == "available"
    assert ModelChange.objects.filter(event="model_retired", public_id="openrouter/goes").exists()


def test_a_retired_model_that_comes_back_is_available_again(provider, settings):
    settings.AFMTS_RETIRE_GRACE_SECONDS = 0
    apply_listing(provider.pk, listing(record("a"), record("b")))
    apply_listing(provider.pk, listing(record("a")))
    assert AIModel.objects.get(model_id="b").status == "retired"

    apply_listing(provider.pk, listing(record("a"), record("b")))

    assert AIModel.objects.get(model_id="b").status == "available"


def test_manual_models_are_never_retired(provider, make_model, settings):
    settings.AFMTS_RETIRE_GRACE_SECONDS = 0
    make_model("hand-made", provider="openrouter")

    apply_listing(provider.pk, listing(record("other")))

    assert AIModel.objects.get(model_id="hand-made").status == "available"


def test_pinned_fields_are_never_overwritten(provider):
    apply_listing(provider.pk, listing(record("a", input_price=Decimal("1"), output_price=Decimal("1"))))
    AIModel.objects.filter(model_id="a").update(pinned_fields=["input_price", "name"], input_price=Decimal("0.1"), name="Mine")

    apply_listing(provider.pk, listing(record("a", name="Theirs", input_price=Decimal("3"), output_price=Decimal("4"))))

    model = AIModel.objects.get(model_id="a")
    assert (model.name, model.input_price, model.output_price) == ("Mine", Decimal("0.1"), Decimal("4"))


def test_disabled_models_stay_disabled(provider):
    apply_listing(provider.pk, listing(record("a")))
    AIModel.objects.filter(model_id="a").update(disabled=True)

    apply_listing(provider.pk, listing(record("a", context_window=4096)))

    assert AIModel.objects.get(model_id="a").disabled is True


def test_failures_back_off_and_publish_provider_down_once(provider):
    t0 = timezone.now()
    start = last_event_id()

    record_failure(provider.pk, "ConnectError", now=t0)
    record_failure(provider.pk, "ConnectError", now=t0)
    provider.refresh_from_db()

    assert provider.status == "down" and provider.failures == 2
    assert provider.next_discovery_at == t0 + timedelta(seconds=2 * provider.discovery_interval)
    assert events_since(start) == ["provider_down"]
    assert provider not in due_providers(now=t0 + timedelta(seconds=30))
    assert provider in due_providers(now=t0 + timedelta(seconds=61))

    apply_listing(provider.pk, listing(record("a")))
    provider.refresh_from_db()
    assert provider.status == "up" and provider.failures == 0 and provider.next_discovery_at is None
    assert events_since(start)[-1] == "provider_up"


def test_providers_with_a_longer_interval_are_due_only_when_it_has_passed(make_provider):
    slow = make_provider("mistral", discovery_interval=300)
    fast = make_provider("groq")
    t0 = timezone.now()
    apply_listing(slow.pk, listing(record("m")), now=t0)
    apply_listing(fast.pk, listing(record("g")), now=t0)

    assert {p.slug for p in due_providers(now=t0 + timedelta(seconds=30))} == {"groq"}
    assert {p.slug for p in due_providers(now=t0 + timedelta(seconds=301))} == {"groq", "mistral"}


def test_disabled_providers_are_not_discovered(make_provider):
    make_provider("groq", enabled=False)
    make_provider("mistral", discovery_enabled=False)

    assert due_providers() == []


def routable_ids() -> list[str]:
    from registry import selectors, version

    version.bump_local()
    return [m.public_id for m in selectors.rank(selectors.Criteria())]


def test_a_provider_whose_listing_fails_keeps_its_models_in_routing(provider):
    apply_listing(provider.pk, listing(record("a", is_free=True)))
    t0 = timezone.now()

    for _ in range(3):
        record_failure(provider.pk, "UpstreamUnavailable: cannot connect", now=t0)

    provider.refresh_from_db()
    assert provider.status == "down"  # the listing says so, and nothing answered lately
    assert routable_ids() == ["openrouter/a"]  # only its models' own traffic takes them out


def test_a_rate_limited_listing_waits_its_retry_after_and_is_no_failure(provider):
    apply_listing(provider.pk, listing(record("a")))
    t0 = timezone.now()
    start = last_event_id()

    record_failure(provider.pk, "listing rate-limited", now=t0, retry_after=120, rate_limited=True)
    record_failure(provider.pk, "ConnectError", now=t0 + timedelta(seconds=121))

    provider.refresh_from_db()
    assert provider.status == "up" and provider.failures == 1
    assert events_since(start) == []
    record_failure(provider.pk, "listing rate-limited", now=t0, retry_after=120, rate_limited=True)
    provider.refresh_from_db()
    assert provider.next_discovery_at == t0 + timedelta(seconds=120)
    assert provider not in due_providers(now=t0 + timedelta(seconds=119))
    assert provider in due_providers(now=t0 + timedelta(seconds=121))


def test_a_provider_whose_models_answer_is_not_down_when_its_listing_fails(provider):
    from registry.health import Sample, health_record

    apply_listing(provider.pk, listing(record("a")))
    t0 = timezone.now()
    health_record([Sample(AIModel.objects.get(model_id="a").pk, True, 200.0, at=t0)], now=t0)
    start = last_event_id()

    for n in range(4):
        record_failure(provider.pk, "Timeout: listing timed out", now=t0 + timedelta(seconds=n))

    provider.refresh_from_db()
    assert provider.status == "up" and provider.failures == 4 and "timed out" in provider.last_error
    assert events_since(start) == []


def test_a_down_provider_is_up_again_when_one_of_its_models_answers(provider):
    from registry.health import Sample, health_record

    apply_listing(provider.pk, listing(record("a")))
    t0 = timezone.now()
    record_failure(provider.pk, "ConnectError", now=t0)
    record_failure(provider.pk, "ConnectError", now=t0)
    start = last_event_id()

    health_record([Sample(AIModel.objects.get(model_id="a").pk, True, 200.0)])

    provider.refresh_from_db()
    assert provider.status == "up" and "provider_up" in events_since(start)


def test_listing_back_off_is_capped(provider, settings):
    settings.AFMTS_DISCOVERY_MAX_BACKOFF_SECONDS = 300
    t0 = timezone.now()

    for _ in range(8):
        record_failure(provider.pk, "ConnectError", now=t0)

    provider.refresh_from_db()
    assert provider.next_discovery_at == t0 + timedelta(seconds=300)


def test_listing_errors_are_kept_without_secrets(provider):
    record_failure(provider.pk, "AuthError: bad key sk-abcdefghijklmnop1234", now=timezone.now())

    provider.refresh_from_db()
    assert "sk-abcdefghijklmnop1234" not in provider.last_error


def test_a_new_models_events_show_it_as_the_api_does_with_credentials_masked(provider):
    start = last_event_id()
    apply_listing(provider.pk, listing(
        record("acme/plain:free", is_free=True, free_reason=":free variant", input_price=Decimal("0"),
               metadata={"description": "kilobytes of text"}),
        record("acme/leaky", name="leaky sk-abcdefghijklmnop1234"),
    ))

    events = {(e.event, e.data["modelId"]): e.data for e in Event.objects.filter(id__gt=start, event__startswith="model_")}
    plain = selectors.model_instance_representation(AIModel.objects.get(model_id="acme/plain:free"))
    del plain["metadata"]
    assert events[("model_registered", "acme/plain:free")] == plain
    assert events[("model_became_free", "acme/plain:free")] == {**plain, "reason": "listed"}
    assert events[("model_registered", "acme/leaky")]["name"] == "leaky ***"


@pytest.mark.django_db(transaction=True)
def test_the_account_limits_a_listing_reported_are_recorded_with_it(provider):
    reported = RateLimitInfo(windows={"requests/day": RateLimitWindow(limit=1000, remaining=990)})

    async def list_models(_provider: Provider) -> Listing:
        return Listing(models=[record("a")], rate_limit=reported)

    [result] = asyncio.run(run_cycle([provider], list_models))

    assert result.ok and result.new == 1
    state = QuotaState.objects.get(provider=provider, model=None, window="requests/day")
    assert (state.limit, state.remaining) == (1000, 990)
