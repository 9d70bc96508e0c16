"""What a request needs of a model, from its body and headers (routing.router.Requirements).

From the request itself: tools → function-calling; image parts → vision; estimated prompt tokens plus
max_tokens → minimum context. From `extra_body` (top-level keys, as the OpenAI SDK sends them) or
headers: capabilities, min context, max price ($/M tokens), preferred/excluded providers and a
fallback list of models:

    extra_body={"afmts": {"capabilities": ["vision"], "min_context": 32000, "max_price": 1.0,
                          "providers": {"prefer": ["groq"], "exclude": ["openai"]},
                          "fallbacks": ["groq/llama-3.3-70b-versatile"]}}
    extra_body={"models": ["a/x", "b/y"]}                      # OpenRouter's fallback list
    headers: x-afmts-capabilities, x-afmts-min-context, x-afmts-max-price,
             x-afmts-prefer-providers, x-afmts-exclude-providers, x-afmts-fallbacks (comma-separated)
"""

from __future__ import annotations

from typing import Any

from routing.gateway.engine import GatewayError
from routing.router import Requirements

# Fields of ours that must not reach an upstream.
OURS = ("afmts", "models", "provider", "route", "fallbacks")


def _list(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise GatewayError(400, f"{name} must be a list of strings", param=name)


def _number(value: Any, name: str, kind=float):
    if value is None or value == "":
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise GatewayError(400, f"{name} must be a number", param=name) from None
    if number < 0:
        raise GatewayError(400, f"{name} must not be negative", param=name)
    return number


def estimate_tokens(messages: list[Any]) -> int:
    """About 4 characters a token, plus a few per message: enough to pick a window that fits. Any
    shape is counted without raising (the explain endpoint passes bodies the gateway has not validated)."""
    chars = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    chars += len(part["text"])
                elif isinstance(part, dict) and part.get("type") in ("image_url", "image"):
                    chars += 3000  # an image costs roughly a thousand tokens
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            chars += sum(len(str(call)) for call in calls)
    return chars // 4 + 4 * len(messages)


def needs_vision(messages: list[Any]) -> bool:
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") in ("image_url", "image") for p in content):
            return True
    return False


def requirements(body: dict[str, Any], headers: dict[str, str], *, kind: str = "chat") -> Requirements:
    ours = body.get("afmts") or {}
    if not isinstance(ours, dict):
        raise GatewayError(400, "afmts must be an object", param="afmts")
    caps = set(_list(ours.get("capabilities"), "afmts.capabilities")) | set(
        _list(headers.get("x-afmts-capabilities"), "x-afmts-capabilities")
    )
    min_context = None
    max_output = None
    if kind == "chat":
        messages = body.get("messages")
        messages = messages if isinstance(messages, list) else []
        if body.get("tools") or body.get("functions"):
            caps.add("function-calling")
        if needs_vision(messages):
            caps.add("vision")
        max_output = _number(body.get("max_completion_tokens") or body.get("max_tokens"), "max_tokens", int)
        min_context = estimate_tokens(messages) + (max_output or 0)
    asked = _number(ours.get("min_context") or headers.get("x-afmts-min-context"), "min_context", int)
    if asked:
        min_context = max(min_context or 0, asked)
    providers = ours.get("providers") or {}
    if not isinstance(providers, dict):
        raise GatewayError(400, "afmts.providers must be an object", param="afmts.providers")
    provider_field = body.get("provider") if isinstance(body.get("provider"), dict) else {}
    prefer = _list(providers.get("prefer"), "afmts.providers.prefer") or _list(provider_field.get("order"), "provider.order") \
        or _list(headers.get("x-afmts-prefer-providers"), "x-afmts-prefer-providers")
    exclude = set(_list(providers.get("exclude"), "afmts.providers.exclude")) | set(
        _list(provider_field.get("ignore"), "provider.ignore")
    ) | set(_list(headers.get("x-afmts-exclude-providers"), "x-afmts-exclude-providers"))
    fallbacks = (
        _list(ours.get("fallbacks"), "afmts.fallbacks") + _list(body.get("models"), "models")
        + _list(body.get("fallbacks"), "fallbacks") + _list(headers.get("x-afmts-fallbacks"), "x-afmts-fallbacks")
    )
    return Requirements(
        kind=kind, capabilities=frozenset(caps), min_context=min_context, max_output=max_output,
        max_price=_number(ours.get("max_price", headers.get("x-afmts-max-price")), "max_price"),
        prefer_providers=prefer, exclude_providers=frozenset(exclude), fallbacks=fallbacks,
    )


def upstream_body(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in OURS}
