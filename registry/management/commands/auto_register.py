import os

from django.core.management.base import BaseCommand

from registry.models import Provider
from registry.providers import ADAPTERS
from registry.services import provider_create, provider_update


class Command(BaseCommand):
    help = (
        "Set providers up from the environment (the seeds' auto-register): OPENAI_API_KEY, ANTHROPIC_API_KEY, "
        "OPENROUTER_API_KEY, GROQ_API_KEY, GEMINI_API_KEY, MISTRAL_API_KEY, HUGGINGFACE_API_TOKEN, TOGETHER_API_KEY, "
        "CEREBRAS_API_KEY, DEEPSEEK_API_KEY, OLLAMA_URL, OPENAI_COMPATIBLE_URL (+ OPENAI_COMPATIBLE_API_KEY)."
    )

    def handle(self, *args, **options):
        found = 0
        for kind, adapter in ADAPTERS.items():
            value = os.environ.get(adapter.env_var or "", "").strip()
            if not value:
                continue
            found += 1
            is_url = adapter.env_var.endswith("_URL")
            base_url = value if is_url else None
            key = os.environ.get(adapter.env_var.replace("_URL", "_API_KEY")) if is_url else value
            slug = kind.replace("_", "-")
            provider = Provider.objects.filter(slug=slug).first()
            if provider:
                fields = {"api_key": key} if key else {}
                if base_url:
                    fields["base_url"] = base_url
                provider_update(provider=provider, fields=fields)
                self.stdout.write(f"updated    {slug:<20} from {adapter.env_var}")
            else:
                provider_create(slug=slug, kind=kind, base_url=base_url, api_key=key or None)
                self.stdout.write(f"registered {slug:<20} from {adapter.env_var}")
        if not found:
            self.stdout.write("No provider variable is set; nothing to register.")
