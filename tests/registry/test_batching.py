"""The batch writer under the key usage and the audit log's key uses: what is noted is written once,
a failed write keeps its batch and backs off, and a reset ends the old writer thread."""

from __future__ import annotations

import time

import pytest

from registry.batching import BACKOFF_ROUNDS, BatchWriter


class Counts(BatchWriter[dict]):
    """Counts per name, written to `self.written` — or refused while `self.down`."""

    thread_name = "test-batch"
    what = "test counts"

    def __init__(self) -> None:
        super().__init__()
        self.written: list[dict[str, int]] = []
        self.down = False

    def _empty(self) -> dict[str, int]:
        return {}

    def count(self, name: str) -> None:
        with self._lock:
            self._pending[name] = self._pending.get(name, 0) + 1
        self._started()

    def _write(self, batch: dict[str, int]) -> None:
        if self.down:
            raise ConnectionError("database down")
        self.written.append(batch)

    def _keep(self, batch: dict[str, int]) -> None:
        for name, n in batch.items():
            self._pending[name] = self._pending.get(name, 0) + n


def wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_failed_write_keeps_its_batch_and_backs_off_until_a_write_succeeds(settings):
    settings.AFMTS_KEY_USAGE_FLUSH_SECONDS = 3600
    counts = Counts()
    counts.count("a")
    counts.down = True

    for failures in (1, 2, 3, 4):
        with pytest.raises(ConnectionError):
            counts.flush()
        assert counts.delay() == 3600 * min(2**failures, BACKOFF_ROUNDS)
    counts.count("a")
    counts.count("b")
    counts.down = False

    assert counts.flush() == 2
    assert counts.written == [{"a": 2, "b": 1}]
    assert counts.delay() == 3600 and counts.flush() == 0


def test_the_writer_thread_writes_what_was_noted_without_a_flush(settings):
    settings.AFMTS_KEY_USAGE_FLUSH_SECONDS = 0.05
    counts = Counts()
    counts.count("a")

    assert wait_for(lambda: counts.written == [{"a": 1}])
    assert counts._thread.name == "test-batch" and counts._thread.daemon
    counts._after_fork()


def test_a_reset_ends_the_old_writer_thread(settings):
    settings.AFMTS_KEY_USAGE_FLUSH_SECONDS = 0.05
    counts = Counts()
    counts.count("a")
    old = counts._thread

    counts._after_fork()

    old.join(5)
    assert not old.is_alive() and counts._thread is None
