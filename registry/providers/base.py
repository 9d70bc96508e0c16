"""The adapter interface: one subclass per upstream kind, in its own module.

An adapter translates between AFMTS's internal shape (OpenAI's chat format) and one provider's wire
format. This base owns what every adapter shares: the pooled async client, timeouts, error mapping,
rate-limit header parsing, stream plumbing and the table look-ups; and it speaks OpenAI's format by
default, so an OpenAI-compatible provider only declares its kind and quirks.

Contract for a subclass:
- pure translation, no I/O: `parse_listing(payload) -> Listing` (via `parse_model(raw)`),
  `build_chat(request) -> (path, headers, body)`, `parse_chat(payload, request) -> chat.completion`,
  `stream_parser(request)` (an object whose `feed(bytes)` / `close()` return `chat.completion.chunk`
  dicts; the last chunk carries usage; `close()` raises if the upstream stopped mid-reply),
  `build_embed` / `parse_embed`, `refine_error(err, payload)`;
- the HTTP methods (`list_models`, `chat`, `stream`, `embed`) only glue those to httpx, raise
  `ProviderError` subclasses, and leave the last rate-limit state in `last_rate_limit` (and pass it to
  `on_rate_limit` when given).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import httpx
import orjson

from registry.providers import tables
from registry.providers.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    MalformedReply,
    NotFoundError,
    ProviderError,
    RateLimited,
    Timeout,
    UpstreamUnavailable,
)
from registry.providers.http import TRANSPORT_ERRORS, Timeouts, fetch, open_stream, shared_client
from registry.providers.ratelimits import parse_duration, parse_rate_limit_headers
from registry.providers.streams import NDJSONDecoder, SSEDecoder
from registry.providers.types import Listing, ModelRecord, RateLimitInfo, empty_quota

MILLION = Decimal(1_000_000)
_CONTEXT_HINTS = ("context_length_exceeded", "context length", "maximum context", "context window",
                  "prompt is too long", "too many tokens", "reduce the length", "input is too long",
                  "input token count", "exceeds the context length", "too large for model")
_RETRY_IN = re.compile(r"(?:try again|retry) in ([0-9.]+(?:ms|s|m|h)(?:[0-9.]+(?:ms|s))*)", re.I)


@functools.lru_cache(maxsize=1024)
def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def body_bytes(value: Any) -> bytes:
    """A request body as compact UTF-8 JSON: orjson's (a tenth of json's time on the gateway's hot
    path), or `dumps` for what orjson refuses (keys that are not strings, integers past 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return dumps(value).encode()


def text_of(content: Any) -> str:
    """The text of an OpenAI message content (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("text", None))


def data_url(url: str) -> tuple[str, str] | None:
    """("image/png", base64) for a data: URL, None for anything else."""
    if not url.startswith("data:"):
        return None
    head, _, data = url[5:].partition(",")
    return (head.split(";", 1)[0] or "application/octet-stream"), data


def guess_type(model_id: str) -> tuple[str, list[str]]:
    """A model's type and capabilities from its id, for listings that say nothing else."""
    low = model_id.lower()
    if "embed" in low or low.startswith(("bge-", "e5-", "gte-")):
        return "embedding", ["embeddings"]
    if "rerank" in low:
        return "rerank", ["rerank"]
    if any(w in low for w in ("whisper", "transcribe", "-tts", "tts-", "audio", "speech", "lyria", "orpheus")):
        return "audio", ["audio"]
    if any(w in low for w in ("dall-e", "gpt-image", "imagen", "flux", "stable-diffusion", "sdxl", "veo-")):
        return "image", ["image-generation"]
    caps = ["text-generation", "streaming"]
    if "vision" in low or "-vl" in low or "llava" in low:
        caps.append("vision")
    if any(w in low for w in ("code", "coder", "codestral", "devstral")):
        caps.append("code-generation")
    if any(w in low for w in ("reason", "-r1", "r1-", "qwq", "thinking", "gpt-oss", "o1", "o3", "o4-")):
        caps.append("reasoning")
    if "moderation" in low or "guard" in low:
        caps.append("moderation")
    return ("vision" if "vision" in low else "chat"), caps


def per_million(value: Any) -> Decimal | None:
    """USD per token (a string or a number) -> USD per million tokens; None for unknown or variable."""
    if value is None or value == "":
        return None
    price = Decimal(str(value))
    if price < 0:  # "-1": variable price (OpenRouter's routers)
        return None
    return (price * MILLION).normalize() if price else Decimal(0)


def chunk(cid: str, model: str, created: int, delta: dict | None = None, finish: str | None = None,
          usage: dict | None = None) -> dict:
    """One OpenAI `chat.completion.chunk`; with `usage` and no delta it is the final usage chunk."""
    out: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
    if delta is None and usage is not None:
        out["choices"] = []
    else:
        out["choices"] = [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}]
    out["usage"] = usage
    return out


def usage(prompt: int | None, completion: int | None, total: int | None = None, **details: Any) -> dict:
    prompt, completion = prompt or 0, completion or 0
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": total if total is not None else prompt + completion}
    for key, value in details.items():
        if value:
            out[key] = value
    return out


def assemble(chunks: list[dict]) -> dict:
    """Fold a list of chunks into the `chat.completion` they spell (tests; non-streaming callers)."""
    content: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict] = {}
    finish, use, first = None, None, chunks[0] if chunks else {}
    for item in chunks:
        if item.get("usage"):
            use = item["usage"]
        for choice in item.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                content.append(delta["content"])
            if delta.get("reasoning_content"):
                reasoning.append(delta["reasoning_content"])
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault(call.get("index", 0), {"id": None, "type": "function",
                                                               "function": {"name": None, "arguments": ""}})
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["function"]["name"] = fn.get("name") or slot["function"]["name"]
                slot["function"]["arguments"] += fn.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content) if content or not calls else None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    return {"id": first.get("id"), "object": "chat.completion", "created": first.get("created"),
            "model": first.get("model"), "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": use}


def listed(payload: Any, key: str, kind: str) -> list:
    """The array a listing keeps under `key` (`data`, `models`); MalformedReply when there is none."""
    items = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise MalformedReply(f"listing has no {key} array", provider=kind)
    return items


class StreamParser:
    """What every stream parser shares: a framing decoder (SSE, NDJSON), the reply's id, model and
    creation time for its chunks, and `close()` raising UpstreamUnavailable when the stream ended before
    its last event (`ends_with`). A subclass turns decoded frames into chunks in `_frames`."""

    ends_with: ClassVar[str] = "the reply was complete"

    def __init__(self, adapter: Adapter, request: dict, decoder: SSEDecoder | NDJSONDecoder):
        self.adapter = adapter
        self.decoder = decoder
        self.id, self.model, self.created = "", str(request.get("model") or ""), int(time.time())
        self.done = False

    def feed(self, data: bytes) -> list[dict]:
        return self._frames(self.decoder.feed(data))

    def close(self) -> list[dict]:
        out = self._frames(self.decoder.close())
        if not self._complete():
            raise UpstreamUnavailable(f"stream ended before {self.ends_with}", provider=self.adapter.kind)
        return out

    def _complete(self) -> bool:
        return self.done

    def _chunk(self, delta: dict | None = None, finish: str | None = None, use: dict | None = None) -> dict:
        return chunk(self.id, self.model, self.created, delta, finish, use)

    def _frames(self, frames: list) -> list[dict]:
        raise NotImplementedError


class OpenAIStreamParser(StreamParser):
    """OpenAI-style SSE (`data: {chunk}` ... `data: [DONE]`) -> the chunks as they are. Skips comment
    keep-alives (OpenRouter), raises a mid-stream `{"error": ...}` frame, and treats a stream that ends
    with neither `[DONE]` nor a finish_reason as cut."""

    def __init__(self, adapter: Adapter, request: dict):
        super().__init__(adapter, request, SSEDecoder())
        self.finished = False

    def _complete(self) -> bool:
        return self.done or self.finished

    def _frames(self, frames: list[tuple[str | None, str]]) -> list[dict]:
        out = []
        for _event, data in frames:
            if data == "[DONE]":
                self.done = True
                continue
            obj = json.loads(data)
            if obj.get("error"):  # OpenRouter: an error chunk mid-stream, its finish_reason "error"
                raise self.adapter.error_from_payload(obj, status=None)
            for choice in obj.get("choices") or ():
                if choice.get("finish_reason"):
                    self.finished = True
            out.append(obj)
        return out


class Adapter:
    """One upstream kind. Instances hold a base URL and a credential; see the module docstring."""

    kind: ClassVar[str]
    label: ClassVar[str]
    default_base_url: ClassVar[str]
    # How requests and replies are shaped, and how the credential is sent (the model's
    # `communication` schema, GET /api/models/{id}/communication).
    request_format: ClassVar[str] = "openai-chat-completions"
    response_format: ClassVar[str] = "openai-chat-completions"
    auth_method: ClassVar[str] = "bearer"  # bearer | x-api-key | x-goog-api-key | none
    chat_path: ClassVar[str] = "/v1/chat/completions"
    models_path: ClassVar[str] = "/v1/models"
    embeddings_path: ClassVar[str | None] = "/v1/embeddings"
    # Environment variable `manage.py auto_register` reads the credential (or URL) from.
    env_var: ClassVar[str | None] = None
    # A local server costs nothing per token: its models are free unless said otherwise.
    always_local: ClassVar[bool] = False
    # A server of this kind on a loopback address is a local server (free, no quota).
    loopback_is_local: ClassVar[bool] = False
    # Which window a rate-limit header without a period suffix counts (OpenAI: RPM and TPM).
    ratelimit_periods: ClassVar[dict[str, str]] = {"requests": "minute", "tokens": "minute"}
    # Request fields this provider rejects; dropped before sending.
    unsupported_params: ClassVar[frozenset[str]] = frozenset()
    # Most listings have no prices: the shipped price table fills them (OpenAI, Anthropic, DeepSeek).
    max_pages: ClassVar[int] = 50
    # The output tokens a chat request without max_tokens may produce, where the provider documents it
    # (what a cost-weighted pool reserves for such a request).
    default_max_tokens: ClassVar[int | None] = None
    # Set by a caller that bounds each call itself, to this many seconds at most (within
    # `timeouts.total`): `_send` then adds no timer of its own, nor a read timer it makes redundant.
    caller_deadline: float | None = None

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeouts: Timeouts | None = None,
        on_rate_limit: Callable[[Adapter, RateLimitInfo], None] | None = None,
        local: bool | None = None,
    ):
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.api_key = api_key
        self._client = client
        self.timeouts = timeouts or Timeouts.from_settings()
        self.on_rate_limit = on_rate_limit
        self.last_rate_limit: RateLimitInfo | None = None
        # `local` overrides the URL's verdict: the fake providers listen on loopback yet play remote hosts.
        self.local = self.is_local(self.base_url) if local is None else local
        self.host = urlsplit(self.base_url).hostname or ""

    def __repr__(self) -> str:  # never the key
        return f"<{type(self).__name__} {self.base_url}>"

    @classmethod
    def is_local(cls, base_url: str) -> bool:
        # Only a kind that is a local server by nature is free on loopback: a "groq" at 127.0.0.1 is
        # a proxy (or the fake providers) and keeps Groq's rules.
        return cls.always_local or (cls.loopback_is_local and is_loopback_url(base_url))

    @classmethod
    def pool_cost(cls, metadata: dict[str, Any] | None) -> tuple[float, float] | None:
        """What one input token and one output token of a model cost in its account's cost-weighted
        free pool (Cloudflare's neurons), from the listing kept in its metadata; None when the kind has
        no such pool or the listing does not say."""
        return None

    @classmethod
    def communication(cls, base_url: str, model_id: str) -> dict:
        base = base_url.rstrip("/")
        return {
            "requestFormat": cls.request_format,
            "responseFormat": cls.response_format,
            "authMethod": cls.auth_method,
            "endpoint": base + cls.chat_path.replace("{model}", model_id),
            "modelsEndpoint": base + cls.models_path,
            "streaming": True,
        }

    # ------------------------------------------------------------------ auth
    def auth_headers(self) -> dict[str, str]:
        if not self.api_key or self.auth_method == "none":
            return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        if self.auth_method == "x-api-key":
            return {"x-api-key": self.api_key}
        if self.auth_method == "x-goog-api-key":
            return {"x-goog-api-key": self.api_key}
        return {"authorization": f"Bearer {self.api_key}"}

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", "accept": "application/json", **self.auth_headers()}

    # ------------------------------------------------------------------ listing (pure)
    def listing_params(self) -> dict[str, str]:
        return {}

    def next_page(self, payload: Any) -> dict[str, str] | None:
        """Query parameters for the next page, or None on the last page."""
        return None

    def listing_items(self, payload: Any) -> list:
        if isinstance(payload, list):  # Cerebras/Together: a bare array
            return payload
        return listed(payload, "data", self.kind)

    def parse_model(self, raw: dict) -> ModelRecord | None:
        """One listing entry -> a record (None to leave it out on purpose). Raise on garbage."""
        mid = raw["id"]
        if not isinstance(mid, str) or not mid:
            raise ValueError("model without id")
        mtype, caps = guess_type(mid)
        rec = ModelRecord(id=mid, name=raw.get("name") or raw.get("display_name") or mid, type=mtype,
                          capabilities=caps)
        for key in ("context_window", "context_length", "max_model_len"):
            if isinstance(raw.get(key), int):
                rec.context_window = raw[key]
                break
        rec.metadata = {k: v for k, v in raw.items() if k not in ("id", "object", "name")}
        return rec

    def finish_record(self, rec: ModelRecord) -> None:
        """Free and price knowledge that is not in the entry: local servers, the dated tables."""
        if self.local:
            rec.is_free, rec.free_reason, rec.quota, rec.quota_scope = True, "local server", empty_quota(), "model"
            rec.input_price = rec.output_price = Decimal(0)
            return
        if rec.input_price is None and rec.output_price is None:
            known = tables.price(self.kind, rec.id)
            if known is not None:
                rec.input_price, rec.output_price = known.input, known.output
                rec.context_window = rec.context_window or known.context_window
                rec.max_output_tokens = rec.max_output_tokens or known.max_output_tokens
                rec.metadata["price_source"] = "table"
        if not rec.is_free:
            tier = tables.free_tier(self.kind, rec.id, self.host)
            if tier is not None:
                rec.is_free, rec.free_reason, rec.quota, rec.quota_scope = True, tier.reason, dict(tier.quota), tier.scope

    def parse_listing(self, payload: Any) -> Listing:
        listing = Listing()
        for raw in self.listing_items(payload):
            try:
                rec = self.parse_model(raw)
                if rec is None:
                    continue
                self.finish_record(rec)
            except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
                listing.skipped += 1
                listing.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            listing.models.append(rec)
        return listing

    # ------------------------------------------------------------------ chat (pure)
    def build_chat(self, request: dict) -> tuple[str, dict[str, str], dict]:
        body = {k: v for k, v in request.items() if v is not None and k not in self.unsupported_params}
        if body.get("stream"):
            # Usage is how quotas and costs are counted: always ask for it.
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return self.chat_path, self.headers(), body

    def parse_chat(self, payload: Any, request: dict | None = None) -> dict:
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            raise MalformedReply("reply has no choices", provider=self.kind)
        payload.setdefault("object", "chat.completion")
        return payload

    def stream_parser(self, request: dict) -> Any:
        return OpenAIStreamParser(self, request)

    def parse_stream(self, data: bytes, request: dict | None = None, piece: int = 0) -> list[dict]:
        """Replay a whole recorded stream through the parser (tests, benchmarks); `piece` splits it
        into pieces of that many bytes to prove frames may arrive cut anywhere."""
        parser = self.stream_parser(request or {"model": "?"})
        out: list[dict] = []
        step = piece or len(data) or 1
        for i in range(0, len(data), step):
            out.extend(parser.feed(data[i : i + step]))
        out.extend(parser.close())
        return out

    # ------------------------------------------------------------------ embeddings (pure)
    def build_embed(self, request: dict) -> tuple[str, dict[str, str], dict]:
        if not self.embeddings_path:
            raise BadRequest(f"{self.label} offers no embeddings endpoint", provider=self.kind)
        return self.embeddings_path, self.headers(), {k: v for k, v in request.items() if v is not None}

    def parse_embed(self, payload: Any, request: dict | None = None) -> dict:
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise MalformedReply("embedding reply has no data", provider=self.kind)
        return payload

    # ------------------------------------------------------------------ errors (pure)
    def parse_rate_limit(self, headers: Any) -> RateLimitInfo:
        return parse_rate_limit_headers(headers, self.ratelimit_periods)

    def error_fields(self, payload: Any) -> tuple[str, str | None]:
        """(message, provider code) from an error body in any of the shapes providers use."""
        if not isinstance(payload, dict):
            return (str(payload)[:500] if payload else ""), None
        err = payload.get("error")
        if isinstance(err, str):  # Ollama
            return err, None
        src = err if isinstance(err, dict) else payload
        message = src.get("message") or src.get("detail") or ""
        code = src.get("code")
        if not isinstance(code, str) or code.isdigit() or not code:
            code = src.get("type") or src.get("status") or (str(code) if code is not None else None)
        return str(message), (str(code) if code is not None else None)

    def error_from_payload(self, payload: Any, status: int | None, headers: Any = None) -> ProviderError:
        """The one mapping: an HTTP status plus the provider's error body -> a typed error."""
        message, code = self.error_fields(payload)
        rate = self.parse_rate_limit(headers) if headers is not None else None
        if status is None and isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            raw = payload["error"].get("code")
            status = int(raw) if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()) else None
        low = f"{code or ''} {message}".lower()
        cls: type[ProviderError]
        if status == 429 or "rate_limit" in low or "rate limit" in low:
            cls = RateLimited
        elif any(hint in low for hint in _CONTEXT_HINTS) and status in (None, 400, 413, 422):
            cls = ContextTooLong
        elif status in (401, 403, 402):  # 402: the account cannot pay, even for free models (OpenRouter)
            cls = AuthError
        elif status == 404:
            cls = NotFoundError
        elif status == 408:
            cls = Timeout
        elif status == 413:
            cls = ContextTooLong
        elif status is not None and status >= 500:
            cls = UpstreamUnavailable
        elif status is not None and 400 <= status < 500:
            cls = BadRequest
        else:
            cls = UpstreamUnavailable
        retry_after = rate.retry_after if rate else None
        if retry_after is None and cls is RateLimited:
            found = _RETRY_IN.search(message)
            retry_after = parse_duration(found.group(1)) if found else None
        err = cls(message or f"HTTP {status}", status=status, provider_code=code, retry_after=retry_after,
                  provider=self.kind, rate_limit=rate)
        return self.refine_error(err, payload)

    def refine_error(self, err: ProviderError, payload: Any) -> ProviderError:
        """A provider's own codes that the status alone does not tell (override per adapter)."""
        return err

    def error_from_response(self, status: int, headers: Any, body: bytes) -> ProviderError:
        try:
            payload: Any = json.loads(body) if body else None
        except ValueError:
            payload = body[:500].decode("utf-8", "replace")
        return self.error_from_payload(payload, status, headers)

    def error_from_exception(self, exc: BaseException) -> ProviderError:
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, httpx.ConnectTimeout) and ("Connect call failed" in str(exc) or "Cannot connect" in str(exc)):
            # httpx-aiohttp 0.2 reports a refused connection as a ConnectTimeout: the host is down, not slow.
            return UpstreamUnavailable(f"cannot connect: {exc}", provider=self.kind)
        if isinstance(exc, httpx.TimeoutException | TimeoutError | aiohttp.ServerTimeoutError):
            return Timeout(f"{type(exc).__name__}: {exc}" or "timed out", provider=self.kind)
        if isinstance(exc, httpx.HTTPError | aiohttp.ClientError):
            return UpstreamUnavailable(f"{type(exc).__name__}: {exc}", provider=self.kind)
        if isinstance(exc, ValueError | KeyError | TypeError | IndexError):
            return MalformedReply(f"{type(exc).__name__}: {exc}", provider=self.kind)
        return UpstreamUnavailable(repr(exc), provider=self.kind)

    # ------------------------------------------------------------------ HTTP glue
    @property
    def client(self) -> httpx.AsyncClient:
        return self._client or shared_client(self.kind, self.base_url, self.timeouts)

    def _observe(self, headers: Any) -> RateLimitInfo:
        info = self.parse_rate_limit(headers)
        if info:
            self.last_rate_limit = info
            if self.on_rate_limit is not None:
                self.on_rate_limit(self, info)
        return info

    async def _send(self, method: str, path: str, *, body: Any = None, headers: dict | None = None,
                    params: dict | None = None) -> Any:
        """One request, read whole within the total deadline; returns the parsed JSON body."""
        # A caller whose own deadline covers `timeouts.total` (the gateway's attempt) saves a second
        # timer: an asyncio.timeout costs ~6 µs, about 5 % of the gateway's own work on a request.
        bounded = self.caller_deadline
        deadline = contextlib.nullcontext() if bounded is not None else asyncio.timeout(self.timeouts.total)
        try:
            async with deadline:
                reply = await fetch(
                    self.kind, self.base_url, self.timeouts, method, self.base_url + path,
                    headers=headers if headers is not None else self.headers(), params=params,
                    content=body_bytes(body) if body is not None else None, client=self._client,
                    idle_timeout=bounded is None or bounded > self.timeouts.read,
                )
        except TimeoutError as exc:
            raise Timeout(f"no complete reply within {self.timeouts.total:g} s", provider=self.kind) from exc
        except TRANSPORT_ERRORS as exc:
            raise self.error_from_exception(exc) from exc
        self._observe(reply.headers)
        if reply.status >= 400:
            raise self.error_from_response(reply.status, reply.headers, reply.content)
        try:
            payload = orjson.loads(reply.content)
        except ValueError as exc:
            raise MalformedReply(f"not JSON: {reply.content[:200]!r}", status=reply.status,
                                 provider=self.kind) from exc
        if isinstance(payload, dict) and payload.get("error") and not payload.get("choices"):
            # An error delivered with a 200 (OpenRouter does this).
            raise self.error_from_payload(payload, None, reply.headers)
        return payload

    async def list_models(self) -> Listing:
        params = self.listing_params()
        listing = Listing()
        for _ in range(self.max_pages):
            payload = await self._send("GET", self.models_path, params=params or None,
                                       headers=self.auth_headers() | {"accept": "application/json"})
            try:
                page = self.parse_listing(payload)
            except (ValueError, TypeError, AttributeError) as exc:
                raise MalformedReply(str(exc), provider=self.kind) from exc
            listing.models.extend(page.models)
            listing.skipped += page.skipped
            listing.errors.extend(page.errors)
            nxt = self.next_page(payload)
            if not nxt:
                break
            params = {**params, **nxt}
        listing.rate_limit = self.last_rate_limit
        return listing

    async def chat(self, request: dict) -> dict:
        path, headers, body = self.build_chat({**request, "stream": False})
        payload = await self._send("POST", path, body=body, headers=headers)
        try:
            return self.parse_chat(payload, request)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise MalformedReply(f"{type(exc).__name__}: {exc}", provider=self.kind) from exc

    async def stream(self, request: dict) -> AsyncIterator[dict]:
        req = {**request, "stream": True}
        path, headers, body = self.build_chat(req)
        parser = self.stream_parser(req)
        deadline = time.monotonic() + self.timeouts.total
        try:
            async with open_stream(self.kind, self.base_url, self.timeouts, "POST", self.base_url + path,
                                   headers=headers, content=body_bytes(body), client=self._client) as response:
                self._observe(response.headers)
                if response.status >= 400:
                    raise self.error_from_response(response.status, response.headers, await response.read())
                if response.headers.get("content-type", "").startswith("application/json") and \
                        self.request_format.startswith("openai"):
                    # A JSON body instead of a stream: an error sent with a 200.
                    raw = await response.read()
                    raise self.error_from_response(response.status, response.headers, raw) \
                        if b'"error"' in raw else MalformedReply("expected a stream", provider=self.kind)
                async for data in response.chunks():
                    for item in parser.feed(data):
                        yield item
                    if time.monotonic() > deadline:
                        raise Timeout("total deadline passed mid-stream", provider=self.kind)
                for item in parser.close():
                    yield item
        except ProviderError:
            raise
        except (*TRANSPORT_ERRORS, ValueError, KeyError, TypeError, IndexError) as exc:
            raise self.error_from_exception(exc) from exc

    async def embed(self, request: dict) -> dict:
        path, headers, body = self.build_embed(request)
        payload = await self._send("POST", path, body=body, headers=headers)
        try:
            return self.parse_embed(payload, request)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise MalformedReply(f"{type(exc).__name__}: {exc}", provider=self.kind) from exc
