"""Google Gemini (AI Studio, v1beta): `contents`/`parts`, `systemInstruction`, paged listing, and a stream
that is one JSON array sent in pieces (or SSE with `?alt=sse`)."""

from __future__ import annotations

import json
import time
from typing import Any

from registry.providers.base import Adapter, chunk, data_url, listed, text_of, usage
from registry.providers.errors import AuthError, MalformedReply, ProviderError, RateLimited, UpstreamUnavailable
from registry.providers.ratelimits import parse_duration
from registry.providers.streams import JSONArrayDecoder, SSEDecoder
from registry.providers.types import ModelRecord

FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
          "BLOCKLIST": "content_filter", "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
          "IMAGE_SAFETY": "content_filter", "MALFORMED_FUNCTION_CALL": "stop", "OTHER": "stop", "LANGUAGE": "stop"}


def _model(request: dict) -> str:
    model = str(request.get("model") or "")
    return model[7:] if model.startswith("models/") else model


def _usage(meta: dict) -> dict:
    thoughts = meta.get("thoughtsTokenCount") or 0
    completion = (meta.get("candidatesTokenCount") or 0) + thoughts  # OpenAI counts reasoning as completion
    return usage(meta.get("promptTokenCount") or 0, completion, meta.get("totalTokenCount"),
                 completion_tokens_details={"reasoning_tokens": thoughts} if thoughts else None,
                 prompt_tokens_details={"cached_tokens": meta["cachedContentTokenCount"]}
                 if meta.get("cachedContentTokenCount") else None)


def _parts(content: Any) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    out = []
    for part in content:
        if part.get("type") == "text":
            out.append({"text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            inline = data_url(url)
            out.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}} if inline
                       else {"fileData": {"fileUri": url}})
    return out


def _delta(candidate: dict, calls_seen: int) -> tuple[dict, int]:
    """A candidate's parts -> an OpenAI delta (text, thoughts as reasoning_content, whole function calls)."""
    delta: dict[str, Any] = {}
    text, thought, calls = [], [], []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if "functionCall" in part:
            fc = part["functionCall"]
            calls.append({"index": calls_seen + len(calls), "id": fc.get("id") or f"call_{calls_seen + len(calls)}",
                          "type": "function",
                          "function": {"name": fc.get("name"), "arguments": json.dumps(fc.get("args") or {})}})
        elif part.get("thought"):
            thought.append(part.get("text", ""))
        elif part.get("text"):
            text.append(part["text"])
    if text:
        delta["content"] = "".join(text)
    if thought:
        delta["reasoning_content"] = "".join(thought)
    if calls:
        delta["tool_calls"] = calls
    return delta, len(calls)


class GeminiAdapter(Adapter):
    kind = "gemini"
    label = "Google Gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    env_var = "GEMINI_API_KEY"
    request_format = 'gemini-generate-content'
    response_format = 'gemini-generate-content'
    auth_method = 'x-goog-api-key'
    chat_path = '/v1beta/models/{model}:generateContent'
    models_path = '/v1beta/models'
    embeddings_path = '/v1beta/models/{model}:batchEmbedContents'

    # ---------------------------------------------------------------- listing
    def listing_items(self, payload: Any) -> list:
        if isinstance(payload, dict) and payload.get("models") is None and "nextPageToken" not in payload:
            return []
        return listed(payload, "models", self.kind)

    def next_page(self, payload: Any) -> dict[str, str] | None:
        token = payload.get("nextPageToken") if isinstance(payload, dict) else None
        return {"pageToken": token} if token else None

    def parse_model(self, raw: dict) -> ModelRecord | None:
        name = raw["name"]
        if not isinstance(name, str) or not name:
            raise ValueError("model without name")
        mid = name[7:] if name.startswith("models/") else name
        methods = raw.get("supportedGenerationMethods") or []
        low = mid.lower()
        caps: list[str] = []
        if "embedContent" in methods or "embedText" in methods:
            mtype, caps = "embedding", ["embeddings"]
        elif "predict" in methods or "predictLongRunning" in methods:
            mtype, caps = "image", ["video-generation" if low.startswith("veo") else "image-generation"]
        elif "tts" in low or low.startswith("lyria"):
            mtype, caps = "audio", ["audio" if "tts" not in low else "text-to-speech"]
        elif "image" in low or low.startswith("nano-banana"):
            mtype, caps = "image", ["image-generation", "text-generation"]
        elif "generateContent" in methods:
            mtype, caps = "chat", ["text-generation", "streaming", "vision"]
            if low.startswith("gemini"):
                caps += ["function-calling", "json-mode"]
            if raw.get("thinking"):
                caps.append("reasoning")
        else:
            mtype, caps = "chat", ["question-answering"] if "generateAnswer" in methods else []
        return ModelRecord(
            id=mid, name=raw.get("displayName") or mid, type=mtype, capabilities=caps,
            context_window=raw.get("inputTokenLimit"), max_output_tokens=raw.get("outputTokenLimit"),
            metadata={k: v for k, v in raw.items() if k not in ("name", "displayName", "inputTokenLimit",
                                                                 "outputTokenLimit")},
        )

    # ---------------------------------------------------------------- chat
    def build_chat(self, request: dict) -> tuple[str, dict[str, str], dict]:
        system: list[dict] = []
        contents: list[dict] = []
        names: dict[str, str] = {}  # tool_call_id -> function name (Gemini answers by name)

        def add(role: str, parts: list[dict]) -> None:
            if contents and contents[-1]["role"] == role:
                contents[-1]["parts"].extend(parts)
            elif parts:
                contents.append({"role": role, "parts": parts})

        for msg in request.get("messages") or ():
            role = msg.get("role")
            if role in ("system", "developer"):
                system.append({"text": text_of(msg.get("content"))})
            elif role == "user":
                add("user", _parts(msg.get("content")))
            elif role == "assistant":
                parts = _parts(msg.get("content"))
                for call in msg.get("tool_calls") or ():
                    fn = call.get("function") or {}
                    names[call.get("id", "")] = fn.get("name", "")
                    args = fn.get("arguments") or "{}"
                    parts.append({"functionCall": {"name": fn.get("name"),
                                                   "args": json.loads(args) if isinstance(args, str) else args}})
                add("model", parts)
            elif role == "tool":
                content = text_of(msg.get("content"))
                try:
                    result = json.loads(content)
                except ValueError:
                    result = content
                add("user", [{"functionResponse": {
                    "name": names.get(msg.get("tool_call_id", ""), msg.get("name", "")),
                    "response": result if isinstance(result, dict) else {"result": result}}}])
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        config: dict[str, Any] = {}
        for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed"),
                             ("n", "candidateCount"), ("presence_penalty", "presencePenalty"),
                             ("frequency_penalty", "frequencyPenalty")):
            if request.get(ours) is not None:
                config[theirs] = request[ours]
        limit = request.get("max_completion_tokens") or request.get("max_tokens")
        if limit:
            config["maxOutputTokens"] = limit
        stop = request.get("stop")
        if stop:
            config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        fmt = request.get("response_format") or {}
        if fmt.get("type") in ("json_object", "json_schema"):
            config["responseMimeType"] = "application/json"
            schema = (fmt.get("json_schema") or {}).get("schema")
            if schema:
                config["responseJsonSchema"] = schema
        if config:
            body["generationConfig"] = config
        if request.get("tools"):
            body["tools"] = [{"functionDeclarations": [
                {k: v for k, v in (("name", t["function"]["name"]), ("description", t["function"].get("description")),
                                   ("parameters", t["function"].get("parameters"))) if v}
                for t in request["tools"] if t.get("type", "function") == "function"]}]
            choice = request.get("tool_choice")
            mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}.get(choice) if isinstance(choice, str) else None
            if isinstance(choice, dict):
                body["toolConfig"] = {"functionCallingConfig": {
                    "mode": "ANY", "allowedFunctionNames": [(choice.get("function") or {}).get("name")]}}
            elif mode:
                body["toolConfig"] = {"functionCallingConfig": {"mode": mode}}
        method = "streamGenerateContent" if request.get("stream") else "generateContent"
        return f"/v1beta/models/{_model(request)}:{method}", self.headers(), body

    def parse_chat(self, payload: Any, request: dict | None = None) -> dict:
        candidates = payload.get("candidates") or []
        if not candidates and not payload.get("promptFeedback"):
            raise MalformedReply("reply has no candidates", provider=self.kind)
        cand = candidates[0] if candidates else {}
        delta, _ = _delta(cand, 0)
        message: dict[str, Any] = {"role": "assistant", "content": delta.get("content") or (
            None if delta.get("tool_calls") else "")}
        if delta.get("tool_calls"):
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in delta["tool_calls"]]
        if delta.get("reasoning_content"):
            message["reasoning_content"] = delta["reasoning_content"]
        finish = "tool_calls" if delta.get("tool_calls") else FINISH.get(cand.get("finishReason", "STOP"), "stop")
        if not candidates:
            finish = "content_filter"  # promptFeedback.blockReason: the prompt itself was blocked
        return {
            "id": payload.get("responseId") or f"gemini-{int(time.time() * 1000)}", "object": "chat.completion",
            "created": int(time.time()), "model": payload.get("modelVersion") or _model(request or {}),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": _usage(payload.get("usageMetadata") or {}),
        }

    def stream_parser(self, request: dict) -> GeminiStreamParser:
        return GeminiStreamParser(self, request)

    # ---------------------------------------------------------------- embeddings
    def build_embed(self, request: dict) -> tuple[str, dict[str, str], dict]:
        model = _model(request)
        inputs = request.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        body = {"requests": [{"model": f"models/{model}", "content": {"parts": [{"text": t}]}} for t in texts]}
        if request.get("dimensions"):
            for item in body["requests"]:
                item["outputDimensionality"] = request["dimensions"]
        return self.embeddings_path.replace("{model}", model), self.headers(), body

    def parse_embed(self, payload: Any, request: dict | None = None) -> dict:
        items = payload["embeddings"]
        return {"object": "list", "model": _model(request or {}),
                "data": [{"object": "embedding", "index": i, "embedding": e["values"]} for i, e in enumerate(items)],
                "usage": {"prompt_tokens": 0, "total_tokens": 0}}

    # ---------------------------------------------------------------- errors
    def refine_error(self, err: ProviderError, payload: Any) -> ProviderError:
        # A bad key is a 400 INVALID_ARGUMENT whose ErrorInfo reason is API_KEY_INVALID.
        if isinstance(payload, dict) and "API_KEY_INVALID" in json.dumps(payload):
            return AuthError(err.message, status=err.status, provider_code="API_KEY_INVALID", provider=self.kind)
        # 429 RESOURCE_EXHAUSTED: the wait is in details[RetryInfo].retryDelay ("59s"); "limit: 0" in
        # the message means this model has no free tier at all, so waiting will not help.
        details = ((payload or {}).get("error") or {}).get("details") if isinstance(payload, dict) else None
        if isinstance(err, RateLimited) and isinstance(details, list):
            for item in details:
                if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
                    err.retry_after = parse_duration(item.get("retryDelay")) or err.retry_after
            if "limit: 0," in err.message or "limit: 0\n" in err.message:
                err.retryable = False
        return err


class GeminiStreamParser:
    """Elements of `streamGenerateContent` (JSON array pieces, or SSE frames with alt=sse) -> chunks.
    usageMetadata repeats cumulatively in every element: only the last one is reported."""

    def __init__(self, adapter: GeminiAdapter, request: dict):
        self.adapter = adapter
        self.model = _model(request)
        self.id, self.created = "", int(time.time())
        self.decoder: JSONArrayDecoder | SSEDecoder | None = None
        self.usage: dict = {}
        self.calls = 0
        self.finished = False
        self.started = False

    def feed(self, data: bytes) -> list[dict]:
        if self.decoder is None:
            head = data.lstrip()
            if not head:
                return []
            self.decoder = JSONArrayDecoder() if head[:1] == b"[" else SSEDecoder()
        return self._elements(self.decoder.feed(data))

    def close(self) -> list[dict]:
        out = self._elements(self.decoder.close()) if self.decoder else []
        complete = self.decoder.finished if isinstance(self.decoder, JSONArrayDecoder) else self.finished
        if not (complete and self.finished):
            raise UpstreamUnavailable("stream ended before the reply was complete", provider=self.adapter.kind)
        out.append(chunk(self.id, self.model, self.created, None, None, _usage(self.usage)))
        return out

    def _elements(self, items: list) -> list[dict]:
        out = []
        for item in items:
            elem = json.loads(item[1]) if isinstance(item, tuple) else item
            if "error" in elem:
                raise self.adapter.error_from_payload(elem, None)
            self.id = elem.get("responseId") or self.id
            self.model = elem.get("modelVersion") or self.model
            if elem.get("usageMetadata"):
                self.usage = elem["usageMetadata"]
            delta: dict[str, Any] = {}
            if not self.started:
                delta["role"] = "assistant"
                self.started = True
            finish = None
            candidates = elem.get("candidates") or []
            if candidates:
                more, n = _delta(candidates[0], self.calls)
                self.calls += n
                delta.update(more)
                reason = candidates[0].get("finishReason")
                if reason:
                    finish = "tool_calls" if self.calls else FINISH.get(reason, "stop")
            elif (elem.get("promptFeedback") or {}).get("blockReason"):
                finish = "content_filter"
            if finish:
                self.finished = True
            if delta or finish:
                out.append(chunk(self.id, self.model, self.created, delta, finish))
        return out
