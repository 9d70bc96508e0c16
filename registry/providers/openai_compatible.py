from registry.providers.base import Adapter
from registry.providers.types import ModelRecord


class OpenaiCompatibleAdapter(Adapter):
    """vLLM, LM Studio, llama.cpp server, LocalAI: any `/v1/models` + `/v1/chat/completions` server."""

    kind = "openai_compatible"
    label = "OpenAI-compatible server"
    default_base_url = "http://localhost:8000"
    loopback_is_local = True
    env_var = "OPENAI_COMPATIBLE_URL"

    def parse_model(self, raw: dict) -> ModelRecord | None:
        rec = super().parse_model(raw)
        meta = raw.get("meta")
        if rec is not None and rec.context_window is None and isinstance(meta, dict):
            # llama.cpp server reports the training context under meta.n_ctx_train
            ctx = meta.get("n_ctx_train")
            rec.context_window = ctx if isinstance(ctx, int) else None
        return rec
