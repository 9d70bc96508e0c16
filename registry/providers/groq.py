from registry.providers.base import Adapter
from registry.providers.types import ModelRecord


class GroqAdapter(Adapter):
    kind = "groq"
    label = "Groq"
    default_base_url = "https://api.groq.com/openai"
    env_var = "GROQ_API_KEY"
    # Groq's x-ratelimit-limit-requests is requests per DAY, -tokens is tokens per minute (Groq docs).
    ratelimit_periods = {"requests": "day", "tokens": "minute"}
    unsupported_params = frozenset({"logprobs", "top_logprobs", "logit_bias"})

    def parse_model(self, raw: dict) -> ModelRecord | None:
        rec = super().parse_model(raw)
        if rec is None:
            return None
        if isinstance(raw.get("max_completion_tokens"), int):
            rec.max_output_tokens = raw["max_completion_tokens"]
        if rec.type == "chat":
            rec.capabilities += ["function-calling", "json-mode"]
        return rec
