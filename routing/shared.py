"""Redis for the live state: `Shared` for the gateway's event loop (`redis.asyncio`), `SyncShared`
for sync code (REST views and throttles). Both bound every call by a short timeout and, after a
failure, skip Redis for a second, so a dead Redis costs requests nothing: the caller then goes on
with this process's own state."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

KEY_TTL = 61  # seconds a key's per-minute counter lives


def key_counter(prefix: str, key: str, minute: int) -> str:
    """The Redis counter of an API key's (or an address's) requests in one UTC minute."""
    return f"{prefix}ratelimit:{key}:{minute}"


def count_key(pipe, name: str, amount: int = 1) -> None:
    """The one rule of a per-minute key counter, on a sync or an async pipeline: add, and keep it
    a minute (the caller reads the count from the pipeline's first result)."""
    pipe.incrby(name, amount)
    pipe.expire(name, KEY_TTL)


class Unavailable(Exception):
    """Redis could not be reached (or answered too slowly); the caller falls back to this process."""


class Shared:
    """Redis through `redis.asyncio`, one client per event loop, every call bounded by `timeout`.
    After a failure Redis is skipped for `retry_seconds`, so a dead Redis costs requests nothing."""

    def __init__(self, url: str, *, timeout: float = 0.25, retry_seconds: float = 1.0):
        self.url, self.timeout, self.retry_seconds = url, timeout, retry_seconds
        self._client = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.down_until = 0.0
        self.error = ""
        self._scripts: dict[str, Any] = {}

    @property
    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def _get_client(self):
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout, retry=None,
            )
            self._loop = loop
            self._scripts = {}
        return self._client

    def script(self, source: str):
        client = self._get_client()
        if source not in self._scripts:
            self._scripts[source] = client.register_script(source)
        return self._scripts[source]

    async def call(self, fn):
        """`await fn(client)` within the timeout, or raise Unavailable."""
        if not self.available:
            raise Unavailable(self.error)
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(self.timeout * 2):
                result = await fn(self._get_client())
        except (RedisError, OSError, TimeoutError) as exc:
            if not self.error:
                log.warning("Redis unreachable (%s); live state continues in this process", type(exc).__name__)
            self.error = type(exc).__name__
            self.down_until = time.monotonic() + self.retry_seconds
            raise Unavailable(self.error) from None
        if self.error:
            log.warning("Redis is back; live state is shared again")
            self.error = ""
        return result


class SyncShared:
    """A sync Redis client with short timeouts, skipped for `retry_seconds` after a failure."""

    def __init__(self, url: str, timeout: float, retry_seconds: float = 1.0):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=None)
        self.retry_seconds = retry_seconds
        self.down_until = 0.0

    def count_key(self, name: str) -> int | None:
        """One more request on a key's per-minute counter (`count_key`); None when Redis does not
        answer."""
        results = self._pipeline(lambda pipe: count_key(pipe, name))
        return None if results is None else int(results[0])

    def get(self, names: list[str]) -> list | None:
        """The values of `names`, or None when Redis does not answer."""

        def read(pipe) -> None:
            for name in names:
                pipe.get(name)

        return self._pipeline(read)

    def _pipeline(self, fill) -> list | None:
        if time.monotonic() < self.down_until:
            return None
        from redis.exceptions import RedisError

        try:
            pipe = self.client.pipeline(transaction=False)
            fill(pipe)
            return pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("Redis unreachable from sync code (%s); this process goes on alone", type(exc).__name__)
            self.down_until = time.monotonic() + self.retry_seconds
            return None


_clients: dict[str, SyncShared] = {}
_clients_lock = threading.Lock()


def sync_client(url: str, timeout: float) -> SyncShared:
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.get(url) or SyncShared(url, timeout)
            _clients[url] = client
    return client
