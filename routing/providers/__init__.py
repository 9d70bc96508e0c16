"""The adapter registry: kind -> adapter class. Adding a provider = a module here + a line below."""

from routing.providers.anthropic import AnthropicAdapter
from routing.providers.base import Adapter
from routing.providers.cerebras import CerebrasAdapter
from routing.providers.cloudflare import CloudflareAdapter
from routing.providers.codestral import CodestralAdapter
from routing.providers.cohere import CohereAdapter
from routing.providers.deepseek import DeepseekAdapter
from routing.providers.gemini import GeminiAdapter
from routing.providers.github import GithubAdapter
from routing.providers.groq import GroqAdapter
from routing.providers.huggingface import HuggingfaceAdapter
from routing.providers.mistral import MistralAdapter
from routing.providers.nvidia import NvidiaAdapter
from routing.providers.ollama import OllamaAdapter
from routing.providers.openai import OpenaiAdapter
from routing.providers.openai_compatible import OpenaiCompatibleAdapter
from routing.providers.openrouter import OpenrouterAdapter
from routing.providers.together import TogetherAdapter

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
