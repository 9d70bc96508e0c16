"""Rate-limit headers in each provider's own units, read into one shape."""

from __future__ import annotations

import pytest

from registry.providers import adapter_class
from registry.providers.ratelimits import parse_duration, parse_rate_limit_headers

NOW = 1_780_000_000.0


@pytest.mark.parametrize(("text", "seconds"), [
    ("2m59.56s", 179.56), ("7.66s", 7.66), ("2ms", 0.002), ("0s", 0.0), ("1h2m3s", 3723.0), ("9m38.016s", 578.016),
    ("644ms", 0.644), ("11726.28", 11726.28), ("7", 7.0), (str(int((NOW + 30) * 1000)), 30.0),
    (str(int(NOW + 60)), 60.0), ("2026-05-28T20:27:10Z", None), ("garbage", None), ("", None),
])
def test_durations_in_every_unit_become_seconds(text, seconds):
    if text.startswith("2026-"):
        from datetime import datetime

        seconds = max(0.0, datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() - NOW)
    result = parse_duration(text, now=NOW)
    assert result == (pytest.approx(seconds, abs=0.01) if seconds is not None else None)


def test_retry_after_as_http_date():
    assert parse_duration("Thu, 28 May 2026 20:27:40 GMT", now=1_780_000_030.0) is not None


def test_groq_requests_are_per_day_and_tokens_per_minute():
    info = adapter_class("groq")().parse_rate_limit({
        "x-ratelimit-limit-requests": "14400", "x-ratelimit-remaining-requests": "14370",
        "x-ratelimit-reset-requests": "2m59.56s", "x-ratelimit-limit-tokens": "6000",
        "x-ratelimit-remaining-tokens": "5997", "x-ratelimit-reset-tokens": "7.66s", "retry-after": "7"})
    day = info.window("requests", "day")
    assert (day.limit, day.remaining, day.reset) == (14400, 14370, pytest.approx(179.56))
    assert info.window("tokens", "minute").reset == pytest.approx(7.66)
    assert info.retry_after == 7


def test_cerebras_names_its_windows():
    info = adapter_class("cerebras")().parse_rate_limit({
        "x-ratelimit-limit-requests-day": "14400", "x-ratelimit-remaining-requests-day": "14399",
        "x-ratelimit-reset-requests-day": "11726.28", "x-ratelimit-limit-tokens-minute": "60000",
        "x-ratelimit-remaining-tokens-minute": "59000", "x-ratelimit-reset-tokens-minute": "26.28"})
    assert info.window("requests", "day").reset == pytest.approx(11726.28)
    assert info.remaining("tokens", "minute") == 59000


def test_mistral_req_and_month_windows():
    info = adapter_class("mistral")().parse_rate_limit({
        "x-ratelimit-limit-req-minute": "60", "x-ratelimit-remaining-req-minute": "59",
        "x-ratelimit-limit-tokens-month": "1000000000", "x-ratelimit-remaining-tokens-month": "999999000",
        "x-ratelimit-tokens-query-cost": "42"})
    assert info.limit("requests", "minute") == 60
    assert info.remaining("tokens", "month") == 999999000


def test_openrouter_epoch_millisecond_reset():
    info = parse_rate_limit_headers({"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0",
                                     "X-RateLimit-Reset": str(int((NOW + 42) * 1000))}, {"requests": "minute"}, now=NOW)
    assert info.window("requests", "minute").reset == pytest.approx(42, abs=0.01)


def test_no_rate_limit_headers_is_empty():
    assert not parse_rate_limit_headers({"content-type": "application/json"})
