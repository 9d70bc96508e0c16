"""The AFMTS Python client — the seeds' AIRegistryClient — for programs and agents.

Importable without Django; needs only httpx. Sync (`AIRegistryClient`) and async
(`AsyncAIRegistryClient`) clients have the same methods. A model client (`create_model_client`)
calls models through the AFMTS gateway, never the provider directly, so no provider secret ever
leaves the server.

    from afmts_client import AIRegistryClient

    registry = AIRegistryClient("http://localhost:3001", api_key="afmts_...")
    model = registry.discover_model("text-generation", max_latency=5000, min_reliability=0.9,
                                    max_cost_per_token=0.01)
    if model:
        print(f"Found model: {model['name']} by {model['provider']}")
        print(registry.create_model_client(model["id"]).query("Explain quantum computing simply"))
"""

from afmts_client.client import (
    AIRegistryClient,
    AsyncAIRegistryClient,
    AsyncModelClient,
    ModelClient,
    RegistryError,
)

__all__ = ["AIRegistryClient", "AsyncAIRegistryClient", "AsyncModelClient", "ModelClient", "RegistryError"]
