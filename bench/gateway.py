"""Benchmark of the gateway's /v1/chat/completions against the same upstream called directly and the
LiteLLM proxy, in one run (issue 5, "Speed").

    .venv/bin/python bench/gateway.py [--quick] [--only direct,litellm,afmts] [--server daphne[,uvicorn,granian]]

Everything runs on 127.0.0.1 and is stopped at the end (also on Ctrl-C or an error):

- upstream: Debian's nginx (installed with apt-get when missing) answering POST /v1/chat/completions
  with a canned OpenAI chat.completion and GET /v1/models with a listing, keep-alive on; for streams
  (`stream: true`), the project's fake provider server (`python -m routing.fakes`, no chunk delay);
- targets, measured one after the other so they never share the 2 cores:
  `direct` (the upstreams themselves: the floor), `litellm` (litellm[proxy] in bench/.venvs/litellm,
  one worker, no database, LITELLM_LOCAL_MODEL_COST_MAP=True, routing `bench-model` to the same
  upstreams), `afmts` (afmts.asgi:application under each --server in turn, one process, a temporary data
  folder, an admin key, the upstreams registered as openai_compatible providers `bench` and
  `bench-stream`: the model asked for is `bench/bench-model`);
- measured per target: concurrency 1 (sequential httpx requests on one keep-alive connection after
  a warm-up: p50/p99, and "added" = minus the direct upstream's p50/p99, measured again just before
  each target in the same run), time to first token (sequential streamed requests: until the first
  SSE chunk with content), concurrency 32 (wrk, one thread, after a warm-up: requests/s counting
  2xx only, and wrk's p50/p99), and the RSS of the server's process tree after the load (/proc
  VmRSS, children included).

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
    request_body,
    rss_mb,
    sequential_latency,
    stop_all,
    time_to_first_token,
    tool_version,
    wrk_throughput,
)
from bench._targets import MAIN_PYTHON, AfmtsTarget, DirectTarget, LiteLLMTarget, Target  # noqa: E402

TARGETS = ("direct", "litellm", "afmts")
SERVERS = ("daphne", "uvicorn", "granian")
# The targets, checked at the end of the table.
ADDED_P50_TARGET_MS = 1.5
THROUGHPUT_RATIO_TARGET = 20
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
    "default": Plan(c1_requests=500, c1_warmup=50, ttft_requests=100, ttft_warmup=10, wrk_seconds=10, wrk_warmup=2),
    "quick": Plan(c1_requests=100, c1_warmup=20, ttft_requests=20, ttft_warmup=5, wrk_seconds=3, wrk_warmup=1,
                  phase_limit=15.0),
}


def measure(target: Target, plan: Plan, wrk: str, workdir: Path, direct: Target | None) -> dict[str, Any]:
    """The rows' figures for one started target. When direct is given, the upstreams are measured
    again right before the target (same requests), so "added" compares figures taken moments apart."""
    result: dict[str, Any] = {"target": target.name, "server": target.server, "notes": list(target.notes)}
    if direct is not None:
        result["baseline"] = {"c1": sequential_latency(direct.chat_url, direct.headers, request_body(direct.model),
                                                       plan.c1_requests, plan.c1_warmup, plan.phase_limit)}
        if direct.stream_model and target.stream_model:
            result["baseline"]["ttft"] = time_to_first_token(
                direct.stream_url, direct.headers, request_body(direct.stream_model, stream=True),
                plan.ttft_requests, plan.ttft_warmup, plan.phase_limit)
    log(f"{target.name}: concurrency 1, {plan.c1_requests} requests")
    result["c1"] = sequential_latency(target.chat_url, target.headers, request_body(target.model),
                                      plan.c1_requests, plan.c1_warmup, plan.phase_limit)
    if target.stream_model:
        log(f"{target.name}: time to first token, {plan.ttft_requests} streamed requests")
        result["ttft"] = time_to_first_token(target.stream_url, target.headers,
                                             request_body(target.stream_model, stream=True),
                                             plan.ttft_requests, plan.ttft_warmup, plan.phase_limit)
    else:
        result["ttft"] = None
        result["notes"].append("no streaming upstream (routing/fakes) for TTFT")
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
            rows.append([r["target"], r.get("server") or "-", "-", "-", "-", "-", "-", "-", "-", "-",
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
        rows.append([r["target"], r["server"], "1", fmt(c1["p50_ms"]), fmt(c1["p99_ms"]), fmt(added50),
                     fmt(added99), "-", fmt(ttft["p50_ms"]) if ttft else "-", rss, "; ".join(
                         n for n in r["notes"] if not n.startswith(f"c{connections} "))])
        rows.append([r["target"], r["server"], str(connections), fmt(c32["p50_ms"]), fmt(c32["p99_ms"]), "-", "-",
                     fmt(c32["rps"], 0), "-", rss, "; ".join(n for n in r["notes"] if n.startswith(f"c{connections} "))])
    return rows


def render(rows: list[list[str]]) -> str:
    head = ["target", "server", "concurrency", "p50 ms", "p99 ms", "added p50", "added p99", "req/s", "TTFT p50",
            "RSS MB", "notes"]
    widths = [max(len(head[i]), *(len(row[i]) for row in rows)) if rows else len(head[i]) for i in range(len(head))]
    widths[-1] = len(head[-1])
    line = " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    out = [line, "-+-".join("-" * w for w in widths)]
    for row in rows:
        out.append(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(out)


def verdict(results: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, per afmts server measured."""
    ok = [r for r in results if not r.get("unavailable")]
    litellm = next((r for r in ok if r["target"] == "litellm"), None)
    lines = []
    for afmts in (r for r in ok if r["target"] == "afmts"):
        who = f"afmts on {afmts['server'].split(' ')[0]}"
        added = afmts.get("added_p50_ms")
        if added is not None:
            lines.append(f"{who}: added p50 at concurrency 1 {added:.2f} ms (target < {ADDED_P50_TARGET_MS} ms): "
                         + ("met" if added < ADDED_P50_TARGET_MS else "NOT met"))
        rss = (afmts.get("memory") or {}).get("rss_mb")
        if rss is not None:
            lines.append(f"{who}: RSS after load {rss:.0f} MB (target < {RSS_TARGET_MB} MB): "
                         + ("met" if rss < RSS_TARGET_MB else "NOT met"))
        if litellm and litellm["c32"]["rps"] > 0:
            ratio = afmts["c32"]["rps"] / litellm["c32"]["rps"]
            afmts["throughput_vs_litellm"] = ratio
            lines.append(f"{who}: throughput at concurrency 32 = {ratio:.1f}x LiteLLM's (target >= "
                         f"{THROUGHPUT_RATIO_TARGET}x): " + ("met" if ratio >= THROUGHPUT_RATIO_TARGET else "NOT met"))
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
                        help="comma-separated targets among direct,litellm,afmts (direct always runs: it is the "
                             "baseline of 'added')")
    parser.add_argument("--server", default="daphne",
                        help="the ASGI server(s) of the afmts target, comma-separated among daphne,uvicorn,granian "
                             "(uvicorn[standard] and granian are pip-installed into .venv when missing)")
    parser.add_argument("--app", default="afmts.asgi:application",
                        help="the ASGI application of the afmts target (e.g. afmts.asgi:django_app: Django alone)")
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
    order = [("direct", "")] + [(t, "") for t in TARGETS if t in wanted and t == "litellm"]
    order += [("afmts", server) for server in servers] if "afmts" in wanted else []
    plan = PLANS["quick" if args.quick else "default"]
    started = time.monotonic()
    install_signal_handlers()
    busy = cpu_busy_percent(1.0)  # before anything of ours runs
    workdir = make_workdir()
    results: list[dict[str, Any]] = []
    nginx = fake = None
    litellm_version = ""
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
        for name, server in order:
            if name == "direct":
                target: Target = direct
            elif name == "litellm":
                target = LiteLLMTarget("litellm", nginx=nginx, fake=fake, workdir=workdir)
            else:
                target = AfmtsTarget("afmts", asgi_server=server, app=args.app, nginx=nginx, fake=fake,
                                     workdir=workdir / f"afmts-{server}")
            log(f"starting {name} {server}".strip())
            t0 = time.monotonic()
            try:
                target.start()
                if not target.unavailable:
                    target.check()
                    log(f"{name} ready in {time.monotonic() - t0:.1f} s ({target.server})")
                    results.append(measure(target, plan, wrk, workdir, None if name == "direct" else direct))
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
    cond["wall_seconds"] = round(time.monotonic() - started, 1)
    print(render(rows))
    print()
    print(
        f"Conditions: {cond['date_utc']} UTC, {cond['cpus']} cores ({cond['cpu']}), {busy:.0f} % busy"
        f" before the start, Python {cond['python']}, {cond['nginx']}, {cond['wrk']}; upstream = nginx 1 worker with a "
        f"canned reply (streams: routing.fakes, no chunk delay), all on 127.0.0.1; targets run one at a time; "
        f"c1 = {cond['c1']}; TTFT = {cond['ttft']}; c{plan.connections} = {cond['c32']}; added = target minus "
        f"direct, re-measured just before each target; RSS = VmRSS of the server's process tree after the load; wall {cond['wall_seconds']} s."
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
