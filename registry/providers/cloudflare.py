"""Cloudflare Workers AI: an account-scoped model search and OpenAI-compatible chat and embeddings.

The base URL names the account: `https://api.cloudflare.com/client/v4/accounts/<account id>` (the
account id is on the dashboard's Workers AI page; it is not secret). The credential is an API token with
"Workers AI Read" (listing) and "Workers AI Edit" (inference) permissions. A base URL given as the
OpenAI SDK's (`.../accounts/<id>/ai/v1`) is accepted and cut back to the account.

Wire format:
- `GET /ai/models/search?page=&per_page=` (https://developers.cloudflare.com/api/resources/ai/subresources/models/methods/list/):
  Cloudflare's v4 envelope `{success, errors, messages, result: [...], result_info: {page, per_page, count,
  total_count}}`, each model `{id, source, name: "@cf/meta/llama-3.1-8b-instruct", description,
  task: {id, name: "Text Generation", description}, tags, properties: [{property_id, value}]}`
  (AiModelsSearchObject in @cloudflare/workers-types); the model id to call is `name`;
- `POST /ai/v1/chat/completions` and `/ai/v1/embeddings` are OpenAI's
  (https://developers.cloudflare.com/workers-ai/configuration/open-ai-compatibility/);
- errors are the v4 envelope `{success: false, errors: [{code, message}], ...}` with the codes of
  https://developers.cloudflare.com/workers-ai/platform/errors/ (3036 "Account limited", 429: the day's
  free neurons are spent; 3040 "Out of capacity", 429; 5007 "No such model", 400; 3042, 404; 3006, 413).

Free rules (free_tiers.json "cloudflare"): every model is usable on the free plan within 10,000 neurons a
day shared by the whole account (https://developers.cloudflare.com/workers-ai/platform/pricing/; cheahjs
README 2026-07-18: "Cloudflare: 10,000 neurons/day"), except a model whose `properties` carry
`require_workers_paid` (it needs the Workers Paid plan). Listed prices (the `price` property, USD per
million tokens) are what a paid account pays past the allocation: kept in metadata for free models, used
as the price of paid ones.

Neurons: the free pool is counted in neurons, and Workers AI bills every model at $0.011 per 1,000
neurons (https://developers.cloudflare.com/workers-ai/platform/pricing/: "priced at $0.011 per 1,000
Neurons"; its model table gives each price both ways, e.g. @cf/baai/bge-large-en-v1.5 "$0.204 per M input
tokens" = "18582 neurons per M input tokens"). So the listing's USD per M tokens divided by $0.000011 is
the model's neurons per M tokens (`pool_cost`). A chat request without max_tokens may write up to 256
tokens (the models' documented default max_tokens, e.g.
https://developers.cloudflare.com/workers-ai/models/llama-3.1-8b-instruct/), which is what the gateway
reserves for it."""

from __future__ import annotations

import re
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from registry.providers import tables
from registry.providers.base import Adapter, guess_type
from registry.providers.errors import NotFoundError, ProviderError, RateLimited
from registry.providers.types import ModelRecord

# Task name -> (type, capabilities).
TASKS = {
    "Text Generation": ("chat", ["text-generation", "streaming"]),
    "Text Embeddings": ("embedding", ["embeddings"]),
    "Text-to-Image": ("image", ["image-generation"]),
    "Automatic Speech Recognition": ("audio", ["audio", "transcription"]),
    "Text-to-Speech": ("audio", ["audio", "speech"]),
    "Image-to-Text": ("vision", ["vision", "text-generation"]),
    "Text Classification": ("chat", ["classification"]),
    "Translation": ("chat", ["translation"]),
    "Summarization": ("chat", ["summarization"]),
}
PAID = "require_workers_paid"
USD_PER_NEURON = Decimal("0.011") / 1000
DAY = 86400
_OPENAI_TAIL = re.compile(r"/ai(?:/v1)?/?$")


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class CloudflareAdapter(Adapter):
    kind = "cloudflare"
    label = "Cloudflare Workers AI"
    default_base_url = "https://api.cloudflare.com/client/v4/accounts/ACCOUNT_ID"
    # `manage.py auto_register` reads a *_URL variable as the base URL and its *_API_KEY twin as the key:
    # CLOUDFLARE_AI_URL=https://api.cloudflare.com/client/v4/accounts/<id>, CLOUDFLARE_AI_API_KEY=<token>.
    env_var = "CLOUDFLARE_AI_URL"
    chat_path = "/ai/v1/chat/completions"
    models_path = "/ai/models/search"
    embeddings_path = "/ai/v1/embeddings"
    per_page: int = 100
    default_max_tokens = 256  # Workers AI's documented default (see the module's docstring)

    def __init__(self, base_url: str | None = None, *args: Any, **kwargs: Any):
        super().__init__(base_url, *args, **kwargs)
        self.base_url = _OPENAI_TAIL.sub("", self.base_url)

    @classmethod
    def communication(cls, base_url: str, model_id: str) -> dict:
        return super().communication(_OPENAI_TAIL.sub("", base_url.rstrip("/")), model_id)

    def listing_params(self) -> dict[str, str]:
        return {"per_page": str(self.per_page), "page": "1"}

    def next_page(self, payload: Any) -> dict[str, str] | None:
        info = payload.get("result_info") if isinstance(payload, dict) else None
        if not isinstance(info, dict):
            return None
        page, per_page, total = info.get("page"), info.get("per_page"), info.get("total_count")
        if isinstance(page, int) and isinstance(per_page, int) and isinstance(total, int) and page * per_page < total:
            return {"page": str(page + 1)}
        return None

    def listing_items(self, payload: Any) -> list:
        result = payload.get("result") if isinstance(payload, dict) else None
        if not isinstance(result, list):
            return super().listing_items(payload)
        return result

    def parse_model(self, raw: dict) -> ModelRecord | None:
        mid = raw["name"]
        if not isinstance(mid, str) or not mid:
            raise ValueError("model without name")
        props = {p["property_id"]: p.get("value") for p in raw.get("properties") or () if isinstance(p, dict)}
        task = (raw.get("task") or {}).get("name")
        mtype, caps = TASKS.get(task) or guess_type(mid.rsplit("/", 1)[-1])
        caps = list(caps)
        if _true(props.get("function_calling")):
            caps.append("function-calling")
        if mtype == "chat" and any(w in mid for w in ("coder", "code")):
            caps.append("code-generation")
        rec = ModelRecord(id=mid, name=mid.rsplit("/", 1)[-1], type=mtype, capabilities=caps,
                          metadata={k: v for k, v in raw.items() if k not in ("name", "properties")})
        rec.metadata["properties"] = props
        for key in ("context_window", "max_total_tokens"):
            try:
                rec.context_window = int(props[key])
                break
            except (KeyError, TypeError, ValueError):
                continue
        paid = PAID in props and props[PAID] not in (False, "false")
        if paid:
            rec.input_price, rec.output_price = self._prices(props.get("price"))
        else:
            info = tables.provider_free_info(self.kind)
            if info:
                rec.is_free, rec.free_reason = True, info.get("reason") or "Workers AI free allocation"
                rec.quota = {"rpm": None, "rpd": None, "tpm": None, "tpd": None, **(info.get("default") or {})}
                rec.quota_scope = info.get("scope", "account")
        return rec

    @classmethod
    def pool_cost(cls, metadata: dict[str, Any] | None) -> tuple[float, float] | None:
        props = (metadata or {}).get("properties")
        inp, out = cls._prices(props.get("price") if isinstance(props, dict) else None)
        if inp is None and out is None:
            return None
        per_token = USD_PER_NEURON * 1_000_000
        return float((inp or 0) / per_token), float((out or 0) / per_token)

    @staticmethod
    def _prices(value: Any) -> tuple[Decimal | None, Decimal | None]:
        inp = out = None
        for item in value if isinstance(value, list) else ():
            unit = str(item.get("unit", "")).lower() if isinstance(item, dict) else ""
            try:
                price = Decimal(str(item["price"]))
            except (KeyError, TypeError, InvalidOperation):
                continue
            if "per m input tokens" in unit:
                inp = price
            elif "per m output tokens" in unit:
                out = price
        return inp, out

    def finish_record(self, rec: ModelRecord) -> None:
        if self.local:
            super().finish_record(rec)

    def error_fields(self, payload: Any) -> tuple[str, str | None]:
        errors = payload.get("errors") if isinstance(payload, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = first.get("code")
            return str(first.get("message") or ""), (str(code) if code is not None else None)
        return super().error_fields(payload)

    def refine_error(self, err: ProviderError, payload: Any) -> ProviderError:
        kw = {"status": err.status, "provider_code": err.provider_code, "provider": self.kind,
              "rate_limit": err.rate_limit, "retry_after": err.retry_after}
        if err.provider_code == "5007" and not isinstance(err, NotFoundError):  # "No such model", sent as a 400
            return NotFoundError(err.message, **kw)
        if err.provider_code == "3036":  # the day's free neurons are spent: they come back at 00:00 UTC
            kw["retry_after"] = max(err.retry_after or 0.0, DAY - time.time() % DAY)
            if err.rate_limit is not None:
                err.rate_limit.retry_after = kw["retry_after"]
            return RateLimited(err.message, **kw)
        return err
