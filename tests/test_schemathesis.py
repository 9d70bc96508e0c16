"""The OpenAPI contract, checked by schemathesis against the real ASGI app over real HTTP (uvicorn in a
thread): every operation of /api/schema/ — the REST API, the gateway's /v1/*, /health and /metrics —
with generated requests, as an admin key and as a user key. No server error, no status the schema
does not document, no content type or body the schema does not describe.

Bounded: a few dozen examples per operation and scope, so the whole file runs in about a minute.
Excluded: DELETE /api/keys/{id} (it may revoke the very key the run is using; its 204/404 are covered
in tests/registry/test_auth.py) and, for now, GET /api/performance (see below)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)


def no_internal_error(ctx, response, case) -> None:
    """A 500 is a bug. 502/503/504 are honest answers where the operation documents them (the
    gateway's upstream failures, a task nothing could run): status_code_conformance judges those."""
    assert response.status_code != 500, f"500 from {case.operation.label}: {response.text[:300]}"


CHECKS = [no_internal_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 30
# Every fourth request is made with the user key (its writes are 403s; a few of those are plenty).
USER_EVERY = 4
# Each call hashes a password (and counts toward the login lockout): a few are enough.
FEW = {"/api/auth/token/": 5}


def openapi() -> dict:
    """The schema /api/schema/ serves, generated in-process."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


schema = (
    schemathesis.openapi.from_dict(openapi())
    .exclude(method="DELETE", path="/api/keys/{id}")
    # A `since` centuries back makes the report walk every day bucket since then (tens of seconds):
    # analytics' to bound; it is a slow answer, not a wrong one, and would time this run out.
    .exclude(method="GET", path="/api/performance")
)


@pytest.fixture(scope="module")
def server_url():
    from afmts.asgi import application

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def keys(transactional_db, settings) -> dict:
    from registry import services

    settings.AFMTS_USAGE_FLUSH_SECONDS = 3600
    return {"admin": services.apikey_create(name="schemathesis admin", scope="admin")[1],
            "user": services.apikey_create(name="schemathesis user", scope="user")[1], "calls": 0}


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_its_schema_says(case, server_url, keys):
    keys["calls"] += 1
    if keys["calls"] > FEW.get(case.operation.path, EXAMPLES):
        return
    secret = keys["user"] if keys["calls"] % USER_EVERY == 0 else keys["admin"]
    case.call_and_validate(base_url=server_url, headers={"Authorization": f"Bearer {secret}"}, checks=CHECKS,
                           timeout=10)
