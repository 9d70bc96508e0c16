"""Discovery: list every due provider concurrently and fold each listing into the registry.

`apply_listing` is the write side, idempotent and batched: new models are created, changed ones
updated (never a pinned field), models gone from the listing are retired after a grace, and every
change becomes a history row (ModelChange) and an event. A listing identical to the registry writes
nothing. Two workers applying the same provider at once are serialized by a row lock on the provider
and the unique (provider, model id) constraint, so rows are neither duplicated nor lost.

`run_cycle` lists providers concurrently (asyncio): one slow or failing provider never delays the
others' writes, and a cycle takes as long as its slowest provider, not the sum. A failed listing
backs off the listing only (`record_failure`): the provider's known models stay routable until
their own traffic shows they fail (DESIGN.md, "Breakers and health judge rates, not counts").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from afmts.logging import sanitize
from afmts.metrics import observe_discovery
from registry import bulk, quota, selectors
from registry.events import publish_many
from registry.models import AIModel, HealthSample, ModelChange, ModelStatus, ModelType, Provider, ProviderStatus, Source
from registry.providers.errors import RateLimited

log = logging.getLogger(__name__)

SIX_PLACES = Decimal("0.000001")
# The fields a listing owns; each maps from the record (see _fields_from_record).
TRACKED = (
    "name", "type", "capabilities", "context_window", "max_output_tokens", "input_price", "output_price",
    "is_free", "free_reason", "free_rpm", "free_rpd", "free_tpm", "free_tpd", "quota_scope", "metadata",
    "expires_at",
)
BECAME, STOPPED = "model_became_free", "model_stopped_being_free"
MODEL_TYPES = frozenset(ModelType.values)


@dataclass
class ProviderResult:
    provider: str
    seen: int = 0
    new: int = 0
    changed: int = 0
    retired: int = 0
    free: int = 0
    skipped: int = 0
    error: str = ""
    seconds: float = 0.0
    writes: int = 0
    events: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error


def _price(value) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(SIX_PLACES)


def expiry(value: Any) -> datetime | None:
    """A listing's expiration date as a UTC time: OpenRouter's `expiration_date` is a date
    ("2025-06-01", the day the offer is gone: its start) or a full ISO time; anything else is None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _fields_from_record(record, now: datetime) -> dict[str, Any]:
    quota = record.quota or {}
    model_type = record.type if record.type in MODEL_TYPES else ModelType.LLM
    expires_at = expiry((record.metadata or {}).get("expiration_date"))
    # A free offer past its expiry is over, whatever the listing still says.
    is_free = bool(record.is_free) and (expires_at is None or expires_at > now)
    return {
        "name": (record.name or record.id)[:255],
        "type": model_type,
        "capabilities": list(record.capabilities or []),
        "context_window": record.context_window or None,
        "max_output_tokens": record.max_output_tokens or None,
        "input_price": _price(record.input_price),
        "output_price": _price(record.output_price),
        "is_free": is_free,
        "free_reason": (record.free_reason or "")[:255] if is_free else "",
        "free_rpm": quota.get("rpm"),
        "free_rpd": quota.get("rpd"),
        "free_tpm": quota.get("tpm"),
        "free_tpd": quota.get("tpd"),
        "quota_scope": record.quota_scope or "model",
        "metadata": record.metadata or {},
        "expires_at": expires_at,
    }


def free_now(is_free: bool, status: str) -> bool:
    """Free for a user right now: a free offer on a model still listed (expiry is folded into
    is_free). The history records every change of this, one row per transition."""
    return bool(is_free) and status != ModelStatus.RETIRED


def _change(model_pk: int, public_id: str, event: str, at: datetime, *, field: str = "", old: Any = None,
            new: Any = None, reason: str = "") -> dict[str, Any]:
    """A history row (ModelChange), as bulk.insert_rows takes it."""
    return {"model_id": model_pk, "public_id": public_id, "event": event, "field": field, "old": old, "new": new,
            "reason": reason, "at": at}


def _free_change(model_pk: int, public_id: str, became: bool, reason: str, now: datetime) -> dict[str, Any]:
    return _change(model_pk, public_id, BECAME if became else STOPPED, now, field="is_free", old=not became,
                   new=became, reason=reason)


def _why(became: bool, diff: dict[str, tuple[Any, Any]], was_retired: bool, expires_at: datetime | None,
         now: datetime) -> str:
    if became:
        if was_retired:
            return "returned"
        return "price" if {"input_price", "output_price"} & set(diff) else "listed"
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "price" if {"input_price", "output_price"} & set(diff) else "rules"


def fingerprint(fields: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return float(value) if isinstance(value, Decimal) else value


def _last_seen_resolution() -> timedelta:
    # last_seen is refreshed at most this often, so an unchanged cycle writes nothing; it stays well
    # under the retire grace so that a model still listed is never retired.
    grace = settings.AFMTS_RETIRE_GRACE_SECONDS
    return timedelta(seconds=max(0.0, min(settings.AFMTS_LAST_SEEN_RESOLUTION_SECONDS, grace / 3)))


def apply_listing(provider_id: int, listing, *, now: datetime | None = None) -> ProviderResult:
    """Fold one provider's listing into the registry. See the module docstring."""
    now = now or timezone.now()
    events: list[tuple[str, dict]] = []
    changes: list[dict[str, Any]] = []
    writes = 0
    with transaction.atomic():
        provider = Provider.objects.select_for_update().get(pk=provider_id)
        result = ProviderResult(provider=provider.slug, skipped=listing.skipped)
        records = {}
        for record in listing.models:
            records.setdefault(record.id, record)  # a listing that repeats an id keeps the first
        # Light rows first: an entry whose fingerprint matches what was last applied is unchanged,
        # and its row is never decoded (most of a cycle, most of the time).
        light = {
            row[0]: row for row in AIModel.objects.filter(provider=provider).values_list(
                "model_id", "pk", "fingerprint", "status", "last_seen", "source")
        }
        to_create: list[dict[str, Any]] = []
        to_update: list[AIModel] = []
        update_fields: set[str] = set()
        stale_seen: list[int] = []
        to_compare: dict[int, tuple[dict[str, Any], str]] = {}
        resolution = _last_seen_resolution()

        for model_id, record in records.items():
            fields = _fields_from_record(record, now)
            digest = fingerprint(fields)
            result.seen += 1
            result.free += fields["is_free"]
            row = light.get(model_id)
            if row is None:
                # A plain row, not an AIModel: a first cycle creates thousands (see registry.bulk).
                fields.update(provider_id=provider.pk, model_id=model_id, source=Source.DISCOVERED, first_seen=now,
                              last_seen=now, fingerprint=digest)
                to_create.append(fields)
            elif row[2] != digest or row[3] == ModelStatus.RETIRED:
                to_compare[row[1]] = (fields, digest)
            elif row[4] is None or now - row[4] >= resolution:
                stale_seen.append(row[1])

        for model in AIModel.objects.filter(pk__in=to_compare) if to_compare else ():
            fields, digest = to_compare[model.pk]
            model_id = model.model_id
            pinned = set(model.pinned_fields or [])
            diff = {
                name: (getattr(model, name), value)
                for name, value in fields.items()
                if name not in pinned and getattr(model, name) != value
            }
            was_retired = model.status == ModelStatus.RETIRED
            if was_retired and "status" not in pinned:
                diff["status"] = (ModelStatus.RETIRED, ModelStatus.AVAILABLE)
            model.fingerprint = digest
            update_fields.add("fingerprint")
            model.last_seen = model.updated_at = now
            to_update.append(model)
            if not diff:
                continue  # only pinned fields differ (or a first look at a manual model): remember it
            was_free = free_now(model.is_free, model.status)
            public_id = f"{provider.slug}/{model_id}"
            for name, (old, new) in diff.items():
                setattr(model, name, new)
                update_fields.add(name)
                if name == "is_free":
                    continue  # is_free rows are the free history's transitions, written below
                changes.append(_change(
                    model.pk, public_id, "model_updated", now, field=name,
                    old=_jsonable(old) if name != "metadata" else None,
                    new=_jsonable(new) if name != "metadata" else None,
                ))
            result.changed += 1
            events.append(("model_updated", {"model": model, "changed": sorted(diff)}))
            is_free = free_now(model.is_free, model.status)
            if is_free != was_free:
                reason = _why(is_free, diff, was_retired, model.expires_at, now)
                changes.append(_free_change(model.pk, public_id, is_free, reason, now))
                events.append((BECAME if is_free else STOPPED, {"model": model, "reason": reason}))

        if to_create:
            bulk.insert_rows(AIModel, to_create, fill=True)
            writes += 1
            provider_columns = selectors.provider_columns(provider)
            for row in to_create:
                result.new += 1
                public_id = f"{provider.slug}/{row['model_id']}"
                changes.append(_change(row["id"], public_id, "model_registered", now))
                # The row is final: its event data is built now, once for both of its events.
                shown = _shown(selectors.model_representation(row | provider_columns))
                events.append(("model_registered", shown))
                if row["is_free"]:
                    changes.append(_free_change(row["id"], public_id, True, "listed", now))
                    events.append((BECAME, {**shown, "reason": "listed"}))
        if to_update:
            AIModel.objects.bulk_update(to_update, sorted(update_fields | {"last_seen", "updated_at"}), batch_size=500)
            writes += 1
        if stale_seen:
            AIModel.objects.filter(pk__in=stale_seen).update(last_seen=now)
            writes += 1

        grace = timedelta(seconds=settings.AFMTS_RETIRE_GRACE_SECONDS)
        gone_pks = [
            row[1] for model_id, row in light.items()
            if model_id not in records and row[5] == Source.DISCOVERED and row[3] != ModelStatus.RETIRED
            and (row[4] is None or now - row[4] >= grace)
        ]
        gone = [m for m in AIModel.objects.filter(pk__in=gone_pks) if "status" not in (m.pinned_fields or [])] if gone_pks else []
        if gone:
            AIModel.objects.filter(pk__in=[m.pk for m in gone]).update(status=ModelStatus.RETIRED, updated_at=now)
            writes += 1
            for model in gone:
                public_id = f"{provider.slug}/{model.model_id}"
                was_free = free_now(model.is_free, model.status)
                changes.append(_change(
                    model.pk, public_id, "model_retired", now, field="status", old=model.status,
                    new=ModelStatus.RETIRED,
                ))
                model.status = ModelStatus.RETIRED
                events.append(("model_retired", {"model": model}))
                result.retired += 1
                if was_free:
                    # Most free offers end this way: the ":free" variant vanishes from the listing.
                    changes.append(_free_change(model.pk, public_id, False, "withdrawn", now))
                    events.append((STOPPED, {"model": model, "reason": "withdrawn"}))

        provider_fields = _provider_success_fields(provider, now)
        if provider_fields:
            Provider.objects.filter(pk=provider.pk).update(**provider_fields)
            writes += 1
            if provider_fields.get("status") == ProviderStatus.UP:
                events.append(("provider_up", {"provider": provider.slug, "models": result.seen}))
        if changes:
            bulk.insert_rows(ModelChange, changes)
            writes += 1
        if events:
            # Model representations are JSON already: no round trip through the encoder.
            publish_many([(name, _event_data(provider, data)) for name, data in events], json_ready=True)
            writes += 1
    result.writes = writes
    result.events = [name for name, _ in events]
    return result


def expire_due(*, now: datetime | None = None) -> int:
    """Free offers whose expiry has passed end now, between listings too: is_free goes off, with a
    `model_stopped_being_free` row and event (reason `expired`). The routing snapshot already leaves
    them out from the expiry on (registry.selectors); the event makes every process rebuild."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            AIModel.objects.select_for_update().select_related("provider")
            .filter(is_free=True, expires_at__lte=now).exclude(status=ModelStatus.RETIRED)
        )
        if not due:
            return 0
        AIModel.objects.filter(pk__in=[m.pk for m in due]).update(is_free=False, free_reason="", updated_at=now)
        changes, events = [], []
        for model in due:
            model.is_free, model.free_reason = False, ""
            changes.append(_free_change(model.pk, model.public_id, False, "expired", now))
            events.append((STOPPED, _event_data(model.provider, {"model": model, "reason": "expired"})))
        bulk.insert_rows(ModelChange, changes)
        publish_many(events, json_ready=True)
    return len(due)


RESULT_KEY = "afmts:discovery:{slug}"


def keep_results(results: list[ProviderResult]) -> None:
    """Keep each provider's last listing result (when, how long, seen, new, changed, retired, error)
    in the shared cache for the dashboard — not in the database, so an unchanged cycle still writes
    nothing there. Server mode shares it through Redis; embedded mode through the data folder."""
    from django.core.cache import cache

    at = time.time()
    cache.set_many({
        RESULT_KEY.format(slug=r.provider): {
            "at": at, "seconds": round(r.seconds, 3), "seen": r.seen, "new": r.new, "changed": r.changed,
            "retired": r.retired, "error": r.error, "changesAt": None,
        } for r in results
    }, 7 * 86400)


def last_result(slug: str) -> dict[str, Any] | None:
    from django.core.cache import cache

    return cache.get(RESULT_KEY.format(slug=slug))


def _provider_success_fields(provider: Provider, now: datetime) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if provider.status != ProviderStatus.UP:
        fields["status"] = ProviderStatus.UP
    if provider.failures or provider.last_error or provider.next_discovery_at:
        fields.update(failures=0, last_error="", next_discovery_at=None)
    # Only providers listed less often than every cycle need the time of their last run to know when
    # they are due; for the others it is refreshed as coarsely as last_seen.
    coarse = _last_seen_resolution()
    if provider.discovery_interval > settings.AFMTS_DISCOVERY_CYCLE_SECONDS or (
        provider.last_discovery_at is None or now - provider.last_discovery_at >= coarse
    ):
        fields["last_discovery_at"] = now
    return fields


def _event_data(provider: Provider, data: dict) -> dict:
    """A model event's data: the model as the API shows it, without the provider's raw metadata
    (often kilobytes; GET /api/models/{id} has it). Data without a model is already the event's."""
    model = data.pop("model", None)
    if model is None:
        return data
    return {**_shown(selectors.model_instance_representation(model, provider)), **data}


def _shown(representation: dict) -> dict:
    representation.pop("metadata", None)
    return representation


def record_failure(
    provider_id: int, error: str, *, now: datetime | None = None, retry_after: float | None = None,
    rate_limited: bool = False,
) -> ProviderResult:
    """A failed listing. Only the listing backs off; routing keeps the provider's models (their
    breakers and passive health judge them by their own traffic).

    - A 429 (`rate_limited`) is not a failure: the next listing waits for the provider's
      Retry-After (or one interval), and nothing else changes.
    - Any other failure backs the listing off: interval × 2^(failures − 1), capped at
      AFMTS_DISCOVERY_MAX_BACKOFF_SECONDS.
    - The provider is `down` (one `provider_down` event) only after AFMTS_PROVIDER_DOWN_AFTER failed
      listings in a row *and* no successful call to any of its models (traffic or probe) within
      AFMTS_PROVIDER_TRAFFIC_SECONDS: a listing endpoint that fails while completions answer says
      nothing about serving. The status is information; it never removes models from routing.
    """
    now = now or timezone.now()
    error = sanitize(error, 2000)  # upstream text is untrusted: it may quote the key
    with transaction.atomic():
        provider = Provider.objects.select_for_update().get(pk=provider_id)
        if rate_limited:
            wait = max(float(retry_after or 0), float(provider.discovery_interval), 1.0)
            Provider.objects.filter(pk=provider.pk).update(
                last_error=error[:2000], next_discovery_at=now + timedelta(seconds=wait), last_discovery_at=now,
            )
            return ProviderResult(provider=provider.slug, error=error)
        failures = provider.failures + 1
        delay = min(provider.discovery_interval * 2 ** (failures - 1), settings.AFMTS_DISCOVERY_MAX_BACKOFF_SECONDS)
        fields = {
            "failures": failures, "last_error": error[:2000], "next_discovery_at": now + timedelta(seconds=delay),
            "last_discovery_at": now,
        }
        went_down = (
            provider.status != ProviderStatus.DOWN and failures >= settings.AFMTS_PROVIDER_DOWN_AFTER
            and not _served_recently(provider.pk, now)
        )
        if went_down:
            fields["status"] = ProviderStatus.DOWN
        Provider.objects.filter(pk=provider.pk).update(**fields)
        if went_down:
            publish_many([("provider_down", {"provider": provider.slug, "error": error[:500], "failures": failures})])
    return ProviderResult(provider=provider.slug, error=error, events=["provider_down"] if went_down else [])


def _served_recently(provider_id: int, now: datetime) -> bool:
    """Whether any model of the provider answered a call (traffic or probe) lately."""
    window = timedelta(seconds=settings.AFMTS_PROVIDER_TRAFFIC_SECONDS)
    return HealthSample.objects.filter(model__provider_id=provider_id, ok=True, at__gte=now - window).exists()


def due_providers(*, now: datetime | None = None, slugs: list[str] | None = None) -> list[Provider]:
    """Enabled providers whose interval has passed and whose back-off (if any) is over."""
    now = now or timezone.now()
    providers = Provider.objects.filter(enabled=True, discovery_enabled=True)
    if slugs:
        return list(providers.filter(slug__in=slugs))
    cycle = settings.AFMTS_DISCOVERY_CYCLE_SECONDS
    due = []
    for provider in providers:
        if provider.next_discovery_at and provider.next_discovery_at > now:
            continue
        if (
            provider.discovery_interval > cycle and provider.last_discovery_at
            and now - provider.last_discovery_at < timedelta(seconds=provider.discovery_interval)
        ):
            continue
        due.append(provider)
    return due


ListFn = Callable[[Provider], Any]


async def run_cycle(providers: list[Provider], list_models: ListFn, *, timeout: float | None = None) -> list[ProviderResult]:
    """List every provider concurrently; each listing is applied as soon as it arrives and a writer
    is free (see `_concurrent_writers`), so a slow provider never holds back the others' writes."""
    timeout = timeout or settings.AFMTS_DISCOVERY_TIMEOUT_SECONDS
    # Writes run in worker threads (not the caller's thread: a caller may itself be sync_to_async'd).
    apply = sync_to_async(_apply_safely, thread_sensitive=False)
    fail = sync_to_async(_record_failure_logged, thread_sensitive=False)
    writers = asyncio.Semaphore(_concurrent_writers(len(providers)))

    async def one(provider: Provider) -> ProviderResult:
        started = time.perf_counter()
        try:
            listing = await asyncio.wait_for(list_models(provider), timeout)
        except TimeoutError:
            write = partial(fail, provider.pk, f"listing timed out after {timeout:g} s")
        except RateLimited as exc:
            write = partial(fail, provider.pk, f"listing rate-limited: {exc}", retry_after=exc.retry_after,
                            rate_limited=True)
        except Exception as exc:  # noqa: BLE001 - one provider's failure never breaks the cycle
            write = partial(fail, provider.pk, f"{type(exc).__name__}: {exc}")
        else:
            write = partial(apply, provider.pk, listing)
        async with writers:
            result = await write()
        result.seconds = time.perf_counter() - started
        observe_discovery(provider.slug, result.seconds, bool(result.error))
        return result

    return list(await asyncio.gather(*(one(p) for p in providers)))


def _concurrent_writers(providers: int) -> int:
    """How many listings are applied at once. SQLite has one write lock, and a writer waiting for
    it sleeps in its busy handler (longer and longer naps, up to 100 ms): seventeen threads taking
    turns that way spent most of a first cycle asleep and could even give up ("database is
    locked"). One writer at a time, fed in the order listings arrive, keeps the lock always busy.
    PostgreSQL writers only meet on their own provider's row lock: all may write at once."""
    return 1 if connection.vendor == "sqlite" else max(1, providers)


def _apply_safely(provider_id: int, listing) -> ProviderResult:
    try:
        if listing.rate_limit:
            _observe_account_quota(provider_id, listing.rate_limit)
        return apply_listing(provider_id, listing)
    except Exception as exc:  # noqa: BLE001
        log.exception("could not apply the listing of provider %s", provider_id)
        return ProviderResult(provider=str(provider_id), error=f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()  # a pool thread's connection would outlive the cycle


def _observe_account_quota(provider_id: int, info) -> None:
    """The account's limits as the listing call reported them (it costs no quota), recorded
    account-wide by the listing's writer: on SQLite another writer would only wait for its lock."""
    try:
        quota.quota_observe(provider_id=provider_id, model=None, info=info)
    except Exception:  # noqa: BLE001 - the listing is worth applying without them
        log.warning("could not record the quota reported by the listing of provider %s", provider_id, exc_info=True)


def _record_failure_logged(provider_id: int, error: str, **kwargs: Any) -> ProviderResult:
    log.warning("discovery of provider %s failed: %s", provider_id, error)
    try:
        return record_failure(provider_id, error, **kwargs)
    finally:
        connection.close()

