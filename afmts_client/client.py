from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_URL = "http://localhost:3001"
FALLBACKS = 4  # alternatives a model client sends the gateway (its AFMTS_GATEWAY_MAX_ATTEMPTS is 5)
REMEMBERED = 1000  # models whose discovered alternatives a registry client keeps


class RegistryError(Exception):
    """An error answer from AFMTS: its HTTP status and the error envelope's message and code."""

    def __init__(self, status: int, message: str, code: str | None = None, body: Any = None):
        super().__init__(f"{status}: {message}")
        self.status, self.message, self.code, self.body = status, message, code, body


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None


def _criteria(criteria: dict[str, Any] | None, **kwargs: Any) -> dict[str, Any]:
    """Seed-style criteria; Python keyword names (max_latency) become the API's (maxLatency)."""
    out = dict(criteria or {})
    for key, value in kwargs.items():
        if value is not None:
            head, *rest = key.split("_")
            out[head + "".join(part.title() for part in rest)] = value
    return out


def _result(response: httpx.Response) -> Any:
    if response.status_code == 204:
        return None
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code >= 400:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        if isinstance(error, dict):
            raise RegistryError(response.status_code, error.get("message", str(body)), error.get("code"), body)
        raise RegistryError(response.status_code, str(body), None, body)
    return body


class _Calls:
    """The API's requests, built once for both clients."""

    @staticmethod
    def find_models(criteria: dict[str, Any] | None = None, **kwargs: Any) -> Call:
        return Call("POST", "/api/models/find", _criteria(criteria, **kwargs))

    @staticmethod
    def list_models(**filters: Any) -> Call:
        return Call("GET", "/api/models", params={k: v for k, v in filters.items() if v is not None})

    @staticmethod
    def get_model(model_id: int | str) -> Call:
        return Call("GET", f"/api/models/{model_id}")

    @staticmethod
    def get_model_communication(model_id: int | str) -> Call:
        return Call("GET", f"/api/models/{model_id}/communication")

    @staticmethod
    def register_model(model: dict[str, Any], upsert: bool = False) -> Call:
        return Call("POST", "/api/models/register", model, {"upsert": "true"} if upsert else None)

    @staticmethod
    def register_agent(agent: dict[str, Any]) -> Call:
        return Call("POST", "/api/agents/register", agent)

    @staticmethod
    def heartbeat(agent_id: int) -> Call:
        return Call("POST", f"/api/agents/{agent_id}/heartbeat")

    @staticmethod
    def route_task(task: dict[str, Any]) -> Call:
        return Call("POST", "/api/tasks/route", task)

    @staticmethod
    def get_stats() -> Call:
        return Call("GET", "/api/stats")

    @staticmethod
    def free_models() -> Call:
        return Call("GET", "/api/free-models")

    @staticmethod
    def chat(model: str, messages: list[dict[str, Any]], fallbacks: tuple[str, ...] = (), **options: Any) -> Call:
        body = {"model": model, "messages": messages, **options}
        if fallbacks:
            # The gateway's own fallback list (extra_body "afmts"): it fails over in one request and
            # records the usage under the model that served.
            ours = dict(body.get("afmts") or {})
            ours["fallbacks"] = [*(ours.get("fallbacks") or []), *(f for f in fallbacks if f != model)]
            body["afmts"] = ours
        return Call("POST", "/v1/chat/completions", body)


def _first(found: Any) -> dict[str, Any] | None:
    models = found.get("models", []) if isinstance(found, dict) else found
    return models[0] if models else None


class _Alternatives:
    """What a discovery found besides each model: the next ones of the same ranking, best first,
    which its model client sends the gateway as fallbacks."""

    def __init__(self) -> None:
        self.by_model: dict[str, tuple[str, ...]] = {}

    def remember(self, found: Any) -> None:
        models = found.get("models", []) if isinstance(found, dict) else found
        ids = [m["publicId"] for m in models if isinstance(m, dict) and m.get("publicId")]
        if len(self.by_model) + len(ids) > REMEMBERED:
            self.by_model.clear()
        for n, public_id in enumerate(ids):
            self.by_model[public_id] = tuple(ids[n + 1:n + 1 + FALLBACKS])

    def of(self, public_id: str, fallbacks: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
        return tuple(fallbacks) if fallbacks is not None else self.by_model.get(public_id, ())


def _model_name(model: int | str | dict[str, Any]) -> int | str:
    if isinstance(model, dict):
        return model.get("publicId") or model["id"]
    return model


def _text(completion: dict[str, Any]) -> str:
    return ((completion.get("choices") or [{}])[0].get("message") or {}).get("content") or ""


def _messages(prompt: str | list[dict[str, Any]], system: str | None) -> list[dict[str, Any]]:
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    return ([{"role": "system", "content": system}] if system else []) + messages


def _stream_text(line: str) -> str | None:
    if not line.startswith("data: ") or line == "data: [DONE]":
        return None
    chunk = json.loads(line[6:])
    if "error" in chunk:
        raise RegistryError(502, chunk["error"].get("message", "stream failed"), chunk["error"].get("code"), chunk)
    choices = chunk.get("choices") or [{}]
    return (choices[0].get("delta") or {}).get("content") or None


class AIRegistryClient:
    """Synchronous client. `api_key` defaults to the AFMTS_API_KEY environment variable."""

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None):
        key = api_key or os.environ.get("AFMTS_API_KEY", "")
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
                                 headers={"authorization": f"Bearer {key}"} if key else {})
        self.alternatives = _Alternatives()

    def __enter__(self) -> AIRegistryClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _do(self, call: Call) -> Any:
        return _result(self.http.request(call.method, call.path, json=call.json, params=call.params))

    def find_models(self, criteria: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        found = self._do(_Calls.find_models(criteria, **kwargs))
        self.alternatives.remember(found)
        return found["models"]

    def discover_model(self, capability: str, criteria: dict[str, Any] | None = None, *, max_latency: float | None = None,
                       min_reliability: float | None = None, max_cost_per_token: float | None = None,
                       free_only: bool | None = None) -> dict[str, Any] | None:
        """The best model for a capability under the seed's limits, or None. The next best ones are
        remembered as its alternatives (see create_model_client)."""
        found = self._do(_Calls.find_models(
            {**(criteria or {}), "capability": capability, "limit": 1 + FALLBACKS}, max_latency=max_latency,
            min_reliability=min_reliability, max_cost_per_token=max_cost_per_token, free_only=free_only))
        self.alternatives.remember(found)
        return _first(found)

    def list_models(self, **filters: Any) -> dict[str, Any]:
        return self._do(_Calls.list_models(**filters))

    def get_model(self, model_id: int | str) -> dict[str, Any]:
        return self._do(_Calls.get_model(model_id))

    def get_model_communication(self, model_id: int | str) -> dict[str, Any]:
        return self._do(_Calls.get_model_communication(model_id))

    def register_model(self, model: dict[str, Any], *, upsert: bool = False) -> dict[str, Any]:
        return self._do(_Calls.register_model(model, upsert))

    def register_agent(self, agent: dict[str, Any]) -> dict[str, Any]:
        return self._do(_Calls.register_agent(agent))

    def heartbeat(self, agent_id: int) -> dict[str, Any]:
        return self._do(_Calls.heartbeat(agent_id))

    def route_task(self, task: dict[str, Any]) -> dict[str, Any]:
        return self._do(_Calls.route_task(task))

    def get_stats(self) -> dict[str, Any]:
        return self._do(_Calls.get_stats())

    def free_models(self) -> list[dict[str, Any]]:
        return self._do(_Calls.free_models())["models"]

    def create_model_client(self, model: int | str | dict[str, Any], *,
                            fallbacks: list[str] | None = None) -> ModelClient:
        """A client for one model (a numeric id, a public id like "groq/llama-3.1-8b-instant", a policy
        like "free", or a model dict from find_models). Its calls go through the gateway with
        `fallbacks` — by default the alternatives the discovery that found the model ranked next — so
        a failing model fails over within the same request."""
        model = _model_name(model)
        if isinstance(model, int) or str(model).isdigit():
            model = self.get_model(model)["publicId"]
        return ModelClient(self, str(model), self.alternatives.of(str(model), fallbacks))


class ModelClient:
    """Calls one model through the gateway. `served_by` names the model that answered the last call
    (the gateway's x-afmts-model: the model itself or one of its fallbacks)."""

    def __init__(self, registry: AIRegistryClient, model: str, fallbacks: tuple[str, ...] = ()):
        self.registry, self.model, self.fallbacks = registry, model, fallbacks
        self.served_by: str | None = None

    def chat(self, messages: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
        call = _Calls.chat(self.model, messages, self.fallbacks, **options)
        response = self.registry.http.request(call.method, call.path, json=call.json)
        self.served_by = response.headers.get("x-afmts-model")
        return _result(response)

    def query(self, prompt: str | list[dict[str, Any]], *, system: str | None = None, **options: Any) -> str:
        return _text(self.chat(_messages(prompt, system), **options))

    def stream(self, prompt: str | list[dict[str, Any]], *, system: str | None = None, **options: Any) -> Iterator[str]:
        call = _Calls.chat(self.model, _messages(prompt, system), self.fallbacks, stream=True, **options)
        with self.registry.http.stream(call.method, call.path, json=call.json) as response:
            self.served_by = response.headers.get("x-afmts-model")
            if response.status_code >= 400:
                response.read()
                _result(response)
            for line in response.iter_lines():
                text = _stream_text(line)
                if text:
                    yield text


class AsyncAIRegistryClient:
    """Asynchronous client: the same methods as AIRegistryClient, awaited."""

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, *, timeout: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        key = api_key or os.environ.get("AFMTS_API_KEY", "")
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
                                      headers={"authorization": f"Bearer {key}"} if key else {})
        self.alternatives = _Alternatives()

    async def __aenter__(self) -> AsyncAIRegistryClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def _do(self, call: Call) -> Any:
        return _result(await self.http.request(call.method, call.path, json=call.json, params=call.params))

    async def find_models(self, criteria: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        found = await self._do(_Calls.find_models(criteria, **kwargs))
        self.alternatives.remember(found)
        return found["models"]

    async def discover_model(self, capability: str, criteria: dict[str, Any] | None = None, *,
                             max_latency: float | None = None, min_reliability: float | None = None,
                             max_cost_per_token: float | None = None, free_only: bool | None = None) -> dict[str, Any] | None:
        found = await self._do(_Calls.find_models(
            {**(criteria or {}), "capability": capability, "limit": 1 + FALLBACKS}, max_latency=max_latency,
            min_reliability=min_reliability, max_cost_per_token=max_cost_per_token, free_only=free_only))
        self.alternatives.remember(found)
        return _first(found)

    async def list_models(self, **filters: Any) -> dict[str, Any]:
        return await self._do(_Calls.list_models(**filters))

    async def get_model(self, model_id: int | str) -> dict[str, Any]:
        return await self._do(_Calls.get_model(model_id))

    async def get_model_communication(self, model_id: int | str) -> dict[str, Any]:
        return await self._do(_Calls.get_model_communication(model_id))

    async def register_model(self, model: dict[str, Any], *, upsert: bool = False) -> dict[str, Any]:
        return await self._do(_Calls.register_model(model, upsert))

    async def register_agent(self, agent: dict[str, Any]) -> dict[str, Any]:
        return await self._do(_Calls.register_agent(agent))

    async def heartbeat(self, agent_id: int) -> dict[str, Any]:
        return await self._do(_Calls.heartbeat(agent_id))

    async def route_task(self, task: dict[str, Any]) -> dict[str, Any]:
        return await self._do(_Calls.route_task(task))

    async def get_stats(self) -> dict[str, Any]:
        return await self._do(_Calls.get_stats())

    async def free_models(self) -> list[dict[str, Any]]:
        return (await self._do(_Calls.free_models()))["models"]

    async def create_model_client(self, model: int | str | dict[str, Any], *,
                                  fallbacks: list[str] | None = None) -> AsyncModelClient:
        model = _model_name(model)
        if isinstance(model, int) or str(model).isdigit():
            model = (await self.get_model(model))["publicId"]
        return AsyncModelClient(self, str(model), self.alternatives.of(str(model), fallbacks))


class AsyncModelClient:
    """ModelClient, awaited."""

    def __init__(self, registry: AsyncAIRegistryClient, model: str, fallbacks: tuple[str, ...] = ()):
        self.registry, self.model, self.fallbacks = registry, model, fallbacks
        self.served_by: str | None = None

    async def chat(self, messages: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
        call = _Calls.chat(self.model, messages, self.fallbacks, **options)
        response = await self.registry.http.request(call.method, call.path, json=call.json)
        self.served_by = response.headers.get("x-afmts-model")
        return _result(response)

    async def query(self, prompt: str | list[dict[str, Any]], *, system: str | None = None, **options: Any) -> str:
        return _text(await self.chat(_messages(prompt, system), **options))

    async def stream(self, prompt: str | list[dict[str, Any]], *, system: str | None = None,
                     **options: Any) -> AsyncIterator[str]:
        call = _Calls.chat(self.model, _messages(prompt, system), self.fallbacks, stream=True, **options)
        async with self.registry.http.stream(call.method, call.path, json=call.json) as response:
            self.served_by = response.headers.get("x-afmts-model")
            if response.status_code >= 400:
                await response.aread()
                _result(response)
            async for line in response.aiter_lines():
                text = _stream_text(line)
                if text:
                    yield text
