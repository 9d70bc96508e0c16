"""The fake provider server: one aiohttp app on 127.0.0.1 that mounts every provider's API under
`/<kind>` followed by the provider's real path (`/openai/v1/chat/completions`,
`/openrouter/api/v1/models`, `/gemini/v1beta/models/{model}:streamGenerateContent`, `/ollama/api/chat`).

Scenarios (failures on demand), chosen per request, first match wins:
1. header `x-fake-scenario: rate_limit; retry_after=7` (params after `;`),
2. a model name with `@scenario`, e.g. `gpt-4o-mini@server_error`,
3. the queue filled through `POST /_control/scenario {"provider": "groq", "scenario": "rate_limit",
   "count": 2, "params": {"retry_after": 7}}` (provider "*" = any).
Scenarios: ok, auth, not_found, rate_limit (`retry_after`; `remaining=keep` leaves the quota headers
unzeroed), context_too_long, payment, server_error, unavailable,
overloaded (Anthropic 529), echo_key (an error quoting the presented key: `status` 401 by default,
a 5xx quotes the Authorization header, another 4xx repeats the key in its complaint), hang (never answers within `seconds`), slow_first_byte (`seconds` before the
first byte), cut (the stream, or the body, stops midway), malformed (invalid JSON), midstream_error.
`POST /_control/listing {"provider", "add": [entries], "remove": [ids], "patch": {id: {fields}}}`
changes a provider's listing. Other controls: `POST /_control/quota {"provider", "remaining_requests", "remaining_tokens"}` pins the
remaining-quota headers (and `limit_requests`, `limit_tokens` the advertised limits); `POST /_control/config {"chunk_delay", "page_size", "key"}`; `POST
/_control/reset`; `GET /_control/log` (every request seen, with timings: `t_first_frame`,
`t_last_frame`, time.monotonic() of this process). Header `x-fake-chunk-delay: 0.1` paces one stream.
Random fault mixes per provider (`POST /_control/faults`, `GET /_control/faults`) come last, after every
explicit scenario: see registry/fakes/faults.py. Scenario `refused` closes the connection unanswered.
The accepted credential is "fake-key" (Ollama and openai_compatible need none)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from registry.fakes import catalog, wire
from registry.fakes.faults import FaultMix, Faults

KEY = "fake-key"
# The real path prefix of each provider's API (the path part of its default base URL).
PREFIX = {"openai": "", "anthropic": "", "ollama": "", "openrouter": "/api", "groq": "/openai", "gemini": "",
          "mistral": "", "huggingface": "", "together": "", "cerebras": "", "deepseek": "", "openai_compatible": "",
          "nvidia": "", "cohere": "", "github": "", "codestral": "",
          # Cloudflare's base URL names the account: any id is accepted, this one is what base_urls() gives.
          "cloudflare": "/client/v4/accounts/fake-account"}
LISTINGS: dict[str, list[dict]] = {
    "openai": catalog.OPENAI, "groq": catalog.GROQ, "mistral": catalog.MISTRAL, "cerebras": catalog.CEREBRAS,
    "deepseek": catalog.DEEPSEEK, "together": catalog.TOGETHER, "huggingface": catalog.HUGGINGFACE,
    "openai_compatible": catalog.OPENAI_COMPATIBLE, "openrouter": catalog.OPENROUTER, "anthropic": catalog.ANTHROPIC,
    "gemini": catalog.GEMINI, "ollama": catalog.OLLAMA, "nvidia": catalog.NVIDIA, "cohere": catalog.COHERE,
    "cloudflare": catalog.CLOUDFLARE, "github": catalog.GITHUB, "codestral": catalog.CODESTRAL,
}
CONTENT_TYPES = {"sse": "text/event-stream; charset=utf-8", "ndjson": "application/x-ndjson",
                 "json": "application/json; charset=UTF-8"}


def base_urls(root: str) -> dict[str, str]:
    """The base URL to give each adapter so it talks to this server instead of the real host."""
    root = root.rstrip("/")
    return {kind: f"{root}/{kind}{prefix}" for kind, prefix in PREFIX.items()}


@dataclass
class Scenario:
    name: str = "ok"
    params: dict[str, Any] = field(default_factory=dict)

    def num(self, key: str, default: float) -> float:
        try:
            return float(self.params.get(key, default))
        except (TypeError, ValueError):
            return default


def parse_scenario(text: str) -> Scenario:
    name, *rest = [part.strip() for part in text.split(";")]
    params = {}
    for item in rest:
        key, _, value = item.partition("=")
        if key:
            params[key.strip()] = value.strip()
    return Scenario(name or "ok", params)


def _entry_id(entry: dict) -> str:
    """A listing entry's id, whatever the provider calls it (id, name: "models/x", model)."""
    if str(entry.get("name", "")).startswith("@"):  # Cloudflare: `id` is a uuid, the model is called by `name`
        return entry["name"]
    return entry.get("id") or entry.get("name", "").removeprefix("models/") or entry.get("model", "")


class State:
    """What tests script and what the server saw; shared between the server thread and the tests."""

    def __init__(self, chunk_delay: float = 0.0, page_size: int = 3):
        self.lock = threading.Lock()
        self.chunk_delay = chunk_delay
        self.page_size = page_size
        self.key = KEY
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.queue: dict[str, deque[Scenario]] = {}
            self.quota: dict[str, dict[str, int]] = {}
            self.used: dict[str, int] = {}
            self.log: list[dict[str, Any]] = []
            # Per provider: {"add": [raw entries], "remove": {ids}, "patch": {id: {key: value}}}
            self.listing_changes: dict[str, dict[str, Any]] = {}
            self.faults = Faults()
            # Fields of OpenRouter's GET /api/v1/key `data` that differ from a fresh free-tier key.
            self.openrouter_key: dict[str, Any] = {}

    def change_listing(self, provider: str, *, add: list[dict] | None = None, remove: list[str] | None = None,
                       patch: dict[str, dict] | None = None) -> None:
        """Make the provider's listing differ from its catalog (tests of discovery; the demo)."""
        with self.lock:
            changes = self.listing_changes.setdefault(provider, {"add": [], "remove": set(), "patch": {}})
            known = {_entry_id(m) for m in changes["add"]}
            changes["add"] += [m for m in add or [] if _entry_id(m) not in known]
            changes["remove"] |= set(remove or [])
            for model_id, fields in (patch or {}).items():
                changes["patch"].setdefault(model_id, {}).update(fields)
            for entry in add or []:
                changes["remove"].discard(_entry_id(entry))

    def listing(self, provider: str, catalog_models: list[dict]) -> list[dict]:
        with self.lock:
            changes = self.listing_changes.get(provider)
            if not changes:
                return catalog_models
            out = []
            for entry in [*catalog_models, *changes["add"]]:
                model_id = _entry_id(entry)
                if model_id in changes["remove"]:
                    continue
                out.append({**entry, **changes["patch"].get(model_id, {})})
            return out

    def push(self, provider: str, scenario: str, count: int = 1, **params: Any) -> None:
        with self.lock:
            self.queue.setdefault(provider, deque()).extend(Scenario(scenario, params) for _ in range(count))

    def pop(self, provider: str) -> Scenario | None:
        with self.lock:
            for key in (provider, "*"):
                if self.queue.get(key):
                    return self.queue[key].popleft()
        return None

    def set_faults(self, provider: str, mix: FaultMix | None) -> None:
        """Give a provider ("*" = every provider without its own) a random fault mix; None removes it."""
        with self.lock:
            self.faults.set(provider, mix)

    def draw_fault(self, provider: str, *, listing: bool = False) -> Scenario | None:
        with self.lock:
            drawn = self.faults.draw(provider, listing=listing)
        return None if drawn is None else Scenario(drawn[0], dict(drawn[1]))

    def count(self, provider: str) -> int:
        with self.lock:
            self.used[provider] = self.used.get(provider, 0) + 1
            return self.used[provider]

    def requests(self, provider: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.log if provider is None or e["provider"] == provider]


class FakeProviders:
    """The aiohttp application and its handlers; `FakeProviderServer` runs it in a thread."""

    def __init__(self, state: State):
        self.state = state

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        r = app.router
        r.add_post("/_control/scenario", self.control_scenario)
        r.add_post("/_control/listing", self.control_listing)
        r.add_post("/_control/quota", self.control_quota)
        r.add_post("/_control/config", self.control_config)
        r.add_post("/_control/reset", self.control_reset)
        r.add_get("/_control/log", self.control_log)
        r.add_get("/_control/health", self.control_health)
        r.add_post("/_control/faults", self.control_faults)
        r.add_get("/_control/faults", self.control_faults_show)
        for kind in wire.OPENAI_LIKE:
            base = f"/{kind}{PREFIX[kind]}"
            v1 = "" if kind == "deepseek" else "/v1"
            r.add_get(f"{base}{v1}/models", self.listing(kind))
            r.add_post(f"{base}{v1}/chat/completions", self.chat(kind))
            r.add_post(f"{base}{v1}/embeddings", self.embeddings(kind))
        r.add_get("/openrouter/api/v1/key", self.openrouter_key)
        r.add_get("/anthropic/v1/models", self.listing("anthropic"))
        r.add_post("/anthropic/v1/messages", self.chat("anthropic"))
        r.add_get("/gemini/v1beta/models", self.listing("gemini"))
        r.add_post("/gemini/v1beta/models/{target}", self.gemini_post)
        r.add_get("/ollama/api/tags", self.listing("ollama"))
        r.add_post("/ollama/api/chat", self.chat("ollama"))
        r.add_post("/ollama/api/embed", self.embeddings("ollama"))
        r.add_post("/ollama/api/show", self.ollama_show)
        r.add_get("/cohere/v1/models", self.listing("cohere"))
        r.add_post("/cohere/v2/chat", self.chat("cohere"))
        r.add_get("/github/catalog/models", self.listing("github"))
        r.add_post("/github/inference/chat/completions", self.chat("github"))
        r.add_post("/github/inference/embeddings", self.embeddings("github"))
        cf = "/cloudflare/client/v4/accounts/{account}/ai"
        r.add_get(f"{cf}/models/search", self.listing("cloudflare"))
        r.add_post(f"{cf}/v1/chat/completions", self.chat("cloudflare"))
        r.add_post(f"{cf}/v1/embeddings", self.embeddings("cloudflare"))
        return app

    # ------------------------------------------------------------------ control
    async def control_scenario(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.state.push(body.get("provider", "*"), body["scenario"], int(body.get("count", 1)),
                        **(body.get("params") or {}))
        return web.json_response({"ok": True})

    async def control_listing(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.state.change_listing(body["provider"], add=body.get("add"), remove=body.get("remove"),
                                  patch=body.get("patch"))
        return web.json_response({"ok": True})

    async def control_quota(self, request: web.Request) -> web.Response:
        body = await request.json()
        provider = body.pop("provider", "*")
        with self.state.lock:
            self.state.quota.setdefault(provider, {}).update({k: int(v) for k, v in body.items()})
        return web.json_response({"ok": True})

    async def control_config(self, request: web.Request) -> web.Response:
        body = await request.json()
        for key in ("chunk_delay", "page_size", "key", "openrouter_key"):
            if key in body:
                setattr(self.state, key, body[key])
        return web.json_response({"ok": True})

    async def control_reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        return web.json_response({"ok": True})

    async def control_log(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.requests(request.query.get("provider")))

    async def control_faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        provider = str(body.get("provider") or "*")
        try:
            mix = None if body.get("clear") else FaultMix.parse(body)
        except (TypeError, ValueError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        self.state.set_faults(provider, mix)
        return web.json_response({"ok": True})

    async def control_faults_show(self, request: web.Request) -> web.Response:
        with self.state.lock:
            return web.json_response(self.state.faults.describe())

    async def control_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "providers": sorted(PREFIX)})

    # ------------------------------------------------------------------ shared
    def _entry(self, provider: str, request: web.Request, body: Any) -> dict[str, Any]:
        entry = {"provider": provider, "method": request.method, "path": request.path, "query": dict(request.query),
                 "headers": {k.lower(): ("<redacted>" if k.lower() in ("authorization", "x-api-key", "x-goog-api-key")
                                         else v) for k, v in request.headers.items()},
                 "body": body, "scenario": "ok", "status": None, "t_received": time.monotonic(),
                 "t_first_frame": None, "t_last_frame": None}
        with self.state.lock:
            self.state.log.append(entry)
            del self.state.log[:-500]
        return entry

    def _authorized(self, provider: str, request: web.Request) -> bool:
        if provider in ("ollama", "openai_compatible"):
            return True
        if provider == "anthropic":
            given = request.headers.get("x-api-key")
        elif provider == "gemini":
            given = request.headers.get("x-goog-api-key") or request.query.get("key")
        else:
            auth = request.headers.get("authorization", "")
            given = auth[7:] if auth.lower().startswith("bearer ") else None
        return given == self.state.key

    def _scenario(self, provider: str, request: web.Request, model: str,
                  listing: bool = False) -> tuple[Scenario, str]:
        header = request.headers.get("x-fake-scenario")
        if header:
            return parse_scenario(header), model
        head, at, name = model.rpartition("@")
        if at and head:  # "model@scenario"; Cloudflare's own ids start with "@" ("@cf/meta/...")
            return parse_scenario(name), head
        return (self.state.pop(provider) or self.state.draw_fault(provider, listing=listing) or Scenario()), model

    def _ratelimit_headers(self, provider: str) -> dict[str, str]:
        used = self.state.count(provider)
        with self.state.lock:
            override = {**self.state.quota.get("*", {}), **self.state.quota.get(provider, {})}
        if provider == "anthropic":
            return wire.pin_limits(wire.anthropic_ratelimit_headers(used, override), override)
        return wire.pin_limits(wire.oai_ratelimit_headers(provider, used, override), override)

    def _error(self, provider: str, kind: str, model: str, scenario: Scenario) -> web.Response:
        retry_after = scenario.num("retry_after", 7)
        if provider == "anthropic":
            status, body = wire.anthropic_error(kind, model)
        elif provider == "gemini":
            status, body = wire.gemini_error(kind, model, retry_after)
        elif provider == "ollama":
            status, body = wire.ollama_error(kind, model)
        elif provider == "cohere":
            status, body = wire.cohere_error(kind, model)
        else:
            status, body = wire.oai_error(provider, kind, model, retry_after)
        if "status" in scenario.params:
            status = int(scenario.params["status"])
        headers = {}
        if status == 429:
            if provider not in ("gemini", "ollama"):
                headers["retry-after"] = str(int(retry_after) if retry_after == int(retry_after) else retry_after)
            if provider == "openrouter":
                headers.update(body["error"]["metadata"]["headers"])
            else:
                headers.update(self._ratelimit_headers(provider) if provider not in ("gemini", "ollama") else {})
                for name in list(headers):
                    if "remaining" in name and "month" not in name and scenario.params.get("remaining") != "keep":
                        headers[name] = "0"
        return web.json_response(body, status=status, headers=headers)

    def _echo_key(self, provider: str, request: web.Request, scenario: Scenario) -> web.Response:
        authorization = request.headers.get("authorization") or ""
        presented = (request.headers.get("x-api-key") or request.headers.get("x-goog-api-key")
                     or request.query.get("key") or authorization.partition(" ")[2] or "")
        status, body = wire.echo_key_error(provider, int(scenario.num("status", 401)), presented, authorization)
        return web.json_response(body, status=status)

    async def _prelude(self, provider: str, request: web.Request, model: str, scenario: Scenario,
                       entry: dict, public: bool = False) -> web.StreamResponse | None:
        """The failures that happen before any reply is written; None means go on."""
        entry["scenario"] = scenario.name
        if scenario.name == "hang":
            await asyncio.sleep(scenario.num("seconds", 30))
        if scenario.name == "slow_first_byte":
            await asyncio.sleep(scenario.num("seconds", 1))
        if scenario.name == "refused":
            assert request.transport is not None
            request.transport.close()  # a provider that is down: the connection ends without a reply
            return web.Response(status=503)
        if scenario.name == "echo_key":
            return self._echo_key(provider, request, scenario)
        if (not public and not self._authorized(provider, request)) or scenario.name == "auth":
            return self._error(provider, "auth", model, scenario)
        kinds = {"rate_limit": "rate_limit", "not_found": "not_found", "context_too_long": "context_too_long",
                 "payment": "payment", "server_error": "server_error", "unavailable": "unavailable",
                 "overloaded": "overloaded", "quota_exhausted": "quota_exhausted"}
        if scenario.name in kinds:
            kind = kinds[scenario.name]
            if kind == "unavailable" and provider != "gemini":
                scenario.params.setdefault("status", 503)
                kind = "server_error"
            if kind == "overloaded" and provider != "anthropic":
                kind = "server_error"
            if kind == "quota_exhausted" and provider != "cloudflare":  # a spent allocation with its own code
                kind = "rate_limit"
            return self._error(provider, kind, model, scenario)
        return None

    async def _send_stream(self, request: web.Request, frames: list[bytes], content_type: str,
                           headers: dict[str, str], scenario: Scenario, entry: dict,
                           error_frame: bytes | None) -> web.StreamResponse:
        delay = float(request.headers.get("x-fake-chunk-delay") or scenario.params.get("delay") or
                      self.state.chunk_delay)
        response = web.StreamResponse(status=200, headers={"content-type": content_type, "cache-control": "no-cache",
                                                           **headers})
        response.enable_chunked_encoding()
        await response.prepare(request)
        cut_at = len(frames) // 2 if scenario.name in ("cut", "malformed", "midstream_error") else None
        for n, frame in enumerate(frames):
            if n == cut_at:
                if scenario.name == "cut":
                    entry["t_last_frame"] = time.monotonic()
                    assert request.transport is not None
                    request.transport.close()  # no terminating chunk: the client sees a broken body
                    return response
                if scenario.name == "malformed":
                    frame = b"data: {\"id\": \"broken\", \"choices\": [\n\n" if b"data:" in frame else b"{\"broken\n"
                elif scenario.name == "midstream_error" and error_frame is not None:
                    await response.write(error_frame)
                    entry["t_last_frame"] = time.monotonic()
                    await response.write_eof()
                    return response
            if n == len(frames) - 1:
                entry["t_last_frame"] = time.monotonic()
            await response.write(frame)
            if n == 0:
                entry["t_first_frame"] = time.monotonic()
            if delay and n < len(frames) - 1:
                await asyncio.sleep(delay)
        await response.write_eof()
        return response

    def _send_json(self, body: Any, scenario: Scenario, headers: dict[str, str], entry: dict,
                   request: web.Request) -> web.StreamResponse:
        entry["t_first_frame"] = entry["t_last_frame"] = time.monotonic()
        if scenario.name == "malformed":
            return web.Response(status=200, text='{"id": "broken", "choices": [', content_type="application/json",
                                headers=headers)
        return web.json_response(body, headers=headers)

    async def _send_cut_json(self, request: web.Request, body: Any, headers: dict[str, str]) -> web.StreamResponse:
        data = json.dumps(body).encode()
        response = web.StreamResponse(status=200, headers={"content-type": "application/json",
                                                           "content-length": str(len(data)), **headers})
        await response.prepare(request)
        await response.write(data[: len(data) // 2])
        assert request.transport is not None
        request.transport.close()
        return response

    # ------------------------------------------------------------------ listings
    def listing(self, provider: str):
        async def handle(request: web.Request) -> web.StreamResponse:
            entry = self._entry(provider, request, None)
            scenario, _ = self._scenario(provider, request, "", listing=True)
            # OpenRouter's model list is public: no key needed.
            early = await self._prelude(provider, request, "", scenario, entry, public=provider == "openrouter")
            if early is not None:
                entry["status"] = early.status
                return early
            models = self.state.listing(provider, LISTINGS[provider])
            headers = {"cache-control": "public, max-age=300"} if provider == "openrouter" else {}
            size = max(1, int(self.state.page_size))
            if provider == "gemini":
                # Paged by nextPageToken (the token is opaque to clients; here, the next offset).
                size = min(size, int(request.query.get("pageSize") or size))
                start = int(request.query.get("pageToken") or 0)
                body: Any = {"models": models[start:start + size]}
                if start + size < len(models):
                    body["nextPageToken"] = str(start + size)
            elif provider == "anthropic":
                size = min(size, int(request.query.get("limit") or 20))
                start = 0
                after = request.query.get("after_id")
                if after:
                    start = next((i + 1 for i, m in enumerate(models) if m["id"] == after), len(models))
                page = models[start:start + size]
                body = {"data": page, "has_more": start + size < len(models),
                        "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}
            elif provider == "ollama":
                body = {"models": models}
            elif provider == "cohere":
                # Paged by page_size and an opaque next_page_token (here, the next offset).
                size = min(size, int(request.query.get("page_size") or 20))
                start = int(request.query.get("page_token") or 0)
                body = {"models": models[start:start + size]}
                if start + size < len(models):
                    body["next_page_token"] = str(start + size)
            elif provider == "cloudflare":
                size = min(size, int(request.query.get("per_page") or 20))
                body = wire.cloudflare_listing(models, max(1, int(request.query.get("page") or 1)), size)
            elif provider in ("together", "github"):
                body = models  # a bare array
            elif provider == "openrouter":
                body = {"data": models}
            else:
                body = {"object": "list", "data": models}
            if scenario.name == "cut":
                return await self._send_cut_json(request, body, headers)
            entry["status"] = 200
            return self._send_json(body, scenario, headers, entry, request)

        return handle

    async def openrouter_key(self, request: web.Request) -> web.Response:
        self._entry("openrouter", request, None)
        if not self._authorized("openrouter", request):
            return self._error("openrouter", "auth", "", Scenario())
        # Field for field as openrouter.ai/docs/api-reference/get-current-api-key (a capture of it:
        # ../shared/provider-captures/listings/openrouter_key_response_from_openrouter_crate.json).
        return web.json_response({"data": {"label": "sk-or-v1-fak...key", "limit": None, "usage": 0,
                                           "is_provisioning_key": False, "limit_remaining": None,
                                           "is_free_tier": True, "rate_limit": {"requests": 20, "interval": "10s"},
                                           **self.state.openrouter_key}})

    async def ollama_show(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._entry("ollama", request, body)["status"] = 200
        name = body.get("model") or body.get("name")
        if not any(m["name"] == name for m in catalog.OLLAMA):
            return web.json_response({"error": f'model "{name}" not found, try pulling it first'}, status=404)
        entry = next(m for m in catalog.OLLAMA if m["name"] == name)
        return web.json_response({"modelfile": f"FROM {name}", "parameters": "", "template": "{{ .Prompt }}",
                                  "details": entry["details"], "model_info": {"general.architecture": "llama",
                                                                              "llama.context_length": 131072},
                                  "capabilities": ["completion", "vision"] if "llava" in name else ["completion"]})

    # ------------------------------------------------------------------ chat
    def chat(self, provider: str):
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"error": {"message": "invalid JSON body"}}, status=400)
            entry = self._entry(provider, request, body)
            stream = body.get("stream", provider == "ollama")
            return await self._chat(provider, request, body, str(body.get("model") or ""), bool(stream), entry)

        return handle

    async def gemini_post(self, request: web.Request) -> web.StreamResponse:
        target = request.match_info["target"]
        model, _, method = target.partition(":")
        try:
            body = await request.json()
        except ValueError:
            return web.json_response(wire.gemini_error("bad", model, 0)[1], status=400)
        entry = self._entry("gemini", request, body)
        if method in ("generateContent", "streamGenerateContent"):
            return await self._chat("gemini", request, body, model, method == "streamGenerateContent", entry)
        if method in ("batchEmbedContents", "embedContent"):
            return await self._embed("gemini", request, body, model, entry, method)
        return web.json_response(wire.gemini_error("not_found", model, 0)[1], status=404)

    async def _chat(self, provider: str, request: web.Request, body: dict, model: str, stream: bool,
                    entry: dict) -> web.StreamResponse:
        scenario, model = self._scenario(provider, request, model)
        early = await self._prelude(provider, request, model, scenario, entry)
        if early is not None:
            entry["status"] = early.status
            return early
        listed = self.state.listing(provider, LISTINGS[provider])
        known = {_entry_id(m) for m in listed}
        if provider == "ollama":
            known |= {m["model"] for m in listed}
        if model not in known and provider not in ("openai_compatible",):
            entry["status"] = 404
            return self._error(provider, "not_found", model, scenario)
        script = wire.script_for(provider, body, model)
        headers = self._ratelimit_headers(provider) if provider not in ("gemini", "ollama", "openrouter") else {}
        entry["status"] = 200
        if not stream:
            if provider == "anthropic":
                reply: Any = wire.anthropic_reply(script)
            elif provider == "gemini":
                reply = wire.gemini_reply(script)
            elif provider == "ollama":
                reply = wire.ollama_reply(script)
            elif provider == "cohere":
                reply = wire.cohere_reply(script)
            else:
                reply = wire.oai_reply(provider, script)
            if scenario.name == "cut":
                return await self._send_cut_json(request, reply, headers)
            return self._send_json(reply, scenario, headers, entry, request)
        if provider == "anthropic":
            frames, ctype = wire.anthropic_frames(script), CONTENT_TYPES["sse"]
            error_frame = (b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":'
                           b'"Overloaded"},"request_id":"req_fake"}\n\n')
        elif provider == "gemini":
            sse = request.query.get("alt") == "sse"
            frames = wire.gemini_frames(script, sse)
            ctype = CONTENT_TYPES["sse"] if sse else CONTENT_TYPES["json"]
            err = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
            error_frame = (f"data: {json.dumps(err)}\r\n\r\n" if sse else ",\r\n" + json.dumps(err) + "\n]").encode()
        elif provider == "ollama":
            frames, ctype = wire.ollama_frames(script), CONTENT_TYPES["ndjson"]
            error_frame = b'{"error":"an error was encountered while running the model"}\n'
        elif provider == "cohere":
            frames, ctype = wire.cohere_frames(script), CONTENT_TYPES["sse"]
            error_frame = (b'event: message-end\ndata: {"type":"message-end","delta":{"finish_reason":"ERROR",'
                           b'"error":"internal server error"}}\n\n')
        else:
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            frames = wire.oai_frames(provider, script, include)
            ctype = "text/event-stream" if provider == "openrouter" else CONTENT_TYPES["sse"]
            err = {"id": "gen-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                   "provider": "FakeHost", "error": {"code": 502, "message": "Provider returned error"},
                   "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}
            error_frame = f"data: {json.dumps(err)}\n\n".encode()
        return await self._send_stream(request, frames, ctype, headers, scenario, entry, error_frame)

    # ------------------------------------------------------------------ embeddings
    def embeddings(self, provider: str):
        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.json()
            entry = self._entry(provider, request, body)
            return await self._embed(provider, request, body, str(body.get("model") or ""), entry, "")

        return handle

    async def _embed(self, provider: str, request: web.Request, body: dict, model: str, entry: dict,
                     method: str) -> web.StreamResponse:
        scenario, model = self._scenario(provider, request, model)
        early = await self._prelude(provider, request, model, scenario, entry)
        if early is not None:
            return early

        def vector(text: str) -> list[float]:
            seed = sum(map(ord, text)) or 1
            return [round(((seed * (i + 7)) % 1000) / 1000 - 0.5, 6) for i in range(8)]

        if provider == "gemini":
            if method == "embedContent":
                text = " ".join(p.get("text", "") for p in body["content"]["parts"])
                return web.json_response({"embedding": {"values": vector(text)}})
            return web.json_response({"embeddings": [
                {"values": vector(" ".join(p.get("text", "") for p in r["content"]["parts"]))}
                for r in body.get("requests") or ()]})
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        tokens = sum(len(str(t).split()) for t in texts)
        if provider == "ollama":
            return web.json_response({"model": model, "embeddings": [vector(str(t)) for t in texts],
                                      "total_duration": 14143917, "load_duration": 1019500,
                                      "prompt_eval_count": tokens})
        return web.json_response({"object": "list", "data": [
            {"object": "embedding", "index": i, "embedding": vector(str(t))} for i, t in enumerate(texts)],
            "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


class FakeProviderServer:
    """Runs the fake providers on 127.0.0.1 in a background thread (tests) or in the foreground
    (`manage.py fakeprovider`, `python -m registry.fakes`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, chunk_delay: float = 0.0, page_size: int = 3):
        self.host, self.port = host, port
        self.state = State(chunk_delay=chunk_delay, page_size=page_size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url(self, kind: str) -> str:
        return base_urls(self.url)[kind]

    def base_urls(self) -> dict[str, str]:
        return base_urls(self.url)

    async def _start(self) -> None:
        self._runner = web.AppRunner(FakeProviders(self.state).app(), access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = [s for s in (self._runner.addresses or [])]
        if self.port == 0 and sockets:
            self.port = sockets[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def start(self) -> str:
        """Start in a daemon thread; returns the root URL once the port is bound."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop())
            pending = asyncio.all_tasks(loop)  # handlers still sleeping in a "hang" scenario
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-providers", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def serve_forever(self, demo: bool = False) -> None:
        """Serve until interrupted; `demo` runs registry.fakes.demo's changes beside it."""

        async def main() -> None:
            await self._start()
            tasks = []
            if demo:
                from registry.fakes import demo as demo_changes

                tasks.append(asyncio.ensure_future(demo_changes.run(self.state)))
            try:
                await asyncio.Event().wait()
            finally:
                for task in tasks:
                    task.cancel()
                await self._stop()

        asyncio.run(main())
