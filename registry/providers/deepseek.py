from registry.providers.base import Adapter
from registry.providers.types import ModelRecord


class DeepseekAdapter(Adapter):
    kind = "deepseek"
    label = "DeepSeek"
    default_base_url = "https://api.deepseek.com"
    env_var = "DEEPSEEK_API_KEY"
    chat_path = '/chat/completions'
    models_path = '/models'
    embeddings_path = None

    def parse_model(self, raw: dict) -> ModelRecord | None:
        rec = super().parse_model(raw)
        if rec is not None and rec.type == "chat":
            rec.capabilities += ["function-calling", "json-mode"]
        return rec
