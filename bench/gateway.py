"""Benchmark of the gateway's /v1/chat/completions against the same upstream called directly, the
LiteLLM proxy and Portkey's gateway, in one run (issues 5 and 8).

    .venv/bin/python bench/gateway.py [--quick] [--only direct,litellm,portkey,afmts] [--workers 1,2]
        [--server uvicorn[,daphne,granian]] [--probe] [--before-after]

Everything runs on 127.0.0.1 and is stopped at the end (also on Ctrl-C or an error):

- upstream: Debian's nginx (installed with apt-get when missing) answering POST /v1/chat/completions
  with a canned OpenAI chat.completion and GET /v1/models with a listing, keep-alive on; for streams
  (`stream: true`), the project's fake provider server (`python -m registry.fakes`, no chunk delay);
- targets, measured one after the other so they never share the 2 cores:
  `direct` (the upstreams themselves: the floor), `litellm` (litellm[proxy] in bench/.venvs/litellm,
  one worker, no database, LITELLM_LOCAL_MODEL_COST_MAP=True, routing `bench-model` to the same
  upstreams), `portkey` (npm `@portkey-ai/gateway` under bench/.node/portkey, node on 127.0.0.1, the
  upstreams as OpenAI custom hosts), `afmts` (afmts.asgi:application under each --server in turn, one
  process, and with uvicorn also each --workers count, a temporary data folder, an admin key, the
  upstreams registered as openai_compatible providers `bench` and `bench-stream`: the model asked
  for is `bench/bench-model`);
- measured per target: concurrency 1 (sequential httpx requests on one keep-alive connection after
  a warm-up, thousands of them so that a stall once a second shows in p99: p50/p90/p99; side by side
  with the direct upstream — each request to the target right after one to the upstream on a
  connection of its own — so "added" = the target's p50/p99 minus the upstream's, both taken in the
  same moments), time to first token (sequential streamed requests: until the first SSE chunk with
  content, the upstream's measured just before), concurrency 32 (wrk, one thread, after a warm-up: requests/s counting
  2xx only, and wrk's p50/p99), and the RSS of the server's process tree after the load (/proc
  VmRSS, children included).

--probe serves AFMTS through bench/_probe.py, which counts event-loop stalls (> 2 ms) and GC pauses
during the concurrency-1 phase; --before-after adds an AFMTS target with the runtime's tail-latency
settings undone (the heap not frozen, CPython's 5 ms GIL switch interval), for a before/after in one
run (implies --probe).

Prints one table and writes bench/results/gateway.json. It reports; it never fails the caller for a
slow target, and a target that cannot run (LiteLLM not installable, the gateway not written yet) is
reported with the reason.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._harness import (  # noqa: E402
    BENCH,
    BenchError,
    FakeProviderUpstream,
    NginxUpstream,
    cpu_busy_percent,
    ensure_debian_tool,
    install_signal_handlers,
    log,
    make_workdir,
    paired_latency,
    request_body,
    rss_mb,
    sequential_latency,
    stop_all,
    time_to_first_token,
    tool_version,
    wrk_throughput,
)
from bench._targets import (  # noqa: E402
    MAIN_PYTHON,
    AfmtsTarget,
    DirectTarget,
    LiteLLMTarget,
    PortkeyTarget,
    Target,
)

TARGETS = ("direct", "litellm", "portkey", "afmts")
SERVERS = ("daphne", "uvicorn", "granian")
PROBE_APP = "bench._probe:application"
# The issues' targets, checked at the end of the table.
ADDED_P50_TARGET_MS = 0.6
ADDED_P99_TARGET_MS = 3.0
RPS_TARGET = 1600
WORKERS_SCALE_TARGET = 1.6
RSS_TARGET_MB = 150


@dataclass
class Plan:
    c1_requests: int
    c1_warmup: int
    ttft_requests: int
    ttft_warmup: int
    wrk_seconds: float
    wrk_warmup: float
    connections: int = 32
    phase_limit: float = 40.0  # seconds at most for one sequential phase (a slow target gets fewer samples)


PLANS = {
    "default": Plan(c1_requests=5000, c1_warmup=200, ttft_requests=100, ttft_warmup=10, wrk_seconds=10,
                    wrk_warmup=2),
    "quick": Plan(c1_requests=1000, c1_warmup=50, ttft_requests=20, ttft_warmup=5, wrk_seconds=3, wrk_warmup=1,
                  phase_limit=15.0),
}


def measure(target: Target, plan: Plan, wrk: str, workdir: Path, direct: Target | None) -> dict[str, Any]:
    """The rows' figures for one started target. When direct is given, the upstreams are measured
    again right before the target (same requests), so "added" compares figures taken moments apart."""
    result: dict[str, Any] = {"target": target.name, "server": target.server, "notes": list(target.notes)}
    if direct is not None:
        result["baseline"] = {}
        if direct.stream_model and target.stream_model:
            result["baseline"]["ttft"] = time_to_first_token(
                direct.stream_url, direct.headers, request_body(direct.stream_model, stream=True),
                plan.ttft_requests, plan.ttft_warmup, plan.phase_limit)
    log(f"{target.name}: concurrency 1, {plan.c1_requests} requests")
    probing = isinstance(target, AfmtsTarget) and target.app == PROBE_APP
    if probing:
        probe(target)  # a new period
    if direct is not None:  # each request to the target right after one to the upstream itself
        result["baseline"]["c1"], result["c1"] = paired_latency(
            (direct.chat_url, direct.headers, request_body(direct.model)),
            (target.chat_url, target.headers, request_body(target.model)),
            plan.c1_requests, plan.c1_warmup, plan.phase_limit)
    else:
        result["c1"] = sequential_latency(target.chat_url, target.headers, request_body(target.model),
                                          plan.c1_requests, plan.c1_warmup, plan.phase_limit)
    if probing:
        result["probe_c1"] = loop = probe(target)
        result["notes"].append(
            f"loop during c1: {loop['stalls_over_2ms']} stalls > 2 ms (max {loop['stall_max_ms']:.1f}), "
            f"{loop['full_collections']} full GCs (max {loop['full_gc_max_ms']:.1f} ms), GC max "
            f"{loop['gc_max_ms']:.1f} ms, {loop['frozen_objects']:,} objects frozen")
    if target.stream_model:
        log(f"{target.name}: time to first token, {plan.ttft_requests} streamed requests")
        result["ttft"] = time_to_first_token(target.stream_url, target.stream_headers or target.headers,
                                             request_body(target.stream_model, stream=True),
                                             plan.ttft_requests, plan.ttft_warmup, plan.phase_limit)
    else:
        result["ttft"] = None
        result["notes"].append("no streaming upstream (registry/fakes) for TTFT")
    log(f"{target.name}: concurrency {plan.connections}, wrk {plan.wrk_warmup:g}+{plan.wrk_seconds:g} s")
    result["c32"] = wrk_throughput(wrk, target.chat_url, target.headers, request_body(target.model), workdir,
                                   plan.connections, plan.wrk_seconds, plan.wrk_warmup)
    reported = result["c1"].get("self_reported_overhead_p50_ms")
    if reported is not None:
        result["notes"].append(f"self-reported overhead p50 {reported:.2f} ms")
    result["memory"] = rss_mb(target.pid())
    each = (result["memory"] or {}).get("per_process") or []
    if len(each) > 1:
        result["notes"].append(f"RSS of {len(each)} processes: " + " + ".join(f"{p['rss_mb']:.0f}" for p in each) + " MB")
    for phase in ("c1", "ttft"):
        if result.get(phase) and result[phase]["errors"]:
            result["notes"].append(f"{phase} errors: {result[phase]['errors']}")
    if result["c32"]["errors"]:
        result["notes"].append(f"c{plan.connections} errors: {result['c32']['error_detail']}")
    return result


def warm_workers(target: Target, seconds: float = 3.0) -> None:
    """Requests on fresh connections until every worker has served (each builds its view on its first
    request) — or `seconds` passed: the kernel hands connections to whichever worker accepts first."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with httpx.Client(timeout=10) as client:
            client.post(target.chat_url, json=request_body(target.model), headers=target.headers)


def probe(target: Target) -> dict[str, Any]:
    """bench/_probe.py's figures since its previous call."""
    import httpx

    return httpx.get(f"{target.base_url}/_bench/probe", timeout=10).json()


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(results: list[dict[str, Any]], baseline: dict[str, Any] | None, connections: int) -> list[list[str]]:
    rows = []
    for r in results:
        if r.get("unavailable"):
            rows.append([r["target"], r.get("server") or "-", "-", "-", "-", "-", "-", "-", "-", "-", "-",
                         r["unavailable"]])
            continue
        c1, c32, ttft, mem = r["c1"], r["c32"], r.get("ttft"), r.get("memory") or {}
        added50 = added99 = None
        base = r.get("baseline") or baseline
        if base and r["target"] != "direct":
            added50 = c1["p50_ms"] - base["c1"]["p50_ms"]
            added99 = c1["p99_ms"] - base["c1"]["p99_ms"]
            r["added_p50_ms"], r["added_p99_ms"] = added50, added99
            if ttft and base.get("ttft"):
                r["added_ttft_p50_ms"] = ttft["p50_ms"] - base["ttft"]["p50_ms"]
        rss = fmt(mem.get("rss_mb"), 1)
        rows.append([r["target"], r["server"], "1", fmt(c1["p50_ms"]), fmt(c1.get("p90_ms")), fmt(c1["p99_ms"]),
                     fmt(added50),
                     fmt(added99), "-", fmt(ttft["p50_ms"]) if ttft else "-", rss, "; ".join(
                         n for n in r["notes"] if not n.startswith(f"c{connections} "))])
        rows.append([r["target"], r["server"], str(connections), fmt(c32["p50_ms"]), "-", fmt(c32["p99_ms"]), "-", "-",
                     fmt(c32["rps"], 0), "-", rss, "; ".join(n for n in r["notes"] if n.startswith(f"c{connections} "))])
    return rows


def render(rows: list[list[str]]) -> str:
    head = ["target", "server", "concurrency", "p50 ms", "p90 ms", "p99 ms", "added p50", "added p99", "req/s",
            "TTFT p50",
            "RSS MB", "notes"]
    widths = [max(len(head[i]), *(len(row[i]) for row in rows)) if rows else len(head[i]) for i in range(len(head))]
    widths[-1] = len(head[-1])
    line = " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    out = [line, "-+-".join("-" * w for w in widths)]
    for row in rows:
        out.append(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(out)


def verdict(results: list[dict[str, Any]]) -> list[str]:
    """The issues' targets, per afmts target measured, and the ratios to the other gateways."""
    ok = [r for r in results if not r.get("unavailable")]
    others = [r for r in ok if r["target"] in ("litellm", "portkey") and r["c32"]["rps"] > 0]
    single = next((r for r in ok if r["target"] == "afmts" and r.get("workers", 1) == 1
                   and not r.get("as_before")), None)
    lines = []

    def check(what: str, value: float, target: str, met: bool) -> None:
        lines.append(f"{what} {value:,.2f} (target {target}): " + ("met" if met else "NOT met"))

    for afmts in (r for r in ok if r["target"] == "afmts"):
        who = f"afmts on {afmts['server']}"
        added50, added99 = afmts.get("added_p50_ms"), afmts.get("added_p99_ms")
        if added50 is not None:
            check(f"{who}: added p50 at concurrency 1, ms", added50, f"<= {ADDED_P50_TARGET_MS}",
                  added50 <= ADDED_P50_TARGET_MS)
        if added99 is not None:
            check(f"{who}: added p99 at concurrency 1, ms", added99, f"<= {ADDED_P99_TARGET_MS}",
                  added99 <= ADDED_P99_TARGET_MS)
        rps = afmts["c32"]["rps"]
        if afmts.get("workers", 1) == 1:
            check(f"{who}: req/s at concurrency 32", rps, f">= {RPS_TARGET:,}", rps >= RPS_TARGET)
        elif single is not None and single["c32"]["rps"] > 0:
            scale = rps / single["c32"]["rps"]
            afmts["scale_vs_one_worker"] = scale
            check(f"{who}: req/s at concurrency 32 vs one worker, x", scale, f">= {WORKERS_SCALE_TARGET}",
                  scale >= WORKERS_SCALE_TARGET)
        rss = (afmts.get("memory") or {}).get("rss_mb")
        if rss is not None and afmts.get("workers", 1) == 1:
            check(f"{who}: RSS after load, MB", rss, f"< {RSS_TARGET_MB}", rss < RSS_TARGET_MB)
        for other in others:
            ratio = rps / other["c32"]["rps"]
            afmts[f"throughput_vs_{other['target']}"] = ratio
            lines.append(f"{who}: throughput at concurrency 32 = {ratio:.1f}x {other['server'].split(' (')[0]}'s")
    return lines


def conditions(args: argparse.Namespace, plan: Plan, nginx_bin: str, litellm_version: str,
               busy: float) -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "cpus": os.cpu_count(), "cpu": cpu, "cpu_busy_at_start_pct": round(busy, 1),
        "python": platform.python_version(), "nginx": tool_version([nginx_bin, "-v"]) if nginx_bin else "?",
        "wrk": tool_version(["wrk", "--version"]).split(" Copyright")[0], "litellm": litellm_version or "-",
        "server": args.server, "app": args.app, "mode": "quick" if args.quick else "default",
        "c1": f"{plan.c1_requests} sequential requests after {plan.c1_warmup} warm-up, httpx keep-alive",
        "ttft": f"{plan.ttft_requests} sequential streamed requests after {plan.ttft_warmup}",
        "c32": f"wrk -t1 -c{plan.connections} {plan.wrk_warmup:g} s warm-up + {plan.wrk_seconds:g} s",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short durations: a smoke run")
    parser.add_argument("--only", default=",".join(TARGETS),
                        help="comma-separated targets among direct,litellm,portkey,afmts (direct always runs: it "
                             "is the baseline of 'added')")
    parser.add_argument("--server", default="uvicorn",
                        help="the ASGI server(s) of the afmts target, comma-separated among daphne,uvicorn,granian "
                             "(uvicorn[standard] and granian are pip-installed into .venv when missing)")
    parser.add_argument("--app", default="afmts.asgi:application",
                        help="the ASGI application of the afmts target (e.g. afmts.asgi:django_app: Django alone)")
    parser.add_argument("--workers", default="1,2",
                        help="web processes of the afmts target under uvicorn, comma-separated (e.g. 1,2)")
    parser.add_argument("--probe", action="store_true",
                        help="serve afmts through bench/_probe.py: event-loop stalls and GC pauses during c1")
    parser.add_argument("--before-after", action="store_true",
                        help="also measure afmts with the runtime's tail-latency settings undone (implies --probe)")
    parser.add_argument("--output", default=str(BENCH / "results" / "gateway.json"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (configs, server logs)")
    args = parser.parse_args(argv)
    wanted = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = set(wanted) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s): {', '.join(sorted(unknown))}")
    servers = [s.strip() for s in args.server.split(",") if s.strip()]
    if not servers or set(servers) - set(SERVERS):
        parser.error(f"--server: choose among {', '.join(SERVERS)}")
    try:
        workers = sorted({int(w) for w in args.workers.split(",") if w.strip()})
    except ValueError:
        parser.error("--workers: comma-separated numbers")
    if not workers or workers[0] < 1:
        parser.error("--workers: at least 1")
    if args.before_after:
        args.probe = True
    if args.probe:
        args.app = PROBE_APP
    # (name, server, workers, as before)
    order: list[tuple[str, str, int, bool]] = [("direct", "", 1, False)]
    order += [(t, "", 1, False) for t in ("litellm", "portkey") if t in wanted]
    if "afmts" in wanted:
        for server in servers:
            if args.before_after:
                order.append(("afmts", server, 1, True))
            order += [("afmts", server, n, False) for n in (workers if server == "uvicorn" else [1])]
    plan = PLANS["quick" if args.quick else "default"]
    started = time.monotonic()
    install_signal_handlers()
    busy = cpu_busy_percent(1.0)  # before anything of ours runs
    workdir = make_workdir()
    results: list[dict[str, Any]] = []
    nginx = fake = None
    litellm_version = portkey_version = ""
    try:
        wrk = ensure_debian_tool("wrk", "wrk")
        nginx = NginxUpstream(workdir).start()
        log(f"nginx upstream on {nginx.url}")
        fake = FakeProviderUpstream(workdir, MAIN_PYTHON).start()
        if fake.unavailable:
            log(f"no streaming upstream: {fake.unavailable} (TTFT not measured)")
        else:
            log(f"fake provider server on {fake.url}")
        direct = DirectTarget("direct", nginx=nginx, fake=fake)
        for name, server, count, as_before in order:
            if name == "direct":
                target: Target = direct
            elif name == "litellm":
                target = LiteLLMTarget("litellm", nginx=nginx, fake=fake, workdir=workdir)
            elif name == "portkey":
                target = PortkeyTarget("portkey", nginx=nginx, fake=fake, workdir=workdir)
            else:
                # Several workers: the probe's figures would be one worker's; serve the plain app.
                target = AfmtsTarget("afmts", asgi_server=server, app=args.app if count == 1 else "afmts.asgi:application",
                                     workers=count, nginx=nginx, fake=fake,
                                     env_extra={"BENCH_PROBE_AS_BEFORE": "1"} if as_before else {},
                                     workdir=workdir / f"afmts-{server}-{count}{'-before' if as_before else ''}")
            log(f"starting {name} {server}".strip())
            t0 = time.monotonic()
            try:
                target.start()
                if not target.unavailable:
                    if as_before:
                        target.server += ", as before: heap not frozen, 5 ms GIL switch"
                    target.check()
                    if count > 1:
                        warm_workers(target)
                    log(f"{name} ready in {time.monotonic() - t0:.1f} s ({target.server})")
                    result = measure(target, plan, wrk, workdir, None if name == "direct" else direct)
                    result.update(workers=count, as_before=as_before)
                    results.append(result)
            except BenchError as exc:
                target.unavailable = f"failed: {str(exc)[:300]}"
            except Exception as exc:  # noqa: BLE001 - one broken target must not lose the others' figures
                target.unavailable = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
            finally:
                if target.unavailable:
                    log(f"{name}: {target.unavailable}")
                    results.append({"target": name, "server": target.server or server,
                                    "unavailable": target.unavailable})
                if isinstance(target, LiteLLMTarget):
                    litellm_version = target.version
                if isinstance(target, PortkeyTarget):
                    portkey_version = target.version
                target.stop()
    except KeyboardInterrupt:
        log("interrupted: stopping every server")
        stop_all()
        return 130
    except BenchError as exc:
        log(f"bench failed: {exc}")
        stop_all()
        return 1
    finally:
        stop_all()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    baseline = next((r for r in results if r["target"] == "direct" and not r.get("unavailable")), None)
    rows = table(results, baseline, plan.connections)
    cond = conditions(args, plan, nginx.binary if nginx else "", litellm_version, busy)
    cond["portkey"] = portkey_version or "-"
    cond["wall_seconds"] = round(time.monotonic() - started, 1)
    print(render(rows))
    print()
    print(
        f"Conditions: {cond['date_utc']} UTC, {cond['cpus']} cores ({cond['cpu']}), {busy:.0f} % busy"
        f" before the start, Python {cond['python']}, {cond['nginx']}, {cond['wrk']}, LiteLLM {cond['litellm']}, Portkey {cond['portkey']}; upstream = nginx 1 worker with a "
        f"canned reply (streams: registry.fakes, no chunk delay), all on 127.0.0.1; targets run one at a time; "
        f"c1 = {cond['c1']}; TTFT = {cond['ttft']}; c{plan.connections} = {cond['c32']}; added = target minus "
        f"direct, measured side by side with each target (request for request); RSS = VmRSS of the server's process tree after the load; wall {cond['wall_seconds']} s."
    )
    if busy > 15:
        print(f"Note: the machine was {busy:.0f} % busy before the bench started (other work on the {cond['cpus']} "
              "cores): figures are noisier than usual; compare ratios within this run.")
    for line in verdict(results):
        print(line)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"conditions": cond, "results": results}, indent=2, default=str) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
