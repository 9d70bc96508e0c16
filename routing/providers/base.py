"""The adapter interface: one subclass per upstream kind, in its own module.

An adapter translates between AFMTS's internal shape (OpenAI's chat format) and one provider's wire
format. This base owns what every adapter shares; a subclass declares its kind, its defaults and
how it talks (`communication`), and implements the translation.
"""

from __future__ import annotations

import ipaddress
from typing import ClassVar
from urllib.parse import urlsplit


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Adapter:
    kind: ClassVar[str]
    label: ClassVar[str]
    default_base_url: ClassVar[str]
    # How requests and replies are shaped, and how the credential is sent (the model's
    # `communication` schema, GET /api/models/{id}/communication).
    request_format: ClassVar[str] = "openai-chat-completions"
    response_format: ClassVar[str] = "openai-chat-completions"
    auth_method: ClassVar[str] = "bearer"  # bearer | x-api-key | x-goog-api-key | none
    chat_path: ClassVar[str] = "/v1/chat/completions"
    models_path: ClassVar[str] = "/v1/models"
    # Environment variable `manage.py auto_register` reads the credential (or URL) from.
    env_var: ClassVar[str | None] = None
    # A local server costs nothing per token: its models are free unless said otherwise.
    always_local: ClassVar[bool] = False

    @classmethod
    def is_local(cls, base_url: str) -> bool:
        return cls.always_local or is_loopback_url(base_url)

    @classmethod
    def communication(cls, base_url: str, model_id: str) -> dict:
        base = base_url.rstrip("/")
        return {
            "requestFormat": cls.request_format,
            "responseFormat": cls.response_format,
            "authMethod": cls.auth_method,
            "endpoint": base + cls.chat_path.replace("{model}", model_id),
            "modelsEndpoint": base + cls.models_path,
            "streaming": True,
        }
