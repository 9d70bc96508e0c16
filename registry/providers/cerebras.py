from registry.providers.base import Adapter


class CerebrasAdapter(Adapter):
    kind = "cerebras"
    label = "Cerebras"
    default_base_url = "https://api.cerebras.ai"
    env_var = "CEREBRAS_API_KEY"
    # Cerebras names its windows (-requests-day, -tokens-minute); these cover bare names only.
    ratelimit_periods = {"requests": "day", "tokens": "minute"}
    # Rejected by Cerebras's OpenAI-compatible endpoint (its docs list them as unsupported).
    unsupported_params = frozenset({"frequency_penalty", "presence_penalty", "logit_bias", "n"})
    embeddings_path = None
