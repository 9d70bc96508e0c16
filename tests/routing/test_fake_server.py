"""The fake providers start as a command for demos and benchmarks, and answer only on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.routing.conftest import MODEL, ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("argv", [["manage.py", "fakeprovider"], ["-m", "registry.fakes"]])
def test_fake_provider_server_runs_as_a_command(argv):
    port = free_port()
    proc = subprocess.Popen([sys.executable, *argv, "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/_control/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "the fake provider server did not start"
                time.sleep(0.1)
        assert health.json()["status"] == "ok" and "openrouter" in health.json()["providers"]
        models = httpx.get(f"http://127.0.0.1:{port}/openrouter/api/v1/models", timeout=2).json()
        assert any(m["id"].endswith(":free") for m in models["data"])
    finally:
        proc.terminate()
        proc.wait(10)


def test_fake_listens_on_loopback_only(fake):
    assert fake.url.startswith("http://127.0.0.1:")


def test_control_log_shows_requests_without_secrets(fake):
    httpx.get(fake.base_url("openai") + "/v1/models", headers={"authorization": "Bearer fake-key"})
    (entry,) = httpx.get(fake.url + "/_control/log", params={"provider": "openai"}).json()
    assert entry["path"] == "/openai/v1/models" and entry["headers"]["authorization"] == "<redacted>"


def _chat(fake, kind: str = "groq", **extra) -> httpx.Response:
    body = {"model": MODEL[kind], "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(fake.base_url(kind) + "/v1/chat/completions", json=body,
                      headers={"authorization": "Bearer fake-key"}, timeout=5)


def _statuses(fake, n: int, kind: str = "groq") -> list[int]:
    return [_chat(fake, kind).status_code for _ in range(n)]


def test_fault_mix_fails_each_call_independently_at_its_rates_and_a_seed_repeats_the_run(fake):
    mix = {"provider": "groq", "error_rate": 0.3, "rate_limit_rate": 0.2, "retry_after": 3, "seed": 7}
    assert httpx.post(fake.url + "/_control/faults", json=mix).json() == {"ok": True}
    first = _statuses(fake, 120)
    assert 20 <= first.count(500) <= 55 and 10 <= first.count(429) <= 40
    assert first.count(200) == 120 - first.count(500) - first.count(429)
    assert _statuses(fake, 20, "cerebras") == [200] * 20  # only the named provider fails
    limited = next(r for r in (_chat(fake) for _ in range(60)) if r.status_code == 429)
    assert limited.headers["retry-after"] == "3"

    shown = httpx.get(fake.url + "/_control/faults").json()
    assert shown["faults"]["groq"]["error_rate"] == 0.3
    assert shown["injected"]["groq"]["server_error"] == first.count(500) + sum(
        1 for e in fake.state.requests("groq")[120:] if e["scenario"] == "server_error")

    httpx.post(fake.url + "/_control/faults", json=mix)  # the same seed again: the same failures
    assert _statuses(fake, 120) == first


def test_fault_mix_for_every_provider_hangs_and_cuts_streams_but_explicit_scenarios_win(fake):
    httpx.post(fake.url + "/_control/faults", json={"provider": "*", "hang_rate": 1, "hang_seconds": 0.3})
    started = time.monotonic()
    assert _chat(fake, "mistral").status_code == 200 and time.monotonic() - started >= 0.3
    assert _chat(fake, "mistral", model=f"{MODEL['mistral']}@server_error").status_code == 500

    httpx.post(fake.url + "/_control/faults", json={"provider": "*", "cut_rate": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        _chat(fake, "cerebras", stream=True)
    assert httpx.get(fake.url + "/_control/faults").json()["injected"] == {"mistral": {"hang": 1},
                                                                          "cerebras": {"cut": 1}}
    assert httpx.post(fake.url + "/_control/faults", json={"provider": "*", "error_rate": 0.8,
                                                            "cut_rate": 0.5}).status_code == 400
    httpx.post(fake.url + "/_control/reset")
    assert _chat(fake, "cerebras", stream=True).status_code == 200


def test_a_provider_down_refuses_calls_and_listings_until_cleared(fake):
    listing = fake.base_url("groq") + "/v1/models"
    auth = {"authorization": "Bearer fake-key"}
    httpx.post(fake.url + "/_control/faults", json={"provider": "*", "error_rate": 0})
    httpx.post(fake.url + "/_control/faults", json={"provider": "groq", "down": True})
    assert _chat(fake).status_code == 503 and httpx.get(listing, headers=auth).status_code == 503
    assert _chat(fake, "cerebras").status_code == 200

    httpx.post(fake.url + "/_control/faults", json={"provider": "groq", "down": "close"})
    with pytest.raises(httpx.RemoteProtocolError):
        _chat(fake)

    httpx.post(fake.url + "/_control/faults", json={"provider": "groq", "clear": True})
    assert _chat(fake).status_code == 200 and httpx.get(listing, headers=auth).status_code == 200


def test_quota_control_pins_the_advertised_limits_too(fake):
    assert _chat(fake, "mistral").headers["x-ratelimit-limit-req-minute"] == "60"
    httpx.post(fake.url + "/_control/quota", json={"provider": "*", "limit_requests": 10**6, "limit_tokens": 10**9,
                                                    "remaining_requests": 10**6})
    headers = _chat(fake, "mistral").headers
    assert headers["x-ratelimit-limit-req-minute"] == "1000000" and headers["x-ratelimit-remaining-req-minute"] == "1000000"
    assert headers["x-ratelimit-limit-tokens-minute"] == "1000000000"
    assert _chat(fake, "groq").headers["x-ratelimit-limit-requests"] == "1000000"


def test_a_mixed_in_429_can_keep_its_quota_headers_for_a_burst_limit(fake):
    httpx.post(fake.url + "/_control/faults", json={"provider": "groq", "rate_limit_rate": 1, "retry_after": 2})
    assert _chat(fake).headers["x-ratelimit-remaining-requests"] == "0"  # a used-up quota, as scenario rate_limit
    httpx.post(fake.url + "/_control/faults", json={"provider": "groq", "rate_limit_rate": 1, "retry_after": 2,
                                                    "rate_limit_remaining": "keep"})
    limited = _chat(fake)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert int(limited.headers["x-ratelimit-remaining-requests"]) > 0
