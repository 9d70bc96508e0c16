"""Rate-limit headers -> RateLimitInfo, each provider's units converted to plain numbers.

Names handled (wire_formats.md §3): OpenAI/Groq/Together `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
(resets as Go durations "2m59.56s"), Cerebras `...-requests-day` / `...-tokens-minute` (resets as float
seconds), Mistral `x-ratelimit-{limit,remaining}-{req,tokens}-{minute,month}`, Anthropic
`anthropic-ratelimit-<what>-{limit,remaining,reset}` (RFC 3339 resets), OpenRouter `X-RateLimit-*`
(reset in epoch milliseconds) and `retry-after` (seconds or an HTTP date).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from registry.providers.types import RateLimitInfo, RateLimitWindow

PERIODS = ("second", "minute", "hour", "day", "month")
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_FULL = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_WHAT_ALIASES = {"req": "requests", "request": "requests", "token": "tokens"}


def parse_duration(value: str | None, now: float | None = None) -> float | None:
    """Seconds until a reset, from any of the forms providers use: a Go duration ("2m59.56s", "2ms"),
    plain seconds ("11726.28"), epoch seconds or milliseconds, an RFC 3339 timestamp or an HTTP date."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if _GO_FULL.match(text):
        return sum(float(num) * _UNITS[unit] for num, unit in _GO_PART.findall(text))
    try:
        number = float(text)
    except ValueError:
        number = None
    now = time.time() if now is None else now
    if number is not None:
        if number > 1e12:  # epoch milliseconds (OpenRouter's X-RateLimit-Reset)
            return max(0.0, number / 1000.0 - now)
        if number > 1e9:  # epoch seconds
            return max(0.0, number - now)
        return max(0.0, number)
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            stamp = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if stamp.tzinfo is None:
        return None
    return max(0.0, stamp.timestamp() - now)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _split_what(rest: str, default_periods: Mapping[str, str]) -> str:
    what, period = rest, None
    for candidate in PERIODS:
        if rest.endswith("-" + candidate):
            what, period = rest[: -len(candidate) - 1], candidate
            break
    what = _WHAT_ALIASES.get(what, what)
    return f"{what}/{period or default_periods.get(what, '?')}"


def parse_rate_limit_headers(
    headers: Mapping[str, str], periods: Mapping[str, str] | None = None, now: float | None = None
) -> RateLimitInfo:
    """Read every rate-limit header in `headers` (case-insensitive). `periods` says which window a
    header without a period suffix counts (e.g. Groq: {"requests": "day", "tokens": "minute"})."""
    periods = periods or {}
    info = RateLimitInfo()
    for raw_name, value in headers.items():
        name = raw_name.lower()
        if name == "retry-after":
            info.retry_after = parse_duration(value, now)
            continue
        if name == "retry-after-ms":
            try:
                info.retry_after = float(value) / 1000.0
            except ValueError:
                pass
            continue
        if name.startswith("x-ratelimit-"):
            rest = name[12:]
            field, _, what = rest.partition("-")
            if field not in ("limit", "remaining", "reset"):
                continue
            if not what:  # OpenRouter's X-RateLimit-Limit/Remaining/Reset
                what = "requests"
            key = _split_what(what, periods)
        elif name.startswith("anthropic-ratelimit-"):
            what, _, field = name[20:].rpartition("-")
            if field not in ("limit", "remaining", "reset"):
                continue
            key = f"{what}/{periods.get(what, 'minute')}"
        else:
            continue
        win = info.windows.get(key)
        if win is None:
            win = info.windows[key] = RateLimitWindow()
        if field == "reset":
            win.reset = parse_duration(value, now)
        else:
            setattr(win, field, _int(value))
    return info
