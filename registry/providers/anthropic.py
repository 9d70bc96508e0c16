"""Anthropic Messages API: system prompt apart, max_tokens required, content blocks, its own event stream."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from registry.providers.base import Adapter, StreamParser, data_url, dumps, text_of, usage
from registry.providers.errors import (
    ContextTooLong,
    ProviderError,
    RateLimited,
    UpstreamUnavailable,
)
from registry.providers.streams import SSEDecoder
from registry.providers.types import ModelRecord

VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "refusal": "content_filter", "pause_turn": "stop", "model_context_window_exceeded": "length"}


def _created(value: Any) -> int:
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return int(time.time())


def _usage(u: dict) -> dict:
    cached = u.get("cache_read_input_tokens") or 0
    prompt = (u.get("input_tokens") or 0) + (u.get("cache_creation_input_tokens") or 0) + cached
    return usage(prompt, u.get("output_tokens") or 0, prompt_tokens_details={"cached_tokens": cached} if cached else None)


def _image(part: dict) -> dict:
    url = (part.get("image_url") or {}).get("url", "")
    inline = data_url(url)
    if inline:
        return {"type": "image", "source": {"type": "base64", "media_type": inline[0], "data": inline[1]}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out = []
    for part in content:
        if part.get("type") == "text":
            out.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            out.append(_image(part))
    return out


class AnthropicAdapter(Adapter):
    kind = "anthropic"
    label = "Anthropic"
    default_base_url = "https://api.anthropic.com"
    env_var = "ANTHROPIC_API_KEY"
    request_format = 'anthropic-messages'
    response_format = 'anthropic-messages'
    auth_method = 'x-api-key'
    chat_path = '/v1/messages'
    embeddings_path = None
    ratelimit_periods = {"requests": "minute", "tokens": "minute", "input-tokens": "minute", "output-tokens": "minute"}

    def headers(self) -> dict[str, str]:
        return super().headers() | {"anthropic-version": VERSION}

    def auth_headers(self) -> dict[str, str]:
        return super().auth_headers() | {"anthropic-version": VERSION}

    # ---------------------------------------------------------------- listing
    def listing_params(self) -> dict[str, str]:
        return {"limit": "1000"}

    def next_page(self, payload: Any) -> dict[str, str] | None:
        if isinstance(payload, dict) and payload.get("has_more") and payload.get("last_id"):
            return {"after_id": payload["last_id"]}
        return None

    def parse_model(self, raw: dict) -> ModelRecord | None:
        mid = raw["id"]
        if not isinstance(mid, str) or not mid:
            raise ValueError("model without id")
        rec = ModelRecord(id=mid, name=raw.get("display_name") or mid, type="chat",
                          capabilities=["text-generation", "streaming", "vision", "function-calling",
                                        "code-generation"],
                          metadata={k: v for k, v in raw.items() if k not in ("id", "display_name", "type")})
        if isinstance(raw.get("max_input_tokens"), int):
            rec.context_window = raw["max_input_tokens"]
        if isinstance(raw.get("max_tokens"), int):
            rec.max_output_tokens = raw["max_tokens"]
        if "opus" in mid or "sonnet" in mid or "-4" in mid:
            rec.capabilities.append("reasoning")
        return rec

    # ---------------------------------------------------------------- chat
    def build_chat(self, request: dict) -> tuple[str, dict[str, str], dict]:
        system: list[str] = []
        messages: list[dict] = []

        def add(role: str, blocks: list[dict]) -> None:
            # The API wants alternating roles: consecutive same-role turns (several tool results) merge.
            if messages and messages[-1]["role"] == role:
                messages[-1]["content"].extend(blocks)
            else:
                messages.append({"role": role, "content": blocks})

        for msg in request.get("messages") or ():
            role = msg.get("role")
            if role in ("system", "developer"):
                system.append(text_of(msg.get("content")))
            elif role == "user":
                add("user", _blocks(msg.get("content")))
            elif role == "assistant":
                blocks = _blocks(msg.get("content"))
                for call in msg.get("tool_calls") or ():
                    fn = call.get("function") or {}
                    args = fn.get("arguments") or "{}"
                    blocks.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"),
                                   "input": json.loads(args) if isinstance(args, str) else args})
                if blocks:
                    add("assistant", blocks)
            elif role == "tool":
                add("user", [{"type": "tool_result", "tool_use_id": msg.get("tool_call_id"),
                              "content": text_of(msg.get("content"))}])
        body: dict[str, Any] = {
            "model": request.get("model"),
            "max_tokens": request.get("max_completion_tokens") or request.get("max_tokens") or DEFAULT_MAX_TOKENS,
            "messages": messages,
        }
        if system:
            body["system"] = "\n\n".join(system)
        if request.get("temperature") is not None:
            body["temperature"] = min(float(request["temperature"]), 1.0)  # Anthropic's range is 0..1
        if request.get("top_p") is not None:
            body["top_p"] = request["top_p"]
        stop = request.get("stop")
        if stop:
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        if request.get("tools"):
            body["tools"] = [{"name": t["function"]["name"], "description": t["function"].get("description", ""),
                              "input_schema": t["function"].get("parameters") or {"type": "object", "properties": {}}}
                             for t in request["tools"] if t.get("type", "function") == "function"]
            choice = request.get("tool_choice")
            tc: dict[str, Any] | None = None
            if choice == "auto":
                tc = {"type": "auto"}
            elif choice == "required":
                tc = {"type": "any"}
            elif choice == "none":
                tc = {"type": "none"}
            elif isinstance(choice, dict):
                tc = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
            if request.get("parallel_tool_calls") is False:
                tc = {**(tc or {"type": "auto"}), "disable_parallel_tool_use": True}
            if tc:
                body["tool_choice"] = tc
        if request.get("user"):
            body["metadata"] = {"user_id": str(request["user"])}
        if request.get("stream"):
            body["stream"] = True
        return self.chat_path, self.headers(), body

    def parse_chat(self, payload: Any, request: dict | None = None) -> dict:
        text, calls, thinking = [], [], []
        for block in payload["content"]:
            btype = block.get("type")
            if btype == "text":
                text.append(block.get("text", ""))
            elif btype == "tool_use":
                calls.append({"id": block["id"], "type": "function",
                              "function": {"name": block["name"], "arguments": dumps(block.get("input") or {})}})
            elif btype == "thinking":
                thinking.append(block.get("thinking", ""))
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
        if calls:
            message["tool_calls"] = calls
        if thinking:
            message["reasoning_content"] = "".join(thinking)
        return {
            "id": payload["id"], "object": "chat.completion", "created": int(time.time()), "model": payload.get("model"),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": FINISH.get(payload.get("stop_reason") or "", "stop")}],
            "usage": _usage(payload.get("usage") or {}),
        }

    def stream_parser(self, request: dict) -> AnthropicStreamParser:
        return AnthropicStreamParser(self, request)

    # ---------------------------------------------------------------- errors
    def refine_error(self, err: ProviderError, payload: Any) -> ProviderError:
        etype = err.provider_code
        kw = {"status": err.status, "provider_code": etype, "provider": self.kind, "rate_limit": err.rate_limit,
              "retry_after": err.retry_after}
        if etype == "overloaded_error":  # HTTP 529: Anthropic is overloaded, retry elsewhere or later
            return UpstreamUnavailable(err.message, **kw)
        if etype == "rate_limit_error" and not isinstance(err, RateLimited):
            return RateLimited(err.message, **kw)
        if etype == "invalid_request_error" and "prompt is too long" in err.message:
            return ContextTooLong(err.message, **kw)
        return err


class AnthropicStreamParser(StreamParser):
    """message_start → content_block_start/delta/stop … → message_delta → message_stop, as OpenAI chunks."""

    ends_with = "message_stop"

    def __init__(self, adapter: AnthropicAdapter, request: dict):
        super().__init__(adapter, request, SSEDecoder())
        self.tools: dict[int, int] = {}  # content block index -> tool_calls index
        self.args_seen: set[int] = set()
        self.usage: dict[str, Any] = {}

    def _frames(self, frames: list[tuple[str | None, str]]) -> list[dict]:
        out: list[dict] = []
        for event, data in frames:
            obj = json.loads(data)  # the data line may end in a run of spaces: a JSON decoder copes
            etype = obj.get("type") or event
            if etype == "content_block_delta":
                delta = obj["delta"]
                dtype = delta.get("type")
                if dtype == "text_delta":
                    out.append(self._chunk({"content": delta.get("text", "")}))
                elif dtype == "input_json_delta":
                    if delta.get("partial_json"):
                        self.args_seen.add(obj["index"])
                        out.append(self._chunk({"tool_calls": [{"index": self.tools[obj["index"]], "function": {
                            "arguments": delta["partial_json"]}}]}))
                elif dtype == "thinking_delta":
                    out.append(self._chunk({"reasoning_content": delta.get("thinking", "")}))
            elif etype == "message_start":
                msg = obj["message"]
                self.id, self.model = msg.get("id", ""), msg.get("model") or self.model
                self.usage.update(msg.get("usage") or {})
                out.append(self._chunk({"role": "assistant", "content": ""}))
            elif etype == "content_block_start":
                block = obj["content_block"]
                if block.get("type") == "tool_use":
                    index = self.tools[obj["index"]] = len(self.tools)
                    out.append(self._chunk({"tool_calls": [{"index": index, "id": block["id"], "type": "function",
                                                            "function": {"name": block["name"], "arguments": ""}}]}))
                elif block.get("type") == "text" and block.get("text"):
                    out.append(self._chunk({"content": block["text"]}))
            elif etype == "content_block_stop":
                index = obj.get("index")
                if index in self.tools and index not in self.args_seen:
                    # A tool called without arguments streams only "": OpenAI clients expect a JSON object.
                    out.append(self._chunk({"tool_calls": [{"index": self.tools[index], "function": {
                        "arguments": "{}"}}]}))
            elif etype == "message_delta":
                self.usage.update(obj.get("usage") or {})
                reason = (obj.get("delta") or {}).get("stop_reason")
                out.append(self._chunk({}, FINISH.get(reason or "", "stop")))
            elif etype == "message_stop":
                self.done = True
                out.append(self._chunk(use=_usage(self.usage)))
            elif etype == "error":
                raise self.adapter.error_from_payload(obj, None)
        return out
