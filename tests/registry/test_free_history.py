"""Free-tier truth over time: real OpenRouter listings replayed through discovery with an injected
clock, edited the way real listings change (a `:free` variant withdrawn and back, a price crossing
zero, an expiry passing); the history's entries and exits, the free list after each cycle, expiry in
routing, and the history endpoint's filters."""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from registry import discovery, selectors
from registry.models import AIModel, Event, ModelChange
from registry.providers import adapter_class
from routing.router import Requirements, plan

pytestmark = pytest.mark.django_db

CAPTURES = Path(django_settings.BASE_DIR).parent / "shared" / "provider-captures" / "listings"
APRIL, MAY = "openrouter_models_2025-04-23.json", "openrouter_models_2025-05-23.json"


@pytest.fixture
def capture():
    if not CAPTURES.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the provider captures are missing at {CAPTURES}")
        pytest.skip(f"provider captures not found at {CAPTURES}")
    return lambda name: json.loads((CAPTURES / name).read_text())


class Replay:
    """Cycles one injected-clock step apart (longer than the retire grace), each applying a listing."""

    def __init__(self, provider_id: int, start: datetime):
        self.provider_id, self.now = provider_id, start
        self.step = timedelta(seconds=django_settings.AFMTS_RETIRE_GRACE_SECONDS + 1)

    def cycle(self, payload: dict, *, at: datetime | None = None) -> list[tuple[str, str, str]]:
        """Apply the listing; returns the free history rows it wrote: (event, model id, reason)."""
        self.now = at or self.now + self.step
        last = ModelChange.objects.order_by("-id").values_list("id", flat=True).first() or 0
        discovery.apply_listing(self.provider_id, adapter_class("openrouter")().parse_listing(payload), now=self.now)
        rows = ModelChange.objects.filter(id__gt=last, field="is_free").order_by("id")
        return sorted((c.event, c.public_id.split("/", 1)[1], c.reason) for c in rows)


def free_ids(payload: dict) -> set[str]:
    return {m.id for m in adapter_class("openrouter")().parse_listing(payload).free}


def free_now(user_api) -> set[str]:
    body = user_api.get("/api/free-models?provider=openrouter").json()
    return {m["modelId"] for m in body["models"]}


def edited(payload: dict, drop: str | None = None, **patch: dict) -> dict:
    out = copy.deepcopy(payload)
    out["data"] = [m for m in out["data"] if m["id"] != drop]
    for entry in out["data"]:
        entry.update(patch.get(entry["id"], {}))
    return out


def test_replayed_listings_give_one_entry_and_one_exit_per_transition(capture, make_provider, user_api):
    april, may = capture(APRIL), capture(MAY)
    replay = Replay(make_provider("openrouter").pk, datetime.now(UTC).replace(microsecond=0))

    # April: every free model enters, once.
    rows = replay.cycle(april)
    assert rows == sorted(("model_became_free", i, "listed") for i in free_ids(april))
    assert free_now(user_api) == free_ids(april)
    assert replay.cycle(april) == []  # an unchanged cycle writes nothing

    # May, as it really came: withdrawn `:free` variants exit, new ones enter.
    rows = replay.cycle(may)
    gone, came = free_ids(april) - free_ids(may), free_ids(may) - free_ids(april)
    listed_may = {m["id"] for m in may["data"]}
    assert len(gone) == 10 and len(came) == 18
    assert [r for r in rows if r[0] == "model_stopped_being_free"] == sorted(
        ("model_stopped_being_free", i, "withdrawn" if i not in listed_may else "rules") for i in gone)
    assert [r for r in rows if r[0] == "model_became_free"] == sorted(("model_became_free", i, "listed") for i in came)
    assert free_now(user_api) == free_ids(may)
    assert replay.cycle(may) == []

    # A `:free` variant withdrawn, then back.
    pick = sorted(free_ids(may))[0]
    assert replay.cycle(edited(may, drop=pick)) == [("model_stopped_being_free", pick, "withdrawn")]
    assert pick not in free_now(user_api)
    withdrawn = Event.objects.filter(event="model_stopped_being_free").order_by("-id").first()
    assert withdrawn.data["modelId"] == pick and withdrawn.data["reason"] == "withdrawn"
    assert replay.cycle(edited(may, drop=pick)) == []
    assert replay.cycle(may) == [("model_became_free", pick, "returned")]
    assert Event.objects.filter(event="model_became_free").order_by("-id").first().data["reason"] == "returned"
    assert pick in free_now(user_api)

    # A price crossing zero, and back.
    other = sorted(free_ids(may))[1]
    paid = edited(may, **{other: {"pricing": {"prompt": "0.0000001", "completion": "0.0000004"}}})
    assert replay.cycle(paid) == [("model_stopped_being_free", other, "price")]
    assert replay.cycle(paid) == []
    assert replay.cycle(may) == [("model_became_free", other, "price")]

    # An expiry: shown while ahead, and the offer ends when it passes.
    third = sorted(free_ids(may))[2]
    day = (replay.now + timedelta(days=10)).date().isoformat()
    expiring = edited(may, **{third: {"expiration_date": day}})
    assert replay.cycle(expiring) == []
    model = user_api.get("/api/free-models?provider=openrouter").json()["models"]
    assert {m["modelId"]: m["expiresAt"] for m in model}[third] == f"{day}T00:00:00Z"
    assert replay.cycle(expiring, at=replay.now + timedelta(days=11)) == [("model_stopped_being_free", third, "expired")]
    assert third not in free_now(user_api)
    assert replay.cycle(expiring) == []

    # Per model, the history tells each entry and exit with its reason, newest first.
    history = user_api.get(f"/api/free-models/history?model=openrouter/{pick}").json()["results"]
    assert [(h["event"], h["reason"]) for h in history] == [
        ("model_became_free", "returned"), ("model_stopped_being_free", "withdrawn"), ("model_became_free", "listed")]


def test_an_expired_free_model_is_not_routed_and_its_exit_is_written_between_listings(make_provider):
    provider = make_provider("openrouter")
    past, ahead = datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC) + timedelta(minutes=5)
    payload = {"data": [
        {"id": f"m/{name}:free", "name": name, "pricing": {"prompt": "0", "completion": "0"}, "context_length": 8000,
         "expiration_date": at.isoformat()}
        for name, at in (("old", past + timedelta(days=1)), ("soon", ahead))
    ]}
    discovery.apply_listing(provider.pk, adapter_class("openrouter")().parse_listing(payload), now=past)
    assert set(AIModel.objects.filter(is_free=True).values_list("model_id", flat=True)) == {"m/old:free", "m/soon:free"}

    # "old" is free as of the listing's clock, but its expiry (in a day) is ahead; set it to the past.
    AIModel.objects.filter(model_id="m/old:free").update(expires_at=past)
    selectors.version.bump_local()
    snap = selectors.snapshot()
    assert [c.model.public_id for c in plan("free", Requirements(), snap).candidates] == ["openrouter/m/soon:free"]
    # Between two snapshots, the router holds the expiry to the second.
    later = plan("free", Requirements(), snap, now=ahead.timestamp() + 1, explain=True)
    assert later.candidates == []
    assert {r.reason for r in later.rejections} == {"its free offer expired"}

    assert discovery.expire_due() == 1  # the sweep each discovery cycle runs first
    change = ModelChange.objects.get(public_id="openrouter/m/old:free", event="model_stopped_being_free")
    assert change.reason == "expired"
    assert not AIModel.objects.get(model_id="m/old:free").is_free
    assert discovery.expire_due() == 0


def test_history_filters_by_provider_model_event_and_time(make_provider, user_api):
    make_provider("openrouter")
    make_provider("groq")
    start = datetime(2030, 1, 1, tzinfo=UTC)

    def listing(kind: str, *ids: str):
        from registry.providers.types import Listing, ModelRecord

        return Listing(models=[ModelRecord(id=i, name=i, is_free=True, capabilities=["text-generation"]) for i in ids])

    from registry.models import Provider

    orp, groq = Provider.objects.get(slug="openrouter").pk, Provider.objects.get(slug="groq").pk
    discovery.apply_listing(orp, listing("openrouter", "a:free", "b:free"), now=start)
    discovery.apply_listing(groq, listing("groq", "c"), now=start + timedelta(hours=1))
    discovery.apply_listing(orp, listing("openrouter", "a:free"), now=start + timedelta(hours=3))

    def get(query: str) -> list[tuple[str, str]]:
        response = user_api.get(f"/api/free-models/history?{query}")
        assert response.status_code == 200, response.json()
        return [(h["model"], h["event"]) for h in response.json()["results"]]

    assert get("provider=groq") == [("groq/c", "model_became_free")]
    assert get("model=openrouter/b:free") == [("openrouter/b:free", "model_stopped_being_free"),
                                              ("openrouter/b:free", "model_became_free")]
    assert get("event=model_stopped_being_free") == [("openrouter/b:free", "model_stopped_being_free")]
    assert get("since=2030-01-01T00:30:00Z&until=2030-01-01T02:00:00Z") == [("groq/c", "model_became_free")]
    bad = user_api.get("/api/free-models/history?event=nope").json()["error"]
    assert "model_became_free" in bad["message"]
