"""Fixtures for the adapter tests: the real captures folder, the fake provider server (one per test
session, its scenarios reset before each test) and adapters pointed at it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from registry.fakes import KEY, FakeProviderServer
from registry.providers import ADAPTERS, adapter_class
from registry.providers.base import Adapter
from registry.providers.http import Timeouts, close_clients

ROOT = Path(settings.BASE_DIR)
CAPTURES = ROOT.parent / "shared" / "provider-captures"
DATA = ROOT / "tests" / "data"
IN_CI = os.environ.get("CI", "").lower() == "true"
KINDS = sorted(ADAPTERS)
# A model each fake provider lists, and which kinds the fake plays as a local server.
MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5-20251001", "ollama": "llama3.2:latest",
         "openrouter": "meta-llama/llama-3.3-70b-instruct:free", "groq": "llama-3.1-8b-instant",
         "gemini": "gemini-2.5-flash", "mistral": "mistral-small-latest",
         "huggingface": "meta-llama/Llama-3.1-8B-Instruct", "together": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
         "cerebras": "llama3.1-8b", "deepseek": "deepseek-chat", "openai_compatible": "qwen2.5-7b-instruct",
         "nvidia": "meta/llama-3.3-70b-instruct", "cohere": "command-a-03-2025",
         "cloudflare": "@cf/meta/llama-3.1-8b-instruct", "github": "openai/gpt-4o-mini", "codestral": "codestral-latest"}
LOCAL = {"ollama", "openai_compatible"}
EMBED_MODEL = {"openai": "text-embedding-3-small", "ollama": "nomic-embed-text:latest", "gemini": "gemini-embedding-001",
               "mistral": "mistral-embed", "together": "BAAI/bge-large-en-v1.5", "openrouter": "openai/gpt-4o-mini",
               "groq": "llama-3.1-8b-instant", "openai_compatible": "nomic-embed-text-v1.5", "nvidia": "baai/bge-m3",
               "github": "openai/text-embedding-3-small", "cloudflare": "@cf/baai/bge-large-en-v1.5"}
TOOLS = [{"type": "function", "function": {
    "name": "multiply", "description": "Multiply two numbers.",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                   "required": ["a", "b"]}}}]


@pytest.fixture(scope="session")
def captures() -> Path:
    """../shared/provider-captures: skipped when absent, except in CI where its absence fails."""
    if not CAPTURES.is_dir():
        if IN_CI:
            pytest.fail(f"CI=true but the provider captures are missing at {CAPTURES}")
        pytest.skip(f"provider captures not found at {CAPTURES} (they live beside the project, not in a clone)")
    return CAPTURES


@pytest.fixture(scope="session")
def listing_capture(captures: Path) -> Callable[[str], Any]:
    def load(name: str) -> Any:
        return json.loads((captures / "listings" / name).read_text())

    return load


@pytest.fixture(scope="session")
def data() -> Callable[[str], Any]:
    def load(name: str) -> Any:
        return json.loads((DATA / name).read_text())

    return load


@pytest.fixture(scope="session")
def fake_server() -> FakeProviderServer:
    server = FakeProviderServer(chunk_delay=0.0, page_size=3)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_server: FakeProviderServer) -> FakeProviderServer:
    """The running fake providers with no scripted scenarios, quotas or log left from earlier tests."""
    fake_server.state.reset()
    fake_server.state.chunk_delay = 0.0
    fake_server.state.page_size = 3
    fake_server.state.key = KEY
    return fake_server


@pytest.fixture
async def make_adapter(fake: FakeProviderServer) -> Callable[..., Adapter]:
    """make_adapter("groq", api_key=..., timeouts=...): an adapter talking to the fake server."""

    def make(kind: str, **kwargs: Any) -> Adapter:
        kwargs.setdefault("api_key", KEY)
        kwargs.setdefault("timeouts", Timeouts(connect=2, read=5, write=2, pool=2, total=10))
        kwargs.setdefault("local", kind in LOCAL)
        return adapter_class(kind)(base_url=fake.base_url(kind), **kwargs)

    yield make
    await close_clients()


def chat_request(kind: str, **extra: Any) -> dict:
    return {"model": MODEL[kind], "messages": [{"role": "system", "content": "Be brief."},
                                               {"role": "user", "content": "Say hello to the tests"}], **extra}
