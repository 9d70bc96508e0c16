from decimal import Decimal

from registry.providers.base import Adapter
from registry.providers.types import ModelRecord


class HuggingfaceAdapter(Adapter):
    """The Hugging Face inference router (OpenAI-compatible), or a TGI server at its own URL."""

    kind = "huggingface"
    label = "Hugging Face"
    default_base_url = "https://router.huggingface.co"
    env_var = "HUGGINGFACE_API_TOKEN"
    embeddings_path = None

    def parse_model(self, raw: dict) -> ModelRecord | None:
        rec = super().parse_model(raw)
        if rec is None:
            return None
        live = [p for p in raw.get("providers") or () if isinstance(p, dict) and p.get("status") == "live"]
        # Several hosts serve one model: the cheapest priced live host is what routing would pay.
        priced = [p["pricing"] for p in live if isinstance(p.get("pricing"), dict)]
        if priced:
            cheapest = min(priced, key=lambda p: (Decimal(str(p.get("input", 0))) + Decimal(str(p.get("output", 0)))))
            rec.input_price = Decimal(str(cheapest.get("input", 0))).normalize()
            rec.output_price = Decimal(str(cheapest.get("output", 0))).normalize()
        contexts = [p["context_length"] for p in live if isinstance(p.get("context_length"), int)]
        rec.context_window = max(contexts) if contexts else rec.context_window
        if any(p.get("supports_tools") for p in live):
            rec.capabilities.append("function-calling")
        if any(p.get("supports_structured_output") for p in live):
            rec.capabilities.append("json-mode")
        inputs = (raw.get("architecture") or {}).get("input_modalities") or []
        if "image" in inputs and "vision" not in rec.capabilities:
            rec.capabilities.append("vision")
        rec.metadata["live_providers"] = [p.get("provider") for p in live]
        return rec
