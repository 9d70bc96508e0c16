"""Writes to the registry. Each runs in one transaction and publishes its event through the one
publisher (registry.events), so nothing is half-written and every process learns of it."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify
from rest_framework.exceptions import ValidationError

from afmts import urlpolicy
from afmts.errors import Conflict
from registry.budget import budget_set
from registry.events import publish
from registry.models import (
    Agent,
    AgentStatus,
    AIModel,
    ApiKey,
    KeyScope,
    Provider,
    Source,
)
from registry.providers import adapter_class
from registry.selectors import model_instance_representation

KEY_PREFIX = "afmts_"


# ------------------------------------------------------------------ providers


def outbound_url(url: str, *, kind: str, field: str) -> str:
    """`url` if the outbound URL policy's syntactic check passes for `kind`, else a 400 naming
    `field` and the rule. Every writer of a URL AFMTS calls passes here; the REST serializers, admin
    forms and register_provider also resolve the name, and the connect-time check is the real guard."""
    try:
        urlpolicy.check_url(url, kind=kind)
    except urlpolicy.Refused as exc:
        raise ValidationError({field: [urlpolicy.message(exc)]}, code="url_policy") from None
    return url


# A model registered without capabilities gets its type's (the seeds register `type: "llm"` only).
TYPE_CAPABILITIES: dict[str, list[str]] = {
    "llm": ["text-generation"], "chat": ["text-generation"], "completion": ["text-generation"],
    "vision": ["text-generation", "vision"], "embedding": ["embeddings"], "image": ["image-generation"],
    "audio": ["audio"], "rerank": ["rerank"],
}


def canonical_base_url(kind: str, url: str) -> str:
    """A base URL as the kind's adapter wants it: the API prefix its paths add themselves is
    stripped (a trailing `/v1`, OpenRouter's `/api/v1` -> `/api`, Groq's `/openai/v1` -> `/openai`,
    Gemini's `/v1beta`, GitHub's `/inference`, ...), and the kind's own host typed bare gets the
    kind's path (`https://openrouter.ai` -> `https://openrouter.ai/api`). Without this, a URL typed
    the way the OpenAI SDK, vLLM or LiteLLM want it sends every call to `/v1/v1/...`."""
    adapter = adapter_class(kind)
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    prefixes = {"/v1"} | {
        "/" + p.strip("/").split("/", 1)[0]
        for p in (adapter.chat_path, adapter.models_path, getattr(adapter, "embeddings_path", None)) if p
    }
    default = urlsplit(adapter.default_base_url)
    while path and not (path == default.path.rstrip("/") and parts.netloc == default.netloc):
        last = "/" + path.rsplit("/", 1)[-1]
        if last not in prefixes:
            break
        path = path[: -len(last)]
    if not path and parts.netloc == default.netloc and default.path.strip("/"):
        path = default.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _normalized(kind: str, url: str, field: str, notes: list[str]) -> str:
    canonical = canonical_base_url(kind, url)
    if canonical != url.strip().rstrip("/"):
        notes.append(f"{field} stored as {canonical} (given {url.strip()}): the {kind} adapter adds the API path itself.")
    return canonical


def base_url_verify(*, kind: str, base_url: str, api_key: str | None, field: str = "baseUrl") -> None:
    """A 400 naming what was tried unless the kind's model listing answers at `base_url` (the
    outbound URL policy applies at connect time). Call outside any transaction: it is network I/O."""
    from afmts.logging import sanitize
    from registry.providers.http import close_clients

    adapter = adapter_class(kind)(base_url=base_url, api_key=api_key or None)
    tried = f"GET {base_url}{adapter.models_path}"

    async def listing() -> None:
        try:
            await asyncio.wait_for(adapter.list_models(), 10)
        finally:
            await close_clients()

    try:
        asyncio.run(listing())
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        reason = "no answer within 10 s" if isinstance(exc, TimeoutError) else sanitize(f"{type(exc).__name__}: {exc}", 500)
        raise ValidationError(
            {field: [f"{base_url} did not answer as a {adapter.label} server: tried {tried}: {reason}"]},
            code="unreachable",
        ) from None


def provider_data(provider: Provider) -> dict[str, Any]:
    """A provider as the API and events show it: the credential never, only whether there is one."""
    notes = getattr(provider, "notes", None)
    return ({"notes": notes} if notes else {}) | {
        "id": provider.id,
        "slug": provider.slug,
        "name": provider.name,
        "kind": provider.kind,
        "baseUrl": provider.base_url,
        "enabled": provider.enabled,
        "isDemo": provider.is_demo,
        "hasApiKey": provider.has_api_key,
        "freeQuota": provider.quota(),
        "metadata": provider.metadata,
        "discoveryEnabled": provider.discovery_enabled,
        "discoveryInterval": provider.discovery_interval,
        "probeEnabled": provider.probe_enabled,
        "status": provider.status,
        "failures": provider.failures,
        "lastError": provider.last_error,
        "lastDiscoveryAt": provider.last_discovery_at,
        "nextDiscoveryAt": provider.next_discovery_at,
        "createdAt": provider.created_at,
        "updatedAt": provider.updated_at,
    }


@transaction.atomic
def provider_update(*, provider: Provider, fields: dict[str, Any]) -> Provider:
    if "api_key" in fields:
        provider.api_key = fields.pop("api_key") or None
    if "base_url" in fields:
        notes: list[str] = []
        fields["base_url"] = outbound_url(_normalized(provider.kind, fields["base_url"], "baseUrl", notes),
                                          kind=provider.kind, field="baseUrl")
        provider.notes = notes
    for name, value in fields.items():
        setattr(provider, name, value)
    provider.save()
    publish("provider_updated", provider_data(provider))
    return provider


@transaction.atomic
def provider_delete(*, provider: Provider) -> None:
    data = provider_data(provider)
    provider.delete()
    publish("provider_deleted", data)


def provider_create(
    *, slug: str, kind: str, base_url: str | None = None, api_key: str | None = None,
    name: str | None = None, is_demo: bool = False, **fields: Any,
) -> Provider:
    adapter = adapter_class(kind)
    notes: list[str] = []
    url = _normalized(kind, base_url, "baseUrl", notes) if base_url else adapter.default_base_url
    provider = Provider(
        slug=slugify(slug), kind=kind, name=name or adapter.label,
        base_url=outbound_url(url, kind=kind, field="baseUrl"), is_demo=is_demo, **fields,
    )
    provider.notes = notes
    provider.api_key = api_key
    with transaction.atomic():
        provider.save()
        publish("provider_registered", provider_data(provider))
    return provider


# ------------------------------------------------------------------ models


def model_data(model: AIModel) -> dict[str, Any]:
    data = model_instance_representation(model)
    notes = getattr(model.provider, "notes", None)
    return data | {"notes": notes} if notes else data


@transaction.atomic
def model_register(
    *, provider_slug: str, provider_kind: str | None, endpoint: str | None, api_key: str | None,
    model_fields: dict[str, Any], upsert: bool = False,
) -> tuple[AIModel, bool]:
    """Register a model as the seed's POST /api/models/register does: the provider is named by slug
    and created on first use. Returns (model, created). A model already registered under the same
    provider and model id is a conflict unless `upsert`."""
    provider = Provider.objects.select_for_update().filter(slug=provider_slug).first()
    if provider is None:
        if endpoint:
            outbound_url(endpoint, kind=provider_kind or provider_slug, field="endpoint")
        provider = provider_create(
            slug=provider_slug, kind=provider_kind or provider_slug, base_url=endpoint, api_key=api_key
        )
    elif api_key:
        provider.api_key = api_key  # a key given on registration replaces the stored one (rotation)
        provider.save(update_fields=["api_key_encrypted", "updated_at"])

    fields = dict(model_fields)
    adapter = adapter_class(provider.kind)
    if fields.get("is_free") is None:
        local = adapter.is_local(provider.base_url)
        fields["is_free"] = local
        if local:
            fields.setdefault("free_reason", "local server")
    if fields["is_free"]:
        fields.setdefault("free_reason", "marked free on registration")
        fields.setdefault("input_price", 0)
        fields.setdefault("output_price", 0)
    fields = {k: v for k, v in fields.items() if v is not None}

    model_id = fields.pop("model_id")
    existing = AIModel.objects.select_for_update().filter(provider=provider, model_id=model_id).first()
    if existing is not None and not upsert:
        raise Conflict(
            f"Model '{provider.slug}/{model_id}' is already registered (id {existing.id}); "
            "use PUT /api/models/{id} or ?upsert=true."
        )
    if existing is not None:
        for name, value in fields.items():
            setattr(existing, name, value)
        existing.last_seen = timezone.now()
        existing.save()
        publish("model_updated", model_data(existing))
        return existing, False
    if not fields.get("capabilities"):
        fields["capabilities"] = list(TYPE_CAPABILITIES.get(fields.get("type") or "llm", []))
    try:
        with transaction.atomic():
            model = AIModel.objects.create(provider=provider, model_id=model_id, source=Source.MANUAL, **fields)
    except IntegrityError as exc:  # a concurrent registration won the race
        raise Conflict(f"Model '{provider.slug}/{model_id}' is already registered.") from exc
    publish("model_registered", model_data(model))
    return model, True


@transaction.atomic
def model_update(*, model: AIModel, fields: dict[str, Any]) -> AIModel:
    """Operator edit. On a discovered model, edited fields are pinned so discovery keeps them."""
    changed = [name for name, value in fields.items() if getattr(model, name) != value]
    for name, value in fields.items():
        setattr(model, name, value)
    if model.source == Source.DISCOVERED and "pinned_fields" not in fields:
        model.pinned_fields = sorted(set(model.pinned_fields) | set(changed) - {"disabled", "priority"})
    model.save()
    publish("model_updated", {**model_data(model), "changed": changed})
    return model


@transaction.atomic
def model_delete(*, model: AIModel) -> None:
    data = model_data(model)
    model.delete()
    publish("model_deleted", data)


# ------------------------------------------------------------------ agents


def agent_data(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "type": agent.type,
        "capabilities": agent.capabilities,
        "endpoint": agent.endpoint,
        "status": agent.status,
        "lastHeartbeat": agent.last_heartbeat,
        "metadata": agent.metadata,
        "createdAt": agent.created_at,
        "updatedAt": agent.updated_at,
    }


@transaction.atomic
def agent_register(*, name: str, fields: dict[str, Any]) -> tuple[Agent, bool]:
    """Register an agent, or re-register one that restarted (same name): it is online again."""
    if fields.get("endpoint"):
        outbound_url(fields["endpoint"], kind=urlpolicy.AGENT, field="endpoint")
    agent, created = Agent.objects.select_for_update().get_or_create(name=name, defaults=fields)
    if not created:
        for key, value in fields.items():
            setattr(agent, key, value)
    agent.status = AgentStatus.ONLINE
    agent.last_heartbeat = timezone.now()
    agent.save()
    publish("agent_connected", agent_data(agent))
    return agent, created


@transaction.atomic
def agent_update(*, agent: Agent, fields: dict[str, Any]) -> Agent:
    if fields.get("endpoint"):
        outbound_url(fields["endpoint"], kind=urlpolicy.AGENT, field="endpoint")
    was = agent.status
    for key, value in fields.items():
        setattr(agent, key, value)
    agent.save()
    if agent.status != was:
        publish("agent_connected" if agent.status == AgentStatus.ONLINE else "agent_disconnected", agent_data(agent))
    else:
        publish("agent_updated", agent_data(agent))
    return agent


@transaction.atomic
def agent_heartbeat(*, agent: Agent) -> Agent:
    """A heartbeat of an online or busy agent only stamps the time; one that was offline comes back."""
    was = agent.status
    if was != AgentStatus.BUSY:
        agent.status = AgentStatus.ONLINE
    agent.last_heartbeat = timezone.now()
    agent.save(update_fields=["status", "last_heartbeat", "updated_at"])
    if was == AgentStatus.OFFLINE:
        publish("agent_connected", agent_data(agent))
    return agent


# ------------------------------------------------------------------ API keys


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def apikey_create(*, name: str, scope: str = KeyScope.USER, rate_limit_per_minute: int | None = None,
                  monthly_budget_usd: Decimal | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns it with its secret, which is shown this once and never stored."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32).replace("-", "x").replace("_", "y")
    key = ApiKey.objects.create(
        name=name, prefix=secret[: len(KEY_PREFIX) + 6], hashed=hash_key(secret), scope=scope,
        rate_limit_per_minute=rate_limit_per_minute, monthly_budget_usd=monthly_budget_usd,
    )
    publish("api_key_created", {"id": key.id, "name": name, "prefix": key.prefix, "scope": scope})
    if monthly_budget_usd is not None:
        budget_set.send(sender=ApiKey, key=key)
    return key, secret


@transaction.atomic
def apikey_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        publish("api_key_revoked", {"id": key.id, "name": key.name, "prefix": key.prefix})
    return key



@transaction.atomic
def agents_mark_stale(*, now=None, timeout_seconds: float | None = None) -> list[Agent]:
    """Agents whose last heartbeat is older than the timeout go offline (agent_disconnected)."""
    from datetime import timedelta

    from django.conf import settings

    now = now or timezone.now()
    timeout = timeout_seconds if timeout_seconds is not None else settings.AFMTS_AGENT_TIMEOUT_SECONDS
    stale = list(
        Agent.objects.select_for_update()
        .filter(status__in=[AgentStatus.ONLINE, AgentStatus.BUSY], last_heartbeat__lt=now - timedelta(seconds=timeout))
    )
    for agent in stale:
        agent.status = AgentStatus.OFFLINE
        agent.save(update_fields=["status", "updated_at"])
    if stale:
        from registry.events import publish_many

        publish_many([("agent_disconnected", {**agent_data(a), "reason": "missed heartbeats"}) for a in stale])
    return stale
