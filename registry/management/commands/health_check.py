from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from registry.health import probe_targets
from registry.models import AIModel
from registry.tracker import probe


class Command(BaseCommand):
    help = (
        "Probe the models that need it now (free or local, without recent traffic, never a scarce "
        "account-wide free quota unless the provider allows it) and print their health."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="probe every eligible model, even with recent evidence")

    def handle(self, *args, all, **options):
        # --all looks a day ahead: every eligible model is then due.
        models = probe_targets(now=timezone.now() + timedelta(days=1)) if all else probe_targets()
        results = {r.model: r for r in probe(models)}
        header = f"{'model':<50} {'probe':>8} {'ms':>8} {'status':<10} {'reliability':>11} {'latency':>9}"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for model in AIModel.objects.select_related("provider").filter(pk__in=[m.pk for m in models]):
            r = results.get(model.public_id)
            outcome = "-" if r is None else "limited" if r.ok is None else "ok" if r.ok else "FAILED"
            ms = f"{r.latency_ms:.0f}" if r and r.latency_ms else "-"
            rel = f"{model.reliability:.2f}" if model.reliability is not None else "-"
            lat = f"{model.latency_ms:.0f}ms" if model.latency_ms is not None else "-"
            self.stdout.write(f"{model.public_id[:50]:<50} {outcome:>8} {ms:>8} {model.status:<10} {rel:>11} {lat:>9}")
            if r and r.error:
                self.stdout.write(f"    {r.error[:100]}")
        self.stdout.write(f"{len(models)} model(s) probed.")
