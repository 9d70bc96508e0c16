import textwrap
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from registry.models import Provider
from registry.tracker import discover


def _when(at, now) -> str:
    seconds = max(0, int((at - now).total_seconds()))
    return f"in {seconds // 60}m{seconds % 60:02d}s ({at:%H:%M:%S} UTC)"


class Command(BaseCommand):
    help = (
        "Run one discovery cycle now (every due provider, or the named ones) and print every provider: "
        "what each listing found, and for those not listed now (backing off, disabled, not yet due) when "
        "the next try is and the last error, in full."
    )

    def add_arguments(self, parser):
        parser.add_argument("providers", nargs="*", help="provider slugs (default: every due provider)")

    def handle(self, *args, providers, **options):
        unknown = set(providers) - set(Provider.objects.filter(slug__in=providers).values_list("slug", flat=True))
        if unknown:
            raise CommandError(f"Unknown provider(s): {', '.join(sorted(unknown))}")
        results = {r.provider: r for r in discover(providers or None)}
        now = timezone.now()
        everyone = Provider.objects.filter(slug__in=providers) if providers else Provider.objects.all()
        header = f"{'provider':<24} {'seen':>6} {'new':>5} {'changed':>7} {'retired':>7} {'free':>5} {'skipped':>7} {'time':>7}  state"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        errors = waiting = 0
        for provider in everyone.order_by("slug"):
            r = results.get(provider.slug)
            if r is not None:
                state = "ok" if r.ok else "FAILED"
                errors += not r.ok
                self.stdout.write(
                    f"{provider.slug:<24} {r.seen:>6} {r.new:>5} {r.changed:>7} {r.retired:>7} {r.free:>5} "
                    f"{r.skipped:>7} {r.seconds:>6.2f}s  {state}"
                )
                self._error(r.error)
                continue
            if not provider.enabled or not provider.discovery_enabled:
                state = "disabled" if not provider.enabled else "discovery off"
            elif provider.next_discovery_at and provider.next_discovery_at > now:
                waiting += 1
                kind = "backing off" if provider.failures else "rate-limited, waiting"
                state = f"{kind} ({provider.failures} failure(s)), next try {_when(provider.next_discovery_at, now)}"
            else:
                due = (provider.last_discovery_at or now) + timedelta(
                    seconds=max(provider.discovery_interval, settings.AFMTS_DISCOVERY_CYCLE_SECONDS))
                state = f"not due, next listing {_when(due, now)}"
            self.stdout.write(f"{provider.slug:<24} {'-':>6} {'-':>5} {'-':>7} {'-':>7} {'-':>5} {'-':>7} {'-':>7}  {state}")
            self._error(provider.last_error, "last error")
        total = lambda name: sum(getattr(r, name) for r in results.values())  # noqa: E731
        self.stdout.write("-" * len(header))
        slowest = max((r.seconds for r in results.values()), default=0.0)
        self.stdout.write(
            f"{'total':<24} {total('seen'):>6} {total('new'):>5} {total('changed'):>7} {total('retired'):>7} "
            f"{total('free'):>5} {total('skipped'):>7} {slowest:>6.2f}s  "
            f"{len(results)} listed, {errors} error(s), {waiting} backing off"
        )

    def _error(self, text: str, label: str = "error") -> None:
        if text:
            for line in textwrap.wrap(f"{label}: {text}", width=110, initial_indent="    ", subsequent_indent="      "):
                self.stdout.write(line)
