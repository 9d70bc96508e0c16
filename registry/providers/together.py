from decimal import Decimal

from registry.providers.base import Adapter, guess_type
from registry.providers.types import ModelRecord

# Together's `type` field -> our closed list of types.
TYPES = {"chat": "chat", "language": "llm", "code": "chat", "embedding": "embedding", "image": "image",
         "rerank": "rerank", "audio": "audio", "transcribe": "audio", "moderation": "chat", "video": "image"}
CAPS = {"embedding": "embeddings", "image": "image-generation"}


class TogetherAdapter(Adapter):
    kind = "together"
    label = "Together AI"
    default_base_url = "https://api.together.xyz"
    env_var = "TOGETHER_API_KEY"

    def parse_model(self, raw: dict) -> ModelRecord | None:
        # GET /v1/models is a bare array; pricing is USD per million tokens, as numbers.
        rec = super().parse_model(raw)
        if rec is None:
            return None
        ttype = raw.get("type")
        if ttype in TYPES:
            rec.type = TYPES[ttype]
            guessed, caps = guess_type(rec.id)
            if rec.type in ("chat", "llm"):
                rec.capabilities = caps if guessed in ("chat", "vision") else ["text-generation", "streaming"]
            else:
                rec.capabilities = caps if guessed == rec.type else [CAPS.get(rec.type, rec.type)]
        rec.name = raw.get("display_name") or rec.id
        pricing = raw.get("pricing") or {}
        if "input" in pricing or "output" in pricing:
            rec.input_price = Decimal(str(pricing.get("input", 0))).normalize()
            rec.output_price = Decimal(str(pricing.get("output", 0))).normalize()
        # Together's "-Free" endpoints are served at no charge with their own low limits.
        if rec.id.endswith("-Free") and not rec.input_price and not rec.output_price:
            rec.is_free, rec.free_reason, rec.quota_scope = True, "Together -Free endpoint", "model"
        return rec
