"""`manage.py serve`: the whole service in one command (what `make run` calls).

Starts the ASGI web server (uvicorn; `--workers N` web processes) and a Celery worker with an
embedded beat as child processes, and the demo providers when AFMTS_DEMO is on. Ctrl-C (or
SIGTERM) stops all of them; if one dies, the rest are stopped too, so a half-running service never
lingers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from afmts.metrics import clean_dead


def web_command(host: str, port: int, workers: int = 1) -> list[str]:
    """The ASGI server: uvicorn with uvloop and httptools, the measured choice (README, "Gateway
    performance"); AFMTS_SERVER=daphne runs Daphne instead (one process only).

    Several web processes are uvicorn's `--workers N`: one listening socket opened by uvicorn's
    supervisor and shared by N spawned processes (the kernel hands each connection to one of
    them), each with its own event loop, gateway runtime and background tasks, all started by its
    own first request. The supervisor restarts a worker that dies. What they must agree on is
    shared through the database (registry version, events) and Redis when configured (live
    routing state, channel layer); in embedded mode each process relays the others' events to its
    WebSocket clients from the events table (dashboard.relay)."""
    if settings.AFMTS_SERVER == "daphne":
        if workers > 1:
            raise CommandError("--workers needs uvicorn (AFMTS_SERVER=uvicorn): Daphne runs one process")
        return [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "--proxy-headers", "afmts.asgi:application"]
    return [
        sys.executable, "-m", "uvicorn", "afmts.asgi:application", "--host", host, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--ws", "websockets", "--lifespan", "on", "--proxy-headers",
        "--no-access-log", "--no-server-header", "--timeout-keep-alive", "75", *(["--workers", str(workers)] if workers > 1 else []),
    ]


class Command(BaseCommand):
    help = "Run web server + Celery worker/beat (+ demo providers) together; Ctrl-C stops all."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--no-worker", action="store_true", help="web only (workers run elsewhere)")
        parser.add_argument("--concurrency", type=int, default=settings.CELERY_WORKER_CONCURRENCY)
        parser.add_argument("--workers", type=int, default=settings.AFMTS_WEB_WORKERS,
                            help="web processes (uvicorn --workers); default AFMTS_WEB_WORKERS or 1")

    def handle(self, *args, host, port, no_worker, concurrency, workers, **options):
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        clean_dead()  # Prometheus files of earlier runs: this service's counts start at zero
        commands: dict[str, list[str]] = {}
        for name, argv in self.extra_processes():
            commands[name] = argv
        if not no_worker:
            commands["worker"] = [
                sys.executable, "-m", "celery", "-A", "afmts", "worker", "--beat", "-l", "info",
                "--concurrency", str(concurrency), "--hostname", f"afmts-{port}@%h",
            ]
        commands["web"] = web_command(host, port, workers)
        env = {**os.environ, "PORT": str(port)}
        procs: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, argv in commands.items():
            procs[name] = subprocess.Popen(argv, env=env, start_new_session=True)
        self.stdout.write(self.style.SUCCESS(
            f"AFMTS ({settings.MODE} mode, {workers} web process{'es' if workers > 1 else ''}) on "
            f"http://{host}:{port}/  — admin /admin/, API docs /api/docs/, "
            f"health /health, metrics /metrics. Ctrl-C stops it."
        ))
        code = 0
        try:
            while not stopping:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with {proc.returncode}; stopping the rest")
                        code, stopping = proc.returncode or 1, True
                        break
                time.sleep(0.3)
        finally:
            self._stop_all(procs)
        sys.exit(code)

    def extra_processes(self) -> list[tuple[str, list[str]]]:
        """Processes beside web and worker: the fake provider server when AFMTS_DEMO is on."""
        if not settings.AFMTS_DEMO:
            return []
        return [("demo providers", [sys.executable, "-m", "registry.fakes", "--port", str(settings.AFMTS_DEMO_PORT), "--demo"])]

    @staticmethod
    def _stop_all(procs: dict[str, subprocess.Popen]) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
