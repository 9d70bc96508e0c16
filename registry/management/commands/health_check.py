from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from registry import health
from registry.models import AIModel, ModelStatus
from registry.tracker import probe


class Command(BaseCommand):
    help = (
        "Probe the models that need it now (free or local chat models without recent evidence, and down "
        "models once their back-off is over; never a scarce account-wide free quota unless the provider "
        "allows it), print their health, and say why the others were left out."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="probe every eligible model, even with recent evidence")

    def handle(self, *args, all, **options):
        now = timezone.now()
        # --all looks a day ahead: every eligible model is then due.
        at = now + timedelta(days=1) if all else now
        live = list(health._live_models())
        candidates = [m for m in live if (m.is_free or m.status == ModelStatus.DOWN) and m.type in health.CHAT_TYPES]
        probeable = health._probeable(candidates)
        models = health._due(probeable, at)
        results = {r.model: r for r in probe(models)}
        header = f"{'model':<50} {'why':<22} {'probe':>8} {'ms':>8} {'status':<10} {'reliability':>11} {'latency':>9}"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for model in AIModel.objects.select_related("provider").filter(pk__in=[m.pk for m in models]):
            r = results.get(model.public_id)
            why = "down, back-off over" if model.status == ModelStatus.DOWN else (
                "free, asked with --all" if all else "free, no recent evidence")
            outcome = "-" if r is None else "limited" if r.ok is None else "ok" if r.ok else "FAILED"
            ms = f"{r.latency_ms:.0f}" if r and r.latency_ms else "-"
            rel = f"{model.reliability:.2f}" if model.reliability is not None else "-"
            lat = f"{model.latency_ms:.0f}ms" if model.latency_ms is not None else "-"
            self.stdout.write(
                f"{model.public_id[:50]:<50} {why:<22} {outcome:>8} {ms:>8} {model.status:<10} {rel:>11} {lat:>9}")
            if r and r.error:
                self.stdout.write(f"    {r.error}")
        self.stdout.write(f"{len(models)} model(s) probed, of {len(live)} routable.")
        for line in self._left_out(live, candidates, probeable, models, all):
            self.stdout.write(f"  {line}")

    @staticmethod
    def _left_out(live, candidates, probeable, probed, all) -> list[str]:
        """Why each model not probed was left out, counted by reason."""
        lines = []
        paid = sum(1 for m in live if not m.is_free and m.status != ModelStatus.DOWN)
        if paid:
            lines.append(f"{paid} paid model(s) not down: judged by their traffic (a probe would cost money).")
        other = sum(1 for m in live if (m.is_free or m.status == ModelStatus.DOWN) and m.type not in health.CHAT_TYPES)
        if other:
            lines.append(f"{other} model(s) not chat models (embedding, image, ...): no one-token probe; a down one gets a trial.")
        scarce = len(candidates) - len(probeable)
        if scarce:
            lines.append(f"{scarce} free model(s) on a scarce account-wide quota: not probed unless their provider has "
                         "probeEnabled (PATCH /api/providers/{id}).")
        recent = len(probeable) - len(probed)
        if recent:
            lines.append(f"{recent} model(s) with evidence in the last {settings.AFMTS_PROBE_IDLE_SECONDS} s "
                         "(traffic or a probe), or failing and still in back-off: --all probes them now.")
        if not lines and not probed:
            lines.append("No model is registered that a probe could reach.")
        return lines
