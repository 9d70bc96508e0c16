"""NVIDIA NIM hosted API (build.nvidia.com): OpenAI-compatible at https://integrate.api.nvidia.com/v1.

Wire format: `GET /v1/models` is OpenAI's `{object: "list", data: [{id: "org/model", object, created,
owned_by}]}` with a constant `created` (735790403, ../shared/provider-captures
nvidia_nim_models_2026-02-24.json); chat and embeddings are OpenAI's (https://docs.api.nvidia.com/nim/reference/,
"All NIM model endpoints hosted at https://integrate.api.nvidia.com/v1 are compatible with the OpenAI Chat
Completions API", https://build.nvidia.com). Errors are RFC 7807 problem details from the NVCF front
(`{status, title, detail}`) or vLLM's `{object: "error", message, type, code}`: both read by the base class.

Free rules (free_tiers.json "nvidia"): every listed model is free to call with a developer key, limited
to 40 requests a minute for the whole account (cheahjs/free-llm-api-resources, README generated
2026-07-18: "NVIDIA NIM: 40 req/min"). The API sends no rate-limit headers."""

from __future__ import annotations

from registry.providers.base import Adapter, guess_type
from registry.providers.types import ModelRecord


class NvidiaAdapter(Adapter):
    kind = "nvidia"
    label = "NVIDIA NIM"
    default_base_url = "https://integrate.api.nvidia.com"
    env_var = "NVIDIA_API_KEY"

    def parse_model(self, raw: dict) -> ModelRecord | None:
        rec = super().parse_model(raw)
        if rec is None:
            return None
        # Ids are "org/model": judge the type by the model's own name ("baai/bge-m3" is an embedder).
        mtype, caps = guess_type(rec.id.rsplit("/", 1)[-1])
        if (mtype, caps) != guess_type(rec.id):
            rec.type, rec.capabilities = mtype, caps
        return rec
