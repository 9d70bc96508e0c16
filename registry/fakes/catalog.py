"""What each fake provider lists, in that provider's own listing format (field for field as the real
captures in ../shared/provider-captures/listings show): free and paid models for every kind."""

from __future__ import annotations

import zlib
from typing import Any

T0 = 1747143320  # a fixed `created`, like Mistral's real listing


def _or(mid: str, name: str, prompt: str, completion: str, ctx: int, out: int | None = None,
        inputs: tuple[str, ...] = ("text",), outputs: tuple[str, ...] = ("text",),
        params: tuple[str, ...] = ("max_tokens", "temperature", "top_p", "stop", "seed", "tools", "tool_choice",
                                   "response_format")) -> dict[str, Any]:
    return {
        "id": mid,
        "canonical_slug": mid.split(":", 1)[0] + "-20250101",
        "hugging_face_id": "",
        "name": name,
        "created": T0,
        "description": f"{name}, served by the fake provider.",
        "context_length": ctx,
        "architecture": {"modality": f"{'+'.join(inputs)}->{'+'.join(outputs)}", "input_modalities": list(inputs),
                         "output_modalities": list(outputs), "tokenizer": "Other", "instruct_type": None},
        "pricing": {"prompt": prompt, "completion": completion, "request": "0", "image": "0", "web_search": "0",
                    "internal_reasoning": "0"},
        "top_provider": {"context_length": ctx, "max_completion_tokens": out, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": list(params),
    }


def _oai(mid: str, owned_by: str, created: int = T0, **extra: Any) -> dict[str, Any]:
    return {"id": mid, "object": "model", "created": created, "owned_by": owned_by, **extra}


OPENROUTER = [
    _or("meta-llama/llama-3.3-70b-instruct:free", "Meta: Llama 3.3 70B Instruct (free)", "0", "0", 131072, 2048),
    _or("deepseek/deepseek-chat-v3-0324:free", "DeepSeek: DeepSeek V3 0324 (free)", "0", "0", 163840),
    _or("google/gemma-3-27b-it:free", "Google: Gemma 3 27B (free)", "0", "0", 96000, 8192, ("text", "image")),
    _or("openai/gpt-4o-mini", "OpenAI: GPT-4o-mini", "0.00000015", "0.0000006", 128000, 16384, ("text", "image")),
    _or("anthropic/claude-sonnet-4.5", "Anthropic: Claude Sonnet 4.5", "0.000003", "0.000015", 1000000, 64000,
        ("text", "image")),
    _or("google/gemini-2.5-pro-exp-03-25", "Google: Gemini 2.5 Pro Experimental", "0", "0", 1048576, 65535),
    _or("google/gemini-2.5-flash-image", "Google: Gemini 2.5 Flash Image", "0.0000003", "0.0000025", 32768, 8192,
        ("image", "text"), ("image", "text")),
    _or("openrouter/auto", "Auto Router", "-1", "-1", 2000000, None),
    _or("openrouter/free", "Free Models Router", "0", "0", 200000, None),
]

OPENAI = [
    _oai("gpt-4o-mini", "system", 1721172741), _oai("gpt-4o", "system", 1715367049),
    _oai("gpt-4.1-nano", "system", 1744321707), _oai("o4-mini", "system", 1744225351),
    _oai("text-embedding-3-small", "system", 1705948997), _oai("whisper-1", "openai-internal", 1677532384),
    _oai("dall-e-3", "system", 1698785189),
]

GROQ = [
    _oai("llama-3.1-8b-instant", "Meta", 1693721698, active=True, context_window=131072, public_apps=None,
         max_completion_tokens=131072),
    _oai("llama-3.3-70b-versatile", "Meta", 1733447754, active=True, context_window=131072, public_apps=None,
         max_completion_tokens=32768),
    _oai("openai/gpt-oss-20b", "OpenAI", 1754407957, active=True, context_window=131072, public_apps=None,
         max_completion_tokens=65536),
    _oai("groq/compound", "Groq", 1756949530, active=True, context_window=131072, public_apps=None,
         max_completion_tokens=8192),
    _oai("whisper-large-v3", "OpenAI", 1693721698, active=True, context_window=448, public_apps=None,
         max_completion_tokens=448),
]


def _mistral(mid: str, name: str, ctx: int, chat: bool = True, fim: bool = False, tools: bool = True,
             vision: bool = False, aliases: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"id": mid, "object": "model", "created": T0, "owned_by": "mistralai",
            "capabilities": {"completion_chat": chat, "completion_fim": fim, "function_calling": tools,
                             "fine_tuning": False, "vision": vision, "classification": False},
            "name": name, "description": f"Official {name} Mistral AI model", "max_context_length": ctx,
            "aliases": list(aliases), "deprecation": None, "default_model_temperature": 0.3 if chat else None,
            "type": "base"}


MISTRAL = [
    _mistral("mistral-small-latest", "mistral-small-2506", 131072, vision=True, aliases=("mistral-small-2506",)),
    _mistral("mistral-large-latest", "mistral-large-2411", 131072, aliases=("mistral-large-2411",)),
    _mistral("codestral-latest", "codestral-2508", 256000, fim=True, aliases=("codestral-2508",)),
    _mistral("mistral-embed", "mistral-embed", 8192, chat=False, tools=False),
    _mistral("mistral-ocr-latest", "mistral-ocr-2505", 16384, chat=False, tools=False),
]

CEREBRAS = [_oai(m, "Cerebras", 0) for m in ("llama3.1-8b", "gpt-oss-120b", "qwen-3-32b")]

DEEPSEEK = [{"id": "deepseek-chat", "object": "model", "owned_by": "deepseek"},
            {"id": "deepseek-reasoner", "object": "model", "owned_by": "deepseek"}]


def _together(mid: str, kind: str, name: str, org: str, ctx: int | None, inp: float, out: float) -> dict[str, Any]:
    return {"id": mid, "object": "model", "created": T0, "type": kind, "running": False, "display_name": name,
            "organization": org, "link": f"https://huggingface.co/{mid}", "license": "other", "context_length": ctx,
            "config": {"chat_template": None, "stop": ["<|eot_id|>"], "bos_token": None, "eos_token": None},
            "pricing": {"hourly": 0, "input": inp, "output": out, "base": 0, "finetune": 0}}


TOGETHER = [
    _together("meta-llama/Llama-3.3-70B-Instruct-Turbo", "chat", "Meta Llama 3.3 70B Instruct Turbo", "Meta", 131072,
              0.88, 0.88),
    _together("meta-llama/Llama-3.3-70B-Instruct-Turbo-Free", "chat", "Meta Llama 3.3 70B Instruct Turbo Free", "Meta",
              131072, 0, 0),
    _together("BAAI/bge-large-en-v1.5", "embedding", "BAAI-Bge-Large-1p5", "BAAI", 512, 0.02, 0),
    _together("black-forest-labs/FLUX.1-schnell", "image", "FLUX.1 [schnell]", "Black Forest Labs", None, 0, 0),
]


def _hf(mid: str, owner: str, hosts: list[dict[str, Any]], inputs: tuple[str, ...] = ("text",)) -> dict[str, Any]:
    return {"id": mid, "object": "model", "created": T0, "owned_by": owner,
            "architecture": {"input_modalities": list(inputs), "output_modalities": ["text"]}, "providers": hosts}


def _host(name: str, ctx: int | None, price: tuple[float, float] | None, status: str = "live") -> dict[str, Any]:
    host: dict[str, Any] = {"provider": name, "status": status}
    if ctx:
        host["context_length"] = ctx
    if price:
        host["pricing"] = {"input": price[0], "output": price[1]}
    host.update({"supports_tools": True, "supports_structured_output": True, "first_token_latency_ms": 500.0,
                 "throughput": 40.5, "is_model_author": False})
    return host


HUGGINGFACE = [
    _hf("meta-llama/Llama-3.1-8B-Instruct", "meta-llama", [_host("novita", 16384, (0.02, 0.05)),
                                                           _host("cerebras", 8192, (0.1, 0.1))]),
    _hf("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen", [_host("hyperbolic", 32768, (0.2, 0.2))], ("text", "image")),
    _hf("deepseek-ai/DeepSeek-V3", "deepseek-ai", [_host("together", 131072, (1.25, 1.25)),
                                                   _host("featherless-ai", None, None, "error")]),
]

OPENAI_COMPATIBLE = [
    _oai("qwen2.5-7b-instruct", "vllm", max_model_len=32768),
    _oai("nomic-embed-text-v1.5", "vllm", max_model_len=8192),
]

ANTHROPIC = [
    {"type": "model", "id": "claude-opus-4-5-20251101", "display_name": "Claude Opus 4.5",
     "created_at": "2025-11-24T00:00:00Z"},
    {"type": "model", "id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku 4.5",
     "created_at": "2025-10-15T00:00:00Z"},
    {"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5",
     "created_at": "2025-09-29T00:00:00Z"},
    {"type": "model", "id": "claude-3-haiku-20240307", "display_name": "Claude Haiku 3",
     "created_at": "2024-03-07T00:00:00Z"},
]


def _gemini(mid: str, name: str, inp: int, out: int, methods: tuple[str, ...], thinking: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": f"models/{mid}", "version": "001", "displayName": name,
                             "description": f"{name}, served by the fake provider.", "inputTokenLimit": inp,
                             "outputTokenLimit": out, "supportedGenerationMethods": list(methods)}
    if "generateContent" in methods:
        entry.update({"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2})
    if thinking:
        entry["thinking"] = True
    return entry


_GEN = ("generateContent", "countTokens", "createCachedContent", "batchGenerateContent")
GEMINI = [
    _gemini("gemini-2.5-flash", "Gemini 2.5 Flash", 1048576, 65536, _GEN, True),
    _gemini("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", 1048576, 65536, _GEN, True),
    _gemini("gemini-2.5-pro", "Gemini 2.5 Pro", 1048576, 65536, _GEN, True),
    _gemini("gemma-3-27b-it", "Gemma 3 27B", 131072, 8192, ("generateContent", "countTokens")),
    _gemini("gemini-embedding-001", "Gemini Embedding 001", 2048, 1,
            ("embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent")),
    _gemini("imagen-4.0-generate-001", "Imagen 4", 480, 8192, ("predict",)),
]

OLLAMA = [
    {"name": "llama3.2:latest", "model": "llama3.2:latest", "modified_at": "2025-05-04T17:37:44.706015396-07:00",
     "size": 2019393189, "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
     "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                 "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}},
    {"name": "nomic-embed-text:latest", "model": "nomic-embed-text:latest",
     "modified_at": "2025-05-01T10:00:00.000000000-07:00", "size": 274302450,
     "digest": "0a109f422b47e3a30ba2b10eca18548e944e8a23073ee3f3e947efcf3c45e59f",
     "details": {"parent_model": "", "format": "gguf", "family": "nomic-bert", "families": ["nomic-bert"],
                 "parameter_size": "137M", "quantization_level": "F16"}},
    {"name": "llava:7b", "model": "llava:7b", "modified_at": "2025-04-30T13:33:09.1329853-07:00",
     "size": 4733363377, "digest": "8dd30f6b0cb19f555f2c7a7ebda861449ea2cc76bf1f44e262931f45fc81d081",
     "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama", "clip"],
                 "parameter_size": "7B", "quantization_level": "Q4_0"}},
]

# NVIDIA NIM: OpenAI's list with NVIDIA's constant `created` (the real capture, 2026-02-24).
NVIDIA = [_oai(m, m.split("/", 1)[0], 735790403) for m in (
    "meta/llama-3.3-70b-instruct", "deepseek-ai/deepseek-r1", "nvidia/llama-3.1-nemotron-70b-instruct",
    "baai/bge-m3")]


def _cohere(name: str, endpoints: tuple[str, ...], ctx: int, features: tuple[str, ...] = (),
            vision: bool = False, deprecated: bool = False, default: tuple[str, ...] = ()) -> dict[str, Any]:
    """An element of GET /v1/models (https://docs.cohere.com/v1/reference/list-models)."""
    return {"name": name, "endpoints": list(endpoints), "finetuned": False, "context_length": ctx,
            "tokenizer_url": f"https://storage.googleapis.com/cohere-public/tokenizers/{name}.json",
            "supports_vision": vision, "features": list(features), "default_endpoints": list(default),
            "is_deprecated": deprecated}


COHERE = [
    _cohere("command-a-03-2025", ("chat",), 256000, ("json_mode", "json_schema", "safety_modes", "strict_tools",
                                                     "tool_choice", "tools"), default=("chat",)),
    _cohere("command-r7b-12-2024", ("chat",), 128000, ("json_mode", "json_schema", "tools")),
    _cohere("command-a-vision-07-2025", ("chat",), 128000, ("json_mode",), vision=True),
    _cohere("command-r-03-2024", ("chat",), 128000, ("tools",), deprecated=True),
    _cohere("embed-v4.0", ("embed",), 128000, default=("embed",)),
    _cohere("rerank-v3.5", ("rerank",), 4096, default=("rerank",)),
]


def _cf(name: str, task: str, props: dict[str, Any], desc: str = "") -> dict[str, Any]:
    """An element of GET /accounts/{id}/ai/models/search (AiModelsSearchObject in @cloudflare/workers-types)."""
    uid = f"{zlib.crc32(name.encode()) % 10**8:08d}-0000-4000-8000-000000000000"
    return {"id": uid, "source": 1, "name": name, "description": desc or f"{name}, served by the fake provider.",
            "task": {"id": f"{zlib.crc32(task.encode()) % 10**8:08d}-0000-4000-8000-000000000001", "name": task,
                     "description": f"{task} models."},
            "tags": [], "properties": [{"property_id": k, "value": v} for k, v in props.items()]}


def _cf_price(inp: float, out: float) -> list[dict[str, Any]]:
    return [{"unit": "per M input tokens", "price": inp, "currency": "USD"},
            {"unit": "per M output tokens", "price": out, "currency": "USD"}]


CLOUDFLARE = [
    _cf("@cf/meta/llama-3.1-8b-instruct", "Text Generation",
        {"context_window": "7968", "price": _cf_price(0.282, 0.827), "function_calling": "true",
         "terms": "https://github.com/meta-llama/llama-models/blob/main/models/llama3_1/LICENSE"}),
    _cf("@cf/meta/llama-3.3-70b-instruct-fp8-fast", "Text Generation",
        {"context_window": "24000", "price": _cf_price(0.293, 2.253), "function_calling": "true"}),
    _cf("@cf/qwen/qwen2.5-coder-32b-instruct", "Text Generation",
        {"context_window": "32768", "price": _cf_price(0.66, 1.0), "lora": "true"}),
    _cf("@cf/openai/gpt-oss-120b", "Text Generation",
        {"context_window": "128000", "price": _cf_price(0.35, 0.75), "require_workers_paid": "true"}),
    _cf("@cf/baai/bge-large-en-v1.5", "Text Embeddings",
        {"max_input_tokens": "512", "price": [{"unit": "per M input tokens", "price": 0.204, "currency": "USD"}]}),
]


def _gh(mid: str, name: str, publisher: str, tier: str, inputs: tuple[str, ...] = ("text",),
        outputs: tuple[str, ...] = ("text",), caps: tuple[str, ...] = ("streaming", "tool-calling"),
        limits: tuple[int, int] = (131072, 4096)) -> dict[str, Any]:
    """An element of GET /catalog/models (https://docs.github.com/en/rest/models/catalog)."""
    slug = mid.split("/", 1)[1]
    return {"id": mid, "name": name, "publisher": publisher, "registry": "azureml",
            "summary": f"{name}, served by the fake provider.",
            "html_url": f"https://github.com/marketplace/models/azureml/{slug}", "version": "1",
            "capabilities": list(caps), "limits": {"max_input_tokens": limits[0], "max_output_tokens": limits[1]},
            "rate_limit_tier": tier, "supported_input_modalities": list(inputs),
            "supported_output_modalities": list(outputs), "tags": ["multipurpose"]}


GITHUB = [
    _gh("openai/gpt-4.1", "OpenAI GPT-4.1", "OpenAI", "high", ("text", "image"), limits=(1048576, 32768)),
    _gh("openai/gpt-4o-mini", "OpenAI GPT-4o mini", "OpenAI", "low", ("text", "image"), limits=(131072, 4096)),
    _gh("meta/llama-3.3-70b-instruct", "Llama-3.3-70B-Instruct", "Meta", "high"),
    _gh("deepseek/deepseek-r1", "DeepSeek-R1", "DeepSeek", "custom", caps=("streaming", "reasoning")),
    _gh("openai/text-embedding-3-small", "OpenAI Text Embedding 3 (small)", "OpenAI", "embeddings",
        outputs=("embeddings",), caps=(), limits=(8191, 0)),
]

CODESTRAL = [
    _mistral("codestral-latest", "codestral-2508", 256000, fim=True, aliases=("codestral-2508",)),
    _mistral("codestral-2508", "codestral-2508", 256000, fim=True, aliases=("codestral-latest",)),
]
