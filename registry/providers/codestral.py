"""Mistral Codestral on its own domain, https://codestral.mistral.ai, with its own key.

Mistral documents two domains for Codestral (https://docs.mistral.ai/capabilities/code_generation/):
codestral.mistral.ai, "monthly subscription based, currently free to use", which needs its own key, and
api.mistral.ai (the `mistral` kind, paid). The wire format is Mistral's (chat at /v1/chat/completions,
its flat errors and `x-ratelimit-*-req-minute` headers), so this adapter is the Mistral one on another host.

Listing: some clients validate a Codestral key with `GET /v1/models` on this domain, another reports a
404 there; a 404 of the listing is therefore no failure: the adapter then lists the models the domain is
documented to serve (`STATIC`), while a 401 still fails the listing.

Free rules (free_tiers.json "codestral"): every model on this domain is free with the Codestral key,
30 requests a minute and 2,000 a day for the key (cheahjs/free-llm-api-resources, README generated
2026-07-18: "Codestral: 30 req/min, 2,000 req/day"), so the quota's scope is the account."""

from __future__ import annotations

from registry.providers.errors import NotFoundError
from registry.providers.mistral import MistralAdapter
from registry.providers.types import Listing

# The domain's models when it offers no listing (Mistral's model overview; what IDE plugins list).
STATIC = (
    {"id": "codestral-latest", "object": "model", "owned_by": "mistralai", "name": "codestral-2508",
     "capabilities": {"completion_chat": True, "completion_fim": True, "function_calling": True},
     "max_context_length": 256000, "aliases": ["codestral-2508"]},
    {"id": "codestral-2508", "object": "model", "owned_by": "mistralai", "name": "codestral-2508",
     "capabilities": {"completion_chat": True, "completion_fim": True, "function_calling": True},
     "max_context_length": 256000, "aliases": ["codestral-latest"]},
)


class CodestralAdapter(MistralAdapter):
    kind = "codestral"
    label = "Mistral Codestral"
    default_base_url = "https://codestral.mistral.ai"
    env_var = "CODESTRAL_API_KEY"
    embeddings_path = None

    async def list_models(self) -> Listing:
        try:
            return await super().list_models()
        except NotFoundError:
            listing = self.parse_listing({"object": "list", "data": [dict(m) for m in STATIC]})
            listing.rate_limit = self.last_rate_limit
            return listing
