"""Ollama's native API: `/api/tags` listing, `/api/chat` with NDJSON streaming, `/api/embed`."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, ClassVar

from registry.providers.base import Adapter, StreamParser, data_url, listed, text_of, usage
from registry.providers.errors import NotFoundError, ProviderError
from registry.providers.streams import NDJSONDecoder
from registry.providers.types import Listing, ModelRecord

OPTIONS = (("temperature", "temperature"), ("top_p", "top_p"), ("seed", "seed"), ("presence_penalty", "presence_penalty"),
           ("frequency_penalty", "frequency_penalty"))


def _usage(obj: dict) -> dict:
    return usage(obj.get("prompt_eval_count") or 0, obj.get("eval_count") or 0)


def _calls(message: dict, start: int) -> list[dict]:
    # Ollama sends each tool call whole, its arguments an object rather than a JSON string.
    out = []
    for i, call in enumerate(message.get("tool_calls") or (), start):
        fn = call.get("function") or {}
        args = fn.get("arguments")
        out.append({"index": i, "id": call.get("id") or f"call_{i}", "type": "function",
                    "function": {"name": fn.get("name"), "arguments": args if isinstance(args, str) else
                                 json.dumps(args or {})}})
    return out


class OllamaAdapter(Adapter):
    kind = "ollama"
    label = "Ollama"
    default_base_url = "http://localhost:11434"
    env_var = "OLLAMA_URL"
    request_format = 'ollama-chat'
    response_format = 'ollama-chat'
    auth_method = 'none'
    chat_path = '/api/chat'
    models_path = '/api/tags'
    embeddings_path = '/api/embed'
    always_local = True

    def listing_items(self, payload: Any) -> list:
        return listed(payload, "models", self.kind)

    def parse_model(self, raw: dict) -> ModelRecord | None:
        name = raw.get("model") or raw["name"]
        if not isinstance(name, str) or not name:
            raise ValueError("model without name")
        details = raw.get("details") or {}
        families = details.get("families") or [details.get("family")]
        rec = ModelRecord(id=name, name=raw.get("name") or name,
                          metadata={k: v for k, v in raw.items() if k not in ("name", "model")})
        low = name.lower()
        if "embed" in low or any(f in ("bert", "nomic-bert") for f in families if f):
            rec.type, rec.capabilities = "embedding", ["embeddings"]
        else:
            rec.capabilities = ["text-generation", "streaming"]
            if any(f in ("clip", "mllama") for f in families if f) or "llava" in low or "vision" in low:
                rec.capabilities.append("vision")
            if "code" in low:
                rec.capabilities.append("code-generation")
            if any(w in low for w in ("r1", "qwq", "thinking", "gpt-oss")):
                rec.capabilities.append("reasoning")
        caps = raw.get("capabilities")  # /api/show style entries: ["completion", "vision", "tools"]
        if isinstance(caps, list):
            for cap, ours in (("vision", "vision"), ("tools", "function-calling"), ("thinking", "reasoning")):
                if cap in caps and ours not in rec.capabilities:
                    rec.capabilities.append(ours)
        return rec

    show_path = "/api/show"
    # What /api/show said of a model, by its digest: asked once per model version, not every cycle.
    shown_by_digest: ClassVar[dict[str, dict[str, Any]]] = {}

    async def list_models(self) -> Listing:
        """/api/tags, completed by /api/show (context window, capabilities) for models not seen before."""
        listing = await super().list_models()
        limit = asyncio.Semaphore(8)
        # One question per version: tags of the same weights ("llama3:latest", "llama3:8b") share it.
        asked: dict[str, asyncio.Task] = {}

        async def show(rec: ModelRecord) -> dict[str, Any] | None:
            async with limit:
                try:
                    return self.parse_show(await self._send("POST", self.show_path, body={"model": rec.id}))
                except NotFoundError:
                    return {"context_window": None, "capabilities": []}  # no more to learn of this version
                except ProviderError:
                    return None  # keep what the tags listing said; ask again next time

        async def complete(rec: ModelRecord) -> None:
            digest = str(rec.metadata.get("digest") or "")
            shown = self.shown_by_digest.get(digest) if digest else None
            if shown is None:
                if not digest:
                    shown = await show(rec)
                else:
                    if digest not in asked:
                        asked[digest] = asyncio.ensure_future(show(rec))
                    shown = await asked[digest]
                if shown is None:
                    return
                if digest:
                    self.shown_by_digest[digest] = shown
            rec.context_window = shown["context_window"] or rec.context_window
            if rec.type != "embedding":
                rec.capabilities += [c for c in shown["capabilities"] if c not in rec.capabilities]

        await asyncio.gather(*(complete(rec) for rec in listing.models))
        return listing

    def parse_show(self, payload: dict) -> dict[str, Any]:
        """`POST /api/show` -> what the tags listing lacks: context window and capabilities."""
        info = payload.get("model_info") or {}
        arch = info.get("general.architecture")
        ctx = info.get(f"{arch}.context_length") if arch else None
        if ctx is None:
            ctx = next((v for k, v in info.items() if k.endswith(".context_length")), None)
        caps = payload.get("capabilities") or []
        ours = ["text-generation", "streaming"] if "completion" in caps else []
        ours += [{"vision": "vision", "tools": "function-calling", "thinking": "reasoning",
                  "embedding": "embeddings", "insert": "code-completion"}.get(c, c) for c in caps if c != "completion"]
        return {"context_window": ctx, "capabilities": ours, "details": payload.get("details") or {}}

    # ---------------------------------------------------------------- chat
    def build_chat(self, request: dict) -> tuple[str, dict[str, str], dict]:
        messages = []
        for msg in request.get("messages") or ():
            role = msg.get("role")
            content = msg.get("content")
            out: dict[str, Any] = {"role": "system" if role == "developer" else role, "content": text_of(content)}
            if isinstance(content, list):
                images = [data_url(p["image_url"]["url"]) for p in content if p.get("type") == "image_url"]
                if images:
                    out["images"] = [img[1] for img in images if img]
            if msg.get("tool_calls"):
                out["tool_calls"] = [{"function": {"name": c["function"]["name"], "arguments": json.loads(
                    c["function"].get("arguments") or "{}")}} for c in msg["tool_calls"]]
            if role == "tool" and msg.get("name"):
                out["tool_name"] = msg["name"]
            messages.append(out)
        body: dict[str, Any] = {"model": request.get("model"), "messages": messages,
                                "stream": bool(request.get("stream"))}
        options = {theirs: request[ours] for ours, theirs in OPTIONS if request.get(ours) is not None}
        limit = request.get("max_completion_tokens") or request.get("max_tokens")
        if limit:
            options["num_predict"] = limit
        stop = request.get("stop")
        if stop:
            options["stop"] = [stop] if isinstance(stop, str) else list(stop)
        if options:
            body["options"] = options
        fmt = request.get("response_format") or {}
        if fmt.get("type") == "json_object":
            body["format"] = "json"
        elif fmt.get("type") == "json_schema":
            body["format"] = (fmt.get("json_schema") or {}).get("schema") or "json"
        if request.get("tools"):
            body["tools"] = request["tools"]
        return self.chat_path, self.headers(), body

    def parse_chat(self, payload: Any, request: dict | None = None) -> dict:
        message = payload["message"]
        calls = _calls(message, 0)
        out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or (None if calls else "")}
        if calls:
            out["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        if message.get("thinking"):
            out["reasoning_content"] = message["thinking"]
        finish = "tool_calls" if calls else {"length": "length"}.get(payload.get("done_reason", ""), "stop")
        return {"id": f"chatcmpl-ollama-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
                "model": payload.get("model"),
                "choices": [{"index": 0, "message": out, "logprobs": None, "finish_reason": finish}],
                "usage": _usage(payload)}

    def stream_parser(self, request: dict) -> OllamaStreamParser:
        return OllamaStreamParser(self, request)

    # ---------------------------------------------------------------- embeddings
    def build_embed(self, request: dict) -> tuple[str, dict[str, str], dict]:
        body: dict[str, Any] = {"model": request.get("model"), "input": request.get("input")}
        if request.get("dimensions"):
            body["dimensions"] = request["dimensions"]
        return self.embeddings_path or "/api/embed", self.headers(), body

    def parse_embed(self, payload: Any, request: dict | None = None) -> dict:
        vectors = payload["embeddings"]
        tokens = payload.get("prompt_eval_count") or 0
        return {"object": "list", "model": payload.get("model"),
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


class OllamaStreamParser(StreamParser):
    """NDJSON lines -> chunks. An `{"error": …}` line mid-stream arrives with HTTP 200 and is raised."""

    ends_with = "done:true"

    def __init__(self, adapter: OllamaAdapter, request: dict):
        super().__init__(adapter, request, NDJSONDecoder())
        self.id = f"chatcmpl-ollama-{time.time_ns()}"
        self.calls = 0
        self.started = False

    def _frames(self, lines: list) -> list[dict]:
        out = []
        for obj in lines:
            if "error" in obj:
                raise self.adapter.error_from_payload(obj, None)
            self.model = obj.get("model") or self.model
            message = obj.get("message") or {}
            delta: dict[str, Any] = {}
            if not self.started:
                delta["role"] = "assistant"
                self.started = True
            if message.get("content"):
                delta["content"] = message["content"]
            if message.get("thinking"):
                delta["reasoning_content"] = message["thinking"]
            calls = _calls(message, self.calls)
            if calls:
                delta["tool_calls"] = calls
                self.calls += len(calls)
            if delta:
                out.append(self._chunk(delta))
            if obj.get("done"):
                self.done = True
                finish = "tool_calls" if self.calls else ("length" if obj.get("done_reason") == "length" else "stop")
                out.append(self._chunk({}, finish))
                out.append(self._chunk(use=_usage(obj)))
        return out
