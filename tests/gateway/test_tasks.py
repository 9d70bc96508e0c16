"""POST /api/tasks/route: the seeds' AITaskDistributor.routeTask and executeWithFallback."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from rest_framework.test import APIClient

from registry import services

FREE = {"model_id": "llama-3.1-8b-instant", "is_free": True, "latency_ms": 100, "reliability": 0.99}


class Agent(BaseHTTPRequestHandler):
    received: list[dict] = []
    fail = False

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).received.append(body)
        if type(self).fail:
            self.send_response(500)
            self.end_headers()
            return
        payload = json.dumps({"analysis": f"done: {body['description']}"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def agent_url():
    Agent.received, Agent.fail = [], False
    server = HTTPServer(("127.0.0.1", 0), Agent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/tasks"
    server.shutdown()


@pytest.fixture
def api(gateway, user_secret) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_secret}")
    return client


def test_a_translation_task_is_run_by_the_best_model(api, provider):
    provider("groq", models=[FREE])

    response = api.post("/api/tasks/route", {"id": "translation", "type": "translation", "input": "Hello, how are you?",
                                             "fromLanguage": "English", "toLanguage": "Spanish"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["taskId"] == "translation" and body["modelUsed"] == "groq/llama-3.1-8b-instant"
    assert body["result"] and body["usage"]["completion_tokens"] > 0


def test_an_agent_that_declares_the_task_type_gets_it(api, provider, agent_url):
    provider("groq", models=[FREE])
    services.agent_register(name="analyst", fields={"capabilities": ["analysis"], "endpoint": agent_url})

    body = api.post("/api/tasks/route", {"type": "analysis", "description": "Q4 sales"}, format="json").json()

    assert body["modelUsed"] == "agent:analyst" and body["result"] == {"analysis": "done: Q4 sales"}
    assert Agent.received[0]["type"] == "analysis"


def test_a_failing_agent_falls_back_to_a_model(api, provider, agent_url):
    provider("groq", models=[FREE])
    services.agent_register(name="analyst", fields={"capabilities": ["analysis"], "endpoint": agent_url})
    Agent.fail = True

    body = api.post("/api/tasks/route", {"type": "analysis", "description": "Q4 sales"}, format="json").json()

    assert body["modelUsed"] == "groq/llama-3.1-8b-instant"
    assert [a["ok"] for a in body["attempts"]] == [False, True]


def test_execute_with_fallback_tries_the_list_in_order(api, provider, fake, agent_url):
    provider("groq", models=[FREE])
    provider("openai", models=[{"model_id": "gpt-4o-mini", "input_price": "0.15", "output_price": "0.6"}])
    services.agent_register(name="down", fields={"capabilities": ["analysis"], "endpoint": agent_url})
    Agent.fail = True
    fake.state.push("groq", "server_error")

    body = api.post("/api/tasks/route", {
        "type": "analysis", "description": "critical", "fallbacks": ["agent:down", "nope/none", "groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"],
    }, format="json").json()

    assert body["modelUsed"] == "openai/gpt-4o-mini"
    assert [a["executor"] for a in body["attempts"]] == ["agent:down", "nope/none", "groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"]


def test_nothing_can_run_it_is_a_503_that_says_why(api, provider):
    provider("openai", models=[{"model_id": "gpt-4o-mini", "input_price": "0.15", "output_price": "0.6"}])

    response = api.post("/api/tasks/route", {"type": "text-generation", "input": "x", "requirements": {"freeOnly": True}}, format="json")

    assert response.status_code == 503
    assert "not free" in response.json()["error"]["message"]
    assert not response.has_header("Retry-After")  # no known time would help: SDKs should not wait


def test_a_task_needs_input(api):
    response = api.post("/api/tasks/route", {"type": "translation"}, format="json")

    assert response.status_code == 400 and response.json()["error"]["param"] == "input"


def test_a_long_task_never_holds_up_the_rest_api(gateway, provider, fake, user_secret):
    provider("groq", models=[FREE])
    fake.state.push("groq", "slow_first_byte", seconds=1.5)
    auth = {"authorization": f"Bearer {user_secret}"}
    finished: dict[str, float] = {}

    def route() -> None:
        response = httpx.post(f"{gateway}/api/tasks/route", json={"type": "text-generation", "input": "slow"},
                              headers=auth, timeout=30)
        finished["task"] = time.monotonic()
        finished["status"] = response.status_code

    task = threading.Thread(target=route)
    task.start()
    deadline = time.monotonic() + 10
    while not fake.state.requests("groq") and time.monotonic() < deadline:
        time.sleep(0.01)  # the task is upstream now
    listed = httpx.get(f"{gateway}/api/models", headers=auth, timeout=30)
    answered = time.monotonic()
    task.join(30)

    assert listed.status_code == 200 and listed.json()["results"][0]["publicId"] == "groq/llama-3.1-8b-instant"
    assert finished["status"] == 200
    assert answered < finished["task"]  # the listing did not wait for the task


def test_task_route_is_described_in_the_openapi_schema(api):
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]

    assert "post" in paths["/api/tasks/route"]


def test_a_task_needs_a_key(gateway):
    response = httpx.post(f"{gateway}/api/tasks/route", json={"type": "text-generation", "input": "x"}, timeout=10)

    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"
