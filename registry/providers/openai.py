from typing import Any

from registry.providers.base import Adapter
from registry.providers.errors import ContextTooLong, ProviderError, RateLimited
from registry.providers.types import ModelRecord


class OpenaiAdapter(Adapter):
    kind = "openai"
    label = "OpenAI"
    default_base_url = "https://api.openai.com"
    env_var = "OPENAI_API_KEY"

    def parse_model(self, raw: dict) -> ModelRecord | None:
        rec = super().parse_model(raw)
        if rec is not None and rec.id.startswith(("gpt-4", "gpt-5", "o1", "o3", "o4", "chatgpt")) and rec.type == "chat":
            rec.capabilities += ["function-calling", "json-mode", "vision"]
        return rec

    def refine_error(self, err: ProviderError, payload: Any) -> ProviderError:
        if err.provider_code == "context_length_exceeded" and not isinstance(err, ContextTooLong):
            return ContextTooLong(err.message, status=err.status, provider_code=err.provider_code, provider=self.kind)
        if err.provider_code == "insufficient_quota":
            # A 429 that waiting does not fix: the account has no credit.
            return RateLimited(err.message, status=err.status, provider_code=err.provider_code, provider=self.kind,
                               retryable=False, rate_limit=err.rate_limit)
        return err
