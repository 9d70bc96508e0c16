from django.core.management.base import BaseCommand, CommandError

from afmts import urlpolicy
from registry.models import Provider
from registry.providers import ADAPTERS
from registry.services import provider_create, provider_update


class Command(BaseCommand):
    help = "Add (or update) a provider: `register_provider openai --key sk-...` (the seeds' register-openai)."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=list(ADAPTERS))
        parser.add_argument("--key", default=None, help="API key (stored encrypted)")
        parser.add_argument("--base-url", default=None)
        parser.add_argument("--slug", default=None, help="default: the kind")
        parser.add_argument("--discover", action="store_true", help="run discovery for it right away")

    def handle(self, *args, kind, key, base_url, slug, discover, **options):
        slug = slug or kind.replace("_", "-")
        provider = Provider.objects.filter(slug=slug).first()
        if provider and provider.kind != kind:
            raise CommandError(f"Provider '{slug}' exists with kind {provider.kind}; pass --slug.")
        refusal = urlpolicy.message_for(base_url, kind=kind) if base_url else None
        if refusal:
            raise CommandError(f"--base-url: {refusal}")
        if provider:
            fields = {}
            if key:
                fields["api_key"] = key
            if base_url:
                fields["base_url"] = base_url
            provider_update(provider=provider, fields=fields)
            self.stdout.write(f"Updated provider '{slug}' ({kind}, {provider.base_url}).")
        else:
            provider = provider_create(slug=slug, kind=kind, base_url=base_url, api_key=key)
            self.stdout.write(f"Registered provider '{slug}' ({kind}, {provider.base_url}).")
        if discover:
            from django.core.management import call_command

            call_command("discover", slug, stdout=self.stdout)
