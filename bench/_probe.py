"""A loop-lag and GC probe around afmts.asgi:application, for bench/gateway.py --probe (measurement
only; never served in production).

    uvicorn bench._probe:application

- Loop lag: a task sleeps 1 ms over and over on the server's event loop; any wake-up later than
  LAG_MS past its due time is a stall every request in flight then waited through.
- GC pauses: gc.callbacks time every collection, in whatever thread it ran (it holds the GIL, so it
  stalls the loop too).
- GET /_bench/probe returns the figures since the previous call (and starts a new period).
- BENCH_PROBE_AS_BEFORE=1 undoes the runtime's tail-latency settings (no frozen heap, CPython's 5 ms
  GIL switch interval): the same code as it was, for a before/after in one run.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import time

from afmts.asgi import application as _app
from routing.gateway import runtime as _runtime

LAG_MS = 2.0

_lock = threading.Lock()
_lags: list[float] = []
_pauses: list[tuple[int, float]] = []
_since = time.monotonic()
_gc_start: dict[int, float] = {}
_started = False


def _on_gc(phase: str, info: dict) -> None:
    ident = threading.get_ident()
    if phase == "start":
        _gc_start[ident] = time.perf_counter()
    elif ident in _gc_start:
        with _lock:
            _pauses.append((info["generation"], (time.perf_counter() - _gc_start.pop(ident)) * 1000))


async def _watch_loop() -> None:
    while True:
        due = time.perf_counter() + 0.001
        await asyncio.sleep(0.001)
        late = (time.perf_counter() - due) * 1000
        if late > LAG_MS:
            with _lock:
                _lags.append(late)


def _report() -> dict:
    global _since
    with _lock:
        lags, pauses = sorted(_lags), sorted(p for _, p in _pauses)
        full = [p for g, p in _pauses if g == 2]
        _lags.clear()
        _pauses.clear()
        seconds, _since = time.monotonic() - _since, time.monotonic()
    return {
        "seconds": round(seconds, 2), "stalls_over_2ms": len(lags),
        "stall_ms_total": round(sum(lags), 1), "stall_max_ms": round(lags[-1], 2) if lags else 0.0,
        "collections": len(pauses), "gc_max_ms": round(pauses[-1], 2) if pauses else 0.0,
        "gc_ms_total": round(sum(pauses), 1), "full_collections": len(full),
        "full_gc_max_ms": round(max(full), 2) if full else 0.0,
        "frozen_objects": gc.get_freeze_count(),
    }


async def application(scope, receive, send) -> None:
    global _started
    if scope["type"] == "http" and not _started:
        _started = True
        if os.environ.get("BENCH_PROBE_AS_BEFORE") == "1":
            _runtime.runtime._settled = True  # never freeze
            _runtime.GIL_SWITCH_SECONDS = 0.005  # CPython's default
        gc.callbacks.append(_on_gc)
        asyncio.get_running_loop().create_task(_watch_loop())
    if scope["type"] == "http" and scope["path"] == "/_bench/probe":
        body = json.dumps(_report()).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    await _app(scope, receive, send)
