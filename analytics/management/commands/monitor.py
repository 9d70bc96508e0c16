"""manage.py monitor status|report|performance|metrics — the seeds' `node registry-monitor.js`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics import monitor

ACTIONS = ("status", "report", "performance", "metrics")


def _when(value: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(
            f"{option}: {value!r} is not an ISO 8601 time (e.g. 2026-01-31 or 2026-01-31T12:00:00Z)."
        ) from None
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def _ms(value) -> str:
    return "-" if value is None else f"{value:.0f}ms"


class Command(BaseCommand):
    help = (
        "Monitoring: `status` (health, providers, models, agents, recent traffic), `report` (JSON of a "
        "period's usage, cost and incidents: `monitor report > daily-report.json`), `performance` (per "
        "model latency and success), `metrics` (Prometheus text)."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=ACTIONS, help=" | ".join(ACTIONS))
        parser.add_argument("--json", action="store_true", dest="as_json", help="status, performance: print JSON")
        parser.add_argument("--hours", type=float, help="report, performance: the last N hours (default 24)")
        parser.add_argument("--since", help="report: start of the period, ISO 8601 (UTC if no offset)")
        parser.add_argument("--until", help="report: end of the period, ISO 8601 (default now)")

    def handle(self, *args, action, as_json: bool, hours, since, until, **options):
        if hours is not None and hours <= 0:
            raise CommandError("--hours must be a positive number.")
        if hours is not None and since:
            raise CommandError("Give --hours or --since, not both.")
        if (since or until) and action != "report":
            raise CommandError("--since and --until apply to `report` only (use --hours).")
        getattr(self, f"do_{action}")(as_json=as_json, hours=hours, since=since, until=until)

    def emit_json(self, data) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str))

    # ---- actions ----

    def do_status(self, *, as_json: bool, **_) -> None:
        data = monitor.status()
        if as_json:
            return self.emit_json(data)
        w = self.stdout.write
        w(f"AFMTS {data['mode']} mode — {data['time']} — {'healthy' if data['healthy'] else 'UNHEALTHY'}")
        w("")
        for name, check in data["checks"].items():
            state = "ok" if check["ok"] else "FAIL"
            detail = check.get("detail") or check.get("error", "")
            w(f"  {name:<14} {state:<5} {check['ms']:>8.1f}ms  {detail}")
        p = data["providers"]
        w("")
        w(f"Providers  {p['total']} total: {p['up']} up, {p['down']} down, {p['unknown']} unknown")
        for row in p["list"]:
            if row["status"] != "up":
                disabled = "" if row["enabled"] else " (disabled)"
                w(f"  {row['slug']:<24} {row['status']:<8}{disabled}  {row['lastError'][:90]}".rstrip())
        m = data["models"]
        w(
            f"Models     {m['total']} total: {m['available']} available, {m['degraded']} degraded, "
            f"{m['down']} down, {m['retired']} retired; {m['freeNow']} free now ({m['free']} free not retired)"
        )
        a = data["agents"]
        w(f"Agents     {a['online']}/{a['total']} online")
        w("")
        w(f"  {'requests':<10} {'count':>8} {'errors':>8} {'error %':>8} {'p50':>9}")
        for label, key in (("last 5m", "last5m"), ("last 1h", "last1h")):
            r = data["requests"][key]
            w(f"  {label:<10} {r['requests']:>8} {r['errors']:>8} {100 * r['errorRate']:>7.1f}% {_ms(r['p50LatencyMs']):>9}")

    def do_report(self, *, hours, since, until, **_) -> None:
        end = _when(until, "--until") if until else timezone.now()
        if since:
            start = _when(since, "--since")
        else:
            start = end - timedelta(hours=hours or 24)
        if start >= end:
            raise CommandError("The period is empty: --since must be before --until.")
        self.emit_json(monitor.report(start, end))

    def do_performance(self, *, as_json: bool, hours, **_) -> None:
        rows = monitor.performance(timezone.now() - timedelta(hours=hours or 24))
        if as_json:
            return self.emit_json(rows)
        w = self.stdout.write
        header = (
            f"{'model':<44} {'reqs':>7} {'ok %':>6} {'p50':>8} {'p95':>8} {'ttft50':>8} {'tok/s':>7} "
            f"{'ewma':>8} {'rel':>5} {'status':<9}"
        )
        w(f"Performance, last {hours or 24:g} h")
        w(header)
        w("-" * len(header))
        for r in rows:
            tps = "-" if r["tokensPerSecond"] is None else f"{r['tokensPerSecond']:.0f}"
            rel = "-" if r["registryReliability"] is None else f"{r['registryReliability']:.2f}"
            w(
                f"{r['model'][:44]:<44} {r['requests']:>7} {r['successRate']:>6.1f} {_ms(r['p50LatencyMs']):>8} "
                f"{_ms(r['p95LatencyMs']):>8} {_ms(r['p50TtftMs']):>8} {tps:>7} {_ms(r['registryLatencyMs']):>8} "
                f"{rel:>5} {r['status']:<9}"
            )
        w(f"{len(rows)} model(s) with traffic.")

    def do_metrics(self, **_) -> None:
        self.stdout.write(monitor.metrics_text(), ending="")

