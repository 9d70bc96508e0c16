"""Each fake provider's wire format: replies, stream frames, error bodies and rate-limit headers,
written from the providers' documentation and the real captures, NOT from the adapters (so the
tests that compare the two catch a misreading on either side)."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# Which format family each fake provider speaks.
OPENAI_LIKE = ("openai", "groq", "mistral", "cerebras", "deepseek", "together", "huggingface", "openai_compatible",
               "openrouter", "nvidia", "codestral")
# OpenAI's format on other paths (routes of their own in server.py).
OPENAI_ELSEWHERE = ("github", "cloudflare")
# A provider that speaks another's dialect exactly: Codestral's domain is Mistral's API.
DIALECT = {"codestral": "mistral"}
LABELS = {"openai": "OpenAI", "anthropic": "Anthropic", "ollama": "Ollama", "openrouter": "OpenRouter", "groq": "Groq",
          "gemini": "Gemini", "mistral": "Mistral", "huggingface": "Hugging Face", "together": "Together",
          "cerebras": "Cerebras", "deepseek": "DeepSeek", "openai_compatible": "OpenAI-compatible",
          "nvidia": "NVIDIA NIM", "cohere": "Cohere", "cloudflare": "Workers AI", "github": "GitHub Models",
          "codestral": "Codestral"}
_WORD = re.compile(r"\s*\S+")


def _j(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Script:
    """What the fake model answers: text pieces, or one tool call; token counts for usage."""

    model: str
    pieces: list[str] = field(default_factory=list)
    tool: tuple[str, dict] | None = None
    prompt_tokens: int = 0
    finish: str = "stop"  # stop | length | tool_calls

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces) + (4 if self.tool else 0)


def _words(text: str) -> int:
    return len(text.split())


def _args_for(schema: dict | None) -> dict:
    out: dict[str, Any] = {}
    props = (schema or {}).get("properties") or {}
    for name in (schema or {}).get("required") or list(props)[:1]:
        kind = (props.get(name) or {}).get("type")
        out[name] = {"integer": 2, "number": 2.5, "boolean": True, "array": [], "object": {}}.get(kind, "fake")
    return out


def script_for(provider: str, body: dict, model: str) -> Script:
    """Read the request in the provider's own format and decide the reply."""
    text_in, last_is_result, tools, limit = "", False, [], None
    if provider == "anthropic":
        for msg in body.get("messages") or ():
            content = msg.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
            text_in += " ".join(b.get("text", "") for b in blocks if b.get("type") == "text") + " "
            last_is_result = any(b.get("type") == "tool_result" for b in blocks)
        text_in += str(body.get("system") or "")
        tools = [(t["name"], t.get("input_schema")) for t in body.get("tools") or ()]
        limit = body.get("max_tokens")
    elif provider == "gemini":
        for content in body.get("contents") or ():
            parts = content.get("parts") or []
            text_in += " ".join(p.get("text", "") for p in parts) + " "
            last_is_result = any("functionResponse" in p for p in parts)
        tools = [(d["name"], d.get("parameters")) for t in body.get("tools") or () for d in t.get("functionDeclarations") or ()]
        limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
    else:
        for msg in body.get("messages") or ():
            content = msg.get("content")
            text_in += (content if isinstance(content, str) else " ".join(
                p.get("text", "") for p in content or () if isinstance(p, dict))) + " "
            last_is_result = msg.get("role") == "tool"
        tools = [(t["function"]["name"], t["function"].get("parameters")) for t in body.get("tools") or ()]
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or (body.get("options") or {}).get(
            "num_predict")
    script = Script(model=model, prompt_tokens=max(1, _words(text_in)))
    if tools and not last_is_result:
        name, schema = tools[0]
        script.tool, script.finish = (name, _args_for(schema)), "tool_calls"
        return script
    said = " ".join(text_in.split()[-6:])
    reply = f"Hello from the fake {LABELS.get(provider, provider)}. " + (
        "The tool answered." if last_is_result else f"You said: {said}")
    script.pieces = _WORD.findall(reply)
    if limit and len(script.pieces) > int(limit):
        script.pieces, script.finish = script.pieces[: int(limit)], "length"
    return script


# ---------------------------------------------------------------------------------------- OpenAI family
def _oai_usage(s: Script, provider: str) -> dict:
    use: dict[str, Any] = {"prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens,
                           "total_tokens": s.prompt_tokens + s.completion_tokens}
    if provider == "openrouter":
        use.update({"cost": 0, "is_byok": False, "prompt_tokens_details": {"cached_tokens": 0},
                    "cost_details": {"upstream_inference_cost": None},
                    "completion_tokens_details": {"reasoning_tokens": 0}})
    elif provider == "groq":
        use.update({"queue_time": 0.012, "prompt_time": 0.003, "completion_time": 0.02, "total_time": 0.023})
    elif provider == "openai":
        use.update({"prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                  "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
    return use


def _tool_call(s: Script, call_id: str) -> dict:
    assert s.tool
    return {"id": call_id, "type": "function", "function": {"name": s.tool[0], "arguments": _j(s.tool[1])}}


def oai_reply(provider: str, s: Script) -> dict:
    provider = DIALECT.get(provider, provider)
    cid = ("gen-" if provider == "openrouter" else "chatcmpl-") + uuid.uuid4().hex[:24]
    message: dict[str, Any] = {"role": "assistant", "content": None if s.tool else s.text}
    if provider == "openai":
        message["refusal"] = None
    if s.tool:
        message["tool_calls"] = [_tool_call(s, "call_" + uuid.uuid4().hex[:24])]
    choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": s.finish}
    out: dict[str, Any] = {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": s.model,
                           "choices": [choice], "usage": _oai_usage(s, provider)}
    if provider == "openai":
        out.update({"service_tier": "default", "system_fingerprint": "fp_fake0001"})
    elif provider == "openrouter":
        out["provider"] = "FakeHost"
        choice["native_finish_reason"] = s.finish
    elif provider == "groq":
        out.update({"system_fingerprint": "fp_fake0001", "x_groq": {"id": "req_" + uuid.uuid4().hex[:26]},
                    "service_tier": "on_demand"})
    return out


def oai_frames(provider: str, s: Script, include_usage: bool) -> list[bytes]:
    """`data: {chunk}\\n\\n` frames and `data: [DONE]`; OpenRouter adds `: OPENROUTER PROCESSING`
    comments, `provider` and `native_finish_reason`, repeats role in every delta and sends usage in a
    chunk whose choices is not empty; Mistral sends usage in its finish chunk."""
    provider = DIALECT.get(provider, provider)
    cid = ("gen-" if provider == "openrouter" else "chatcmpl-") + uuid.uuid4().hex[:24]
    created = int(time.time())
    frames: list[bytes] = []
    if provider == "openrouter":
        frames.append(b": OPENROUTER PROCESSING\n\n")

    def emit(delta: dict, finish: str | None = None, use: dict | None = None, choices: bool = True) -> None:
        head: dict[str, Any] = {"id": cid}
        if provider == "openrouter":
            head["provider"] = "FakeHost"
        head.update({"model": s.model, "object": "chat.completion.chunk", "created": created})
        if provider == "openai":
            head.update({"service_tier": "default", "system_fingerprint": "fp_fake0001"})
        if provider == "openrouter":
            delta = {"role": "assistant", **delta}
        choice: dict[str, Any] = {"index": 0, "delta": delta}
        if provider == "openrouter":
            choice.update({"finish_reason": finish, "native_finish_reason": finish, "logprobs": None})
        else:
            choice.update({"logprobs": None, "finish_reason": finish})
        head["choices"] = [choice] if choices else []
        if provider == "openrouter":
            head["system_fingerprint"] = "fp_fake0001"
            if use is not None:
                head["usage"] = use
        elif provider == "openai":
            head["usage"] = use if include_usage or use else None
            if not include_usage:
                head.pop("usage")
        elif use is not None:
            head["usage"] = use
        frames.append(f"data: {_j(head)}\n\n".encode())

    use = _oai_usage(s, provider)
    if s.tool:
        call_id = "call_" + uuid.uuid4().hex[:24]
        emit({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": call_id, "type": "function", "function": {"name": s.tool[0], "arguments": ""}}]})
        args = _j(s.tool[1])
        for i in range(0, len(args), 4):
            emit({"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 4]}}]})
    else:
        emit({"role": "assistant", "content": ""} if provider != "openrouter" else {"content": ""})
        for piece in s.pieces:
            emit({"content": piece})
    if provider == "mistral":
        emit({"content": ""}, s.finish, use)
    else:
        emit({}, s.finish)
        if provider == "openrouter":
            emit({"content": ""}, None, use)
        elif include_usage:
            emit({}, None, use, choices=False)
    frames.append(b"data: [DONE]\n\n")
    return frames


def oai_error(provider: str, kind: str, model: str, retry_after: float) -> tuple[int, dict]:
    provider = DIALECT.get(provider, provider)
    if provider == "mistral":
        table = {"auth": (401, {"message": "Unauthorized", "request_id": uuid.uuid4().hex}),
                 "rate_limit": (429, {"object": "error", "message": "Rate limit exceeded", "type": "rate_limited",
                                      "param": None, "code": "1300", "raw_status_code": 429}),
                 "not_found": (400, {"object": "error", "message": f"Invalid model: {model}",
                                     "type": "invalid_model", "param": None, "code": "1500"}),
                 "context_too_long": (400, {"object": "error", "message": "Prompt contains 140000 tokens and 0 draft "
                                            "tokens, too large for model with 131072 maximum context length",
                                            "type": "invalid_request_message_order", "param": None, "code": "3051"}),
                 "server_error": (500, {"object": "error", "message": "Internal server error", "type": "internal_error",
                                        "param": None, "code": "1000"})}
        return table.get(kind, table["server_error"])
    if provider == "openrouter":
        if kind == "rate_limit":
            reset = int((time.time() + retry_after) * 1000)
            return 429, {"error": {"message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock "
                                              "1000 free model requests per day", "code": 429,
                                   "metadata": {"headers": {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0",
                                                            "X-RateLimit-Reset": str(reset)},
                                                "provider_name": None}}, "user_id": "user_fake"}
        messages = {"auth": (401, "No auth credentials found"), "not_found": (404, f"No endpoints found for {model}."),
                    "context_too_long": (400, "This endpoint's maximum context length is 131072 tokens. However, you "
                                              "requested about 140000 tokens. Please reduce the length."),
                    "payment": (402, "Insufficient credits. Add more using https://openrouter.ai/settings/credits"),
                    "server_error": (502, "Provider returned error")}
        status, message = messages.get(kind, messages["server_error"])
        return status, {"error": {"message": message, "code": status}}
    if provider == "groq" and kind == "rate_limit":
        return 429, {"error": {"message": f"Rate limit reached for model `{model}` in organization `org_fake` service "
                                          "tier `on_demand` on tokens per minute (TPM): Limit 6000, Used 5990, "
                                          f"Requested 300. Please try again in {retry_after}s.",
                               "type": "tokens", "code": "rate_limit_exceeded"}}
    if provider == "cerebras" and kind == "rate_limit":
        return 429, {"message": "Tokens per minute limit exceeded - too many tokens processed.",
                     "type": "too_many_requests_error", "param": "quota", "code": "token_quota_exceeded"}
    if provider == "nvidia":
        return nvidia_error(kind, model)
    if provider == "github":
        return github_error(kind, model, retry_after)
    if provider == "cloudflare":
        return cloudflare_error(kind, model)
    if provider == "deepseek" and kind == "payment":
        return 402, {"error": {"message": "Insufficient Balance", "type": "unknown_error", "param": None,
                               "code": "invalid_request_error"}}
    table2 = {
        "auth": (401, "Incorrect API key provided: wr***ey.", "invalid_request_error", "invalid_api_key", None),
        "rate_limit": (429, f"Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
                            f"Limit 3, Used 3, Requested 1. Please try again in {retry_after}s.", "requests",
                       "rate_limit_exceeded", None),
        "not_found": (404, f"The model `{model}` does not exist or you do not have access to it.",
                      "invalid_request_error", "model_not_found", None),
        "context_too_long": (400, "This model's maximum context length is 128000 tokens. However, your messages "
                                  "resulted in 140000 tokens. Please reduce the length of the messages.",
                             "invalid_request_error", "context_length_exceeded", "messages"),
        "payment": (402, "You exceeded your current quota, please check your plan and billing details.",
                    "insufficient_quota", "insufficient_quota", None),
        "server_error": (500, "The server had an error while processing your request. Sorry about that!",
                         "server_error", None, None),
    }
    status, message, etype, code, param = table2.get(kind, table2["server_error"])
    return status, {"error": {"message": message, "type": etype, "param": param, "code": code}}


def oai_ratelimit_headers(provider: str, used: int, override: dict) -> dict[str, str]:
    provider = DIALECT.get(provider, provider)
    def rem(limit: int, key: str) -> str:
        return str(override.get(key, max(0, limit - used)))

    if provider == "groq":
        return {"x-ratelimit-limit-requests": "14400", "x-ratelimit-remaining-requests": rem(14400, "remaining_requests"),
                "x-ratelimit-reset-requests": "2m59.56s", "x-ratelimit-limit-tokens": "6000",
                "x-ratelimit-remaining-tokens": rem(6000, "remaining_tokens"), "x-ratelimit-reset-tokens": "7.66s"}
    if provider == "mistral":
        return {"x-ratelimit-limit-req-minute": "60", "x-ratelimit-remaining-req-minute": rem(60, "remaining_requests"),
                "x-ratelimit-limit-tokens-minute": "500000",
                "x-ratelimit-remaining-tokens-minute": rem(500000, "remaining_tokens"),
                "x-ratelimit-tokens-query-cost": "42", "x-ratelimit-limit-tokens-month": "1000000000",
                "x-ratelimit-remaining-tokens-month": rem(1000000000, "remaining_tokens_month")}
    if provider == "cerebras":
        return {"x-ratelimit-limit-requests-day": "14400",
                "x-ratelimit-remaining-requests-day": rem(14400, "remaining_requests"),
                "x-ratelimit-reset-requests-day": "11726.28", "x-ratelimit-limit-tokens-minute": "60000",
                "x-ratelimit-remaining-tokens-minute": rem(60000, "remaining_tokens"),
                "x-ratelimit-reset-tokens-minute": "26.28"}
    if provider in ("openai", "together", "deepseek", "huggingface"):
        return {"x-ratelimit-limit-requests": "30000", "x-ratelimit-remaining-requests": rem(30000, "remaining_requests"),
                "x-ratelimit-reset-requests": "2ms", "x-ratelimit-limit-tokens": "150000000",
                "x-ratelimit-remaining-tokens": rem(150000000, "remaining_tokens"), "x-ratelimit-reset-tokens": "0s"}
    return {}



def pin_limits(headers: dict[str, str], override: dict) -> dict[str, str]:
    """`limit_requests` / `limit_tokens` in a quota override replace the limits the headers advertise
    (benchmarks that must not be throttled by a fake free tier: the gateway learns limits from them)."""
    for name in headers:
        if "-limit-" in name or name.endswith("-limit"):
            key = "limit_tokens" if "token" in name else "limit_requests"
            if key in override:
                headers[name] = str(override[key])
    return headers


# ---------------------------------------------------------------------------------------- Anthropic
def _ant_usage(s: Script, output: int) -> dict:
    return {"input_tokens": s.prompt_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output, "service_tier": "standard", "inference_geo": "not_available"}


ANT_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def anthropic_reply(s: Script) -> dict:
    content: list[dict] = [{"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": s.tool[0],
                            "input": s.tool[1]}] if s.tool else [{"type": "text", "text": s.text}]
    return {"model": s.model, "id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant",
            "content": content, "stop_reason": ANT_STOP[s.finish], "stop_sequence": None,
            "usage": _ant_usage(s, s.completion_tokens)}


def anthropic_frames(s: Script) -> list[bytes]:
    """`event: <type>\\ndata: {json}<spaces>\\n\\n`: the real stream pads some data lines with spaces."""
    frames: list[bytes] = []

    def emit(event: str, data: dict, pad: int = 0) -> None:
        frames.append(f"event: {event}\ndata: {_j(data)}{' ' * pad}\n\n".encode())

    message = {"model": s.model, "id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant",
               "content": [], "stop_reason": None, "stop_sequence": None, "usage": _ant_usage(s, 1)}
    emit("message_start", {"type": "message_start", "message": message}, 15)
    if s.tool:
        emit("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": s.tool[0], "input": {},
            "caller": {"type": "direct"}}}, 5)
        frames.append(b'event: ping\ndata: {"type": "ping"}\n\n')
        args = _j(s.tool[1])
        for i in range(0, len(args), 5):
            emit("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "input_json_delta", "partial_json": args[i:i + 5]}}, 1)
    else:
        emit("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}, 3)
        frames.append(b'event: ping\ndata: {"type": "ping"}\n\n')
        for n, piece in enumerate(s.pieces):
            emit("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": piece}}, n % 3 * 4)
    emit("content_block_stop", {"type": "content_block_stop", "index": 0}, 13)
    use = {k: v for k, v in _ant_usage(s, s.completion_tokens).items()
           if k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")}
    emit("message_delta", {"type": "message_delta", "delta": {"stop_reason": ANT_STOP[s.finish],
                                                              "stop_sequence": None}, "usage": use}, 8)
    emit("message_stop", {"type": "message_stop"}, 1)
    return frames


def anthropic_error(kind: str, model: str) -> tuple[int, dict]:
    table = {"auth": (401, "authentication_error", "invalid x-api-key"),
             "rate_limit": (429, "rate_limit_error", "This request would exceed your account's rate limit. "
                                                     "Please try again later."),
             "not_found": (404, "not_found_error", f"model: {model}"),
             "context_too_long": (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
             "overloaded": (529, "overloaded_error", "Overloaded"),
             "server_error": (500, "api_error", "Internal server error")}
    status, etype, message = table.get(kind, table["server_error"])
    return status, {"type": "error", "error": {"type": etype, "message": message},
                    "request_id": "req_" + uuid.uuid4().hex[:24]}


def anthropic_ratelimit_headers(used: int, override: dict) -> dict[str, str]:
    reset = (datetime.now(UTC) + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = {}
    for what, limit in (("requests", 50), ("tokens", 100000), ("input-tokens", 80000), ("output-tokens", 20000)):
        key = "remaining_" + what.replace("-", "_")
        out[f"anthropic-ratelimit-{what}-limit"] = str(limit)
        out[f"anthropic-ratelimit-{what}-remaining"] = str(override.get(key, max(0, limit - used)))
        out[f"anthropic-ratelimit-{what}-reset"] = reset
    return out


# ---------------------------------------------------------------------------------------- Gemini
GEM_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


def _gem_usage(s: Script, done: int) -> dict:
    return {"promptTokenCount": s.prompt_tokens, "candidatesTokenCount": done,
            "totalTokenCount": s.prompt_tokens + done,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": s.prompt_tokens}]}


def _gem_element(s: Script, parts: list[dict], finish: str | None, done: int, rid: str) -> dict:
    cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish:
        cand["finishReason"] = finish
    cand["index"] = 0
    return {"candidates": [cand], "usageMetadata": _gem_usage(s, done), "modelVersion": s.model, "responseId": rid}


def gemini_reply(s: Script) -> dict:
    parts = [{"functionCall": {"name": s.tool[0], "args": s.tool[1]}}] if s.tool else [{"text": s.text}]
    return _gem_element(s, parts, GEM_FINISH[s.finish], s.completion_tokens, uuid.uuid4().hex[:22])


def gemini_frames(s: Script, sse: bool) -> list[bytes]:
    """Without alt=sse: ONE JSON array in pieces, `[{…}\\n` then `,\\r\\n{…}\\n` … then `]` (pretty-printed
    elements, like the capture). With alt=sse: `data: {…}\\r\\n\\r\\n` frames."""
    rid = uuid.uuid4().hex[:22]
    elements: list[dict] = []
    if s.tool:
        elements.append(_gem_element(s, [{"functionCall": {"name": s.tool[0], "args": s.tool[1]}}], "STOP",
                                     s.completion_tokens, rid))
    else:
        pieces = s.pieces or [""]
        for n, piece in enumerate(pieces):
            last = n == len(pieces) - 1
            elements.append(_gem_element(s, [{"text": piece}], GEM_FINISH[s.finish] if last else None, n + 1, rid))
    if sse:
        return [f"data: {_j(e)}\r\n\r\n".encode() for e in elements]
    frames = []
    for n, element in enumerate(elements):
        body = json.dumps(element, indent=2)
        frames.append((("[" if n == 0 else ",\r\n") + body + "\n").encode())
    frames.append(b"]")
    return frames


def gemini_error(kind: str, model: str, retry_after: float) -> tuple[int, dict]:
    if kind == "rate_limit":
        return 429, {"error": {"code": 429, "message": (
            "You exceeded your current quota, please check your plan and billing details. * Quota exceeded for metric: "
            "generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 5, model: "
            f"{model}\nPlease retry in {retry_after}s."), "status": "RESOURCE_EXHAUSTED", "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": model}, "quotaValue": "5"}]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                {"description": "Learn more about Gemini API quotas",
                 "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{int(retry_after)}s"}]}}
    if kind == "auth":  # Gemini answers a bad key with 400, not 401
        return 400, {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                               "status": "INVALID_ARGUMENT", "details": [
                                   {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                                    "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}}
    table = {"not_found": (404, f"models/{model} is not found for API version v1beta, or is not supported for "
                                "generateContent.", "NOT_FOUND"),
             "context_too_long": (400, "The input token count (1200000) exceeds the maximum number of tokens allowed "
                                       "(1048576).", "INVALID_ARGUMENT"),
             "unavailable": (503, "The model is overloaded. Please try again later.", "UNAVAILABLE"),
             "server_error": (500, "An internal error has occurred.", "INTERNAL")}
    status, message, code = table.get(kind, table["server_error"])
    return status, {"error": {"code": status, "message": message, "status": code}}


# ---------------------------------------------------------------------------------------- Ollama
def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ollama_final(s: Script) -> dict:
    return {"done_reason": "length" if s.finish == "length" else "stop", "done": True, "total_duration": 4883583458,
            "load_duration": 1334875, "prompt_eval_count": s.prompt_tokens, "prompt_eval_duration": 342546000,
            "eval_count": s.completion_tokens, "eval_duration": 4535599000}


def ollama_reply(s: Script) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": "" if s.tool else s.text}
    if s.tool:
        message["tool_calls"] = [{"function": {"name": s.tool[0], "arguments": s.tool[1]}}]
    return {"model": s.model, "created_at": _stamp(), "message": message, **_ollama_final(s)}


def ollama_frames(s: Script) -> list[bytes]:
    lines = []
    if s.tool:
        lines.append({"model": s.model, "created_at": _stamp(), "message": {
            "role": "assistant", "content": "", "tool_calls": [{"function": {"name": s.tool[0],
                                                                             "arguments": s.tool[1]}}]}, "done": False})
    for piece in s.pieces:
        lines.append({"model": s.model, "created_at": _stamp(), "message": {"role": "assistant", "content": piece},
                      "done": False})
    lines.append({"model": s.model, "created_at": _stamp(), "message": {"role": "assistant", "content": ""},
                  **_ollama_final(s)})
    return [(_j(line) + "\n").encode() for line in lines]


def ollama_error(kind: str, model: str) -> tuple[int, dict]:
    table = {"not_found": (404, f'model "{model}" not found, try pulling it first'),
             "rate_limit": (429, "too many requests"),
             "context_too_long": (400, "input length exceeds the context length"),
             "auth": (401, "unauthorized"),
             "server_error": (500, "llama runner process has terminated: exit status 2")}
    status, message = table.get(kind, table["server_error"])
    return status, {"error": message}


# ------------------------------------------------------------------------------ key-echoing upstreams
def echo_key_error(provider: str, status: int, presented: str, authorization: str) -> tuple[int, dict]:
    """An upstream that quotes the credential it was sent (scenario `echo_key`): OpenAI's 401 names the
    key ("Incorrect API key provided: sk-..."), some gateways' 5xx quote the request's headers, and a
    400 may repeat the key in its complaint. Shaped like each family's error body."""
    if status in (401, 403):
        message = f"Incorrect API key provided: {presented}. You can find your API key at https://example.test/keys."
    elif status >= 500:
        message = f"Upstream failure while handling request; headers: Authorization: {authorization}; x-key={presented}"
    else:
        message = f"Invalid request for key {presented}: 'messages' is malformed (Authorization: {authorization})"
    if provider == "anthropic":
        etype = {401: "authentication_error", 403: "permission_error"}.get(status, "api_error" if status >= 500
                                                                          else "invalid_request_error")
        return status, {"type": "error", "error": {"type": etype, "message": message}}
    if provider == "gemini":
        return status, {"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}}
    if provider == "ollama":
        return status, {"error": message}
    code = "invalid_api_key" if status in (401, 403) else None
    return status, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


# ------------------------------------------------------------------------- NVIDIA NIM, GitHub, Cloudflare
def nvidia_error(kind: str, model: str) -> tuple[int, dict]:
    """NVCF's RFC 7807 problem details for the front's refusals; vLLM's OpenAI-style body for what the
    model server itself rejects (the context length)."""
    if kind == "context_too_long":
        return 400, {"object": "error", "message": "This model's maximum context length is 131072 tokens. However, "
                                                   "you requested 140000 tokens in the messages, Please reduce the "
                                                   "length of the messages.", "type": "BadRequestError",
                     "param": None, "code": 400}
    table = {"auth": (401, "Unauthorized", "Authentication failed"),
             "rate_limit": (429, "Too Many Requests", "Rate limit exceeded"),
             "not_found": (404, "Not Found", f"Function for model '{model}' not found for account"),
             "payment": (402, "Payment Required", "Account credits exhausted"),
             "server_error": (500, "Internal Server Error", "Inference failed")}
    status, title, detail = table.get(kind, table["server_error"])
    return status, {"type": "about:blank", "status": status, "title": title, "detail": detail,
                    "requestId": str(uuid.uuid4())}


def github_error(kind: str, model: str, retry_after: float) -> tuple[int, dict]:
    """GitHub Models' inference errors: `{"error": {"code", "message", "details"}}` (codes as users
    report them: RateLimitReached, unknown_model, tokens_limit_reached)."""
    table = {"auth": (401, "unauthorized", "Bad credentials"),
             "rate_limit": (429, "RateLimitReached", f"Rate limit of 15 per 60s exceeded for UserByModelByMinute. "
                                                     f"Please wait {int(retry_after)} seconds before retrying."),
             "not_found": (400, "unknown_model", f"Unknown model: {model}"),
             "context_too_long": (413, "tokens_limit_reached", f"Request body too large for {model} model. "
                                                              "Max size: 8000 tokens."),
             "payment": (403, "no_access", f"No access to model: {model}"),
             "server_error": (500, "internal_error", "Internal server error")}
    status, code, message = table.get(kind, table["server_error"])
    return status, {"error": {"code": code, "message": message, "details": message}}


def cloudflare_error(kind: str, model: str) -> tuple[int, dict]:
    """Cloudflare's v4 envelope with the Workers AI codes of developers.cloudflare.com/workers-ai/platform/errors/
    (10000 is the API's authentication error; the docs list no 5xx body, so it keeps the envelope)."""
    table = {"auth": (401, 10000, "Authentication error"),
             "rate_limit": (429, 3040, "Out of capacity: No more data centers to forward the request to"),
             "quota_exhausted": (429, 3036, "Account limited: You have used up your daily free allocation of 10,000 "
                                            "neurons. Please upgrade to Cloudflare's Workers Paid plan if you would "
                                            "like to continue usage."),
             "not_found": (400, 5007, f"No such model {model} or task"),
             "context_too_long": (413, 3006, "Request is too large"),
             "payment": (403, 3023, "Service unavailable for account"),
             "server_error": (500, 3043, "Internal server error")}
    status, code, message = table.get(kind, table["server_error"])
    return status, {"success": False, "errors": [{"code": code, "message": f"AiError: {message}"}],
                    "messages": [], "result": None}


def cloudflare_listing(models: list[dict], page: int, per_page: int) -> dict:
    """GET /accounts/{id}/ai/models/search: the v4 envelope, paged by page/per_page (result_info)."""
    start = (page - 1) * per_page
    items = models[start:start + per_page]
    return {"success": True, "errors": [], "messages": [], "result": items,
            "result_info": {"page": page, "per_page": per_page, "count": len(items), "total_count": len(models)}}


# ---------------------------------------------------------------------------------------- Cohere
CO_FINISH = {"stop": "COMPLETE", "length": "MAX_TOKENS", "tool_calls": "TOOL_CALL"}


def _co_usage(s: Script, output: int) -> dict:
    return {"billed_units": {"input_tokens": s.prompt_tokens, "output_tokens": output},
            "tokens": {"input_tokens": s.prompt_tokens, "output_tokens": output}}


def _co_call(s: Script) -> dict:
    assert s.tool
    return {"id": f"{s.tool[0]}_{uuid.uuid4().hex[:12]}", "type": "function",
            "function": {"name": s.tool[0], "arguments": _j(s.tool[1])}}


def cohere_reply(s: Script) -> dict:
    """POST /v2/chat (https://docs.cohere.com/reference/chat)."""
    message: dict[str, Any] = {"role": "assistant"}
    if s.tool:
        message["tool_plan"] = f"I will use the {s.tool[0]} tool."
        message["tool_calls"] = [_co_call(s)]
    else:
        message["content"] = [{"type": "text", "text": s.text}]
    return {"id": str(uuid.uuid4()), "message": message, "finish_reason": CO_FINISH[s.finish],
            "usage": _co_usage(s, s.completion_tokens)}


def cohere_frames(s: Script) -> list[bytes]:
    """The v2 chat stream (https://docs.cohere.com/reference/chat-stream, /docs/streaming): `event: <type>`
    and `data: {"type": <type>, ...}` per event, message-end last (no `[DONE]`)."""
    frames: list[bytes] = []

    def emit(data: dict) -> None:
        frames.append(f"event: {data['type']}\ndata: {_j(data)}\n\n".encode())

    emit({"id": str(uuid.uuid4()), "type": "message-start", "delta": {"message": {
        "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})
    if s.tool:
        plan = f"I will use the {s.tool[0]} tool."
        for word in _WORD.findall(plan):
            emit({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": word}}})
        call = _co_call(s)
        emit({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
            "id": call["id"], "type": "function", "function": {"name": s.tool[0], "arguments": ""}}}}})
        args = call["function"]["arguments"]
        for i in range(0, len(args), 4):
            emit({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {
                "function": {"arguments": args[i:i + 4]}}}}})
        emit({"type": "tool-call-end", "index": 0})
    else:
        emit({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}})
        for piece in s.pieces:
            emit({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": piece}}}})
        emit({"type": "content-end", "index": 0})
    emit({"type": "message-end", "delta": {"finish_reason": CO_FINISH[s.finish],
                                           "usage": _co_usage(s, s.completion_tokens)}})
    return frames


def cohere_error(kind: str, model: str) -> tuple[int, dict]:
    """`{"id", "message"}`; the status says the kind (https://docs.cohere.com/reference/errors)."""
    table = {"auth": (401, "invalid api token"),
             "rate_limit": (429, "You are using a Trial key, which is limited to 20 API calls / minute. You can "
                                 "continue to use the Trial key for free or upgrade to a Production key with higher "
                                 "rate limits at 'https://dashboard.cohere.com/api-keys'."),
             "not_found": (404, f"model '{model}' not found, make sure the correct model ID was used and that you "
                                "have access to the model."),
             "context_too_long": (400, "too many tokens: total number of tokens in the prompt cannot exceed 128000 - "
                                       "received 140000. Try using a shorter preamble or chat history, or using a "
                                       "model with a longer context length."),
             "payment": (402, "Please add or update your payment method at https://dashboard.cohere.com/billing"),
             "server_error": (500, "internal server error, this has been reported to our developers")}
    status, message = table.get(kind, table["server_error"])
    return status, {"id": str(uuid.uuid4()), "message": message}
