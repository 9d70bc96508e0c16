from decimal import Decimal
from typing import Any

from registry.providers import tables
from registry.providers.base import Adapter, per_million
from registry.providers.errors import ProviderError, RateLimited
from registry.providers.ratelimits import parse_rate_limit_headers
from registry.providers.types import ModelRecord

# supported_parameters -> capabilities
PARAM_CAPS = {"tools": "function-calling", "response_format": "json-mode", "structured_outputs": "structured-outputs",
              "reasoning": "reasoning", "include_reasoning": "reasoning"}
META_KEYS = ("canonical_slug", "hugging_face_id", "created", "description", "architecture", "pricing", "top_provider",
             "per_request_limits", "supported_parameters", "default_parameters", "expiration_date", "knowledge_cutoff",
             "links", "supported_voices", "benchmarks", "reasoning", "alias_target")


class OpenrouterAdapter(Adapter):
    kind = "openrouter"
    label = "OpenRouter"
    default_base_url = "https://openrouter.ai/api"
    env_var = "OPENROUTER_API_KEY"
    # OpenRouter's X-RateLimit-* only come on 429s and count requests of the free-model window.
    ratelimit_periods = {"requests": "?"}

    def headers(self) -> dict[str, str]:
        return super().headers() | {"x-title": "AFMTS"}

    def parse_model(self, raw: dict) -> ModelRecord | None:
        mid = raw["id"]
        if not isinstance(mid, str) or not mid:
            raise ValueError("model without id")
        pricing = raw.get("pricing") or {}
        prompt, completion = pricing.get("prompt"), pricing.get("completion")
        arch = raw.get("architecture") or {}
        outputs = arch.get("output_modalities") or ["text"]
        inputs = arch.get("input_modalities") or ["text"]
        top = raw.get("top_provider") or {}
        if "embeddings" in outputs or "embedding" in outputs:
            mtype, caps = "embedding", ["embeddings"]
        elif "image" in outputs:  # image generators, some of which also write text
            mtype, caps = "image", ["image-generation"] + (["text-generation"] if "text" in outputs else [])
        elif "text" not in outputs and "audio" in outputs:
            mtype, caps = "audio", ["audio"]
        else:
            mtype, caps = "chat", ["text-generation", "streaming"]
            if "image" in inputs:
                caps.append("vision")
            for param in raw.get("supported_parameters") or ():
                cap = PARAM_CAPS.get(param)
                if cap and cap not in caps:
                    caps.append(cap)
        rec = ModelRecord(
            id=mid, name=raw.get("name") or mid, type=mtype, capabilities=caps,
            context_window=raw.get("context_length") or top.get("context_length"),
            max_output_tokens=top.get("max_completion_tokens"),
            input_price=per_million(prompt), output_price=per_million(completion),
            metadata={k: raw[k] for k in META_KEYS if k in raw},
        )
        extra = {k: v for k, v in raw.items() if k not in META_KEYS and k not in ("id", "name", "context_length")}
        if extra:
            rec.metadata["extra"] = extra
        if "-1" in (prompt, completion):
            rec.metadata["variable_price"] = True
        router = mid.startswith("openrouter/")  # auto, free, …: meta-models that pick another model
        if router:
            rec.metadata["router"] = True
        # The provider's rule: a ":free" id whose prompt and completion prices are both "0".
        if (not router and mid.endswith(":free") and rec.input_price == Decimal(0)
                and rec.output_price == Decimal(0) and "-1" not in (prompt, completion)):
            info = tables.provider_free_info(self.kind)
            rec.is_free, rec.free_reason = True, ":free variant"
            rec.quota = {"rpm": None, "rpd": None, "tpm": None, "tpd": None, **(info.get("quota") or {})}
            rec.quota_scope = info.get("scope", "account")
        return rec

    key_path = "/v1/key"

    def parse_key(self, payload: dict) -> dict[str, Any]:
        """`GET /api/v1/key` -> whether the account is on the free tier and its credit (USD)."""
        data = payload["data"]
        return {"is_free_tier": bool(data.get("is_free_tier")), "limit": data.get("limit"),
                "limit_remaining": data.get("limit_remaining"), "usage": data.get("usage"),
                "rate_limit": data.get("rate_limit")}

    async def key_info(self) -> dict[str, Any]:
        return self.parse_key(await self._send("GET", self.key_path, headers=self.auth_headers()))

    def finish_record(self, rec: ModelRecord) -> None:
        if self.local:
            super().finish_record(rec)

    def refine_error(self, err: ProviderError, payload: Any) -> ProviderError:
        # 429 bodies carry the limit in metadata.headers (epoch-ms reset) and name it in the message.
        meta = (payload.get("error") or {}).get("metadata") if isinstance(payload, dict) else None
        if isinstance(err, RateLimited) and isinstance(meta, dict) and isinstance(meta.get("headers"), dict):
            msg = err.message.lower()
            period = "day" if "per-day" in msg or "per day" in msg else "minute" if "per-min" in msg else "?"
            info = parse_rate_limit_headers(meta["headers"], {"requests": period})
            if err.rate_limit:
                err.rate_limit.windows.update(info.windows)
            else:
                err.rate_limit = info
            if err.retry_after is None:
                win = info.window("requests")
                err.retry_after = win.reset if win else None
        return err
