"""Deployment (docker/): what can be checked on a machine that cannot pull images.

The compose file passes `docker compose config` (or Debian's docker-compose) and describes the
service (one-shot migrate, replicas, one beat, nginx, monitoring profile); the Dockerfile parses
with BuildKit's own parser and runs the web server of `make web`; the image's health check and
Prometheus' per-replica scrape work against that web server started as the container starts it;
nginx's config passes `nginx -t` with Debian's nginx (the one docker/nginx/Dockerfile installs);
`make prod-check` passes. That requirements.txt resolves to wheels for arm64 and amd64 is checked
by .ci/run (docker/check-wheels.sh): it downloads from the package index."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dockerfile
import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
IN_CI = os.environ.get("CI", "").lower() == "true"
SECRETS = {
    "AFMTS_HOSTNAME": "afmts.example.com",
    "SECRET_KEY": "k" * 50,
    "FERNET_KEYS": "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE=",
    "POSTGRES_PASSWORD": "pw",
}
SERVER_VARS = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "FERNET_KEYS",
               "AFMTS_ALLOW_GENERATED_SECRETS", "ALLOWED_HOSTS", "AFMTS_HTTPS", "DEBUG"}


def tool_missing(what: str) -> None:
    """CI installs every tool these tests need (.ci/run): there a missing one fails, elsewhere it skips."""
    if IN_CI:
        pytest.fail(f"{what} is missing (.ci/run installs it)")
    pytest.skip(f"{what} is missing")


def compose_command() -> list[str]:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    tool_missing("docker compose (or Debian's docker-compose)")
    raise AssertionError


def env_file(tmp_path: Path, drop: str = "") -> Path:
    """docker/.env.example with its required values filled in, as an operator would."""
    lines = []
    for line in (DOCKER / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        if name in SECRETS and line == f"{name}=":
            line = "" if name == drop else f"{name}={SECRETS[name]}"
        lines.append(line)
    path = tmp_path / "env"
    path.write_text("\n".join(lines) + "\n")
    return path


def compose_config(tmp_path: Path, drop: str = "") -> subprocess.CompletedProcess[str]:
    env_path = env_file(tmp_path, drop)
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith(("AFMTS_", "COMPOSE_"))}
    env["AFMTS_ENV_FILE"] = str(env_path)
    return subprocess.run(
        [*compose_command(), "--env-file", str(env_path), "-f", str(DOCKER / "compose.yml"), "config"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )


def depends(service: dict) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def test_compose_config_passes_and_describes_the_service(tmp_path):
    done = compose_config(tmp_path)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat", "nginx", "prometheus", "grafana"}

    migrate = services["migrate"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert migrate["restart"] == "no"
    for name in ("web", "worker", "beat"):
        assert depends(services[name])["migrate"] == "service_completed_successfully", name
        assert "migrate" not in json.dumps(services[name].get("command", "")), name
    assert services["beat"]["deploy"]["replicas"] == 1
    assert int(services["web"]["deploy"]["replicas"]) >= 2

    web_env = services["web"]["environment"]
    assert web_env["ALLOWED_HOSTS"] == "afmts.example.com"
    assert web_env["DEBUG"] == "0" and web_env["AFMTS_HTTPS"] == "1"
    assert web_env["DATABASE_URL"] == "postgres://afmts:pw@postgres:5432/afmts"
    assert "ports" not in services["web"]  # only nginx is reachable from outside

    nginx = services["nginx"]
    assert depends(nginx)["web"] == "service_healthy"
    assert any(str(p.get("target", p) if isinstance(p, dict) else p).endswith("443") for p in nginx["ports"])
    assert any("/etc/nginx/certs" in json.dumps(v) for v in nginx["volumes"])
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name


def test_prometheus_scrapes_every_web_replica_and_worker_and_grafana_reads_prometheus(tmp_path):
    done = compose_config(tmp_path)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    jobs = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    scraped = {}
    for job in jobs:
        for sd in job["dns_sd_configs"]:
            assert sd["type"] == "A"  # one target per replica, not one per service
            for name in sd["names"]:
                scraped[name] = str(sd["port"])
    assert scraped["web"] == "3001"
    for name, port in scraped.items():
        assert port in [str(p) for p in services[name].get("expose", [])], name
    assert services["worker"]["environment"]["AFMTS_WORKER_METRICS_PORT"] == scraped["worker"]
    assert "/etc/prometheus/prometheus.yml" in json.dumps(services["prometheus"]["volumes"])

    provisioning = DOCKER / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    for board in (provisioning / "dashboards").glob("*.json"):
        used = set(datasource_uids(json.loads(board.read_text())))
        assert used <= {source["uid"]}, board.name


def datasource_uids(node: object):
    """The uids of the Prometheus datasources a dashboard's panels and variables name."""
    if isinstance(node, dict):
        ref = node.get("datasource")
        if isinstance(ref, dict) and ref.get("type") == "prometheus" and not str(ref.get("uid", "")).startswith("$"):
            yield ref.get("uid")
        for value in node.values():
            yield from datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_uids(value)


@pytest.mark.parametrize("name", ["SECRET_KEY", "FERNET_KEYS", "POSTGRES_PASSWORD", "AFMTS_HOSTNAME"])
def test_compose_refuses_to_run_without_a_required_value(tmp_path, name):
    done = compose_config(tmp_path, drop=name)
    assert done.returncode != 0
    assert f"set {name}" in done.stderr


def stages() -> list[list[dockerfile.Command]]:
    found: list[list[dockerfile.Command]] = []
    for cmd in dockerfile.parse_file(str(DOCKER / "Dockerfile")):
        if cmd.cmd == "FROM":
            found.append([])
        if found:
            found[-1].append(cmd)
    return found


def last(stage: list[dockerfile.Command], name: str) -> dockerfile.Command:
    return [c for c in stage if c.cmd == name][-1]


def test_image_is_multi_stage_non_root_and_runs_the_web_server_of_make_web():
    builder, runtime = stages()
    assert builder[0].value[-2:] == ("AS", "builder")
    assert any("--only-binary=:all:" in c.value[0] for c in builder if c.cmd == "RUN")
    assert any(c.flags == ("--from=builder",) for c in runtime if c.cmd == "COPY")
    assert last(runtime, "USER").value[0] not in ("root", "0")
    assert any("collectstatic" in c.value[0] for c in runtime if c.cmd == "RUN")
    cmd = last(runtime, "CMD")
    assert cmd.json and list(cmd.value) == ["python", "manage.py", "serve", "--no-worker", "--host", "0.0.0.0"]
    every = " ".join(" ".join(c.value) for stage in stages() for c in stage if c.cmd in ("RUN", "CMD", "ENTRYPOINT"))
    assert " migrate" not in every  # the compose `migrate` service runs migrations, once


def test_makefile_and_serve_name_uvicorn_not_daphne_as_the_server():
    run_comment = [line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("# The whole service")]
    assert run_comment and "uvicorn" in run_comment[0] and "Daphne" not in run_comment[0]
    serve_doc = (ROOT / "registry/management/commands/serve.py").read_text().split('"""')[1]
    assert "uvicorn" in serve_doc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# In a container, Docker's /etc/hosts maps the container's host name to its address on the network.
OWN_ADDRESS = "127.0.0.2"


@pytest.fixture
def container_web(tmp_path):
    """The web process as the image starts it (its CMD) with the compose file's web settings:
    production (DEBUG off, AFMTS_HTTPS on), one public host name, own addresses allowed; its host
    name resolves to OWN_ADDRESS as in a container (a private /etc/hosts in a mount namespace)."""
    unshare = shutil.which("unshare")
    if not unshare:
        tool_missing("unshare")
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{OWN_ADDRESS} {socket.gethostname()}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    env.update({"AFMTS_DATA_DIR": str(tmp_path / "data"), "AFMTS_DEMO": "0", "PORT": str(port), "DEBUG": "0",
                "AFMTS_HTTPS": "1", "ALLOWED_HOSTS": "afmts.example.com", "AFMTS_ALLOW_OWN_ADDRESSES": "1",
                "AFMTS_WEB_WORKERS": "1"})
    # The compose `migrate` job runs first.
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    argv = list(last(stages()[-1], "CMD").value)
    argv[argv.index("0.0.0.0")] = "127.0.0.1"  # the test listens on loopback only
    server = " ".join([sys.executable, *argv[1:]])
    proc = subprocess.Popen([unshare, "-m", "sh", "-c", f"mount --bind {hosts} /etc/hosts && exec {server}"], cwd=ROOT,
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the web process did not listen within 30 s")
        yield port, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_image_health_check_and_per_replica_scrape_work_on_the_web_process(container_web):
    port, env = container_web
    check = last(stages()[-1], "HEALTHCHECK")
    argv = list(check.value)
    assert argv[0] == "CMD" and "/health" in argv[-1]
    done = subprocess.run([sys.executable, *argv[2:]], env=env, capture_output=True, timeout=15)
    assert done.returncode == 0, done.stderr.decode()[-2000:]

    base = f"http://127.0.0.1:{port}"
    # Prometheus (dns_sd_configs) scrapes each replica by its address, over plain HTTP.
    scraped = httpx.get(f"{base}/metrics", headers={"Host": f"{OWN_ADDRESS}:{port}"})
    assert scraped.status_code == 200 and "# TYPE" in scraped.text
    # Public requests come through nginx with the public name; other names are refused.
    assert httpx.get(f"{base}/health", headers={"Host": "evil.example"}).status_code == 400
    # Plain HTTP is sent to HTTPS; nginx's X-Forwarded-Proto marks what came over TLS.
    plain = httpx.get(f"{base}/api/models", headers={"Host": "afmts.example.com"})
    assert plain.status_code == 301 and plain.headers["location"].startswith("https://afmts.example.com/")
    tls = httpx.get(f"{base}/api/models", headers={"Host": "afmts.example.com", "X-Forwarded-Proto": "https"})
    assert tls.status_code == 401


def test_nginx_config_passes_nginx_t(tmp_path):
    """docker/nginx/nginx.conf, unchanged, with a self-signed certificate in certs/ and `web`
    resolving as Docker's DNS would resolve it (a private /etc/hosts in a mount namespace: nginx
    resolves upstream names when it loads its config)."""
    nginx, unshare, openssl = shutil.which("nginx") or "/usr/sbin/nginx", shutil.which("unshare"), shutil.which("openssl")
    if not Path(nginx).exists() or not unshare or not openssl:
        tool_missing("nginx, unshare or openssl")
    conf = tmp_path / "nginx.conf"
    shutil.copy(DOCKER / "nginx" / "nginx.conf", conf)
    shutil.copy("/etc/nginx/mime.types", tmp_path / "mime.types")
    (tmp_path / "certs").mkdir()
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=afmts.example.com",
                    "-keyout", str(tmp_path / "certs/privkey.pem"), "-out", str(tmp_path / "certs/fullchain.pem")],
                   check=True, capture_output=True, timeout=30)
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 web\n")
    test = f"nginx -t -p {tmp_path} -c {conf} -g 'pid {tmp_path}/nginx.pid;'"
    done = subprocess.run([unshare, "-m", "sh", "-c", f"mount --bind {hosts} /etc/hosts && {test}"],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0 and "mount" in done.stderr and "nginx" not in done.stderr:
        tool_missing(f"a mount namespace ({done.stderr.strip()})")
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_make_prod_check_passes_with_no_warning():
    done = subprocess.run(["make", "--no-print-directory", "prod-check"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "no issues" in done.stdout


def test_nginx_proxies_tls_websockets_unbuffered_streams_and_the_apps_body_limits(tmp_path):
    """nginx with docker/nginx/nginx.conf, unchanged, in a private network namespace (its ports 80
    and 443 are its own there) with `web` resolving to a stand-in upstream on 127.0.0.1:3001, driven
    over real TLS by `python tests/test_deployment.py probe` (below, run inside the namespace)."""
    unshare, openssl = shutil.which("unshare"), shutil.which("openssl")
    if not Path("/usr/sbin/nginx").exists() or not unshare or not openssl or not shutil.which("ip"):
        tool_missing("nginx, unshare, ip or openssl")
    shutil.copy(DOCKER / "nginx" / "nginx.conf", tmp_path / "nginx.conf")
    shutil.copy("/etc/nginx/mime.types", tmp_path / "mime.types")
    (tmp_path / "certs").mkdir()
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=afmts.example.com",
                    "-keyout", str(tmp_path / "certs/privkey.pem"), "-out", str(tmp_path / "certs/fullchain.pem")],
                   check=True, capture_output=True, timeout=30)
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n127.0.0.1 web\n")
    inner = (f"ip link set lo up && mount --bind {tmp_path}/hosts /etc/hosts && "
             f"exec {sys.executable} {Path(__file__).resolve()} probe {tmp_path}")
    done = subprocess.run([unshare, "-m", "-n", "sh", "-c", inner], capture_output=True, text=True, timeout=90, cwd=ROOT)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["http"] == [301, "https://afmts.example.com/api/models"]
    # The upstream sees the client nginx saw, never one the client wrote, and that it came over TLS.
    assert seen["forwarded"] == {"host": "afmts.example.com", "for": "127.0.0.1", "proto": "https", "real_ip": "127.0.0.1"}
    # 1 MiB on the REST API, 20 MiB on the gateway, each refused in its endpoint's JSON envelope.
    assert seen["api_2mib"][0] == 413 and seen["api_2mib"][1]["error"]["code"] == "request_too_large"
    assert seen["v1_2mib"] == 200
    assert seen["v1_21mib"][0] == 413 and seen["v1_21mib"][1]["error"]["code"] == "request_too_large"
    assert seen["messages_21mib"][0] == 413 and seen["messages_21mib"][1]["error"]["type"] == "request_too_large"
    # A stream's first event reaches the client while the upstream still holds the stream open.
    assert seen["sse"] == ["data: first", "data: second"]
    # WebSockets upgrade on /ws/events/ and on / (the seeds' clients).
    assert seen["ws"] == {"/ws/events/": "echo:ping", "/": "echo:ping"}


def probe(folder: Path) -> dict:
    """Inside the namespace: a stand-in upstream on 127.0.0.1:3001 (aiohttp), nginx, and a client."""
    import asyncio
    import ssl

    from aiohttp import WSMsgType, web
    from websockets.asyncio.client import connect

    seen: dict = {}
    acked = asyncio.Event()

    async def echo(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await ws.send_str(f"echo:{msg.data}")
            return ws
        await request.read()
        headers = request.headers
        return web.json_response({"host": headers.get("Host"), "for": headers.get("X-Forwarded-For"),
                                  "proto": headers.get("X-Forwarded-Proto"), "real_ip": headers.get("X-Real-IP")})

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        await asyncio.wait_for(acked.wait(), 20)  # sent on only once the client has the first event
        await response.write(b"data: second\n\n")
        await response.write_eof()
        return response

    async def ack(request: web.Request) -> web.Response:
        acked.set()
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/stream", stream)
        app.router.add_post("/ack", ack)
        app.router.add_route("*", "/{tail:.*}", echo)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 3001).start()
        nginx = await asyncio.create_subprocess_exec(
            "/usr/sbin/nginx", "-p", str(folder), "-c", str(folder / "nginx.conf"),
            "-g", f"daemon off; pid {folder}/nginx.pid;", stdout=asyncio.subprocess.DEVNULL)
        try:
            await client()
        finally:
            nginx.terminate()
            await nginx.wait()
            await runner.cleanup()

    async def client() -> None:
        base, host = "https://127.0.0.1", {"Host": "afmts.example.com"}
        async with httpx.AsyncClient(verify=False, timeout=20) as http:
            for _ in range(100):
                try:
                    await http.get(f"{base}/health", headers=host)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            plain = await http.get("http://127.0.0.1/api/models", headers=host)
            seen["http"] = [plain.status_code, plain.headers.get("location")]
            seen["forwarded"] = (await http.get(f"{base}/api/models", headers={**host, "X-Forwarded-For": "6.6.6.6"})).json()
            for name, path, size in [("api_2mib", "/api/models/register", 2), ("v1_2mib", "/v1/chat/completions", 2),
                                     ("v1_21mib", "/v1/chat/completions", 21), ("messages_21mib", "/v1/messages", 21)]:
                sent = await http.post(f"{base}{path}", headers=host, content=b"x" * (size * 1024 * 1024))
                seen[name] = sent.status_code if sent.status_code == 200 else [sent.status_code, sent.json()]
            events = []
            async with http.stream("GET", f"{base}/v1/stream", headers=host) as reply:
                async for line in reply.aiter_lines():
                    if line:
                        events.append(line)
                        if len(events) == 1:
                            await http.post(f"{base}/ack", headers=host)
            seen["sse"] = events
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
        seen["ws"] = {}
        for path in ("/ws/events/", "/"):
            async with connect(f"wss://afmts.example.com{path}", ssl=tls, host="127.0.0.1", port=443) as ws:
                await ws.send("ping")
                seen["ws"][path] = await ws.recv()

    asyncio.run(main())
    return seen


if __name__ == "__main__" and sys.argv[1:2] == ["probe"]:
    print(json.dumps(probe(Path(sys.argv[2]))))
