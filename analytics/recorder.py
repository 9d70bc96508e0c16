"""Everything the gateway learns from a request, recorded off the request path, exactly once.

The request path appends one `Outcome` to an in-memory buffer (no I/O). A writer thread of the
recorder — started by the first `add()` in any process (gateway, Celery task, `run_task`) — writes
the buffer every AFMTS_USAGE_FLUSH_SECONDS in a few statements: usage rows, then the health evidence
(passive health), free-quota counts and reports, breaker transitions and a sample `request_routed`
event carried by the rows that were new.

Exactly once:
- Each Outcome gets a `uid` when it is made (a random per-process prefix and a counter), stored as
  UsageRecord.uid (unique); rows are inserted with conflicts ignored, so writing a batch again (a retry
  after a partial failure, a replayed spill file, a forked child's copy) stores each request once, and
  the side effects follow only the rows that were new. The client's `x-request-id` is kept as
  `request_id` (validated by `request_id_for`, replaced when unusable) but is not the identity: two
  requests sending the same id are two records.
- A batch that fails because the database cannot be reached is kept and retried with back-off (capped
  at AFMTS_USAGE_RETRY_MAX_SECONDS), with a cheap connection probe every few seconds so writing
  resumes promptly once the database is back. Past AFMTS_USAGE_BUFFER_MAX records in memory the
  oldest spill to JSON-lines files under AFMTS_USAGE_SPILL_DIR, replayed after the next good write
  (by any process). A batch the database refuses for its content is split until the bad rows are
  alone; only those are dropped.
- `close()` stops the writer and writes everything left (or spills it): called at ASGI lifespan
  shutdown, at a Celery worker process's shutdown and at exit.
- A record truly lost (refused by the database, or the spill file cannot be written) is counted in
  `dropped` and logged.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import re
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings

from afmts.metrics import alive, usage_dropped
from analytics.metrics import count_money, observe_usage
from registry.bulk import STATEMENT_PARAMS_BESIDE_A_LOOP, rows_per_statement

log = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+/=-]{1,64}")
PROBE_SECONDS = 2.0  # while the database is down, how often a cheap connect checks whether it is back
SPILL_CHUNK = 1000

_uid_prefix = secrets.token_hex(8)
_uid_counter = itertools.count(1)


def next_uid() -> str:
    return f"{_uid_prefix}{next(_uid_counter):x}"


def request_id_for(header: str | None) -> str:
    """The client's x-request-id when usable (1-64 characters of letters, digits and `._:@+/=-`),
    else a generated one: it is stored with the usage record and echoed in the response."""
    if header and len(header) <= 64 and REQUEST_ID.fullmatch(header):
        return header
    return f"req_{secrets.token_hex(12)}"  # 24 random hex digits, as a uuid4's were, at half the cost


@dataclass
class Outcome:
    ts: float
    request_id: str
    endpoint: str
    requested_model: str
    key_id: int | None = None
    key_name: str = ""
    model_pk: int | None = None
    public_id: str = ""
    provider: str = ""
    provider_id: int | None = None
    is_free: bool = False
    stream: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float | None = None
    ttft_ms: float | None = None
    overhead_ms: float | None = None
    attempts: int = 1
    status: str = "ok"
    http_status: int = 200
    # (model pk, ok, latency ms, error) for every attempt: passive health
    samples: list[tuple[int, bool, float | None, str]] = field(default_factory=list)
    # (model pk, RateLimitInfo, source) reported by the provider
    reports: list[tuple[int, Any, str]] = field(default_factory=list)
    # ("circuit_opened"/"circuit_closed", key)
    breaker_changes: list[tuple[str, str]] = field(default_factory=list)
    uid: str = field(default_factory=next_uid)


# What a spill file keeps of an Outcome: the record and its health evidence. Provider reports and
# breaker transitions are live signals, stale by the time a file is replayed.
SPILLED = [f for f in Outcome.__dataclass_fields__ if f not in ("reports", "breaker_changes")]


def _to_line(o: Outcome) -> bytes:
    return orjson.dumps({name: getattr(o, name) for name in SPILLED}) + b"\n"


def _from_line(line: bytes) -> Outcome:
    data = orjson.loads(line)
    data["samples"] = [tuple(s) for s in data.get("samples") or []]
    return Outcome(**{k: v for k, v in data.items() if k in SPILLED})


def _unreachable(exc: BaseException) -> bool:
    """True when the database could not be reached (keep the batch), False when it refused the rows."""
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError))


def _fresh_connection() -> None:
    """Drop this thread's connection if it broke (the database restarted) or expired, so the next
    query reconnects; with CONN_HEALTH_CHECKS the next use also checks it first."""
    from django.db import connection

    if connection.in_atomic_block:
        return
    try:
        connection.close_if_unusable_or_obsolete()
    except Exception:  # noqa: BLE001 - a broken connection may fail even to close
        connection.connection = None


def _database_name() -> str:
    return str(settings.DATABASES["default"].get("NAME"))


class Recorder:
    """The buffer and its writer thread. `add()` is the only call on the request path."""

    def __init__(self) -> None:
        self._buffer: list[Outcome] = []
        self._kept: list[Outcome] = []  # failed batches, retried first
        self._lock = threading.Lock()  # swaps the buffer
        self._flush_lock = threading.Lock()  # one write at a time (the thread, tests, close)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._failures = 0
        self._retry_at = 0.0
        self._spill_seen = True  # files left by an earlier run are replayed after the first good write
        self._database = ""
        self._dropped = 0
        self.spilled = 0

    # ------------------------------------------------------------ request path

    def add(self, outcome: Outcome) -> None:
        self._buffer.append(outcome)  # list.append is atomic under the GIL: no lock on the hot path
        if self._thread is None:
            self._start()

    def pending(self) -> int:
        return len(self._buffer) + len(self._kept)

    def take(self) -> list[Outcome]:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if batch:  # every record passes here once per process: Prometheus counts it here, off the request path
            observe_usage(batch)
        return batch

    @property
    def dropped(self) -> int:
        return self._dropped

    @dropped.setter
    def dropped(self, value: int) -> None:
        if value > getattr(self, "_dropped", 0):
            usage_dropped.inc(value - self._dropped)
        self._dropped = value

    # ------------------------------------------------------------ the writer

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            self._database = _database_name()
            self._thread = threading.Thread(target=self._run, name="afmts-usage-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stopping:
            self._wake.wait(min(settings.AFMTS_USAGE_FLUSH_SECONDS, PROBE_SECONDS))
            self._wake.clear()
            if self._stopping:
                break
            now = time.monotonic()
            try:
                if self._failures:
                    if now >= self._retry_at or self._database_back():
                        self.flush()
                    else:
                        with self._flush_lock:
                            self._bound()
                elif now - last >= settings.AFMTS_USAGE_FLUSH_SECONDS:
                    last = now
                    if self._buffer or self._spill_seen:
                        self.flush()
            except Exception:  # noqa: BLE001 - the writer never dies
                log.exception("usage writer: unexpected error")

    def _database_back(self) -> bool:
        from django.db import connection

        _fresh_connection()
        try:
            connection.ensure_connection()
            return connection.is_usable()
        except Exception:  # noqa: BLE001 - still down
            connection.connection = None
            return False

    def flush(self) -> int:
        """Write the kept batches and the buffer (call from a thread, never the event loop). Returns
        how many records were handled (written, or already there); 0 when the database could not be
        reached — they are kept (or spilled past the bound) for the next try."""
        with self._flush_lock:
            batch = self._kept + self.take()
            self._kept = []
            if not batch:
                if self._spill_seen:
                    self._replay()
                return 0
            _fresh_connection()
            try:
                self._write(batch)
            except Exception as exc:  # noqa: BLE001 - analytics never fail traffic
                if not _unreachable(exc):
                    raise
                self._kept = batch + self._kept
                self._failures += 1
                delay = min(settings.AFMTS_USAGE_RETRY_MAX_SECONDS, 0.5 * 2 ** min(self._failures, 10))
                self._retry_at = time.monotonic() + delay
                log.warning("usage write failed (%s); %d records kept, retry in %.1f s",
                            type(exc).__name__, len(self._kept), delay)
                self._close_connection()
                self._bound()
                return 0
            if self._failures:
                log.info("usage writes resumed after %d failed tries", self._failures)
            self._failures = 0
            self._replay()
            return len(batch)

    def _write(self, batch: list[Outcome]) -> None:
        """Write `batch`; rows the database refuses are isolated by halving and dropped alone."""
        try:
            write(batch)
        except Exception as exc:
            if _unreachable(exc):
                raise
            if len(batch) == 1:
                self.dropped += 1
                log.error("usage record %s refused by the database (%s); dropped (%d so far)",
                          batch[0].uid, type(exc).__name__, self.dropped)
                return
            half = len(batch) // 2
            self._write(batch[:half])
            self._write(batch[half:])

    @staticmethod
    def _close_connection() -> None:
        from django.db import connection

        if connection.in_atomic_block:  # a caller's transaction (tests): not ours to end
            return
        try:
            connection.close()
        except Exception:  # noqa: BLE001
            connection.connection = None

    # ------------------------------------------------------------ memory bound and spill files

    def spill_dir(self) -> Path:
        return Path(settings.AFMTS_USAGE_SPILL_DIR or Path(settings.DATA_DIR) / "usage-spill")

    def _bound(self) -> None:
        """Past AFMTS_USAGE_BUFFER_MAX records in memory, spill the oldest to a file (holding the flush lock)."""
        limit = settings.AFMTS_USAGE_BUFFER_MAX
        if self.pending() <= limit:
            return
        if len(self._kept) < self.pending() - limit:
            self._kept += self.take()
        cut = self.pending() - limit
        out, self._kept = self._kept[:cut], self._kept[cut:]
        self._spill(out)

    def _spill(self, batch: list[Outcome]) -> None:
        folder = self.spill_dir()
        name = f"usage-{os.getpid()}-{time.time_ns()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"{name}.tmp"
            with open(tmp, "wb") as f:
                f.writelines(_to_line(o) for o in batch)
                f.flush()
                os.fsync(f.fileno())
            tmp.rename(folder / f"{name}.jsonl")  # whole files only: a replayer never sees a partial one
        except OSError as exc:
            self.dropped += len(batch)
            log.error("could not spill %d usage records to %s (%s); dropped (%d so far)",
                      len(batch), folder, exc, self.dropped)
            return
        self.spilled += len(batch)
        self._spill_seen = True
        log.warning("%d usage records spilled to %s", len(batch), folder / f"{name}.jsonl")

    def _claimable(self) -> Iterable[Path]:
        folder = self.spill_dir()
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.iterdir()):
            if path.suffix == ".jsonl":
                found.append(path)
            elif path.suffix == ".replaying":  # claimed by a process that died before finishing
                pid = int(path.name.rsplit(".", 2)[-2]) if path.name.count(".") >= 2 else 0
                if pid != os.getpid() and not alive(pid):
                    found.append(path)
        return found

    def _replay(self) -> None:
        """Write the spill files back (called after a good write, holding the flush lock). A file is
        claimed by renaming it, so two processes never replay the same one; replaying it twice would
        store nothing twice anyway."""
        self._spill_seen = False
        for path in self._claimable():
            claimed = path.with_name(f"{path.name.split('.')[0]}.jsonl.{os.getpid()}.replaying")
            try:
                path.rename(claimed)
                lines = claimed.read_bytes().splitlines()
            except OSError:
                continue  # another process took it
            outcomes = []
            for line in lines:
                try:
                    outcomes.append(_from_line(line))
                except (ValueError, TypeError):
                    self.dropped += 1
                    log.error("unreadable line in %s; dropped", claimed)
            try:
                for start in range(0, len(outcomes), SPILL_CHUNK):
                    self._write(outcomes[start:start + SPILL_CHUNK])
            except Exception as exc:  # noqa: BLE001
                claimed.rename(claimed.with_name(f"{path.name.split('.')[0]}.jsonl"))
                self._spill_seen = True
                log.warning("replay of %s stopped (%s); kept for later", path.name, type(exc).__name__)
                return
            claimed.unlink(missing_ok=True)
            log.info("replayed %d spilled usage records from %s", len(outcomes), path.name)

    # ------------------------------------------------------------ shutdown

    def close(self) -> int:
        """Stop the writer and write everything left; what cannot be written is spilled."""
        thread = self._thread
        self._stopping = True
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
        self._thread = None
        written = 0
        if self.pending():
            written = self.flush()
            if self.pending():
                with self._flush_lock:
                    batch, self._kept = self._kept + self.take(), []
                    self._spill(batch)
        return written

    def _at_exit(self) -> None:
        if not self.pending() or _database_name() != self._database:
            # Records made against another database (a test run swaps in a test database and restores
            # the real one before exit) do not belong in this one.
            return
        try:
            self.close()
        except Exception:  # noqa: BLE001
            log.exception("usage records could not be written at exit")

    def _after_fork(self) -> None:
        # The parent writes what it buffered; the child starts empty, with its own writer and uids.
        global _uid_prefix, _uid_counter
        _uid_prefix, _uid_counter = secrets.token_hex(8), itertools.count(1)
        self.__init__()


recorder = Recorder()
atexit.register(recorder._at_exit)
os.register_at_fork(after_in_child=recorder._after_fork)


def _celery_process_shutdown(**_: Any) -> None:
    recorder.close()


try:  # a Celery pool process exits without running atexit
    from celery.signals import worker_process_shutdown

    worker_process_shutdown.connect(_celery_process_shutdown, weak=False)
except ImportError:  # pragma: no cover - Celery is a dependency; the recorder does not need it
    pass


def _cost(tokens_in: int, tokens_out: int, input_price, output_price) -> Decimal | None:
    if input_price is None or output_price is None:
        return None
    return (Decimal(tokens_in) * Decimal(str(input_price)) + Decimal(tokens_out) * Decimal(str(output_price))) / MILLION


def reference_model(view, snap):
    """What the same tokens would have cost elsewhere: AFMTS_REFERENCE_MODEL if set, else the
    cheapest paid model of known price with the same type and at least the same capabilities."""
    chosen = settings.AFMTS_REFERENCE_MODEL
    if chosen:
        return snap.by_public_id.get(chosen)
    best, best_price = None, None
    for m in snap.ranked["cheap"]:
        if m.is_free or m.input_price is None or m.output_price is None or m.type != view.type:
            continue
        if not m.capabilities >= view.capabilities:
            continue
        price = m.input_price + m.output_price
        if best_price is None or price < best_price:
            best, best_price = m, price
    return best


COLUMNS = (
    "uid", "ts", "request_id", "key_id", "key_name", "endpoint", "requested_model", "model_id", "public_id",
    "provider", "is_free", "stream", "tokens_in", "tokens_out", "latency_ms", "ttft_ms", "overhead_ms",
    "attempts", "status", "http_status", "cost", "reference_cost", "reference_model",
)


def insert_rows(rows: list[tuple]) -> set[str]:
    """INSERT … ON CONFLICT (uid) DO NOTHING RETURNING uid: the uids that were new. Rows are tuples
    in COLUMNS order, values already adapted (no model instances: this runs beside the event loop)."""
    from django.db import connection

    from analytics.models import UsageRecord

    quote = connection.ops.quote_name
    table = quote(UsageRecord._meta.db_table)
    columns = ", ".join(quote(c) for c in COLUMNS)
    one = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    per = rows_per_statement(len(COLUMNS), connection, STATEMENT_PARAMS_BESIDE_A_LOOP)
    new: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per):
            chunk = rows[start:start + per]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * len(chunk))} "
                f"ON CONFLICT ({quote('uid')}) DO NOTHING RETURNING {quote('uid')}",
                [v for row in chunk for v in row],
            )
            new.update(uid for (uid,) in cursor.fetchall())
    return new


def write(batch: list[Outcome]) -> int:
    """Store a batch: the usage rows in one transaction, then the side effects of the rows that
    were new (a row already stored brings nothing twice). Returns the number of new rows."""
    from django.db import connection, transaction

    from registry.selectors import snapshot

    snap = snapshot()
    adapt_ts = connection.ops.adapt_datetimefield_value
    adapt_dec = connection.ops.adapt_decimalfield_value
    rows = []
    references: dict[int, Any] = {}
    views: dict[str, Any] = {}
    priced: dict[str, tuple[Decimal | None, Decimal | None]] = {}
    for o in batch:
        view = snap.by_pk.get(o.model_pk) if o.model_pk else None
        cost = ref_cost = None
        ref_id = ""
        if view is not None:
            cost = Decimal(0) if view.is_free else _cost(o.tokens_in, o.tokens_out, view.input_price, view.output_price)
            if view.pk not in references:
                references[view.pk] = reference_model(view, snap)
            ref = references[view.pk]
            if ref is not None:
                ref_id = ref.public_id
                ref_cost = _cost(o.tokens_in, o.tokens_out, ref.input_price, ref.output_price)
        views[o.uid] = view
        priced[o.uid] = (cost, ref_cost)
        rows.append((
            o.uid, adapt_ts(datetime.fromtimestamp(o.ts, tz=UTC)), o.request_id[:64], o.key_id, o.key_name[:128],
            o.endpoint[:32], o.requested_model[:320], view.pk if view else None, o.public_id[:320], o.provider[:64],
            o.is_free, o.stream, o.tokens_in, o.tokens_out, o.latency_ms, o.ttft_ms, o.overhead_ms, o.attempts,
            o.status[:32], o.http_status, None if cost is None else adapt_dec(cost, 14, 8),
            None if ref_cost is None else adapt_dec(ref_cost, 14, 8), ref_id[:320],
        ))
    with transaction.atomic():
        new = insert_rows(rows)
        if new:  # the minutes to roll up, in the rows' transaction (analytics.rollups)
            from analytics.rollups import mark_epochs

            mark_epochs(o.ts for o in batch if o.uid in new)
    fresh = [o for o in batch if o.uid in new]
    count_money(fresh, priced)
    if fresh:
        try:
            _side_effects(fresh, views, snap)
        except Exception:  # noqa: BLE001 - the usage is stored; evidence and counts are best effort
            log.exception("usage side effects (health, quota, events) failed for %d records", len(fresh))
    return len(new)


def _side_effects(fresh: list[Outcome], views: dict[str, Any], snap) -> None:
    from registry.events import publish_many
    from registry.health import Sample, health_record
    from registry.models import AIModel
    from registry.quota import quota_count, quota_observe

    samples = []
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    reports: dict[int, tuple[Any, str]] = {}
    events: list[tuple[str, dict]] = []
    for o in fresh:
        view = views.get(o.uid)
        for pk, ok, latency, error in o.samples:
            if pk in snap.by_pk:
                samples.append(Sample(pk, ok, latency, source="traffic", error=error, at=datetime.fromtimestamp(o.ts, tz=UTC)))
        if view is not None and view.is_free and o.status == "ok":
            counts[view.pk][0] += 1
            counts[view.pk][1] += o.tokens_in + o.tokens_out
        for pk, info, source in o.reports:
            reports[pk] = (info, source)
        for change, key in o.breaker_changes:
            events.append((change, {"key": key, "at": o.ts}))
    if samples:
        health_record(samples)
    if counts or reports:
        models = {m.pk: m for m in AIModel.objects.filter(pk__in=set(counts) | set(reports))}
        for pk, (requests, tokens) in counts.items():
            if pk in models:
                quota_count(model=models[pk], requests=requests, tokens=tokens)
        for pk, (info, source) in reports.items():
            if pk in models:
                quota_observe(provider_id=models[pk].provider_id, model=models[pk], info=info, source=source)
    last = fresh[-1]
    if last.model_pk:
        # One request_routed event per flush: a live sample, not a log (the usage table is the log).
        events.append(("request_routed", {
            "requestId": last.request_id, "model": last.public_id, "provider": last.provider, "isFree": last.is_free,
            "attempts": last.attempts, "status": last.status, "latencyMs": last.latency_ms,
            "tokensIn": last.tokens_in, "tokensOut": last.tokens_out, "batch": len(fresh),
        }))
    if events:
        publish_many(events, registry_change=False)
