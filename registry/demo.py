"""The demo providers of `make run` (AFMTS_DEMO): one provider of each of several kinds, all at the
fake provider server on 127.0.0.1, marked as demo so that `auto` and `free` leave them alone as soon
as a real provider exists (DESIGN.md)."""

from __future__ import annotations

from django.conf import settings

from registry.models import Provider
from registry.services import provider_create, provider_update

KINDS = ("groq", "openrouter", "gemini", "cerebras", "mistral", "ollama", "openai", "anthropic")


def demo_root() -> str:
    return f"http://127.0.0.1:{settings.AFMTS_DEMO_PORT}"


def ensure_demo_providers() -> list[str]:
    """Create the demo providers, or point them at the current demo port; returns their slugs."""
    from registry.fakes import KEY, base_urls

    urls = base_urls(demo_root())
    slugs = []
    for kind in KINDS:
        slug = f"demo-{kind}"
        provider = Provider.objects.filter(slug=slug).first()
        if provider is None:
            provider_create(slug=slug, kind=kind, base_url=urls[kind], api_key=KEY, is_demo=True,
                            name=f"Demo {kind}")
        elif provider.base_url != urls[kind].rstrip("/"):
            provider_update(provider=provider, fields={"base_url": urls[kind]})
        slugs.append(slug)
    return slugs
