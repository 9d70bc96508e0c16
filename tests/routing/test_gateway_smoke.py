"""First light: the OpenAI SDK through the gateway to the fake provider server."""

from __future__ import annotations

import httpx
import openai
import pytest
from asgiref.sync import sync_to_async

from afmts.asgi import application
from registry import services
from registry.fakes import KEY

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def setup(fake):
    services.provider_create(slug="groq", kind="groq", base_url=fake.base_url("groq"), api_key=KEY)
    services.model_register(provider_slug="groq", provider_kind="groq", endpoint=None, api_key=None, model_fields={
        "model_id": "llama-3.1-8b-instant", "name": "Llama 3.1 8B", "is_free": True, "capabilities": ["text-generation"],
        "context_window": 131072,
    })
    return services.apikey_create(name="sdk", scope="user")[1]


async def test_openai_sdk_chat_routes_free(fake):
    secret = await setup(fake)
    client = openai.AsyncOpenAI(
        base_url="http://testserver/v1", api_key=secret,
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=application)),
    )
    response = await client.chat.completions.with_raw_response.create(
        model="free", messages=[{"role": "user", "content": "hello"}]
    )
    completion = response.parse()

    assert completion.model == "groq/llama-3.1-8b-instant"
    assert completion.choices[0].message.content
    assert response.headers["x-afmts-provider"] == "groq"
    assert response.headers["x-afmts-attempts"] == "1"
    assert float(response.headers["x-afmts-overhead-ms"]) >= 0
