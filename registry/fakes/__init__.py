"""Fake providers for tests, demos and benchmarks: one local HTTP server speaking every provider's API."""

from registry.fakes.server import KEY, FakeProviderServer, State, base_urls

__all__ = ["KEY", "FakeProviderServer", "State", "base_urls"]
