from typing import Any

from registry.providers.base import Adapter
from registry.providers.types import ModelRecord

# Mistral's capabilities object -> our open vocabulary.
CAPS = {"completion_chat": "text-generation", "completion_fim": "code-completion", "function_calling": "function-calling",
        "vision": "vision", "fine_tuning": "fine-tuning", "classification": "classification"}


class MistralAdapter(Adapter):
    kind = "mistral"
    label = "Mistral"
    default_base_url = "https://api.mistral.ai"
    env_var = "MISTRAL_API_KEY"
    # Mistral streams usage in its last chunk unasked and names the seed differently.
    unsupported_params = frozenset({"stream_options", "user", "logit_bias", "logprobs", "top_logprobs"})

    def parse_model(self, raw: dict) -> ModelRecord | None:
        rec = super().parse_model(raw)
        if rec is None:
            return None
        caps = raw.get("capabilities") or {}
        rec.capabilities = [CAPS.get(k, k.replace("_", "-")) for k, v in caps.items() if v is True]
        if caps.get("completion_chat"):
            rec.capabilities.append("streaming")
            if "code" in rec.id or "devstral" in rec.id:
                rec.capabilities.append("code-generation")
            if caps.get("function_calling"):
                rec.capabilities.append("json-mode")
            rec.type = "chat"
        elif "embed" in rec.id:
            rec.type, rec.capabilities = "embedding", rec.capabilities + ["embeddings"]
        elif "ocr" in rec.id:
            rec.type = "vision"
            rec.capabilities.append("ocr")
        if isinstance(raw.get("max_context_length"), int):
            rec.context_window = raw["max_context_length"]
        rec.name = raw.get("name") or rec.id
        return rec

    def build_chat(self, request: dict) -> tuple[str, dict[str, str], dict]:
        path, headers, body = super().build_chat(request)
        body.pop("stream_options", None)
        if "seed" in body:
            body["random_seed"] = body.pop("seed")
        if "max_completion_tokens" in body:
            body["max_tokens"] = body.pop("max_completion_tokens")
        if body.get("tool_choice") == "required":
            body["tool_choice"] = "any"
        return path, headers, body

    def error_fields(self, payload: Any) -> tuple[str, str | None]:
        # Mistral's errors are flat: {"object":"error","message":…,"type":"rate_limited","code":"1300"}
        if isinstance(payload, dict) and payload.get("object") == "error":
            message = payload.get("message")
            if isinstance(message, dict):
                message = message.get("detail") or str(message)
            return str(message or ""), payload.get("type") or payload.get("code")
        return super().error_fields(payload)
