"""Counting in memory on the request path and writing in batches off it: `BatchWriter`.

A request notes what it learned (a key's last use, a key's first use today) in a dict or a list under
no query; a daemon thread, started by the first note, writes what is pending every
AFMTS_KEY_USAGE_FLUSH_SECONDS in one statement. A failed write keeps its batch for the next round and
the rounds back off (doubling, up to BACKOFF_ROUNDS intervals) so that a database that is down is
not asked by every process every interval; `close()` writes what is left at shutdown."""

from __future__ import annotations

import logging
import threading
import time
from typing import ClassVar, Generic, TypeVar

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)

# After failed writes the thread waits 2, 4, then 8 intervals at the most.
BACKOFF_ROUNDS = 8

Pending = TypeVar("Pending", dict, list)


class BatchWriter(Generic[Pending]):
    """Subclasses say what an empty batch is (`_empty`), how to write one (`_write`) and how a batch
    that failed goes back in front of what was noted meanwhile (`_keep`, called with the lock held).
    They note under `self._lock` when a note reads and writes several fields, and call `_started()`
    after noting."""

    thread_name: ClassVar[str] = "afmts-batch"
    what: ClassVar[str] = "a batch"  # for log lines: "could not write <what>"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._pending: Pending = self._empty()

    def _empty(self) -> Pending:
        raise NotImplementedError

    def _write(self, batch: Pending) -> None:
        raise NotImplementedError

    def _keep(self, batch: Pending) -> None:
        raise NotImplementedError

    def _started(self) -> None:
        """Start the writer thread unless it runs already (cheap enough for every note)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
                    self._thread.start()

    def delay(self) -> float:
        """Seconds until the next round: the interval, doubled per failed round up to BACKOFF_ROUNDS."""
        return settings.AFMTS_KEY_USAGE_FLUSH_SECONDS * min(2 ** self._failures, BACKOFF_ROUNDS)

    def _run(self) -> None:
        me = threading.current_thread()
        while self._thread is me:  # a reset (fork, tests) leaves this thread to end at its next round
            time.sleep(self.delay())
            if not self._pending:
                continue
            close_old_connections()
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - kept and retried next round
                log.warning("could not write %s (%s); retried in %.0f s", self.what, type(exc).__name__, self.delay())
                close_old_connections()

    def flush(self) -> int:
        """Write what is pending now; on failure keep it for the next round and raise."""
        with self._lock:
            batch, self._pending = self._pending, self._empty()
        if not batch:
            return 0
        try:
            self._write(batch)
        except Exception:
            with self._lock:
                self._keep(batch)
                self._failures = min(self._failures + 1, 10)
            raise
        self._failures = 0
        return len(batch)

    def close(self) -> None:
        """Write what is pending (at shutdown); a failure is logged, not raised."""
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001
            log.warning("could not write %s at shutdown (%s)", self.what, type(exc).__name__)

    def _after_fork(self) -> None:
        """A forked child (and a test) starts with nothing pending and no thread."""
        self.__init__()
