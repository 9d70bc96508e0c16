from django.core.management.base import BaseCommand

from registry.models import KeyScope
from registry.services import apikey_create


class Command(BaseCommand):
    help = "Create an API key and print its secret (shown this once; only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--scope", choices=KeyScope.values, default=KeyScope.USER)
        parser.add_argument("--rate-limit", type=int, default=None, help="requests per minute")
        parser.add_argument("--quiet", action="store_true", help="print only the secret")

    def handle(self, *args, name, scope, rate_limit, quiet, **options):
        key, secret = apikey_create(name=name, scope=scope, rate_limit_per_minute=rate_limit)
        if quiet:
            self.stdout.write(secret)
        else:
            self.stdout.write(f"Created {scope} key '{name}' ({key.prefix}…). Keep it now, it is not shown again:")
            self.stdout.write(self.style.SUCCESS(secret))
