"""The adapter registry: kind -> adapter class. Adding a provider = a module here + a line below."""

from registry.providers.anthropic import AnthropicAdapter
from registry.providers.base import Adapter
from registry.providers.cerebras import CerebrasAdapter
from registry.providers.cloudflare import CloudflareAdapter
from registry.providers.codestral import CodestralAdapter
from registry.providers.cohere import CohereAdapter
from registry.providers.deepseek import DeepseekAdapter
from registry.providers.gemini import GeminiAdapter
from registry.providers.github import GithubAdapter
from registry.providers.groq import GroqAdapter
from registry.providers.huggingface import HuggingfaceAdapter
from registry.providers.mistral import MistralAdapter
from registry.providers.nvidia import NvidiaAdapter
from registry.providers.ollama import OllamaAdapter
from registry.providers.openai import OpenaiAdapter
from registry.providers.openai_compatible import OpenaiCompatibleAdapter
from registry.providers.openrouter import OpenrouterAdapter
from registry.providers.together import TogetherAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    cls.kind: cls
    for cls in (
        OpenaiAdapter, AnthropicAdapter, OllamaAdapter, OpenrouterAdapter, GroqAdapter, GeminiAdapter,
        MistralAdapter, HuggingfaceAdapter, TogetherAdapter, CerebrasAdapter, DeepseekAdapter,
        OpenaiCompatibleAdapter, NvidiaAdapter, CohereAdapter, CloudflareAdapter, GithubAdapter, CodestralAdapter,
    )
}
KIND_CHOICES = [(kind, cls.label) for kind, cls in ADAPTERS.items()]


def adapter_class(kind: str) -> type[Adapter]:
    return ADAPTERS[kind]
