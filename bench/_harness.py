"""Building blocks of bench/gateway.py: processes on 127.0.0.1 that are always stopped, tool installs,
the fixed-reply nginx upstream, the fake provider server for streams, and the three measurements
(sequential latency with httpx, time to first token, wrk throughput).

Nothing here reaches past the loopback: every server listens on 127.0.0.1 and every client calls it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HOST = "127.0.0.1"
MODEL = "bench-model"

# What the upstream answers: a realistic, short OpenAI chat.completion and a small model listing.
CHAT_COMPLETION = {
    "id": "chatcmpl-bench0000000000000000000000001",
    "object": "chat.completion",
    "created": 1763900000,
    "model": MODEL,
    "system_fingerprint": "fp_bench",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "Paris is the capital of France.", "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": {"prompt_tokens": 24, "completion_tokens": 8, "total_tokens": 32,
              "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
}
MODELS = {"object": "list", "data": [
    {"id": MODEL, "object": "model", "created": 1763900000, "owned_by": "bench"},
    {"id": "bench-embed", "object": "model", "created": 1763900000, "owned_by": "bench"},
]}


def request_body(model: str, stream: bool = False) -> dict[str, Any]:
    """The request every target gets: a short chat, as a typical client sends it."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "What is the capital of France? Answer in one sentence."},
        ],
        "max_tokens": 64,
        "temperature": 0,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


class BenchError(RuntimeError):
    """A step failed; the message says which and why."""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------- processes


@dataclass
class Proc:
    """A server subprocess in its own process group, its output in a log file; stop() ends the group."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen | None = field(default=None, init=False)
    _stopped: bool = field(default=False, init=False)

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._out = out
        self.popen = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, cwd=self.cwd, start_new_session=True,
        )
        REGISTRY.append(self)
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        if self.popen is None or self._stopped:
            return
        self._stopped = True
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(5)
        # The group may outlive its leader (workers): make sure nothing of ours is left.
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._out.close()
        if self in REGISTRY:
            REGISTRY.remove(self)

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


REGISTRY: list[Proc] = []


def stop_all() -> None:
    for proc in list(reversed(REGISTRY)):
        try:
            proc.stop()
        except Exception as exc:  # noqa: BLE001 - stopping the rest matters more
            log(f"stopping {proc.name} failed: {exc}")


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP behave like Ctrl-C: the caller's finally blocks stop every server."""

    def raise_interrupt(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")

    # Also when started with SIGINT ignored (a background job of a script): Ctrl-C / kill -INT still stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_interrupt)
    signal.signal(signal.SIGHUP, raise_interrupt)


def wait_http(url: str, proc: Proc | None, timeout: float, ok=lambda r: r.status_code < 500,
              headers: dict[str, str] | None = None) -> httpx.Response:
    """Poll url until ok(response); fail early when the process died."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise BenchError(f"{proc.name} exited (code {proc.popen.returncode}):\n{proc.tail()}")
        try:
            response = httpx.get(url, timeout=2.0, headers=headers)
            if ok(response):
                return response
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    tail = f"\n{proc.tail()}" if proc is not None else ""
    raise BenchError(f"{url} not ready after {timeout:.0f} s ({last}){tail}")


def run(argv: list[str], timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None,
        what: str = "") -> str:
    """Run a command to completion within timeout; its stdout, or BenchError with its output."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what or argv[0]} took more than {timeout:.0f} s") from exc
    if done.returncode != 0:
        output = [line for line in (done.stdout + done.stderr).strip().splitlines() if "is ignored:" not in line]
        errors = [line for line in output if line.startswith("ERROR")]  # pip's reasons first
        raise BenchError(f"{what or ' '.join(argv[:3])} failed (exit {done.returncode}): "
                         + "\n".join(errors[-3:] + ["--"] + output[-12:] if errors else output[-12:]))
    return done.stdout


def rss_mb(pid: int | None) -> dict[str, float] | None:
    """VmRSS and VmHWM (MB) of pid and all its descendants, read from /proc."""
    if pid is None or not Path(f"/proc/{pid}").exists():
        return None
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    rss = hwm = 0
    each = []
    for p in tree:
        fields = {}
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("Name", "VmRSS", "VmHWM"):
                    fields[key] = value.strip()
        except OSError:
            continue
        p_rss = int(fields.get("VmRSS", "0 kB").split()[0])
        p_hwm = int(fields.get("VmHWM", "0 kB").split()[0])
        rss, hwm = rss + p_rss, hwm + p_hwm
        each.append({"pid": p, "name": fields.get("Name", "?"), "rss_mb": round(p_rss / 1024, 1)})
    return {"rss_mb": round(rss / 1024, 1), "hwm_mb": round(hwm / 1024, 1), "processes": len(each),
            "per_process": each}


def cpu_busy_percent(seconds: float = 1.0) -> float:
    """Share of all cores busy over the next `seconds` (from /proc/stat): how quiet the machine is."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return 100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0))


# ---------------------------------------------------------------------- installs


def ensure_debian_tool(binary: str, package: str) -> str:
    """The tool's path, installing its Debian package when missing (like .ci/run would)."""
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError(f"{binary} is missing and this is not root: apt-get install {package}")
    log(f"{binary} missing: apt-get install {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}  # no system service started
    try:
        run(["apt-get", "install", "-y", "-qq", package], 600, env=env, what=f"apt-get install {package}")
    except BenchError:
        run(["apt-get", "update", "-qq"], 300, env=env, what="apt-get update")
        run(["apt-get", "install", "-y", "-qq", package], 600, env=env, what=f"apt-get install {package}")
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if not found:
        raise BenchError(f"{package} installed but {binary} not found")
    return found


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "?"


# ---------------------------------------------------------------------- upstreams


class NginxUpstream:
    """Debian's nginx answering POST /v1/chat/completions and GET /v1/models with canned JSON."""

    def __init__(self, workdir: Path):
        self.dir = workdir / "nginx"
        self.port = free_port()
        self.proc: Proc | None = None
        self.binary = ""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> NginxUpstream:
        self.binary = ensure_debian_tool("nginx", "nginx")
        self.dir.mkdir(parents=True, exist_ok=True)
        compact = {"separators": (",", ":")}
        conf = (BENCH / "nginx" / "upstream.conf.tmpl").read_text()
        chat, models = json.dumps(CHAT_COMPLETION, **compact), json.dumps(MODELS, **compact)
        for text in (chat, models):
            assert "'" not in text and "$" not in text and "\\" not in text, "nginx return strings stay literal"
        conf = (conf.replace("{{TMP}}", str(self.dir)).replace("{{PORT}}", str(self.port))
                .replace("{{CHAT_COMPLETION}}", chat).replace("{{MODELS}}", models))
        path = self.dir / "nginx.conf"
        path.write_text(conf)
        run([self.binary, "-t", "-q", "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(path)], 20,
            what="nginx -t")
        self.proc = Proc("nginx", [self.binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"),
                                   "-c", str(path)], self.dir / "stdout.log").start()
        wait_http(self.url + "/v1/models", self.proc, 10, ok=lambda r: r.status_code == 200)
        reply = httpx.post(self.url + "/v1/chat/completions", json=request_body(MODEL), timeout=5)
        if reply.status_code != 200 or reply.json()["object"] != "chat.completion":
            raise BenchError(f"nginx upstream answered {reply.status_code}: {reply.text[:200]}")
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


class FakeProviderUpstream:
    """The project's fake provider server (registry/fakes), for streamed replies; its
    openai_compatible API needs no key and accepts any model name."""

    def __init__(self, workdir: Path, python: str):
        self.dir = workdir / "fakes"
        self.port = free_port()
        self.python = python
        self.proc: Proc | None = None
        self.unavailable: str | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def openai_base(self) -> str:
        """The base URL without /v1 (as the project's adapters take it)."""
        return f"{self.url}/openai_compatible"

    def start(self) -> FakeProviderUpstream:
        if not (ROOT / "registry" / "fakes" / "__main__.py").exists():
            # TODO(bench): when registry/fakes is gone or renamed, point this at the streaming fake.
            self.unavailable = "registry/fakes not found"
            return self
        # No pause between chunks: time to first token is then the proxies' own, not the fake's pacing.
        self.proc = Proc("fake-providers", [self.python, "-m", "registry.fakes", "--host", HOST,
                                            "--port", str(self.port), "--chunk-delay", "0"],
                         self.dir / "stdout.log", cwd=ROOT).start()
        try:
            wait_http(self.url + "/_control/health", self.proc, 20, ok=lambda r: r.status_code == 200)
        except BenchError as exc:
            self.unavailable = f"fake provider server did not start: {str(exc).splitlines()[0]}"
            self.proc.stop()
            self.proc = None
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


# ---------------------------------------------------------------------- measurements


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


OVERHEAD_HEADERS = ("x-afmts-overhead-ms", "x-litellm-overhead-duration-ms")


def one_connection_runs(n: int, warmup: int, time_limit: float, max_errors: int,
                        run: Callable[[httpx.Client, bool], str | None]) -> dict[str, int]:
    """`run(client, measured)` warmup + n times in sequence on one keep-alive connection, within
    time_limit seconds; `run` measures when asked and returns what went wrong, or None. Stops past
    max_errors errors. Returns the errors by kind."""
    errors: dict[str, int] = {}
    deadline = time.monotonic() + time_limit
    with httpx.Client(timeout=10.0, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) as client:
        for i in range(warmup + n):
            if time.monotonic() > deadline:
                break
            error = run(client, i >= warmup)
            if error is not None:
                errors[error] = errors.get(error, 0) + 1
                if sum(errors.values()) > max_errors:
                    break
    return errors


class _Poster:
    """Sequential POSTs of one body to one URL, each timed (ms) and its self-reported overhead kept."""

    def __init__(self, url: str, headers: dict[str, str], body: dict) -> None:
        self.url, self.payload = url, json.dumps(body).encode()
        self.headers = {"content-type": "application/json", **headers}
        self.samples: list[float] = []
        self.reported: list[float] = []

    def post(self, client: httpx.Client, measured: bool) -> str | None:
        t0 = time.perf_counter()
        try:
            response = client.post(self.url, content=self.payload, headers=self.headers)
            response.read()
        except httpx.HTTPError as exc:
            return type(exc).__name__
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status_code != 200:
            return str(response.status_code)
        if measured:
            self.samples.append(elapsed)
            for name in OVERHEAD_HEADERS:
                try:
                    self.reported.append(float(response.headers[name]))
                except (KeyError, ValueError):
                    pass
        return None

    def figures(self, errors: dict[str, int]) -> dict[str, Any]:
        samples, reported = self.samples, self.reported
        return {
            "n": len(samples), "errors": errors,
            "p50_ms": percentile(samples, 50), "p90_ms": percentile(samples, 90), "p99_ms": percentile(samples, 99),
            "max_ms": max(samples) if samples else float("nan"),
            "mean_ms": statistics.fmean(samples) if samples else float("nan"),
            # What the server says its own overhead was (x-afmts-overhead-ms, x-litellm-overhead-duration-ms).
            "self_reported_overhead_p50_ms": percentile(reported, 50) if reported else None,
        }


def sequential_latency(url: str, headers: dict[str, str], body: dict, n: int, warmup: int,
                       time_limit: float) -> dict[str, Any]:
    """Concurrency 1: n sequential POSTs on one keep-alive connection after warmup; ms."""
    poster = _Poster(url, headers, body)
    return poster.figures(one_connection_runs(n, warmup, time_limit, max(10, n // 10), poster.post))


def paired_latency(base: tuple[str, dict[str, str], dict], target: tuple[str, dict[str, str], dict], n: int,
                   warmup: int, time_limit: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Concurrency 1, side by side: n pairs of sequential POSTs, one to `base` (the upstream itself)
    and then one to `target` (a gateway in front of it), each on its own keep-alive connection, so
    both series are taken in the same moments (the machine's drift falls on both alike).
    Returns (base figures, target figures)."""
    first, second = _Poster(*base), _Poster(*target)
    with httpx.Client(timeout=10.0, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) as other:

        def both(client: httpx.Client, measured: bool) -> str | None:
            error = first.post(other, measured)
            return second.post(client, measured) if error is None else f"upstream {error}"

        errors = one_connection_runs(n, warmup, time_limit, max(10, n // 10), both)
    return first.figures({k[9:]: v for k, v in errors.items() if k.startswith("upstream ")}), second.figures(
        {k: v for k, v in errors.items() if not k.startswith("upstream ")})


def time_to_first_token(url: str, headers: dict[str, str], body: dict, n: int, warmup: int,
                        time_limit: float) -> dict[str, Any]:
    """Sequential streamed requests: ms from sending to the first SSE chunk carrying content."""
    payload = json.dumps(body).encode()
    hdrs = {"content-type": "application/json", "accept": "text/event-stream", **headers}
    samples: list[float] = []
    totals: list[float] = []

    def stream(client: httpx.Client, measured: bool) -> str | None:
        t0 = time.perf_counter()
        first = None
        try:
            with client.stream("POST", url, content=payload, headers=hdrs) as response:
                if response.status_code != 200:
                    response.read()
                    return f"HTTP {response.status_code}"
                for line in response.iter_lines():
                    if first is None and line.startswith("data:") and _has_content(line[5:]):
                        first = time.perf_counter()
            end = time.perf_counter()
        except httpx.HTTPError as exc:
            return type(exc).__name__
        if first is None:
            return "no content chunk"
        if measured:
            samples.append((first - t0) * 1000)
            totals.append((end - t0) * 1000)
        return None

    errors = one_connection_runs(n, warmup, time_limit, max(5, n // 10), stream)
    return {"n": len(samples), "errors": errors, "p50_ms": percentile(samples, 50),
            "p99_ms": percentile(samples, 99), "total_p50_ms": percentile(totals, 50)}


def _has_content(data: str) -> bool:
    data = data.strip()
    if not data or data == "[DONE]":
        return False
    try:
        chunk = json.loads(data)
    except ValueError:
        return False
    for choice in chunk.get("choices") or []:
        if (choice.get("delta") or {}).get("content"):
            return True
    return False


WRK_LUA = """-- generated by bench/_harness.py
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d,\\"max_us\\":%d," ..
    "\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrk_throughput(wrk: str, url: str, headers: dict[str, str], body: dict, workdir: Path, connections: int,
                   duration: float, warmup: float, threads: int = 1) -> dict[str, Any]:
    """wrk with a POST body: a warm-up run, then the measured one; requests/s counts 2xx only."""
    header_lines = "\n".join(
        f'wrk.headers["{k}"] = "{v}"' for k, v in {"Content-Type": "application/json", **headers}.items()
    )
    script = workdir / f"wrk-{abs(hash(url)) % 10**8}.lua"
    text = json.dumps(body)
    assert "]==]" not in text
    script.write_text(WRK_LUA.format(body=text, headers=header_lines))

    def once(seconds: float) -> dict[str, Any]:
        argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
                "-s", str(script), url]
        out = run(argv, seconds + 60, what="wrk")
        for line in out.splitlines():
            if line.startswith("BENCH_JSON "):
                return json.loads(line[len("BENCH_JSON "):])
        raise BenchError(f"wrk printed no summary:\n{out[-500:]}")

    if warmup > 0:
        once(warmup)
    result = once(duration)
    failed = result["status"] + result["connect"] + result["read"] + result["write"] + result["timeout"]
    seconds = result["duration_us"] / 1e6
    ok = max(0, result["requests"] - result["status"])
    return {
        "connections": connections, "threads": threads, "seconds": round(seconds, 2),
        "requests": result["requests"], "errors": failed, "error_detail": {k: result[k] for k in (
            "status", "connect", "read", "write", "timeout") if result[k]},
        "rps": ok / seconds if seconds else float("nan"),
        "p50_ms": result["p50_us"] / 1000, "p99_ms": result["p99_us"] / 1000,
    }


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="afmts-gwbench-"))
