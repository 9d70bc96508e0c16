"""GitHub Models: an OpenAI-compatible inference API and a model catalog, both at https://models.github.ai.

Wire format (GitHub REST docs, https://docs.github.com/en/rest/models/catalog and
https://docs.github.com/en/rest/models/inference, announced 2025-05-15 in the GitHub changelog):
- `GET /catalog/models` is a bare JSON array of `{id: "openai/gpt-4.1", name, publisher, registry, summary,
  html_url, version, capabilities: ["streaming", "tool-calling"], limits: {max_input_tokens,
  max_output_tokens}, rate_limit_tier: "low" | "high" | "embeddings" | "custom", supported_input_modalities,
  supported_output_modalities, tags}`;
- `POST /inference/chat/completions` and `POST /inference/embeddings` are OpenAI's; the credential is a
  personal access token with the `models` scope (`Authorization: Bearer`), and the docs send
  `X-GitHub-Api-Version: 2022-11-28` and `Accept: application/vnd.github+json`.

Free rules (free_tiers.json "github", "tiers"): every catalog model may be called without payment; the
limits depend on the Copilot plan and the model's `rate_limit_tier`, per model and per user
(https://docs.github.com/en/github-models/use-github-models/prototyping-with-ai-models#rate-limits). The
table holds the Copilot Free numbers: low 15 RPM / 150 RPD, high 10 RPM / 50 RPD (8,000 input and 4,000
output tokens a request), embeddings 15 RPM / 150 RPD; "custom" models (o-series, DeepSeek-R1, Grok) 1 RPM /
8 RPD. Operators on Copilot Pro/Business/Enterprise replace the numbers (AFMTS_FREE_TIERS_FILE)."""

from __future__ import annotations

from typing import Any

from registry.providers import tables
from registry.providers.base import Adapter, guess_type
from registry.providers.errors import NotFoundError, ProviderError
from registry.providers.types import ModelRecord

API_VERSION = "2022-11-28"
CAPS = {"tool-calling": "function-calling", "streaming": "streaming", "reasoning": "reasoning"}


class GithubAdapter(Adapter):
    kind = "github"
    label = "GitHub Models"
    default_base_url = "https://models.github.ai"
    # Not GITHUB_TOKEN: GitHub Actions sets that one everywhere; using Models is the operator's choice.
    env_var = "GITHUB_MODELS_TOKEN"
    chat_path = "/inference/chat/completions"
    models_path = "/catalog/models"
    embeddings_path = "/inference/embeddings"

    def headers(self) -> dict[str, str]:
        return super().headers() | {"x-github-api-version": API_VERSION}

    def auth_headers(self) -> dict[str, str]:
        return super().auth_headers() | {"x-github-api-version": API_VERSION}

    def parse_model(self, raw: dict) -> ModelRecord | None:
        mid = raw["id"]
        if not isinstance(mid, str) or not mid:
            raise ValueError("model without id")
        inputs = raw.get("supported_input_modalities") or ["text"]
        outputs = raw.get("supported_output_modalities") or ["text"]
        tier = raw.get("rate_limit_tier")
        if "embeddings" in outputs or tier == "embeddings":
            mtype, caps = "embedding", ["embeddings"]
        else:
            mtype, caps = guess_type(mid.rsplit("/", 1)[-1])
            if mtype not in ("chat", "vision"):
                mtype, caps = "chat", ["text-generation"]
            caps = caps + [CAPS[c] for c in raw.get("capabilities") or () if c in CAPS and CAPS[c] not in caps]
            if "image" in inputs and "vision" not in caps:
                caps.append("vision")
        limits = raw.get("limits") or {}
        rec = ModelRecord(
            id=mid, name=raw.get("name") or mid, type=mtype, capabilities=caps,
            context_window=limits.get("max_input_tokens") if isinstance(limits.get("max_input_tokens"), int) else None,
            max_output_tokens=limits.get("max_output_tokens") if isinstance(limits.get("max_output_tokens"), int)
            else None,
            metadata={k: v for k, v in raw.items() if k not in ("id", "name")},
        )
        tiers = tables.provider_free_info(self.kind).get("tiers") or {}
        quota = tiers.get(tier) if isinstance(tier, str) else None
        if quota is not None:
            info = tables.provider_free_info(self.kind)
            rec.is_free, rec.free_reason = True, f"{info.get('reason') or 'GitHub Models free use'} ({tier} tier)"
            rec.quota = {"rpm": None, "rpd": None, "tpm": None, "tpd": None, **quota}
            rec.quota_scope = info.get("scope", "model")
        return rec

    def finish_record(self, rec: ModelRecord) -> None:
        if self.local:
            super().finish_record(rec)

    def refine_error(self, err: ProviderError, payload: Any) -> ProviderError:
        # An unknown model is a 400 {"error": {"code": "unknown_model", ...}}: the model is not there.
        if err.provider_code == "unknown_model" and not isinstance(err, NotFoundError):
            return NotFoundError(err.message, status=err.status, provider_code=err.provider_code,
                                 provider=self.kind)
        return err
