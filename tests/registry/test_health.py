"""Health from evidence: status, latency EWMA and reliability from a rolling window; probes only
where they cost no scarce free quota, backing off on failure."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.health import Sample, health_record, probe_targets, status_from
from registry.models import AIModel, Event, HealthSample

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "window, status",
    [
        ([], "available"),
        ([True] * 10, "available"),
        ([False], "degraded"),
        ([True, False, True, True], "degraded"),
        ([True] * 9 + [False], "available"),
        ([True, True, False, False, False, True], "degraded"),
        ([False, False, False], "down"),
        ([False, True, False, False, True, False], "down"),
        ([True, False, False, True, False, False], "degraded"),  # answering again
    ],
)
def test_status_follows_the_window(window, status):
    assert status_from(window) == status


def test_traffic_evidence_sets_latency_ewma_reliability_and_status(make_model, settings):
    settings.AFMTS_HEALTH_EWMA_ALPHA = 0.5
    model = make_model("m", provider="groq", is_free=True)
    t0 = timezone.now()

    health_record([Sample(model.pk, True, 100.0, at=t0), Sample(model.pk, True, 300.0, at=t0 + timedelta(seconds=1))], now=t0)

    model.refresh_from_db()
    assert model.latency_ms == pytest.approx(200.0)  # 100, then 0.5·300 + 0.5·100
    assert model.reliability == 1.0 and model.status == "available"


def test_status_changes_publish_health_changed_once(make_model):
    model = make_model("m", provider="groq", is_free=True)
    t0 = timezone.now()
    start = Event.objects.order_by("-id").first().id

    for i in range(3):
        health_record([Sample(model.pk, False, error="timeout", at=t0 + timedelta(seconds=i))], now=t0 + timedelta(seconds=i))

    model.refresh_from_db()
    assert model.status == "down" and model.reliability == 0.0
    changes = Event.objects.filter(id__gt=start, event="health_changed")
    assert [(e.data["previousStatus"], e.data["status"]) for e in changes] == [("available", "degraded"), ("degraded", "down")]

    health_record([Sample(model.pk, True, 50.0, at=t0 + timedelta(seconds=10))], now=t0 + timedelta(seconds=10))
    model.refresh_from_db()
    assert model.status == "degraded"  # one success after three failures: not yet trusted


def test_down_models_are_left_out_of_find(make_model, user_api):
    model = make_model("m", provider="groq", is_free=True)
    health_record([Sample(model.pk, False) for _ in range(3)])

    assert user_api.post("/api/models/find", {}, format="json").json()["models"] == []


def test_old_evidence_leaves_the_window(make_model, settings):
    settings.AFMTS_HEALTH_WINDOW_SECONDS = 60
    model = make_model("m", provider="groq", is_free=True)
    t0 = timezone.now()
    health_record([Sample(model.pk, False, at=t0) for _ in range(3)], now=t0)

    later = t0 + timedelta(minutes=5)
    health_record([Sample(model.pk, True, 80.0, at=later)], now=later)

    model.refresh_from_db()
    assert model.status == "available" and model.reliability == 1.0


def test_probes_target_idle_free_models_only(make_model, settings):
    settings.AFMTS_PROBE_IDLE_SECONDS = 600
    idle = make_model("idle", provider="groq", is_free=True, free_rpd=14400)
    busy = make_model("busy", provider="groq", is_free=True, free_rpd=14400)
    make_model("paid", input_price=1, output_price=1)
    make_model("embedder", provider="groq", is_free=True, type="embedding")
    t0 = timezone.now()
    health_record([Sample(busy.pk, True, 100.0, at=t0 - timedelta(minutes=2))], now=t0)

    assert [m.model_id for m in probe_targets(now=t0)] == ["idle"]
    assert {m.model_id for m in probe_targets(now=t0 + timedelta(minutes=9))} == {"idle", "busy"}
    assert idle.pk in [m.pk for m in probe_targets(now=t0)]


def test_scarce_account_wide_free_quota_is_never_probed_unless_enabled(make_model):
    model = make_model("x:free", provider="openrouter", is_free=True, quota_scope="account", free_rpd=50)

    assert probe_targets() == []

    model.provider.probe_enabled = True
    model.provider.save()
    assert [m.pk for m in probe_targets()] == [model.pk]


def test_local_models_are_always_probed(make_model):
    model = make_model("llama3", provider="ollama", is_free=True, quota_scope="account")

    assert [m.pk for m in probe_targets()] == [model.pk]


def test_failing_models_back_off(make_model):
    model = make_model("m", provider="groq", is_free=True)
    t0 = timezone.now()
    HealthSample.objects.bulk_create([
        HealthSample(model=model, ok=False, at=t0 - timedelta(seconds=s)) for s in (0, 10, 20)
    ])

    assert probe_targets(now=t0 + timedelta(minutes=3)) == []  # 3 failures: wait 4 minutes
    assert [m.pk for m in probe_targets(now=t0 + timedelta(minutes=4, seconds=1))] == [model.pk]
    assert AIModel.objects.get(pk=model.pk).status == "available"  # probing targets, not recording


def mark_down(model, at):
    health_record([Sample(model.pk, False, error="UpstreamUnavailable", at=at) for _ in range(3)], now=at)
    model.refresh_from_db()
    assert model.status == "down"


def test_a_paid_model_marked_down_is_probed_again_with_back_off(make_model):
    paid = make_model("gpt-4o-mini", input_price=0.15, output_price=0.6)
    t0 = timezone.now()
    assert probe_targets(now=t0) == []  # a healthy paid model is never probed

    mark_down(paid, t0)

    assert probe_targets(now=t0 + timedelta(minutes=3)) == []  # 3 failures: wait 4 minutes
    assert [m.pk for m in probe_targets(now=t0 + timedelta(minutes=4, seconds=1))] == [paid.pk]


def test_a_down_model_comes_back_when_its_probe_answers(make_model):
    paid = make_model("gpt-4o-mini", input_price=0.15, output_price=0.6)
    t0 = timezone.now()
    mark_down(paid, t0)

    later = t0 + timedelta(minutes=5)
    health_record([Sample(paid.pk, True, 300.0, source="probe", at=later)], now=later)

    paid.refresh_from_db()
    assert paid.status == "degraded"  # routable again, below the healthy ones until it proves itself
    assert paid.public_id in [m["publicId"] for m in _find_all()]


def _find_all():
    from registry import selectors, version

    version.bump_local()
    return selectors.model_find(selectors.Criteria(), limit=50)


def test_a_down_model_no_probe_may_reach_gets_a_trial_request_after_its_back_off(make_model):
    from registry.health import health_trial

    scarce = make_model("x:free", provider="openrouter", is_free=True, quota_scope="account", free_rpd=50)
    t0 = timezone.now()
    mark_down(scarce, t0)
    start = Event.objects.order_by("-id").first().id

    assert health_trial(now=t0 + timedelta(minutes=3)) == []
    assert [m.pk for m in health_trial(now=t0 + timedelta(minutes=4, seconds=1))] == [scarce.pk]

    scarce.refresh_from_db()
    assert scarce.status == "degraded" and scarce.public_id in [m["publicId"] for m in _find_all()]
    trial = Event.objects.get(id__gt=start, event="health_changed")
    assert (trial.data["previousStatus"], trial.data["status"], trial.data["trial"]) == ("down", "degraded", True)

    # A failed trial puts it straight back down, and the next trial waits longer.
    failed_at = t0 + timedelta(minutes=5)
    health_record([Sample(scarce.pk, False, at=failed_at)], now=failed_at)
    scarce.refresh_from_db()
    assert scarce.status == "down"
    assert health_trial(now=failed_at + timedelta(minutes=5)) == []  # 4 failures: wait 8 minutes
    assert [m.pk for m in health_trial(now=failed_at + timedelta(minutes=8, seconds=1))] == [scarce.pk]


def test_a_pinned_down_status_gets_no_trial(make_model):
    from registry.health import health_trial

    model = make_model("x:free", provider="openrouter", is_free=True, quota_scope="account", free_rpd=50,
                       status="down", pinned_fields=["status"])

    assert health_trial(now=timezone.now() + timedelta(hours=2)) == []
    model.refresh_from_db()
    assert model.status == "down"
