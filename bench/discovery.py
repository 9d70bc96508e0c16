"""Benchmark of a discovery cycle (issue 4).

    .venv/bin/python bench/discovery.py [--models 500] [--slow 2.0] [--slow-provider mistral] [--kinds a,b,...]
                                        [--database-url postgres://user@host:5432/postgres --redis-url redis://host:6379/N]

Seventeen providers (every adapter kind) at the fake provider server, each listing `--models` models in
its own wire format, one of them answering only after `--slow` seconds. Runs a first cycle (all
models new) and then an unchanged cycle, and reports the time of each, the CPU time this process
spent on it (all its threads; not the fake providers' or the database's) and the database writes
(INSERT/UPDATE/DELETE statements, from every thread) of each.
Targets: each cycle under slow + 0.5 s (bounded by the slowest provider, not the sum); the unchanged
cycle writes nothing. Self-contained (a temporary embedded-mode data folder); it reports, never fails.
With --database-url and --redis-url it runs in server mode: on a database of its own that it
creates on that PostgreSQL server (and drops), with that Redis as cache and channel layer.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from _embedded import ROOT, setup  # noqa: E402 - sets Django up first


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--slow", type=float, default=2.0)
    parser.add_argument("--slow-provider", default="mistral", help="an adapter kind")
    parser.add_argument("--kinds", default="", help="comma-separated kinds (default: every kind)")
    parser.add_argument("--database-url", help="a PostgreSQL server (server mode, with --redis-url)")
    parser.add_argument("--redis-url", help="a Redis database (server mode, with --database-url)")
    args = parser.parse_args()
    if bool(args.database_url) != bool(args.redis_url):
        parser.error("server mode needs both --database-url and --redis-url")
    return args


def own_database(server_url: str) -> str:
    """A new database of the bench's own on this PostgreSQL server; its URL."""
    import psycopg

    name = f"afmts_bench_discovery_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def drop_database(server_url: str, url: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {urlsplit(url).path.lstrip('/')} WITH (FORCE)")


ARGS = arguments()  # before Django is set up: the mode depends on them
DATABASE_URL = own_database(ARGS.database_url) if ARGS.database_url else None
DATA_DIR = setup("afmts-bench-discovery-", database_url=DATABASE_URL, redis_url=ARGS.redis_url)

import httpx  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.backends.utils import CursorWrapper  # noqa: E402

from registry import services, tracker  # noqa: E402
from registry.fakes import KEY, base_urls  # noqa: E402
from registry.fakes.server import LISTINGS, _entry_id  # noqa: E402
from registry.models import AIModel  # noqa: E402
from registry.providers import ADAPTERS  # noqa: E402


def entries(kind: str, n: int) -> list[dict]:
    """n listing entries in the provider's own format: copies of its catalog's first chat model."""
    template = next(m for m in LISTINGS[kind] if "embed" not in _entry_id(m))
    out = []
    for i in range(n):
        entry = copy.deepcopy(template)
        model_id = f"bench/model-{i:04d}" + (":free" if kind == "openrouter" and i % 3 == 0 else "")
        if kind == "gemini":
            entry["name"] = f"models/{model_id}"
        elif kind == "ollama":
            entry["name"] = entry["model"] = f"{model_id}:latest"
        elif kind == "cohere":  # Cohere's models are known by name only
            entry["name"] = model_id
        elif kind == "cloudflare":  # called by name ("@cf/..."); `id` is the catalog's uuid
            entry["name"] = f"@cf/{model_id}"
            entry["id"] = f"{i:08d}-0000-4000-8000-000000000000"
        else:
            entry["id"] = model_id
        if kind == "openrouter" and i % 3 == 0:
            entry["pricing"] = {"prompt": "0", "completion": "0"}
        out.append(entry)
    return out


class Writes:
    """Counts INSERT/UPDATE/DELETE statements (and PostgreSQL COPYs) from every thread."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        original = CursorWrapper.execute

        def execute(cursor, sql, *args, **kwargs):
            if sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
                with self.lock:
                    self.count += 1
            return original(cursor, sql, *args, **kwargs)

        CursorWrapper.execute = execute
        if DATABASE_URL:
            import psycopg

            original_copy = psycopg.Cursor.copy

            def copy(cursor, statement, *args, **kwargs):
                with self.lock:
                    self.count += 1
                return original_copy(cursor, statement, *args, **kwargs)

            psycopg.Cursor.copy = copy


class FakeProviders:
    """The fake provider server in a process of its own, so that its work is not measured as ours."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "registry.fakes", "--port", str(self.port), "--chunk-delay", "0"],
                                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/_control/health", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the fake provider server did not start")

    def control(self, what: str, body: dict) -> None:
        httpx.post(f"{self.url}/_control/{what}", json=body, timeout=30).raise_for_status()

    def base_url(self, kind: str) -> str:
        return base_urls(self.url)[kind]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def main() -> None:
    args = ARGS
    kinds = [k for k in args.kinds.split(",") if k] or list(ADAPTERS)
    if unknown := {args.slow_provider, *kinds} - set(ADAPTERS):
        raise SystemExit(f"unknown kind(s): {', '.join(sorted(unknown))}; known: {', '.join(ADAPTERS)}")

    call_command("migrate", verbosity=0)
    fake = FakeProviders()
    try:
        fake.control("config", {"page_size": 1000})
        for kind in kinds:
            services.provider_create(slug=kind.replace("_", "-"), kind=kind, base_url=fake.base_url(kind), api_key=KEY)
            fake.control("listing", {"provider": kind, "add": entries(kind, args.models),
                                     "remove": [_entry_id(m) for m in LISTINGS[kind]]})
        writes = Writes()
        rows = []
        for label in ("first cycle (all new)", "unchanged cycle"):
            fake.control("scenario", {"provider": args.slow_provider, "scenario": "slow_first_byte",
                                      "params": {"seconds": args.slow}})
            before = writes.count
            started, cpu = time.perf_counter(), time.process_time()
            results = tracker.discover()
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            if os.environ.get("BENCH_VERBOSE"):
                print(label, sorted((round(r.seconds, 3), r.provider) for r in results))
            rows.append((label, sum(r.seen for r in results), sum(r.new for r in results),
                         sum(r.changed for r in results), sum(1 for r in results if r.error), seconds, cpu,
                         writes.count - before))
        total = AIModel.objects.count()
    finally:
        fake.stop()
        if DATABASE_URL:
            drop_database(args.database_url, DATABASE_URL)
        shutil.rmtree(DATA_DIR, ignore_errors=True)

    target = args.slow + 0.5
    mode = "server mode: PostgreSQL + Redis" if DATABASE_URL else "embedded SQLite"
    print(f"\nDiscovery: {len(kinds)} providers x {args.models} models, {args.slow_provider} slowed by {args.slow:g} s "
          f"({mode}, fake providers on 127.0.0.1; {total} models registered)\n")
    header = (f"{'cycle':<24} {'seen':>6} {'new':>6} {'changed':>7} {'errors':>6} {'time s':>7} {'target':>7} "
              f"{'cpu s':>6} {'writes':>7}  met?")
    print(header)
    print("-" * len(header))
    for label, seen, new, changed, errors, seconds, cpu, written in rows:
        unchanged = label.startswith("unchanged")
        met = seconds < target and (written == 0 if unchanged else True) and not errors
        print(f"{label:<24} {seen:>6} {new:>6} {changed:>7} {errors:>6} {seconds:>7.2f} {'<' + format(target, '.1f'):>7} "
              f"{cpu:>6.2f} {written:>7}  {'yes' if met else 'NO'}")
    print("\nTargets: each cycle under the slowest provider + 0.5 s; the unchanged cycle writes nothing.")


if __name__ == "__main__":
    main()
