"""Anthropic's Messages API on the gateway: `POST /v1/messages` in, the same routing as OpenAI's chat
(its request is translated to the internal OpenAI shape), and the reply — JSON or Anthropic's event
stream — translated back, in Anthropic's own request, response and error formats."""

from __future__ import annotations

import json
import uuid
from typing import Any

from routing.gateway.asgi import dumps
from routing.gateway.engine import Call, GatewayError

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               402: "billing_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 502: "api_error",
               503: "overloaded_error", 504: "api_error"}


def error_body(exc: GatewayError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(exc.status, "api_error"), "message": exc.message}}


def error_frame(exc: GatewayError) -> tuple[str, bytes]:
    return "error", dumps(error_body(exc))


def _image_part(source: dict[str, Any]) -> dict[str, Any]:
    if source["type"] == "base64":
        url = f"data:{source.get('media_type') or 'image/png'};base64,{source['data']}"
    else:
        url = source["url"]
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(b["text"] for b in content if b["type"] == "text")
    return content or ""


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        role, content = message["role"], message["content"]
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        parts, calls = [], []
        for block in content:
            kind = block["type"]
            if kind == "text":
                parts.append({"type": "text", "text": block["text"]})
            elif kind == "image":
                parts.append(_image_part(block["source"]))
            elif kind == "tool_use":
                calls.append({"id": block["id"], "type": "function",
                              "function": {"name": block["name"], "arguments": json.dumps(block["input"])}})
            elif kind == "tool_result":
                out.append({"role": "tool", "tool_call_id": block["tool_use_id"],
                            "content": _tool_result_text(block.get("content"))})
            # thinking and redacted_thinking blocks have no OpenAI counterpart: dropped
        if role == "assistant":
            text = "".join(p["text"] for p in parts if p["type"] == "text")
            entry: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
        elif parts:
            only_text = all(p["type"] == "text" for p in parts)
            out.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts})
    return out


def to_openai_request(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as the internal (OpenAI chat) request. `body` must have passed
    validate.messages; the result then passes validate.chat."""
    chat: dict[str, Any] = {"model": body["model"], "max_tokens": body["max_tokens"], "messages": []}
    system = body.get("system")
    if isinstance(system, list):
        system = "".join(b["text"] for b in system)
    if system:
        chat["messages"].append({"role": "system", "content": system})
    chat["messages"] += _messages(body["messages"])
    for name, target in (("temperature", "temperature"), ("top_p", "top_p"), ("stop_sequences", "stop")):
        if body.get(name) is not None:
            chat[target] = body[name]
    if body.get("tools"):
        chat["tools"] = [
            {"type": "function", "function": {"name": t["name"], "description": t.get("description") or "",
                                              "parameters": t.get("input_schema") or {"type": "object"}}}
            for t in body["tools"]
        ]
    choice = body.get("tool_choice")
    if choice is not None:
        kind = choice["type"]
        chat["tool_choice"] = (
            {"type": "function", "function": {"name": choice["name"]}} if kind == "tool"
            else {"auto": "auto", "any": "required", "none": "none"}[kind]
        )
        if choice.get("disable_parallel_tool_use"):
            chat["parallel_tool_calls"] = False
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        chat["user"] = user
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    for key in ("afmts", "models", "fallbacks"):
        if key in body:
            chat[key] = body[key]
    return chat


def from_openai_response(result: dict[str, Any], call: Call) -> dict[str, Any]:
    choice = (result.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for tool_call in message.get("tool_calls") or ():
        fn = tool_call.get("function") or {}
        try:
            arguments = json.loads(fn.get("arguments") or "{}")
        except json.JSONDecodeError:
            arguments = {"_raw": fn.get("arguments")}
        content.append({"type": "tool_use", "id": tool_call.get("id"), "name": fn.get("name"), "input": arguments})
    usage = result.get("usage") or {}
    return {
        "id": _message_id(result), "type": "message", "role": "assistant", "model": call.served_by.public_id,
        "content": content, "stop_reason": STOP_REASONS.get(choice.get("finish_reason"), "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": usage.get("prompt_tokens", 0), "output_tokens": usage.get("completion_tokens", 0)},
    }


def _message_id(result: dict[str, Any]) -> str:
    rid = str(result.get("id") or "")
    return rid if rid.startswith("msg_") else f"msg_{uuid.uuid4().hex[:24]}"


class StreamFrames:
    """OpenAI chunks in, Anthropic stream events out (message_start, content_block_*, message_delta,
    message_stop)."""

    def __init__(self) -> None:
        self.started = False
        self.index = -1
        self.open: str | None = None  # "text" or "tool:<openai index>"
        self.stop_reason = "end_turn"
        self.message_id = f"msg_{uuid.uuid4().hex[:24]}"

    def _event(self, name: str, data: dict[str, Any]) -> tuple[str, bytes]:
        return name, dumps({"type": name, **data})

    def _close_block(self) -> list[tuple[str, bytes]]:
        if self.open is None:
            return []
        self.open = None
        return [self._event("content_block_stop", {"index": self.index})]

    def encode(self, chunk: dict[str, Any], call: Call) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        if not self.started:
            self.started = True
            out.append(self._event("message_start", {"message": {
                "id": self.message_id, "type": "message", "role": "assistant", "model": call.served_by.public_id,
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}))
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self.open != "text":
                    out += self._close_block()
                    self.index += 1
                    self.open = "text"
                    out.append(self._event("content_block_start", {"index": self.index,
                                                                   "content_block": {"type": "text", "text": ""}}))
                out.append(self._event("content_block_delta", {"index": self.index,
                                                               "delta": {"type": "text_delta", "text": delta["content"]}}))
            for tool_call in delta.get("tool_calls") or ():
                key = f"tool:{tool_call.get('index', 0)}"
                fn = tool_call.get("function") or {}
                if self.open != key:
                    out += self._close_block()
                    self.index += 1
                    self.open = key
                    out.append(self._event("content_block_start", {"index": self.index, "content_block": {
                        "type": "tool_use", "id": tool_call.get("id") or f"toolu_{uuid.uuid4().hex[:20]}",
                        "name": fn.get("name") or "", "input": {}}}))
                if fn.get("arguments"):
                    out.append(self._event("content_block_delta", {"index": self.index, "delta": {
                        "type": "input_json_delta", "partial_json": fn["arguments"]}}))
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return out

    def close(self, call: Call, usage: dict[str, Any] | None) -> list[tuple[str, bytes]]:
        out = self._close_block()
        out.append(self._event("message_delta", {
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": (usage or {}).get("completion_tokens", 0),
                      "input_tokens": (usage or {}).get("prompt_tokens", 0)},
        }))
        out.append(self._event("message_stop", {}))
        return out
