"""Fault-schedule benchmark (issue 8, "How it is shown"): a steady load on the gateway in server mode
while the upstreams, Redis and (in a second run) PostgreSQL fail on a schedule.

    .venv/bin/python bench/faults.py [--minutes 10] [--rate 20] [--stop-postgres] [--seed 8]

Everything runs on 127.0.0.1 and is stopped at the end (also on Ctrl-C or an error):

- its own Redis (`redis-server` on a free port, no persistence), so it can be stopped and started;
- PostgreSQL: a fresh database on the shared server at --pg-admin-url (created and dropped by the
  bench), or with --stop-postgres a cluster of its own (initdb + pg_ctl on a free port, as the
  postgres OS user when run as root; removed after);
- the fake providers (`python -m registry.fakes`), four OpenAI-wire providers registered at them
  (groq, cerebras, mistral, together), all free with no known quota (an operator's own free-tier
  table), their quota headers pinned high so only the scheduled faults fail calls;
- AFMTS in server mode (`manage.py serve --no-worker`: the web process(es) only), migrated, an API
  key, discovery run once.

Load: --rate requests a second, open loop (a request starts on schedule whatever the others do, at
most --max-inflight at once), half streamed, `model: "auto"`, each with its own x-request-id and a
client-side timeout of the gateway's deadline + 15 s.

Schedule (fractions of the run; the issue's 10 minutes, compressed for shorter runs): 0-10 % warm-up
without faults; from 10 % every upstream independently fails 10 % of calls (5 % HTTP 500, 1 % 429
with Retry-After 2 s and the quota headers unchanged, 2 % hangs of 300 s, 2 % cut replies); at 20 % and
55 % a 429 burst (every call of one provider, Retry-After 5 s, quota headers at 0); at 30 % the busiest provider is down (503) for 20 % of the run
(2 minutes of 10); at 65 % Redis is stopped for min(30 s, 25 %) and started again (empty).
With --stop-postgres instead: no upstream faults, PostgreSQL stopped at 35 % for min(30 s, 25 %).

Reported: requests, successes, errors by class, requests past the gateway's deadline, p50/p99,
failovers (x-afmts-attempts > 1), per phase; usage records written against requests sent (by request
id: missing, duplicated); RSS of the web processes after warm-up, at the middle and at the end; the
faults the fake providers injected. Prints one table, writes bench/results/faults.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import psycopg  # noqa: E402

from bench._harness import (  # noqa: E402
    BENCH,
    HOST,
    BenchError,
    Proc,
    free_port,
    install_signal_handlers,
    log,
    percentile,
    run,
    stop_all,
    wait_http,
)
from bench._targets import MAIN_PYTHON  # noqa: E402

PROVIDERS = {"groq": "/groq/openai", "cerebras": "/cerebras", "mistral": "/mistral", "together": "/together"}
# Random 429s are short burst limits (Retry-After only, quota headers as usual); the scheduled 429
# bursts are a used-up quota (remaining 0 in the headers).
MIX: dict[str, float | str] = {"error_rate": 0.05, "rate_limit_rate": 0.01, "retry_after": 2, "hang_rate": 0.02,
                               "hang_seconds": 300, "cut_rate": 0.02, "rate_limit_remaining": "keep"}
PROMPT = [{"role": "system", "content": "You are a concise assistant."},
          {"role": "user", "content": "Name three rivers of Europe, one line each."}]
PREFIX = f"fb{os.getpid()}"  # request ids of this run: usage rows are counted by it

SETUP = """
import json
from registry import services
from registry.tracker import discover
base = {base!r}
for slug, path in {providers!r}.items():
    services.provider_create(slug=slug, kind=slug, base_url=base + path, api_key="fake-key")
# rate_limit_per_minute=0: unlimited, so the bench's one key is not held to the per-key default.
_, secret = services.apikey_create(name="faults bench", scope="admin", rate_limit_per_minute=0)
found = {{r.provider: [r.seen, r.error] for r in discover(None)}}
from registry.models import AIModel
assert not AIModel.objects.exclude(free_rpm=None).exists(), "the bench's free-tier table was not used"
print("BENCH_JSON " + json.dumps({{"secret": secret, "discovery": found}}))
"""


# ---------------------------------------------------------------------- services


class Redis:
    """redis-server on its own port, no persistence: stop() and start() again model an outage."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc: Proc | None = None
        self.binary = shutil.which("redis-server") or ""

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        if not self.binary:
            raise BenchError("redis-server not found (apt-get install redis-server)")
        self.proc = Proc("redis", [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "",
                                   "--appendonly", "no", "--daemonize", "no"],
                         self.workdir / "redis.log").start()
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline or not self.proc.alive():
                    raise BenchError(f"redis did not start:\n{self.proc.tail()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


class Postgres:
    """A database for the run: its own cluster (initdb + pg_ctl, stoppable) or a fresh database on the
    shared server (never stopped; created and dropped here)."""

    def __init__(self, workdir: Path, own: bool, admin_url: str):
        self.own = own
        self.admin_url = admin_url
        self.dir = workdir / "pg"
        self.port = free_port() if own else 0
        self.name = f"afmts_bench_{PREFIX}"
        self.created = False
        self.bin = ""

    @property
    def url(self) -> str:
        if self.own:
            return f"postgres://postgres@{HOST}:{self.port}/{self.name}"
        return self.admin_url.rsplit("/", 1)[0] + f"/{self.name}"

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def _ctl(self, *args: str, timeout: float = 60) -> None:
        run(self._as_owner([f"{self.bin}/pg_ctl", "-D", str(self.dir / "data"), *args]), timeout,
            what=f"pg_ctl {args[-1]}")

    def create(self) -> None:
        if self.own:
            found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
            self.bin = str(found[-1].parent) if found else str(Path(shutil.which("initdb") or "").parent)
            if not Path(self.bin, "initdb").exists():
                raise BenchError("initdb not found (apt-get install postgresql)")
            self.dir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.dir, "postgres", "postgres")
                os.chmod(self.dir.parent, 0o755)
            run(self._as_owner([f"{self.bin}/initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres",
                                "-N", "-E", "UTF8"]), 120, what="initdb")
            self.start()
            admin = f"postgres://postgres@{HOST}:{self.port}/postgres"
        else:
            admin = self.admin_url
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.created = True

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses={HOST} -c unix_socket_directories={self.dir} -c fsync=off"
        self._ctl("-o", opts, "-l", str(self.dir / "postgres.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "-t", "60", "stop")

    def remove(self) -> None:
        if self.own:
            if (self.dir / "data" / "postmaster.pid").exists():
                try:
                    self.stop("immediate")
                except BenchError as exc:
                    log(f"stopping the bench's PostgreSQL failed: {exc}")
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.created:
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def usage(self) -> Counter[str]:
        """Usage rows of this run per request id."""
        with psycopg.connect(self.url, connect_timeout=5) as conn:
            rows = conn.execute("SELECT request_id, count(*) FROM analytics_usagerecord WHERE request_id LIKE %s "
                                "GROUP BY request_id", (f"{PREFIX}-%",)).fetchall()
        return Counter({rid: n for rid, n in rows})


def web_rss_mb(root_pid: int | None) -> float | None:
    """Summed VmRSS (MB) of the ASGI server processes (uvicorn/daphne/granian) under root_pid."""
    if root_pid is None:
        return None
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    todo, total, found = [root_pid], 0, False
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if any(name in cmd for name in (b"uvicorn", b"daphne", b"granian")):
            found = True
            total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return round(total / 1024, 1) if found else None


# ---------------------------------------------------------------------- load


@dataclass
class Result:
    n: int
    start: float  # seconds since the load began
    seconds: float
    stream: bool
    phase: str
    ok: bool = False
    status: int = 0
    outcome: str = "ok"
    attempts: int = 1
    provider: str = ""
    detail: str = ""  # an error's message, for the examples in the report


def _error_class(status: int, text: str, ctype: str) -> tuple[str, str]:
    """(class, message) of a gateway error reply."""
    try:
        error = json.loads(text).get("error") or {}
        return f"{status} {error.get('code') or error.get('type') or 'error'}", str(error.get("message", ""))[:2000]
    except (ValueError, AttributeError):
        return f"{status} non-JSON ({ctype.split(';')[0] or 'no content-type'})", text[:2000]


async def one(session: aiohttp.ClientSession, url: str, key: str, n: int, stream: bool, timeout: float,
              began: float, phase: str) -> Result:
    body: dict[str, Any] = {"model": "auto", "messages": PROMPT, "max_tokens": 64}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    headers = {"authorization": f"Bearer {key}", "x-request-id": f"{PREFIX}-{n:07d}"}
    t0 = time.monotonic()
    r = Result(n=n, start=round(t0 - began, 3), seconds=0.0, stream=stream, phase=phase)
    try:
        async with asyncio.timeout(timeout):
            async with session.post(url, json=body, headers=headers) as resp:
                r.status = resp.status
                r.attempts = int(resp.headers.get("x-afmts-attempts") or 1)
                r.provider = resp.headers.get("x-afmts-provider", "")
                if resp.status != 200:
                    r.outcome, r.detail = _error_class(resp.status, await resp.text(),
                                                       resp.headers.get("content-type", ""))
                elif stream:
                    r.outcome, r.detail = await _read_stream(resp)
                else:
                    data = await resp.json(content_type=None)
                    r.outcome = "ok" if (data.get("choices") or [{}])[0].get("message") else "200 without choices"
    except TimeoutError:
        r.outcome = "client timeout"
    except aiohttp.ClientPayloadError:
        r.outcome = "stream broken (connection)" if stream else "body broken (connection)"
    except aiohttp.ClientError as exc:
        r.outcome = f"connection: {type(exc).__name__}"
    except ValueError:
        r.outcome = "200 non-JSON"
    r.seconds = time.monotonic() - t0
    r.ok = r.outcome == "ok"
    return r


async def _read_stream(resp: aiohttp.ClientResponse) -> tuple[str, str]:
    done, content, error, detail = False, False, "", ""
    async for raw in resp.content:
        line = raw.decode(errors="replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            error = error or "stream: malformed chunk"
            continue
        if chunk.get("error") and not error:
            error = f"stream error: {chunk['error'].get('code') or chunk['error'].get('type')}"
            detail = str(chunk["error"].get("message", ""))[:2000]
        elif any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()):
            content = True
    if error:
        return error, detail
    if not done:
        return "stream ended without [DONE]", ""
    return ("ok" if content else "stream without content"), ""


# ---------------------------------------------------------------------- schedule


@dataclass
class Step:
    at: float  # seconds since the load began
    phase: str  # the phase label from here on ("" keeps the current one)
    what: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)


def schedule(duration: float, stop_postgres: bool) -> list[Step]:
    warm = max(10.0, 0.10 * duration)
    outage = min(30.0, 0.25 * duration)
    if stop_postgres:
        at = 0.35 * duration
        return [Step(at, "pg down", f"PostgreSQL stopped for {outage:.0f} s", "pg_stop"),
                Step(at + outage, "after pg", "PostgreSQL started again", "pg_start")]
    burst = min(max(5.0, 0.03 * duration), 0.08 * duration)  # the windows below never overlap
    down = 0.20 * duration
    steps = [
        Step(warm, "faults", "every upstream fails 10 % of calls independently", "mix"),
        Step(0.20 * duration, "429 burst", f"429 burst ({burst:.0f} s, Retry-After 5)", "burst", {"rank": 1}),
        Step(0.20 * duration + burst, "faults", "429 burst over", "clear", {"rank": 1}),
        Step(0.30 * duration, "provider down", f"busiest provider down for {down:.0f} s", "down", {"rank": 0}),
        Step(0.30 * duration + down, "faults", "provider back", "clear", {"rank": 0}),
        Step(0.55 * duration, "429 burst", f"429 burst ({burst:.0f} s)", "burst", {"rank": 1}),
        Step(0.55 * duration + burst, "faults", "429 burst over", "clear", {"rank": 1}),
        Step(0.65 * duration, "redis down", f"Redis stopped for {outage:.0f} s", "redis_stop"),
        Step(0.65 * duration + outage, "faults", "Redis started again", "redis_start"),
    ]
    return sorted(steps, key=lambda step: step.at)


# ---------------------------------------------------------------------- the run


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="afmts-faults-"))
        self.redis = Redis(self.workdir)
        self.pg = Postgres(self.workdir, args.stop_postgres, args.pg_admin_url)
        self.fake_port = free_port()
        self.web_port = free_port()
        self.fake: Proc | None = None
        self.web: Proc | None = None
        self.key = ""
        self.phase = "warm-up"
        self.events: list[tuple[float, str]] = []
        self.rss: dict[str, float | None] = {}
        self.ranked: list[str] = list(PROVIDERS)
        self.skipped = 0
        self.secret_key = base64.urlsafe_b64encode(secrets.token_bytes(48)).decode()
        self.fernet = ""

    @property
    def fake_url(self) -> str:
        return f"http://{HOST}:{self.fake_port}"

    def env(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AFMTS_", "DJANGO_")) and k not in (
            "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "FERNET_KEYS", "SECRET_KEY", "DEBUG")}
        tiers = self.workdir / "free_tiers.json"
        tiers.write_text(json.dumps({"as_of": "bench", "providers": {
            slug: {"scope": "model", "all_models_free": True, "reason": "bench: free, quota unknown"}
            for slug in PROVIDERS}, "hosts": {}}))
        self.fernet = self.fernet or Fernet.generate_key().decode()
        env.update({"DATABASE_URL": self.pg.url, "REDIS_URL": self.redis.url, "SECRET_KEY": self.secret_key,
                    "FERNET_KEYS": self.fernet, "AFMTS_DATA_DIR": str(self.workdir / "data"),
                    "AFMTS_FREE_TIERS_FILE": str(tiers), "AFMTS_DEMO": "0", "LOG_LEVEL": "WARNING",
                    # The fake providers play remote hosts on loopback: the operator allows that host.
                    "AFMTS_ALLOWED_UPSTREAM_HOSTS": HOST,
                    "AFMTS_GATEWAY_DEADLINE_SECONDS": str(self.args.deadline), "DJANGO_SETTINGS_MODULE":
                    "afmts.settings", "PYTHONUNBUFFERED": "1"})
        return env

    def setup(self) -> None:
        log(f"work folder {self.workdir}")
        self.redis.start()
        self.pg.create()
        log(f"redis on {self.redis.port}; database {self.pg.name} ({'own cluster' if self.pg.own else 'shared'})")
        self.fake = Proc("fake-providers", [MAIN_PYTHON, "-m", "registry.fakes", "--host", HOST, "--port",
                                            str(self.fake_port), "--chunk-delay", "0.01"],
                         self.workdir / "fakes.log", cwd=ROOT).start()
        wait_http(self.fake_url + "/_control/health", self.fake, 30, ok=lambda r: r.status_code == 200)
        # The fake's advertised limits (Mistral's 60 a minute...) would be learned and enforced by the
        # gateway: pinned high, so only the scheduled faults fail calls.
        httpx.post(self.fake_url + "/_control/quota", json={
            "provider": "*", "limit_requests": 10**9, "limit_tokens": 10**12, "remaining_requests": 10**9,
            "remaining_tokens": 10**12, "remaining_tokens_month": 10**12}, timeout=5)
        env = self.env()
        manage = [MAIN_PYTHON, str(ROOT / "manage.py")]
        log("migrating")
        run(manage + ["migrate", "--noinput", "-v", "0"], 600, env=env, cwd=ROOT, what="manage.py migrate")
        out = run(manage + ["shell", "-c", SETUP.format(base=self.fake_url, providers=PROVIDERS)], 300, env=env,
                  cwd=ROOT, what="providers, key and discovery")
        setup = json.loads(next(line for line in out.splitlines() if line.startswith("BENCH_JSON "))[11:])
        self.key = setup["secret"]
        log(f"discovery: {setup['discovery']}")
        workers = ["--workers", str(self.args.workers)] if self.args.workers > 1 else []
        self.web = Proc("afmts-web", manage + ["serve", "--no-worker", "--host", HOST, "--port", str(self.web_port),
                                               *workers], self.workdir / "web.log", env=env, cwd=ROOT).start()
        wait_http(f"http://{HOST}:{self.web_port}/health", self.web, 90, ok=lambda r: True)

    async def control(self, step: Step) -> None:
        post = lambda body: asyncio.to_thread(  # noqa: E731
            httpx.post, self.fake_url + "/_control/faults", json=body, timeout=5)
        seed = self.args.seed
        target = self.ranked[step.args.get("rank", 0) % len(self.ranked)]
        if step.action == "mix":
            await post({"provider": "*", **self.args.mix, "seed": seed})
        elif step.action == "burst":
            await post({"provider": target, "rate_limit_rate": 1, "retry_after": 5})
        elif step.action == "down":
            await post({"provider": target, "down": True})
        elif step.action == "clear":
            await post({"provider": target, "clear": True})
        elif step.action == "redis_stop":
            await asyncio.to_thread(self.redis.stop)
        elif step.action == "redis_start":
            await asyncio.to_thread(self.redis.start)
        elif step.action == "pg_stop":
            await asyncio.to_thread(self.pg.stop)
        elif step.action == "pg_start":
            await asyncio.to_thread(self.pg.start)
        if "rank" in step.args:
            step.what += f": {target}"

    async def load(self) -> list[Result]:
        args = self.args
        duration = args.minutes * 60
        url = f"http://{HOST}:{self.web_port}/v1/chat/completions"
        timeout = args.deadline + 15
        steps = schedule(duration, args.stop_postgres)
        warm = steps[0].at if not args.stop_postgres else max(10.0, 0.10 * duration)
        results: list[Result] = []
        inflight: set[asyncio.Task] = set()
        skipped = 0
        connector = aiohttp.TCPConnector(limit=args.max_inflight, limit_per_host=args.max_inflight)
        began = time.monotonic()

        async def conductor() -> None:
            for step in steps:
                await asyncio.sleep(max(0.0, began + step.at - time.monotonic()))
                if step.at >= warm and not self.events and not args.stop_postgres:
                    self.rank_providers(results)
                try:
                    await self.control(step)
                except Exception as exc:  # noqa: BLE001 - the run goes on; the table says what failed
                    step.what += f" (FAILED: {exc})"
                self.phase = step.phase or self.phase
                self.events.append((step.at, step.what))
                log(f"t={step.at:5.0f}s {step.what}")

        async def sampler() -> None:
            for name, at in (("after warm-up", warm), ("middle", duration / 2)):
                await asyncio.sleep(max(0.0, began + at - time.monotonic()))
                self.rss[name] = await asyncio.to_thread(web_rss_mb, self.web.pid if self.web else None)

        def done(task: asyncio.Task) -> None:
            inflight.discard(task)
            if not task.cancelled() and task.exception() is None:
                results.append(task.result())

        async with aiohttp.ClientSession(connector=connector) as session:
            background = [asyncio.create_task(conductor()), asyncio.create_task(sampler())]
            n, interval = 0, 1.0 / args.rate
            while (now := time.monotonic()) < began + duration:
                if len(inflight) >= args.max_inflight:
                    skipped += 1
                else:
                    task = asyncio.create_task(one(session, url, self.key, n, n % 2 == 1, timeout, began, self.phase))
                    inflight.add(task)
                    task.add_done_callback(done)
                n += 1
                if n % max(1, int(args.rate * 15)) == 0:
                    ok = sum(r.ok for r in results)
                    log(f"t={now - began:5.0f}s sent {n - skipped}, done {len(results)}, ok {ok}, in flight "
                        f"{len(inflight)} [{self.phase}]")
                await asyncio.sleep(max(0.0, began + n * interval - time.monotonic()))
            self.rss["end"] = web_rss_mb(self.web.pid if self.web else None)
            log(f"load over: waiting for {len(inflight)} requests in flight (at most {timeout:.0f} s)")
            if inflight:
                await asyncio.wait(set(inflight), timeout=timeout + 5)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        self.skipped = skipped
        return results

    def rank_providers(self, results: list[Result]) -> None:
        """The providers by how much of the warm-up they served: the busiest one goes down, the next gets the
        429 bursts (a fault on a provider that serves nothing would show nothing)."""
        served = Counter(r.provider for r in results if r.ok and r.provider)
        self.ranked = sorted(PROVIDERS, key=lambda slug: -served.get(slug, 0))
        log(f"served in warm-up: {dict(served)}")

    def usage(self, sent: set[str]) -> dict[str, Any]:
        """Wait until the usage flush has written every request of the run (or stopped progressing)."""
        deadline, last, stable_since = time.monotonic() + self.args.flush_wait, -1, time.monotonic()
        rows: Counter[str] = Counter()
        while time.monotonic() < deadline:
            try:
                rows = self.pg.usage()
            except psycopg.Error as exc:
                log(f"counting usage rows failed: {exc}")
            total = sum(rows.values())
            if total != last:
                last, stable_since = total, time.monotonic()
            if set(rows) >= sent or time.monotonic() - stable_since > 15:
                break
            time.sleep(1)
        lines = self.web.log_path.read_text(errors="replace").splitlines() if self.web else []
        return {"sent": len(sent), "rows": sum(rows.values()), "distinct": len(rows),
                "missing": len(sent - set(rows)), "duplicates": sum(n - 1 for n in rows.values() if n > 1),
                "dropped_log_lines": sum("dropped" in line for line in lines),
                "web_log_errors": sum(line.startswith(("ERROR", "CRITICAL", "Traceback")) or " ERROR " in line
                                      for line in lines)}

    def keep_log(self, name: str) -> None:
        """The web process's log beside the results (the work folder is removed)."""
        if self.web is not None and self.web.log_path.exists():
            (BENCH / "results").mkdir(exist_ok=True)
            shutil.copyfile(self.web.log_path, BENCH / "results" / name)

    def teardown(self) -> None:
        stop_all()
        try:
            self.pg.remove()
        except Exception as exc:  # noqa: BLE001
            log(f"removing the bench database failed: {exc}")
        shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------------- report


def summarize(results: list[Result], deadline: float) -> dict[str, Any]:
    ok = [r for r in results if r.ok]
    errors = Counter(r.outcome for r in results if not r.ok)
    cut_mid = sum(n for name, n in errors.items() if name.startswith(("stream error", "stream broken", "stream ended")))
    return {
        "requests": len(results), "ok": len(ok), "ok_pct": 100 * len(ok) / len(results) if results else float("nan"),
        "ok_pct_without_midstream": (100 * len(ok) / (len(results) - cut_mid)) if len(results) > cut_mid else None,
        "errors": dict(errors.most_common()), "http_5xx": sum(1 for r in results if r.status >= 500),
        "past_deadline": sum(1 for r in results if r.seconds > deadline + 1 or r.outcome == "client timeout"),
        "p50_ms": percentile([r.seconds * 1000 for r in ok], 50),
        "p99_ms": percentile([r.seconds * 1000 for r in ok], 99),
        "failovers": sum(1 for r in results if r.attempts > 1),
        "served_by": dict(Counter(r.provider for r in ok).most_common()),
        "examples": {name: sorted({r.detail for r in results if r.outcome == name and r.detail})[:3]
                     for name in errors},
    }


def print_report(report: dict[str, Any]) -> None:
    total, cfg = report["total"], report["config"]
    print(f"\nFault benchmark ({report['date']}, {cfg['minutes']} min at {cfg['rate']} req/s, "
          f"{'PostgreSQL stop' if cfg['stop_postgres'] else 'upstream faults + Redis stop'}, "
          f"deadline {cfg['deadline']:.0f} s)")
    print("\nSchedule:")
    for at, what in report["events"]:
        print(f"  t={at:6.0f}s  {what}")
    print("\n| phase | requests | ok % | 5xx | past deadline | p50 ms | p99 ms | failovers |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in [*report["phases"].items(), ("**all**", total)]:
        print(f"| {name} | {s['requests']} | {s['ok_pct']:.2f} | {s['http_5xx']} | {s['past_deadline']} | "
              f"{s['p50_ms']:.0f} | {s['p99_ms']:.0f} | {s['failovers']} |")
    if total["ok_pct_without_midstream"] is not None:
        print(f"\nok % not counting streams that broke after their first chunk (no failover possible): "
              f"{total['ok_pct_without_midstream']:.2f}")
    print("\nErrors by class:")
    for name, n in total["errors"].items() or [("none", 0)]:
        print(f"  {n:6d}  {name}")
        for text in total["examples"].get(name, [])[:2]:
            print(f"            e.g. {text[:160]}")
    u = report["usage"]
    print(f"\nUsage records: {u['rows']} rows for {u['sent']} requests sent ({u['distinct']} request ids; "
          f"missing {u['missing']}, duplicated {u['duplicates']}; "
          f"log lines with 'dropped': {u['dropped_log_lines']}; web log errors: {u['web_log_errors']})")
    rss = report["rss_mb"]
    print("RSS of the web process(es), MB: " + ", ".join(f"{k} {v}" for k, v in rss.items()))
    print(f"Faults injected by the fake providers: {report['injected']}")
    print(f"Served by: {total['served_by']}; requests not sent (client at --max-inflight): {report['skipped']}")
    checks = report["checks"]
    print("\nTargets: " + "; ".join(f"{name} — {'met' if met else 'NOT met'}" for name, met in checks.items()))


def parse_mix(text: str) -> dict[str, float | str]:
    """`error_rate=0.05,rate_limit_rate=0` over the default mix."""
    mix = dict(MIX)
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        if name.strip() not in MIX:
            raise argparse.ArgumentTypeError(f"unknown fault field {name!r} (known: {', '.join(MIX)})")
        mix[name.strip()] = value.strip() if name.strip() == "rate_limit_remaining" else float(value)
    return mix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="requests started per second")
    parser.add_argument("--stop-postgres", action="store_true", help="the second run: PostgreSQL stopped mid-load")
    parser.add_argument("--deadline", type=float, default=60.0, help="AFMTS_GATEWAY_DEADLINE_SECONDS for the run")
    parser.add_argument("--max-inflight", type=int, default=400)
    parser.add_argument("--workers", type=int, default=1, help="web processes (manage.py serve --workers)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--mix", type=parse_mix, default=dict(MIX), metavar="NAME=VALUE,...",
                        help=f"change the upstream fault mix (fields of /_control/faults; default {MIX})")
    parser.add_argument("--flush-wait", type=float, default=90.0, help="max seconds to wait for usage rows")
    parser.add_argument("--pg-admin-url", default="postgres://postgres@127.0.0.1:5432/postgres",
                        help="shared PostgreSQL where the bench creates (and drops) its database")
    args = parser.parse_args()
    install_signal_handlers()
    bench = Bench(args)
    try:
        bench.setup()
        log(f"load: {args.rate:g} req/s for {args.minutes:g} min")
        results = asyncio.run(bench.load())
        sent = {f"{PREFIX}-{r.n:07d}" for r in results}
        usage = bench.usage(sent)
        bench.rss["idle after flush"] = web_rss_mb(bench.web.pid if bench.web else None)
        injected = httpx.get(bench.fake_url + "/_control/faults", timeout=5).json()["injected"]
    finally:
        bench.keep_log("faults-postgres-web.log" if args.stop_postgres else "faults-web.log")
        bench.teardown()
    results.sort(key=lambda r: r.n)
    phases: dict[str, list[Result]] = {}
    for r in results:
        phases.setdefault(r.phase, []).append(r)
    total = summarize(results, args.deadline)
    rss = bench.rss
    start, end = rss.get("after warm-up"), rss.get("end")
    checks = {"past deadline = 0": total["past_deadline"] == 0,
              "usage rows = requests, no duplicates": usage["missing"] == 0 and usage["duplicates"] == 0
              and usage["rows"] == usage["sent"],
              "RSS end ≤ start + 20 %": bool(start and end and end <= 1.2 * start)}
    if args.stop_postgres:
        checks["no 5xx during and after the PostgreSQL stop"] = not any(
            r.status >= 500 for r in results if r.phase in ("pg down", "after pg"))
    else:
        checks["≥ 99.5 % ok"] = total["ok_pct"] >= 99.5
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "config": vars(args), "events": bench.events,
              "phases": {name: summarize(rs, args.deadline) for name, rs in phases.items()}, "total": total,
              "usage": usage, "rss_mb": rss, "injected": injected, "skipped": bench.skipped, "checks": checks,
              "results": [asdict(r) for r in results]}
    out = BENCH / "results" / ("faults-postgres.json" if args.stop_postgres else "faults.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print_report(report)
    print(f"\n(written to {out.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        log(f"failed: {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        log("interrupted; everything stopped")
        sys.exit(130)
