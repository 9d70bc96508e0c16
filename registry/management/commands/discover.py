from django.core.management.base import BaseCommand, CommandError

from registry.models import Provider
from registry.tracker import discover


class Command(BaseCommand):
    help = "Run one discovery cycle now (all enabled providers, or the named ones) and print a summary."

    def add_arguments(self, parser):
        parser.add_argument("providers", nargs="*", help="provider slugs (default: every due provider)")

    def handle(self, *args, providers, **options):
        unknown = set(providers) - set(Provider.objects.filter(slug__in=providers).values_list("slug", flat=True))
        if unknown:
            raise CommandError(f"Unknown provider(s): {', '.join(sorted(unknown))}")
        results = discover(providers or None)
        if not results:
            self.stdout.write("No provider is due (none enabled, or all backing off).")
            return
        header = f"{'provider':<20} {'seen':>6} {'new':>5} {'changed':>7} {'retired':>7} {'free':>5} {'skipped':>7} {'time':>7}  error"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for r in sorted(results, key=lambda r: r.provider):
            self.stdout.write(
                f"{r.provider:<20} {r.seen:>6} {r.new:>5} {r.changed:>7} {r.retired:>7} {r.free:>5} {r.skipped:>7} "
                f"{r.seconds:>6.2f}s  {r.error[:60]}"
            )
        total = lambda name: sum(getattr(r, name) for r in results)  # noqa: E731
        self.stdout.write("-" * len(header))
        self.stdout.write(
            f"{'total':<20} {total('seen'):>6} {total('new'):>5} {total('changed'):>7} {total('retired'):>7} "
            f"{total('free'):>5} {total('skipped'):>7} {max(r.seconds for r in results):>6.2f}s  "
            f"{sum(1 for r in results if r.error)} error(s)"
        )
