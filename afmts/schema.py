"""The OpenAPI contract beyond what drf-spectacular infers from the DRF views:

- the authentication schemes of registry.auth (API key as Bearer or X-API-Key, staff session);
- the error envelope (afmts/errors.py) on every operation, with the statuses it can answer;
- the parts Django REST framework does not serve: the gateway's `/v1/*` (a bare ASGI app,
  routing/gateway), `/health` and `/metrics`, as static fragments.

Wired in through SPECTACULAR_SETTINGS (PREPROCESSING_HOOKS imports this module, which registers the
extensions before any view is inspected; POSTPROCESSING_HOOKS adds the rest)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERROR = {"$ref": "#/components/schemas/Error"}
ANTHROPIC_ERROR = {"$ref": "#/components/schemas/AnthropicError"}

COMPONENTS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "The one error envelope of REST and gateway (OpenAI's shape).",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "example": "invalid_request_error"},
                "param": {"type": "string", "nullable": True, "description": "the field at fault (dotted path)"},
                "code": {"type": "string", "nullable": True},
                "fields": {
                    "type": "object", "description": "validation errors by field",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        }},
    },
    "AnthropicError": {
        "type": "object",
        "description": "Errors of /v1/messages, in Anthropic's shape.",
        "required": ["type", "error"],
        "properties": {
            "type": {"type": "string", "enum": ["error"]},
            "error": {"type": "object", "required": ["type", "message"],
                      "properties": {"type": {"type": "string"}, "message": {"type": "string"}}},
        },
    },
    "Message": {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
            "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
                        "nullable": True, "description": "a string, or a list of content parts"},
            "name": {"type": "string"},
            "tool_calls": {"type": "array", "items": {"type": "object"}},
            "tool_call_id": {"type": "string"},
        },
    },
    "ChatCompletionRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "description": "OpenAI's chat request. `model` is a public id (`provider/model`), an alias or a "
                       "policy (auto, free, cheap, fast); AFMTS reads `x-afmts-*` headers for requirements.",
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "messages": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Message"}},
            "stream": {"type": "boolean"},
            "max_tokens": {"type": "integer", "minimum": 1, "nullable": True},
            "max_completion_tokens": {"type": "integer", "minimum": 1, "nullable": True},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
            "n": {"type": "integer", "minimum": 1, "nullable": True},
            "stop": {"nullable": True, "description": "a string or a list of strings"},
            "tools": {"type": "array", "items": {"type": "object"}},
            "tool_choice": {},
            "response_format": {"type": "object"},
            "user": {"type": "string"},
        },
    },
    "ChatCompletion": {
        "type": "object",
        "required": ["id", "object", "model", "choices"],
        "properties": {
            "id": {"type": "string"}, "object": {"type": "string", "enum": ["chat.completion"]},
            "created": {"type": "integer"}, "model": {"type": "string"},
            "choices": {"type": "array", "items": {"type": "object", "properties": {
                "index": {"type": "integer"}, "message": {"$ref": "#/components/schemas/Message"},
                "finish_reason": {"type": "string", "nullable": True},
            }}},
            "usage": {"$ref": "#/components/schemas/Usage"},
        },
    },
    "Usage": {"type": "object", "properties": {
        "prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"},
    }},
    "CompletionRequest": {
        "type": "object", "required": ["model", "prompt"],
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "prompt": {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}]},
            "stream": {"type": "boolean"}, "max_tokens": {"type": "integer", "minimum": 1, "nullable": True},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True},
        },
    },
    "Completion": {
        "type": "object", "required": ["id", "object", "choices"],
        "properties": {
            "id": {"type": "string"}, "object": {"type": "string", "enum": ["text_completion"]},
            "created": {"type": "integer"}, "model": {"type": "string"},
            "choices": {"type": "array", "items": {"type": "object", "properties": {
                "index": {"type": "integer"}, "text": {"type": "string"},
                "finish_reason": {"type": "string", "nullable": True},
            }}},
            "usage": {"$ref": "#/components/schemas/Usage"},
        },
    },
    "EmbeddingRequest": {
        "type": "object", "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "input": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "minItems": 1}],
                      "description": "a string, a list of strings or of token arrays"},
            "encoding_format": {"type": "string", "enum": ["float", "base64"]},
            "dimensions": {"type": "integer", "minimum": 1},
        },
    },
    "Embeddings": {
        "type": "object", "required": ["object", "data"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]}, "model": {"type": "string"},
            "data": {"type": "array", "items": {"type": "object", "properties": {
                "object": {"type": "string"}, "index": {"type": "integer"}, "embedding": {},
            }}},
            "usage": {"$ref": "#/components/schemas/Usage"},
        },
    },
    "ModelEntry": {
        "type": "object", "required": ["id", "object"],
        "properties": {"id": {"type": "string"}, "object": {"type": "string", "enum": ["model"]},
                       "created": {"type": "integer"}, "owned_by": {"type": "string"}},
    },
    "ModelList": {
        "type": "object", "required": ["object", "data"],
        "properties": {"object": {"type": "string", "enum": ["list"]},
                       "data": {"type": "array", "items": {"$ref": "#/components/schemas/ModelEntry"}}},
    },
    "MessagesRequest": {
        "type": "object", "required": ["model", "messages", "max_tokens"],
        "description": "Anthropic's Messages request.",
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "messages": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["role", "content"],
                                                                 "properties": {"role": {"type": "string", "enum": ["user", "assistant"]},
                                                                                "content": {"anyOf": [{"type": "string"}, {"type": "array"}]}}}},
            "max_tokens": {"type": "integer", "minimum": 1},
            "system": {"description": "a string or a list of text blocks"},
            "stream": {"type": "boolean"},
            "temperature": {"type": "number", "minimum": 0, "maximum": 1},
            "stop_sequences": {"type": "array", "items": {"type": "string"}},
            "tools": {"type": "array", "items": {"type": "object"}},
        },
    },
    "MessagesResponse": {
        "type": "object", "required": ["id", "type", "role", "content"],
        "properties": {
            "id": {"type": "string"}, "type": {"type": "string", "enum": ["message"]},
            "role": {"type": "string", "enum": ["assistant"]}, "model": {"type": "string"},
            "content": {"type": "array", "items": {"type": "object"}},
            "stop_reason": {"type": "string", "nullable": True},
            "usage": {"type": "object", "properties": {"input_tokens": {"type": "integer"},
                                                       "output_tokens": {"type": "integer"}}},
        },
    },
    "Health": {
        "type": "object", "required": ["status", "mode", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded", "unavailable"]},
            "mode": {"type": "string", "enum": ["embedded", "server"]},
            "checks": {"type": "object", "additionalProperties": {"type": "object", "properties": {"ok": {"type": "boolean"}}}},
        },
    },
}

DESCRIPTIONS = {
    400: "Malformed or invalid input; `param` names the field.",
    401: "No API key, or an unknown or revoked one.",
    403: "The key's scope does not allow this (writes need an admin key).",
    404: "No such object, or a page past the last.",
    409: "Already exists (a duplicate name, slug or model id).",
    413: "The body is over AFMTS_MAX_BODY_BYTES (AFMTS_GATEWAY_MAX_BODY_BYTES on /v1/*).",
    429: "The key's rate limit; wait Retry-After seconds.",
    500: "An internal error.",
    502: "The upstream provider failed.",
    503: "Nothing could serve the request now.",
    504: "The upstream provider timed out.",
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}}


def error_response(status: int, schema: dict[str, Any] = ERROR) -> dict[str, Any]:
    response: dict[str, Any] = {"description": DESCRIPTIONS[status], "content": {"application/json": {"schema": schema}}}
    if status in (429, 503):
        response["headers"] = RETRY_AFTER
    return response


def _json(schema: dict[str, Any], description: str, *, stream: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if stream:
        content["text/event-stream"] = {"schema": {"type": "string", "description": "server-sent events ('stream': true)"}}
    return {"description": description, "content": content}


def _gateway_op(summary: str, request: str | None, response: str, *, anthropic: bool = False,
                stream: bool = False) -> dict[str, Any]:
    schema = ANTHROPIC_ERROR if anthropic else ERROR
    codes = (400, 401, 404, 413, 429, 500, 502, 503, 504) if request else (401, 404, 429, 500, 503)
    op: dict[str, Any] = {
        "tags": ["gateway"], "summary": summary,
        "responses": {
            "200": _json({"$ref": f"#/components/schemas/{response}"}, "the upstream's answer, translated", stream=stream),
            **{str(code): error_response(code, schema) for code in codes},
            # Other upstream statuses (402, 422, ...) are passed on in the same envelope.
            "default": {"description": "another upstream status, in the envelope", "content": {"application/json": {"schema": schema}}},
        },
    }
    if request:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}}}
    return op


def static_paths() -> dict[str, Any]:
    open_op = {"security": [{}]}
    return {
        "/v1/chat/completions": {"post": {**_gateway_op("Chat completion (OpenAI's API), routed to the best model",
                                                        "ChatCompletionRequest", "ChatCompletion", stream=True),
                                          "operationId": "v1_chat_completions"}},
        "/v1/completions": {"post": {**_gateway_op("Text completion (OpenAI's legacy API)", "CompletionRequest",
                                                   "Completion", stream=True),
                                     "operationId": "v1_completions"}},
        "/v1/embeddings": {"post": {**_gateway_op("Embeddings (OpenAI's API)", "EmbeddingRequest", "Embeddings"),
                                    "operationId": "v1_embeddings"}},
        "/v1/messages": {"post": {**_gateway_op("Messages (Anthropic's API)", "MessagesRequest", "MessagesResponse",
                                                anthropic=True, stream=True),
                                  "operationId": "v1_messages"}},
        "/v1/models": {"get": {**_gateway_op("Routable models, policies and aliases", None, "ModelList"),
                               "operationId": "v1_models_list"}},
        "/v1/models/{model}": {"get": {
            **_gateway_op("One routable model, policy or alias", None, "ModelEntry"),
            "operationId": "v1_models_retrieve",
            "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "a public id (may contain '/'), a policy or an alias"}],
        }},
        "/health": {"get": {
            **open_op, "tags": ["operations"], "operationId": "health",
            "summary": "Database, cache, channel layer, broker and live state: 200 (ok or degraded) or 503",
            "responses": {"200": _json({"$ref": "#/components/schemas/Health"}, "serving"),
                          "503": _json({"$ref": "#/components/schemas/Health"}, "an essential part is down")},
        }},
        "/metrics": {"get": {
            **open_op, "tags": ["operations"], "operationId": "metrics",
            "summary": "Prometheus metrics (open unless AFMTS_METRICS_REQUIRE_KEY: then an admin key)",
            "responses": {
                "200": {"description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "401": error_response(401), "403": error_response(403),
            },
        }},
    }


# Query parameters' bounds as the views check them (registry/api/pagination.py).
QUERY_BOUNDS = {"page": {"minimum": 1}, "pageSize": {"minimum": 1, "maximum": 500},
                "limit": {"minimum": 1, "maximum": 1000}}
# Bodies that need one of two fields: what a JSON schema can say of the views' own checks.
ONE_OF_FIELDS = {
    ("/api/aliases", "post"): ("models", "policy"),
    ("/api/tasks/route", "post"): ("input", "description"),
}


def _tighten(path: str, method: str, op: dict[str, Any]) -> None:
    """The request as the view validates it: JSON bodies only (the API parses nothing else), query
    bounds, and the either-or fields."""
    body = op.get("requestBody")
    if body:
        content = body.get("content", {})
        body["content"] = {"application/json": content.get("application/json") or next(iter(content.values()))}
        fields = ONE_OF_FIELDS.get((path, method))
        schema = body["content"]["application/json"].get("schema")
        if fields or (schema or {}).get("required") or "$ref" in (schema or {}) and method == "post":
            body["required"] = True  # the view refuses an empty body
        if fields and schema:
            body["content"]["application/json"]["schema"] = {
                "allOf": [schema], "anyOf": [{"required": [name]} for name in fields]}
    for param in op.get("parameters", []):
        if param.get("in") == "query" and param["name"] in QUERY_BOUNDS:
            param["schema"] = {**param["schema"], **QUERY_BOUNDS[param["name"]]}


def preprocess(endpoints: list[tuple]) -> list[tuple]:
    """Drop the slashless alias of /api/providers/ (one path, one operation id)."""
    return [e for e in endpoints if e[0] != "/api/providers"]


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Every REST operation answers errors in the envelope: 400, 401, 403, 404 and 429 always;
    409 and 413 where a body is sent. Then the gateway, /health and /metrics."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(COMPONENTS)
    for path, item in result.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            codes = [400, 401, 403, 404, 429]
            if "requestBody" in op or method in ("post", "put", "patch"):
                codes += [409, 413]
            if path == "/api/tasks/route":
                codes += [503]
            for code in codes:
                op["responses"][str(code)] = error_response(code)
            _tighten(path, method, op)
    result["paths"].update(static_paths())
    return result


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "registry.auth.ApiKeyAuthentication"
    name = ["ApiKeyBearer", "ApiKeyHeader"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
            {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        ]


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "registry.auth.StaffSessionAuthentication"
    name = "StaffSession"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid",
                "description": "a staff user's admin session (admin scope; writes need the CSRF token)"}


class JwtScheme(OpenApiAuthenticationExtension):
    target_class = "registry.auth.JwtAuthentication"
    name = "JwtBearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "Authorization: Bearer <access token> of a Django user (optional)"}
