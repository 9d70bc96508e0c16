"""Cohere: its own chat API (v2) and a paged model list.

Wire format (https://docs.cohere.com/reference/chat, /reference/chat-stream, /v1/reference/list-models,
/docs/streaming):
- `GET /v1/models?page_size=&page_token=` -> `{models: [{name, endpoints: ["chat", "embed", ...],
  finetuned, context_length, tokenizer_url, supports_vision, features, default_endpoints, is_deprecated}],
  next_page_token}`; the id to call is `name`;
- `POST /v2/chat`: OpenAI-like messages (system/user/assistant/tool, assistant `tool_calls`, tool
  messages with `tool_call_id`) and OpenAI-shaped `tools`, but `p`/`k`, `stop_sequences`, `max_tokens`;
  the reply is `{id, finish_reason: COMPLETE | MAX_TOKENS | STOP_SEQUENCE | TOOL_CALL | ERROR,
  message: {role, content: [{type: "text", text}], tool_plan, tool_calls, citations},
  usage: {billed_units: {input_tokens, output_tokens}, tokens: {input_tokens, output_tokens}}}`;
- with `stream: true`, server-sent events `event: <type>` + `data: {"type": <type>, ...}`: message-start,
  content-start, content-delta (`delta.message.content.text`), content-end, tool-plan-delta,
  tool-call-start (`delta.message.tool_calls` {id, type, function {name, arguments}}), tool-call-delta
  (`...function.arguments`), tool-call-end, citation-start/-end, and last message-end
  (`delta.finish_reason`, `delta.usage`);
- errors: `{id, message}` with the HTTP status telling the kind (401, 404 unknown model, 429, 400
  "too many tokens ...").

Free rules (free_tiers.json "cohere"): a trial key calls every model free, 20 chat requests a minute
and 1,000 calls a month shared by every model and endpoint of the account
(https://docs.cohere.com/docs/rate-limits; cheahjs README 2026-07-18: "Cohere: 20 req/min, 1,000
req/month"; cheahjs keeps a model when it is not `is_deprecated`). Deprecated models are left out."""

from __future__ import annotations

import json
import time
from typing import Any

from registry.providers.base import Adapter, StreamParser, listed, text_of, usage
from registry.providers.errors import MalformedReply, UpstreamUnavailable
from registry.providers.streams import SSEDecoder
from registry.providers.types import ModelRecord

FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls",
          "ERROR": "stop", "ERROR_TOXIC": "content_filter", "ERROR_LIMIT": "length", "USER_CANCEL": "stop"}
FEATURES = {"tools": "function-calling", "json_mode": "json-mode", "json_schema": "structured-outputs"}
# OpenAI request fields -> Cohere v2 names; fields not listed here and not in KEEP are dropped.
RENAME = {"top_p": "p", "max_completion_tokens": "max_tokens"}
KEEP = ("model", "temperature", "max_tokens", "seed", "frequency_penalty", "presence_penalty", "stream")


def _usage(u: Any) -> dict:
    tokens = (u or {}).get("tokens") or (u or {}).get("billed_units") or {}
    return usage(int(tokens.get("input_tokens") or 0), int(tokens.get("output_tokens") or 0))


class CohereAdapter(Adapter):
    kind = "cohere"
    label = "Cohere"
    default_base_url = "https://api.cohere.com"
    env_var = "COHERE_API_KEY"
    request_format = "cohere-chat-v2"
    response_format = "cohere-chat-v2"
    chat_path = "/v2/chat"
    models_path = "/v1/models"
    embeddings_path = None

    # ---------------------------------------------------------------- listing
    def listing_params(self) -> dict[str, str]:
        return {"page_size": "1000"}

    def next_page(self, payload: Any) -> dict[str, str] | None:
        token = payload.get("next_page_token") if isinstance(payload, dict) else None
        return {"page_token": token} if isinstance(token, str) and token else None

    def listing_items(self, payload: Any) -> list:
        return listed(payload, "models", self.kind)

    def parse_model(self, raw: dict) -> ModelRecord | None:
        mid = raw["name"]
        if not isinstance(mid, str) or not mid:
            raise ValueError("model without name")
        if raw.get("is_deprecated") is True:
            return None
        endpoints = set(raw.get("endpoints") or ()) | set(raw.get("default_endpoints") or ())
        if "chat" in endpoints or "generate" in endpoints:
            mtype, caps = "chat", ["text-generation", "streaming"]
            caps += [FEATURES[f] for f in raw.get("features") or () if f in FEATURES and FEATURES[f] not in caps]
            if raw.get("supports_vision"):
                caps.append("vision")
            if "reasoning" in mid:
                caps.append("reasoning")
        elif "embed" in endpoints:
            mtype, caps = "embedding", ["embeddings"]
        elif "rerank" in endpoints:
            mtype, caps = "rerank", ["rerank"]
        else:
            mtype, caps = "chat", sorted(endpoints)
        rec = ModelRecord(id=mid, name=mid, type=mtype, capabilities=caps,
                          metadata={k: v for k, v in raw.items() if k != "name"})
        if isinstance(raw.get("context_length"), int | float):
            rec.context_window = int(raw["context_length"])
        return rec

    # ---------------------------------------------------------------- chat
    def build_chat(self, request: dict) -> tuple[str, dict[str, str], dict]:
        messages: list[dict] = []
        for msg in request.get("messages") or ():
            role = msg.get("role")
            if role in ("system", "developer"):
                messages.append({"role": "system", "content": text_of(msg.get("content"))})
            elif role == "user":
                content = msg.get("content")
                messages.append({"role": "user", "content": content if isinstance(content, str | list) else
                                 text_of(content)})
            elif role == "assistant":
                out: dict[str, Any] = {"role": "assistant"}
                calls = [{"id": c.get("id"), "type": "function",
                          "function": {"name": (c.get("function") or {}).get("name"),
                                       "arguments": (c.get("function") or {}).get("arguments") or "{}"}}
                         for c in msg.get("tool_calls") or ()]
                text = text_of(msg.get("content"))
                if calls:
                    out["tool_calls"] = calls
                    if text:
                        out["tool_plan"] = text  # Cohere keeps an assistant's words before its calls here
                else:
                    out["content"] = text
                messages.append(out)
            elif role == "tool":
                messages.append({"role": "tool", "tool_call_id": msg.get("tool_call_id"),
                                 "content": text_of(msg.get("content"))})
        body: dict[str, Any] = {k: request[k] for k in KEEP if request.get(k) is not None}
        for src, dst in RENAME.items():
            if request.get(src) is not None:
                body[dst] = request[src]
        body["messages"] = messages
        stop = request.get("stop")
        if stop:
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        if request.get("tools"):
            body["tools"] = [t for t in request["tools"] if t.get("type", "function") == "function"]
            choice = request.get("tool_choice")
            if choice == "required":
                body["tool_choice"] = "REQUIRED"
            elif choice == "none":
                body["tool_choice"] = "NONE"
        fmt = request.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            body["response_format"] = {"type": "json_object",
                                       "json_schema": (fmt.get("json_schema") or {}).get("schema") or {}}
        if not body.get("stream"):
            body.pop("stream", None)
        return self.chat_path, self.headers(), body

    def parse_chat(self, payload: Any, request: dict | None = None) -> dict:
        if not isinstance(payload, dict) or not isinstance(payload.get("message"), dict):
            raise MalformedReply("reply has no message", provider=self.kind)
        msg = payload["message"]
        text = "".join(p.get("text", "") for p in msg.get("content") or () if p.get("type", "text") == "text")
        calls = [{"id": c["id"], "type": "function",
                  "function": {"name": c["function"]["name"], "arguments": c["function"].get("arguments") or "{}"}}
                 for c in msg.get("tool_calls") or ()]
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
        if calls:
            message["tool_calls"] = calls
        return {"id": payload.get("id"), "object": "chat.completion", "created": int(time.time()),
                "model": (request or {}).get("model"),
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": FINISH.get(payload.get("finish_reason") or "", "stop")}],
                "usage": _usage(payload.get("usage"))}

    def stream_parser(self, request: dict) -> CohereStreamParser:
        return CohereStreamParser(self, request)


class CohereStreamParser(StreamParser):
    """message-start → content-delta / tool-call-* … → message-end, as OpenAI chunks."""

    ends_with = "message-end"

    def __init__(self, adapter: CohereAdapter, request: dict):
        super().__init__(adapter, request, SSEDecoder())
        self.args_seen: set[int] = set()

    def _frames(self, frames: list[tuple[str | None, str]]) -> list[dict]:
        out: list[dict] = []
        for event, data in frames:
            if data == "[DONE]":
                continue
            obj = json.loads(data)
            etype = obj.get("type") or event
            delta = (obj.get("delta") or {}).get("message") or {}
            if etype == "content-delta":
                out.append(self._chunk({"content": (delta.get("content") or {}).get("text", "")}))
            elif etype == "message-start":
                self.id = obj.get("id") or self.id
                out.append(self._chunk({"role": "assistant", "content": ""}))
            elif etype == "tool-call-start":
                call = delta.get("tool_calls") or {}
                fn = call.get("function") or {}
                index = int(obj.get("index") or 0)
                if fn.get("arguments"):
                    self.args_seen.add(index)
                out.append(self._chunk({"tool_calls": [{"index": index, "id": call.get("id"), "type": "function",
                                                        "function": {"name": fn.get("name"),
                                                                     "arguments": fn.get("arguments") or ""}}]}))
            elif etype == "tool-call-delta":
                args = ((delta.get("tool_calls") or {}).get("function") or {}).get("arguments") or ""
                index = int(obj.get("index") or 0)
                if args:
                    self.args_seen.add(index)
                    out.append(self._chunk({"tool_calls": [{"index": index, "function": {"arguments": args}}]}))
            elif etype == "tool-call-end":
                index = int(obj.get("index") or 0)
                if index not in self.args_seen:  # a call without arguments: OpenAI clients expect an object
                    out.append(self._chunk({"tool_calls": [{"index": index, "function": {"arguments": "{}"}}]}))
            elif etype == "message-end":
                end = obj.get("delta") or {}
                if end.get("error"):
                    raise UpstreamUnavailable("the stream ended with an error", provider=self.adapter.kind)
                self.done = True
                out.append(self._chunk({}, FINISH.get(end.get("finish_reason") or "", "stop")))
                out.append(self._chunk(use=_usage(end.get("usage"))))
        return out
