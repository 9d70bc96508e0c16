"""What a gateway process keeps in memory, and the background work that keeps it true.

- The routing view: the registry snapshot, each provider's adapter settings (with its decrypted key,
  which never leaves this process) and the operators' aliases. Rebuilt in a worker thread when the
  registry version changes; requests read whatever is current — no query on the request path.
- Background tasks on the server's event loop, started by the first request: a watcher that
  re-reads the registry version every AFMTS_REGISTRY_POLL_SECONDS, among others. Usage records are
  written by the recorder's own writer thread (analytics.recorder), not here.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
import weakref
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError

from analytics.recorder import recorder
from registry import selectors, version
from registry.selectors import Snapshot
from routing.live import LiveState, live_state

log = logging.getLogger(__name__)


class RegistryUnavailable(Exception):
    """The routing view could not be built (the database is unreachable) and there is no earlier one."""


@dataclass(frozen=True)
class ProviderConfig:
    slug: str
    kind: str
    base_url: str
    api_key: str | None = field(repr=False)  # decrypted: never in a repr, a log line or a traceback


@dataclass(frozen=True)
class View:
    snap: Snapshot
    providers: dict[str, ProviderConfig]
    aliases: dict[str, dict]


def _build_view() -> View:
    from registry.models import Alias, Provider

    providers = {p.slug: ProviderConfig(p.slug, p.kind, p.base_url, p.api_key or None) for p in Provider.objects.all()}
    aliases = {a.name: a.route() for a in Alias.objects.all()}
    return View(selectors.snapshot(), providers, aliases)


_view = version.Versioned(_build_view)

# How long another thread (a writer, a rebuild) may hold the GIL before the event loop gets it back.
# CPython's 5 ms default added up to 5 ms per GIL hand-over to each request while a writer ran
# (loop-lag probe, bench/gateway.py --probe); 1 ms keeps writers working and requests waiting less.
GIL_SWITCH_SECONDS = 0.001


def _settle() -> None:
    """Once per serving process, after start-up and the first view: freeze the heap so far
    (modules, settings, URL patterns, the view: ~130,000 objects) out of the cyclic collector's
    reach. A full collection walked all of them — 50–115 ms with the GIL held, every few seconds
    under load, whichever thread triggered it — and now walks only what was allocated since.
    Frozen objects are still freed by reference counting; the view holds no cycles, so views
    rebuilt later are collected normally."""
    gc.collect()
    gc.freeze()


class Runtime:
    def __init__(self) -> None:
        self.live: LiveState = live_state()
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
        self._settled = False
        self._retry_at = 0.0  # a failed rebuild is not tried again on a request before this (monotonic)

    async def view(self, *, background: bool = True) -> View:
        """The current routing view; rebuilt (in a thread) only when the registry changed.
        `background=False` for callers on a short-lived loop (a sync view's async_to_sync). The first
        long-lived loop to ask runs the background work (until it closes); any loop may ask."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop and not background:
            return await sync_to_async(_view.get, thread_sensitive=False)()
        if self._loop is None or self._loop.is_closed():
            self._start(loop)
        current = _view.peek()
        if current is not None and (not _view.stale() or time.monotonic() < self._retry_at):
            return current
        async with self._lock_for(loop):
            if _view.peek() is None or (_view.stale() and time.monotonic() >= self._retry_at):
                try:
                    await sync_to_async(self._rebuild, thread_sensitive=False)()
                except DatabaseError as exc:
                    if _view.peek() is None:
                        raise RegistryUnavailable() from exc
                    # The database went away after this process changed the registry (a write it
                    # could not commit still marks the view stale): the last good view serves, as
                    # the watcher's does, and the next rebuild waits a poll interval, so requests
                    # do not each wait on a database that is down.
                    self._retry_at = time.monotonic() + settings.AFMTS_REGISTRY_POLL_SECONDS
                    log.warning("could not rebuild the registry view (%s); serving the last one",
                                type(exc).__name__)
        return _view.peek()

    def _lock_for(self, loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
        # A lock belongs to one loop: the gateway's, and any other that asks (an async Django view).
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    def _rebuild(self) -> None:
        """In a worker thread: the view as of the registry's version; the first time, settle the heap."""
        _view.get()
        if not self._settled:
            self._settled = True
            _settle()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
        self._tasks = [loop.create_task(self._watch()), loop.create_task(self._share_live())]

    async def _watch(self) -> None:
        refresh = sync_to_async(version.refresh, thread_sensitive=False)
        while True:
            await asyncio.sleep(settings.AFMTS_REGISTRY_POLL_SECONDS)
            try:
                await refresh()
                if _view.stale():
                    async with self._lock_for(asyncio.get_running_loop()):
                        await sync_to_async(self._rebuild, thread_sensitive=False)()
            except Exception as exc:  # noqa: BLE001 - keep serving the last good view
                # One line, not a traceback per poll: a database outage would flood the log.
                log.warning("could not refresh the registry view (%s); serving the last one", type(exc).__name__)

    async def _share_live(self) -> None:
        """Exchange live state (breakers, quota, cool-downs) with the other processes through Redis."""
        while True:
            await asyncio.sleep(settings.AFMTS_LIVE_SYNC_SECONDS)
            try:
                await self.live.sync()
            except Exception:  # noqa: BLE001 - keep routing on this process's own state
                log.exception("could not share the live routing state")

    async def flush_now(self) -> int:
        """Write the usage buffer now (the recorder's own writer thread does it every
        AFMTS_USAGE_FLUSH_SECONDS)."""
        return await sync_to_async(recorder.flush, thread_sensitive=False)()


runtime = Runtime()
