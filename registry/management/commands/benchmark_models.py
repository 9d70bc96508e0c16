import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from registry import benchmark


class Command(BaseCommand):
    help = (
        "Send a small fixed set of prompts to each available chat model (or a filtered set), record "
        "latency, tokens/s and success (as health evidence and free-quota use), and print or export a "
        "report with a top performer. Scoring: see registry/benchmark.py."
    )

    def add_arguments(self, parser):
        parser.add_argument("--provider", action="append", default=[], metavar="SLUG",
                            help="only this provider's models (repeatable)")
        parser.add_argument("--model", action="append", default=[], metavar="PUBLIC_ID",
                            help="only this model, e.g. groq/llama-3.1-8b-instant (repeatable)")
        parser.add_argument("--free-only", action="store_true", help="only free models")
        parser.add_argument("--capability", metavar="CAP", help="only models with this capability")
        parser.add_argument("--limit", type=int, metavar="N", help="at most N models")
        parser.add_argument("--include-scarce", action="store_true",
                            help="also free models whose quota is account-wide and scarce (e.g. OpenRouter's)")
        parser.add_argument("--rounds", type=int, default=1, metavar="N", help="send each prompt N times (default 1)")
        parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                            help="deadline of one call (default 30)")
        parser.add_argument("--concurrency", type=int, default=4, metavar="N",
                            help="models benchmarked at once (default 4)")
        parser.add_argument("--max-tokens", type=int, default=benchmark.MAX_TOKENS, metavar="N",
                            help=f"max_tokens of each call (default {benchmark.MAX_TOKENS})")
        parser.add_argument("--output", metavar="FILE", help="write the JSON report to FILE (e.g. benchmark-report.json)")
        parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")

    def handle(self, *args, **options):
        for name in ("rounds", "concurrency", "max_tokens"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        if options["timeout"] <= 0:
            raise CommandError("--timeout must be positive")
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1")

        selection = benchmark.select_models(
            providers=options["provider"] or None, models=options["model"] or None,
            free_only=options["free_only"], capability=options["capability"], limit=options["limit"],
            include_scarce=options["include_scarce"],
        )
        for public_id in selection.not_found:
            self.stderr.write(f"warning: {public_id} is not an available chat model; not benchmarked")
        if selection.scarce:
            names = ", ".join(m.public_id for m in selection.scarce)
            self.stderr.write(
                f"warning: skipped {len(selection.scarce)} free model(s) with a scarce account-wide quota "
                f"(--include-scarce to benchmark them): {names}"
            )
        report = benchmark.run_benchmark(
            selection.models, rounds=options["rounds"], concurrency=options["concurrency"],
            timeout=options["timeout"], max_tokens=options["max_tokens"],
        )
        data = report.as_dict()
        if options["output"]:
            path = Path(options["output"])
            path.write_text(json.dumps(data, indent=2) + "\n")
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2))
        else:
            self._table(data)
        if options["output"]:
            self.stderr.write(f"report written to {options['output']}")

    def _table(self, data: dict) -> None:
        rows = data["models"]
        if not rows:
            self.stdout.write("No models to benchmark.")
            return
        width = max(30, *(len(r["model"]) for r in rows))
        header = f"{'model':<{width}} {'calls':>5} {'ok %':>6} {'p50 ms':>8} {'ttft ms':>8} {'tokens/s':>9} {'score':>6}"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for r in sorted(rows, key=lambda r: -r["score"]):
            p50 = r["latencyMs"]["p50"]
            ttft = r["ttftMs"]["p50"]
            tps = r["tokensPerSecond"]
            self.stdout.write(
                f"{r['model']:<{width}} {r['calls']:>5} {r['successRate'] * 100:>6.1f} "
                f"{'-' if p50 is None else f'{p50:.0f}':>8} {'-' if ttft is None else f'{ttft:.0f}':>8} "
                f"{'-' if tps is None else f'{tps:.1f}':>9} {r['score']:>6.3f}"
            )
            if r["errors"]:
                kinds = ", ".join(f"{kind} ×{n}" for kind, n in r["errors"].items())
                skipped = f"; {r['skipped']} call(s) skipped" if r["skipped"] else ""
                self.stdout.write(f"    errors: {kinds}{skipped} — {(r['lastError'] or '')[:100]}")
        summary = data["summary"]
        self.stdout.write("")
        top = summary["topPerformer"]
        self.stdout.write(
            f"Top performer: {top} (score {summary['topScore']:.3f})" if top else "Top performer: none (no model answered)"
        )
        rate = summary["successRate"]
        self.stdout.write(
            f"{summary['modelsTested']} model(s) tested, average score {summary['averageScore']:.3f}, "
            f"{summary['successes']}/{summary['calls']} calls succeeded"
            + (f" ({rate * 100:.1f}%)." if rate is not None else ".")
        )
