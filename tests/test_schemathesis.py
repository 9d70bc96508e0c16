"""The OpenAPI contract, checked by schemathesis against the real ASGI app over real HTTP (uvicorn in a
thread): every operation of /api/schema/ — the REST API, the gateway's /v1/*, /health and /metrics —
with generated requests, as an admin key and as a user key. No server error, no status the schema
does not document, no content type or body the schema does not describe, every request the schema
calls valid accepted (or refused for state: 401/403/404/409), and every invalid one refused.

The gateway's upstream is the fake provider server: half the generated /v1/* requests name a model
registered there, so the 200 answers (JSON and event streams) are checked as well as the refusals.

Then the stateful run: the schema's links (POST a provider, model, agent or alias, then read, change
and delete it by the id in the answer) followed by schemathesis' state machine.

Bounded: a few dozen examples per operation and scope, a few short link chains: about a minute a pass.
The run is not throttled (the per-key, per-address and anonymous limits are off in its settings: 429
is documented everywhere and tested in tests/test_security.py). Excluded: DELETE /api/keys/{id} (it
may revoke the very key the run is using; its 204/404 are covered in tests/registry/test_auth.py)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from registry.fakes import KEY


def no_internal_error(ctx, response, case) -> None:
    """A 500 is a bug. 502/503/504 are honest answers where the operation documents them (the
    gateway's upstream failures, a task nothing could run): status_code_conformance judges those."""
    assert response.status_code != 500, f"500 from {case.operation.label}: {response.text[:300]}"


def not_throttled(ctx, response, case) -> None:
    """The limits are off for this run: a 429 would mean the run checked less than it claims."""
    assert response.status_code != 429, f"429 from {case.operation.label}: {response.text[:300]}"


CHECKS = [no_internal_error, not_throttled, status_code_conformance, content_type_conformance,
          response_schema_conformance, positive_data_acceptance, negative_data_rejection]
EXAMPLES = 30
# Every fourth request is made with the user key (its writes are 403s; a few of those are plenty).
USER_EVERY = 4
# Each call hashes a password (and counts toward the login lockout): a few are enough.
FEW = {"/api/auth/token/": 5}
# What half the generated gateway requests name: models at the fake server (registered by `keys`).
CHAT, EMBED = "openai/gpt-4o-mini", "openai/text-embedding-3-small"
ROUTED = {"/v1/chat/completions": CHAT, "/v1/completions": CHAT, "/v1/messages": CHAT, "/v1/embeddings": EMBED}
statuses: Counter[tuple[str, int]] = Counter()

# `arguments` of a tool call is a JSON text (format "json" in the schema).
schemathesis.openapi.format("json", st.sampled_from(["{}", '{"city": "Paris"}', "[1, 2]", "null"]))


def openapi() -> dict:
    """The schema /api/schema/ serves, generated in-process."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


schema = schemathesis.openapi.from_dict(openapi()).exclude(method="DELETE", path="/api/keys/{id}")
# No string of a request may hold NUL (PostgreSQL cannot store it): the schema says so with a pattern on
# every string, but keys of free-form objects (`metadata`) cannot carry one in OpenAPI 3.0.
schema.config.generation.update(allow_x00=False)


@pytest.fixture
def keys(transactional_db, settings, fake) -> dict[str, Any]:
    """An admin and a user key, no limits, and two models at the fake provider server."""
    from registry import services
    from routing import limits
    from routing.gateway import runtime as runtime_module
    from routing.live import LiveState

    settings.AFMTS_USAGE_FLUSH_SECONDS = 3600
    settings.AFMTS_DEFAULT_KEY_RATE_PER_MINUTE = 0
    settings.AFMTS_AUTH_FAILURES_PER_MINUTE = 0
    settings.AFMTS_ANON_RATE_PER_MINUTE = 0
    settings.AFMTS_GATEWAY_ATTEMPT_SECONDS = 2.0
    limits.blocked_ips.clear()
    runtime_module.runtime.live = LiveState()
    services.provider_create(slug="openai", kind="openai", base_url=fake.base_url("openai"), api_key=KEY)
    for public_id, kind, caps in ((CHAT, "chat", ["text-generation", "streaming", "function-calling", "vision"]),
                                  (EMBED, "embedding", ["embeddings"])):
        name = public_id.split("/", 1)[1]
        services.model_register(provider_slug="openai", provider_kind="openai", endpoint=None, api_key=None,
                                model_fields={"name": name, "model_id": name, "type": kind, "capabilities": caps,
                                              "context_window": 131072, "is_free": True})
    return {"admin": services.apikey_create(name="schemathesis admin", scope="admin")[1],
            "user": services.apikey_create(name="schemathesis user", scope="user")[1], "calls": 0}


def _route(case) -> None:
    """Every other valid gateway request names a model the fake server answers for."""
    path = case.operation.path
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if path in ROUTED and isinstance(case.body, dict):
        case.body["model"] = ROUTED[path]
    elif path == "/v1/models/{model}":
        case.path_parameters = {**(case.path_parameters or {}), "model": CHAT}


def _offline(case) -> None:
    """?verify=true asks whether the generated host answers on the internet (400 when it does not, as
    documented): outside this machine. tests/registry/test_first_run_seed.py covers it."""
    if case.query and case.meta is not None and case.meta.generation.mode.is_positive:
        case.query.pop("verify", None)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_its_schema_says(case, asgi_url, keys):
    keys["calls"] += 1
    if keys["calls"] > FEW.get(case.operation.path, EXAMPLES):
        return
    if keys["calls"] % 2:
        _route(case)
    _offline(case)
    secret = keys["user"] if keys["calls"] % USER_EVERY == 0 else keys["admin"]
    response = case.call(base_url=asgi_url, headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    statuses[(case.operation.label, response.status_code)] += 1
    case.validate_response(response, checks=CHECKS, headers={"Authorization": f"Bearer {secret}"})


def test_the_gateway_was_checked_on_its_answers_too():
    """The run above reached the fake upstream: each /v1/* operation answered 200 at least once
    (run after it, in file order; alone it has nothing to look at)."""
    if not statuses:
        pytest.skip("the generated run did not run in this session")
    answered = {label for (label, code) in statuses if code == 200 and " /v1/" in label}
    assert answered >= {f"POST {path}" for path in ROUTED} | {"GET /v1/models", "GET /v1/models/{model}"}, statuses


LINKED = schema.include(path_regex=r"^/api/(providers/|providers/\{id\}|models/register|models/\{id\}.*|agents/.*|aliases.*)$")


def test_created_objects_answer_along_the_schemas_links(asgi_url, keys):
    """POST creates, the links lead to GET/PUT/PATCH/heartbeat/DELETE of what was created: each step
    answers as the schema says, a created object can be read, and a deleted one is gone."""
    secret = keys["admin"]
    steps: Counter[tuple[str, int]] = Counter()

    class Links(LINKED.as_state_machine()):
        def setup(self):
            # Each scenario starts from an empty registry: the same draws meet the same answers (else
            # Hypothesis sees a scenario draw differently the second time, and stops).
            from registry.models import Agent, Alias, Provider

            Alias.objects.all().delete()
            Agent.objects.all().delete()
            Provider.objects.all().delete()

        def before_call(self, case):
            _offline(case)

        def after_call(self, response, case):
            super().after_call(response, case)
            steps[(case.operation.label, response.status_code)] += 1

        def get_call_kwargs(self, case):
            return {"base_url": asgi_url, "headers": {"Authorization": f"Bearer {secret}"}, "timeout": 10}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=[*CHECKS, ensure_resource_availability, use_after_free],
                                   headers=kwargs.get("headers"), transport_kwargs=kwargs,
                                   recorder=getattr(self, "recorder", None))

    # No shrinking: the server keeps what each scenario created, so a replay would not see the same state.
    Links.run(settings=settings(max_examples=25, stateful_step_count=8, deadline=None, derandomize=True,
                                database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
    # The links were followed: something created was then read or changed, for each kind of object.
    followed = {label.split("/")[2] for (label, code) in steps if code < 300 and "{id}" in label}
    assert followed >= {"providers", "models", "agents", "aliases"}, steps
