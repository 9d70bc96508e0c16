"""The servers under test of bench/gateway.py, one process (group) each, pluggable:

- `direct`: the upstream itself (nginx for plain replies, the fake provider server for streams),
  the floor every "added latency" is measured against;
- `litellm`: the LiteLLM proxy (one worker, no database) installed in its own venv under
  bench/.venvs/litellm, routing `bench-model` to the same upstreams;
- `portkey`: Portkey's gateway (npm `@portkey-ai/gateway`, installed under bench/.node/portkey) run
  with node on 127.0.0.1, calling the same upstreams as an OpenAI custom host;
- `afmts`: the project's ASGI app (afmts.asgi:application) under Daphne, Uvicorn or Granian (uvicorn
  also with several workers), with a temporary embedded data folder and the same upstreams
  registered as openai_compatible providers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench._harness import (
    BENCH,
    HOST,
    MODEL,
    ROOT,
    BenchError,
    FakeProviderUpstream,
    NginxUpstream,
    Proc,
    free_port,
    log,
    request_body,
    run,
    wait_http,
)

LITELLM_VERSION = "1.109.1"  # the version ../shared/FIELD.md measured; `pip index versions litellm`
LITELLM_VENV = BENCH / ".venvs" / "litellm"
PORTKEY_VERSION = "1.15.2"  # the version ../shared/FIELD.md measured
PORTKEY_DIR = BENCH / ".node" / "portkey"
MAIN_PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
SERVER_PACKAGES = {"daphne": "daphne", "uvicorn": "uvicorn[standard]", "granian": "granian"}
# What must import for a fair measurement: Uvicorn as deployed (uvloop and httptools), not its pure-Python fallback.
SERVER_MODULES = {"daphne": "daphne", "uvicorn": "uvicorn, uvloop, httptools", "granian": "granian"}
SERVER_LABELS = {"daphne": "daphne (1 process)", "uvicorn": "uvicorn (uvloop, httptools, 1 worker)",
                 "granian": "granian (asgi, 1 worker)"}


@dataclass
class Target:
    """A server under test. base_url ends before /v1; headers carry its key; model is what to ask for
    (stream_model for streamed requests, or None when it cannot stream from the fake server)."""

    name: str
    server: str = ""
    base_url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    model: str = MODEL
    stream_base_url: str = ""
    stream_headers: dict[str, str] | None = None  # when streams need other headers (Portkey's upstream)
    stream_model: str | None = None
    unavailable: str | None = None  # why it cannot be measured (the run goes on without it)
    notes: list[str] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"

    @property
    def stream_url(self) -> str:
        return f"{self.stream_base_url or self.base_url}/v1/chat/completions"

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def pid(self) -> int | None:
        """The process whose tree's memory is reported."""
        return self.procs[0].pid if self.procs else None

    def check(self) -> None:
        """One request of each kind, so a broken target is reported instead of measured."""
        reply = httpx.post(self.chat_url, json=request_body(self.model), headers=self.headers, timeout=30)
        if reply.status_code != 200:
            raise BenchError(f"POST /v1/chat/completions answered {reply.status_code}: {reply.text[:300]}")
        data = reply.json()
        if not data.get("choices"):
            raise BenchError(f"reply without choices: {reply.text[:300]}")


@dataclass
class DirectTarget(Target):
    nginx: NginxUpstream | None = None
    fake: FakeProviderUpstream | None = None

    def start(self) -> None:
        assert self.nginx is not None and self.nginx.proc is not None
        self.server = "nginx (1 worker)"
        self.base_url = self.nginx.url
        self.headers = {"Authorization": "Bearer sk-direct"}
        if self.fake is not None and self.fake.proc is not None:
            self.stream_base_url = self.fake.openai_base
            self.stream_model = MODEL

    def stop(self) -> None:  # the upstreams outlive the targets; gateway.py stops them last
        pass

    def pid(self) -> int | None:
        return self.nginx.proc.pid if self.nginx and self.nginx.proc else None


# ---------------------------------------------------------------------- LiteLLM


def litellm_install(timeout: float = 1200) -> str:
    """bench/.venvs/litellm with litellm[proxy]==LITELLM_VERSION; returns its version or raises.

    The package index here may lag behind what a LiteLLM release pins (1.109.1 wants a certifi and a
    litellm-proxy-extras that are not on it): then LiteLLM is installed without its dependencies and
    those are installed from its own list, with each unsatisfiable pin relaxed to the newest available.
    """
    python = LITELLM_VENV / "bin" / "python"
    if python.exists():
        found = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                               capture_output=True, text=True, timeout=60)
        proxy_ok = subprocess.run([str(python), "-c", "import litellm.proxy.proxy_server"], capture_output=True,
                                  timeout=180, env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
        if found.returncode == 0 and found.stdout.strip() == LITELLM_VERSION and proxy_ok.returncode == 0:
            return LITELLM_VERSION
    log(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} (first time: a few minutes)")
    if not python.exists():
        run([sys.executable if sys.prefix == sys.base_prefix else "python3", "-m", "venv", str(LITELLM_VENV)], 120,
            what="python3 -m venv")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    try:
        run(pip + [f"litellm[proxy]=={LITELLM_VERSION}"], timeout, what="pip install litellm[proxy]")
    except BenchError as exc:
        missing = re.findall(r"No matching distribution found for ([A-Za-z0-9_.\-]+)", str(exc))
        if not missing or any(m.lower() == "litellm" for m in missing):
            raise
        log(f"litellm's pins unsatisfiable here ({', '.join(missing)}): installing with relaxed pins")
        run(pip + ["--no-deps", f"litellm=={LITELLM_VERSION}"], timeout, what="pip install --no-deps litellm")
        _install_relaxed_deps(python, pip, timeout)
    return LITELLM_VERSION


_REQS_SCRIPT = """
import sys
from importlib.metadata import requires
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.specifiers import SpecifierSet
relaxed = set(sys.argv[1:])
for line in requires("litellm") or []:
    r = Requirement(line)
    if r.marker and not r.marker.evaluate({"extra": "proxy"}):
        continue
    r.marker = None
    if r.name.lower().replace("_", "-") in relaxed:
        r.specifier = SpecifierSet("")
    print(r)
"""


def _install_relaxed_deps(python: Path, pip: list[str], timeout: float) -> None:
    relaxed: set[str] = set()
    for _ in range(8):
        reqs = run([str(python), "-c", _REQS_SCRIPT, *sorted(relaxed)], 60, what="reading litellm's requirements")
        try:
            run(pip + reqs.split(), timeout, what="pip install litellm's dependencies")
            if relaxed:
                log(f"litellm installed with relaxed pins: {', '.join(sorted(relaxed))}")
            return
        except BenchError as exc:
            missing = {m.lower().replace("_", "-") for m in re.findall(
                r"No matching distribution found for ([A-Za-z0-9_.\-]+?)(?:[<>=!~\[ ]|$)", str(exc))}
            if not missing or missing <= relaxed:
                raise
            relaxed |= missing
    raise BenchError("litellm's dependencies: too many unsatisfiable pins")


@dataclass
class ComparedTarget(Target):
    """Another gateway measured beside AFMTS, installed on first use and pointed at the same upstreams
    (nginx for plain requests, the fake provider for streams)."""

    nginx: NginxUpstream | None = None
    fake: FakeProviderUpstream | None = None
    workdir: Path | None = None
    version: str = ""

    def installed(self, install: Callable[[], str]) -> bool:
        """Install it (or find it installed) and note its version; False, with why in `unavailable`,
        when that fails (the run goes on without it)."""
        assert self.nginx is not None and self.workdir is not None
        try:
            self.version = install()
        except BenchError as exc:
            reason = re.sub(r" \(from versions:[^)]*\)?", "", str(exc).splitlines()[0])
            self.unavailable = f"unavailable (install failed: {reason[:200]})"
            return False
        return True


@dataclass
class LiteLLMTarget(ComparedTarget):
    def start(self) -> None:
        if not self.installed(litellm_install):
            return
        self.server = f"litellm {self.version} (uvicorn, 1 worker)"
        key = "sk-bench-litellm-master"
        port = free_port()
        folder = self.workdir / "litellm"
        folder.mkdir(parents=True, exist_ok=True)
        models = [{"model_name": MODEL, "litellm_params": {
            "model": f"openai/{MODEL}", "api_base": f"{self.nginx.url}/v1", "api_key": "sk-upstream"}}]
        if self.fake is not None and self.fake.proc is not None:
            models.append({"model_name": "bench-stream", "litellm_params": {
                "model": f"openai/{MODEL}", "api_base": f"{self.fake.openai_base}/v1", "api_key": "fake-key"}})
            self.stream_model = "bench-stream"
        config = {
            "model_list": models,
            "general_settings": {"master_key": key},
            "litellm_settings": {"telemetry": False, "drop_params": True, "set_verbose": False},
        }
        path = folder / "config.yaml"
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        env = {k: v for k, v in os.environ.items() if k not in (
            "DATABASE_URL", "REDIS_URL", "REDIS_HOST", "LITELLM_MASTER_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL")}
        env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "DISABLE_SCHEMA_UPDATE": "True",
                    "NO_DOCS": "True", "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True", "HOME": str(folder)})
        proc = Proc("litellm", [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(path), "--host", HOST,
                                "--port", str(port), "--num_workers", "1"], folder / "litellm.log", env=env,
                    cwd=folder).start()
        self.procs.append(proc)
        self.base_url = f"http://{HOST}:{port}"
        self.stream_base_url = self.base_url
        self.headers = {"Authorization": f"Bearer {key}"}
        try:
            wait_http(f"{self.base_url}/health/liveliness", proc, 180, ok=lambda r: r.status_code == 200)
        except BenchError as exc:
            self.unavailable = f"unavailable (did not start: {str(exc).splitlines()[0][:200]})"
            log(str(exc))


# ---------------------------------------------------------------------- Portkey

# Preloaded into node (-r) before Portkey's server starts.
PORTKEY_PRELOAD = """// generated by bench/_targets.py
// Loopback only: @hono/node-server listens on every interface when given just a port.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number") args.splice(1, typeof args[1] === "string" ? 1 : 0, "127.0.0.1");
  else if (args[0] && typeof args[0] === "object" && args[0].port !== undefined) args[0] = { ...args[0], host: "127.0.0.1" };
  return listen.apply(this, args);
};
// Portkey 1.15.2 on Node 20 appends to a streamed upstream reply's headers, which undici's fetch
// makes immutable ("TypeError: immutable", every stream fails); a copy of such a reply has mutable
// headers. Non-streamed replies are passed as they are.
const upstreamFetch = globalThis.fetch;
globalThis.fetch = async (...args) => {
  const reply = await upstreamFetch(...args);
  if (!(reply.headers.get("content-type") || "").includes("text/event-stream")) return reply;
  return new Response(reply.body, { status: reply.status, statusText: reply.statusText, headers: reply.headers });
};
"""


def portkey_install(timeout: float = 600) -> str:
    """@portkey-ai/gateway==PORTKEY_VERSION under bench/.node/portkey (npm, git-ignored); its version."""
    if not shutil.which("node") or not shutil.which("npm"):
        raise BenchError("node and npm are needed (apt-get install nodejs npm)")
    manifest = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "package.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("version") == PORTKEY_VERSION:
        return PORTKEY_VERSION
    log(f"installing @portkey-ai/gateway@{PORTKEY_VERSION} into {PORTKEY_DIR}")
    PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
    package = PORTKEY_DIR / "package.json"
    if not package.exists():
        package.write_text('{"private": true}\n')
    run(["npm", "install", "--no-audit", "--no-fund", "--save-exact", f"@portkey-ai/gateway@{PORTKEY_VERSION}"],
        timeout, cwd=PORTKEY_DIR, what="npm install @portkey-ai/gateway")
    return PORTKEY_VERSION


@dataclass
class PortkeyTarget(ComparedTarget):
    def start(self) -> None:
        if not self.installed(portkey_install):
            return
        node = run(["node", "--version"], 30, what="node --version").strip()
        self.server = f"portkey {self.version} (node {node}, 1 process)"
        folder = self.workdir / "portkey"
        folder.mkdir(parents=True, exist_ok=True)
        preload = folder / "preload.cjs"
        preload.write_text(PORTKEY_PRELOAD)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTKEY", "OPENAI"))}
        entry = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
        proc = Proc("portkey", ["node", "-r", str(preload), str(entry), f"--port={port}", "--headless"],
                    folder / "portkey.log", env=env, cwd=folder).start()
        self.procs.append(proc)
        self.base_url = f"http://{HOST}:{port}"
        self.model = MODEL
        # Portkey's OpenAI provider pointed at our upstream (a "custom host"), the key passed through.
        self.headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": f"{self.nginx.url}/v1",
                        "Authorization": "Bearer sk-upstream"}
        if self.fake is not None and self.fake.proc is not None:
            self.stream_base_url = self.base_url
            self.stream_model = MODEL
            self.stream_headers = {**self.headers, "x-portkey-custom-host": f"{self.fake.openai_base}/v1"}
        try:
            wait_http(f"{self.base_url}/", proc, 60, ok=lambda r: True)
        except BenchError as exc:
            self.unavailable = f"unavailable (did not start: {str(exc).splitlines()[0][:200]})"


# ---------------------------------------------------------------------- AFMTS


def ensure_server(server: str) -> None:
    """The ASGI server in the main .venv; installed (not added to requirements.txt) when missing."""
    probe = subprocess.run([MAIN_PYTHON, "-c", f"import {SERVER_MODULES[server]}"], capture_output=True, timeout=60)
    if probe.returncode == 0:
        return
    log(f"{server} is not in .venv: pip install {SERVER_PACKAGES[server]} (not added to requirements.txt)")
    run([MAIN_PYTHON, "-m", "pip", "install", "-q", "--disable-pip-version-check", SERVER_PACKAGES[server]], 600,
        what=f"pip install {SERVER_PACKAGES[server]}")


def server_argv(server: str, port: int, app: str = "afmts.asgi:application", workers: int = 1) -> list[str]:
    if server == "daphne":
        return [MAIN_PYTHON, "-m", "daphne", "-v", "0", "-b", HOST, "-p", str(port), app]  # -v 0: no access log
    if server == "uvicorn":
        return [MAIN_PYTHON, "-m", "uvicorn", "--host", HOST, "--port", str(port), "--workers", str(workers),
                "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log",
                "--no-server-header", app]  # as `manage.py serve` runs it
    if server == "granian":
        return [MAIN_PYTHON, "-m", "granian", "--interface", "asgi", "--host", HOST, "--port", str(port),
                "--workers", "1", "--log-level", "warning", app]
    raise BenchError(f"unknown server {server}")


REGISTER_MODELS = """
from registry import services
for slug, model_id in {pairs!r}:
    services.model_register(provider_slug=slug, provider_kind=None, endpoint=None, api_key=None, upsert=True,
                            model_fields={{"model_id": model_id, "name": model_id, "type": "chat",
                                          "context_window": 128000, "max_output_tokens": 4096}})
"""


@dataclass
class AfmtsTarget(Target):
    asgi_server: str = "daphne"
    app: str = "afmts.asgi:application"
    workers: int = 1
    env_extra: dict[str, str] = field(default_factory=dict)
    nginx: NginxUpstream | None = None
    fake: FakeProviderUpstream | None = None
    workdir: Path | None = None

    def start(self) -> None:
        assert self.nginx is not None and self.workdir is not None
        self.server = SERVER_LABELS[self.asgi_server]
        if self.workers > 1:
            if self.asgi_server != "uvicorn":
                self.unavailable = "unavailable (several workers: uvicorn only)"
                return
            self.server = f"uvicorn (uvloop, httptools, {self.workers} workers)"
        try:
            ensure_server(self.asgi_server)
        except BenchError as exc:
            self.unavailable = f"unavailable ({exc})"
            return
        data = self.workdir / "afmts-data"
        data.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in (
            "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "FERNET_KEYS", "SECRET_KEY", "DEBUG")}
        env.update({"AFMTS_DATA_DIR": str(data), "DJANGO_SETTINGS_MODULE": "afmts.settings", "LOG_LEVEL": "WARNING",
                    "PYTHONUNBUFFERED": "1", **self.env_extra})
        manage = [MAIN_PYTHON, str(ROOT / "manage.py")]
        try:
            run(manage + ["migrate", "--noinput", "-v", "0"], 300, env=env, cwd=ROOT, what="manage.py migrate")
            secret = run(manage + ["createapikey", "bench", "--scope", "admin", "--rate-limit", "0", "--quiet"], 120, env=env, cwd=ROOT,
                         what="manage.py createapikey").strip().splitlines()[-1].strip()
            run(manage + ["register_provider", "openai_compatible", "--slug", "bench", "--base-url", self.nginx.url],
                120, env=env, cwd=ROOT, what="manage.py register_provider")
            pairs = [("bench", MODEL)]
            if self.fake is not None and self.fake.proc is not None:
                run(manage + ["register_provider", "openai_compatible", "--slug", "bench-stream", "--base-url",
                              self.fake.openai_base], 120, env=env, cwd=ROOT, what="manage.py register_provider")
                pairs.append(("bench-stream", MODEL))
            run(manage + ["shell", "-c", REGISTER_MODELS.format(pairs=pairs)], 120, env=env, cwd=ROOT,
                what="registering the bench models")
        except BenchError as exc:
            self.unavailable = f"unavailable (setup failed: {str(exc)[:300]})"
            return
        self.model = f"bench/{MODEL}"
        if len(pairs) > 1:
            self.stream_model = f"bench-stream/{MODEL}"
        port = free_port()
        proc = Proc(f"afmts-{self.asgi_server}", server_argv(self.asgi_server, port, self.app, self.workers),
                    self.workdir / f"afmts-{self.asgi_server}.log",
                    env=env, cwd=ROOT).start()
        self.procs.append(proc)
        self.base_url = f"http://{HOST}:{port}"
        self.stream_base_url = self.base_url
        self.headers = {"Authorization": f"Bearer {secret}"}
        try:
            wait_http(f"{self.base_url}/health", proc, 60, ok=lambda r: True)
        except BenchError as exc:
            self.unavailable = f"unavailable (did not start: {str(exc)[:300]})"
            return
        # Is the gateway there yet? A 404/405 for the route itself (Django's, even in OpenAI shape) means no;
        # the gateway's own 404 on this route is only for an unknown model (code model_not_found).
        probe = httpx.post(self.chat_url, json=request_body(self.model), headers=self.headers, timeout=30)
        error = _openai_error(probe) or {}
        if probe.status_code in (404, 405) and error.get("code") != "model_not_found":
            self.unavailable = ("gateway not available yet (POST /v1/chat/completions answered "
                                f"{probe.status_code} {str(error.get('message') or probe.text)[:80]!r})")

    def pid(self) -> int | None:
        return self.procs[0].pid if self.procs else None


def _openai_error(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
