"""The registry version as this process knows it.

Every published event bumps a database counter (RegistryState). Processes cache derived state
(the model snapshot, the API-key lookup) and rebuild it when the version changes: a process learns
of its own writes at once (`bump_local`), and of other processes' writes by re-reading the counter at
most every AFMTS_REGISTRY_POLL_SECONDS — never a query per request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.conf import settings

T = TypeVar("T")

_lock = threading.Lock()
_db_version = -1
_checked_at = 0.0
# Bumped on every local publish, committed or not: a rolled-back write costs one rebuild, while a
# counter that can go back (the database row, rolled back in tests) could serve stale state.
_local_generation = 0


def _read_db_version() -> int:
    from registry.models import RegistryState

    return RegistryState.objects.values_list("version", flat=True).filter(pk=1).first() or 0


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def current(clock: Callable[[], float] = time.monotonic) -> tuple[int, int]:
    """The version as this process knows it. Never queries from an event loop's thread: there a
    watcher (`refresh`, run in a worker thread by the gateway) keeps it fresh."""
    global _db_version, _checked_at
    now = clock()
    if (now - _checked_at >= settings.AFMTS_REGISTRY_POLL_SECONDS or _db_version < 0) and not _in_event_loop():
        refresh(now)
    return _db_version, _local_generation


def refresh(now: float | None = None) -> int:
    """Re-read the database version (call from a thread, not an event loop)."""
    global _db_version, _checked_at
    version = _read_db_version()
    with _lock:
        _db_version, _checked_at = version, time.monotonic() if now is None else now
    return version


def bump_local(db_version: int | None = None) -> None:
    global _local_generation, _db_version
    with _lock:
        _local_generation += 1
        if db_version is not None:
            _db_version = max(_db_version, db_version)


class Versioned(Generic[T]):
    """A value derived from the registry, rebuilt when the registry version changes."""

    def __init__(self, build: Callable[[], T]):
        self._build = build
        self._stamp: tuple[int, int] | None = None
        self._value: T | None = None
        self._lock = threading.Lock()

    def stale(self) -> bool:
        return current() != self._stamp

    def peek(self) -> T | None:
        """The value as last built, without rebuilding (for an event loop: see `stale`)."""
        return self._value

    def get(self) -> T:
        stamp = current()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._value, self._stamp = self._build(), stamp
        return self._value  # type: ignore[return-value]
