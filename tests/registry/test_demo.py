"""The demo of `make run`: demo providers at the fake server, and the fake's changes over time."""

from __future__ import annotations

import pytest

from registry import tracker
from registry.demo import KINDS, ensure_demo_providers
from registry.fakes import demo
from registry.models import AIModel, Provider


def test_demo_providers_are_created_once_and_follow_the_port(db, settings):
    settings.AFMTS_DEMO_PORT = 8900
    ensure_demo_providers()
    ensure_demo_providers()
    assert Provider.objects.filter(is_demo=True).count() == len(KINDS)

    settings.AFMTS_DEMO_PORT = 8901
    ensure_demo_providers()
    assert Provider.objects.get(slug="demo-groq").base_url.startswith("http://127.0.0.1:8901/")


@pytest.mark.django_db(transaction=True)
def test_the_demo_changes_what_discovery_sees(fake, settings):
    settings.AFMTS_DEMO_PORT = int(fake.url.rsplit(":", 1)[1])
    ensure_demo_providers()
    Provider.objects.exclude(slug__in=["demo-openrouter", "demo-groq"]).update(enabled=False)

    demo.step(fake.state, 0)  # the promo model is free
    demo.step(fake.state, 1)  # a preview model is listed
    tracker.discover()
    assert AIModel.objects.get(model_id=demo.PROMO).is_free
    assert AIModel.objects.filter(model_id=demo.PREVIEW).exists()

    demo.step(fake.state, 3)  # the promo model costs money now
    tracker.discover()
    assert AIModel.objects.get(model_id=demo.PROMO).is_free is False
