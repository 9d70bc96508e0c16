import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from registry.models import ApiKey, KeyScope
from registry.services import apikey_create


class Command(BaseCommand):
    help = (
        "First-run set-up, safe to repeat: an admin API key if there is none, in embedded mode an "
        "admin-site superuser if there is none, and with AFMTS_DEMO the demo providers. Secrets are "
        "printed once."
    )

    def handle(self, *args, **options):
        if settings.AFMTS_DEMO:
            from registry.demo import ensure_demo_providers

            slugs = ensure_demo_providers()
            self.stdout.write(f"Demo providers (the fake provider server, no keys needed): {', '.join(slugs)}")
        if not ApiKey.objects.filter(scope=KeyScope.ADMIN, revoked_at__isnull=True).exists():
            key, secret = apikey_create(name="first admin key", scope=KeyScope.ADMIN)
            self.stdout.write(self.style.WARNING("Admin API key (shown once, keep it):"))
            self.stdout.write(self.style.SUCCESS(f"  {secret}"))
            self.stdout.write(f'  try: curl -H "Authorization: Bearer {secret}" http://127.0.0.1:{settings.PORT}/api/stats')
        User = get_user_model()
        if not settings.SERVER_MODE and not User.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "", password)
            self.stdout.write(self.style.WARNING(
                f"Dashboard http://127.0.0.1:{settings.PORT}/ (and admin site /admin/) — user 'admin', "
                f"password (shown once): {password}"
            ))
