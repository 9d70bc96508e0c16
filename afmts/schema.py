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

# ------------------------------------------------------------------ gateway request bodies
# What routing/gateway/validate.py checks, stated as a schema (keep the two in step): a required field
# is present and not null, an optional one is null (the default) or of its type, a tagged object's tag
# is one of the kinds it lists, and unknown fields pass (providers add their own).

STR: dict[str, Any] = {"type": "string"}
BOOL: dict[str, Any] = {"type": "boolean"}
OBJ: dict[str, Any] = {"type": "object"}
# orjson reads an integer past 64 bits as a float, which is then not an integer.
INT64 = {"minimum": -(2**63), "maximum": 2**64 - 1}


def _int(low: int | None = None, high: int | None = None) -> dict[str, Any]:
    return {"type": "integer", "minimum": INT64["minimum"] if low is None else low,
            "maximum": INT64["maximum"] if high is None else high}


def _num(low: float, high: float) -> dict[str, Any]:
    return {"type": "number", "minimum": low, "maximum": high}


def _array(items: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **kw}


def _fields(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """validate.fields: `required` present and not null, the others null or of their type."""
    out: dict[str, Any] = {"type": "object", "properties": {
        name: rule if name in required else {**rule, "nullable": True} for name, rule in props.items()}}
    if required:
        out["required"] = list(required)
    return out


def _tagged(kinds: dict[str, dict[str, Any]], tag: str = "type") -> dict[str, Any]:
    """validate.tagged: an object whose `tag` names one of `kinds`, each with its own fields."""
    return {"oneOf": [
        {**body, "required": [tag, *body.get("required", [])],
         "properties": {tag: {"type": "string", "enum": [kind]}, **body["properties"]}}
        for kind, body in kinds.items()]}


def _either(*schemas: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": list(schemas)}


_FUNCTION_CALL = _fields({"name": STR, "arguments": {"type": "string", "format": "json",
                                                    "description": "a JSON text (the call's arguments)"}}, ("name",))
_PARTS = _tagged({
    "text": _fields({"text": STR}, ("text",)),
    "image_url": _fields({"image_url": _fields({"url": STR, "detail": STR}, ("url",))}, ("image_url",)),
    "input_audio": _fields({"input_audio": _fields({"data": STR, "format": STR}, ("data",))}, ("input_audio",)),
    "file": _fields({"file": _fields({"file_data": STR, "file_id": STR, "filename": STR})}, ("file",)),
    "refusal": _fields({"refusal": STR}, ("refusal",)),
})
_TOOL_CALL = _fields({"id": STR, "type": {"type": "string", "enum": ["function"]}, "function": _FUNCTION_CALL},
                     ("function",))
_COMMON = {"content": _either(STR, _array(_PARTS)), "name": STR, "tool_calls": _array(_TOOL_CALL)}
_FUNCTION = _fields({"name": STR, "description": STR, "parameters": OBJ, "strict": BOOL}, ("name",))
_SAMPLING = {
    "model": {"type": "string", "minLength": 1, "description": "a public id (`provider/model`), an alias or a "
                                                              "policy (auto, free, cheap, fast)"},
    "stream": BOOL, "stream_options": _fields({"include_usage": BOOL, "include_obfuscation": BOOL}),
    "max_tokens": _int(1), "temperature": _num(0, 2), "top_p": _num(0, 1), "n": _int(1, 128),
    "stop": _either(STR, _array(STR)), "presence_penalty": _num(-2, 2), "frequency_penalty": _num(-2, 2),
    "seed": _int(), "logit_bias": {"type": "object", "additionalProperties": _num(-100, 100)}, "user": STR,
    # AFMTS' own (routing/gateway/requests.py), never sent upstream; a list of strings may be "a,b".
    "afmts": _fields({"capabilities": _either(STR, _array(STR)), "min_context": _int(0), "max_price": _num(0, 1e15),
                      "fallbacks": _either(STR, _array(STR)),
                      "providers": _fields({"prefer": _either(STR, _array(STR)), "exclude": _either(STR, _array(STR))})}),
    "models": _either(STR, _array(STR)), "fallbacks": _either(STR, _array(STR)),
}
_BLOCK_TEXT = _fields({"cache_control": OBJ, "text": STR}, ("text",))
_BLOCK_IMAGE = _fields({"cache_control": OBJ, "source": _tagged({
    "base64": _fields({"media_type": STR, "data": STR}, ("data",)), "url": _fields({"url": STR}, ("url",))})},
    ("source",))
_BLOCKS = _tagged({
    "text": _BLOCK_TEXT, "image": _BLOCK_IMAGE,
    "tool_use": _fields({"cache_control": OBJ, "id": STR, "name": STR, "input": OBJ}, ("id", "name", "input")),
    "tool_result": _fields({"cache_control": OBJ, "tool_use_id": STR, "is_error": BOOL,
                            "content": _either(STR, _array(_tagged({"text": _BLOCK_TEXT, "image": _BLOCK_IMAGE})))},
                           ("tool_use_id",)),
    "thinking": _fields({"thinking": STR, "signature": STR}),
    "redacted_thinking": _fields({"data": STR}),
})
_A_CHOICE = _fields({"disable_parallel_tool_use": BOOL})

GATEWAY_REQUESTS: dict[str, Any] = {
    "ChatCompletionRequest": {
        **_fields({
            **_SAMPLING,
            "messages": _array({"$ref": "#/components/schemas/ChatMessage"}, minItems=1),
            "max_completion_tokens": _int(1),
            "tools": _array(_tagged({"function": _fields({"function": _FUNCTION}, ("function",)), "custom": _fields(
                {"custom": _fields({"name": STR, "description": STR}, ("name",))}, ("custom",))})),
            "tool_choice": _either({"type": "string", "enum": ["none", "auto", "required"]}, _tagged({
                "function": _fields({"function": _fields({"name": STR}, ("name",))}, ("function",)),
                "allowed_tools": _fields({"allowed_tools": OBJ}, ("allowed_tools",)),
                "custom": _fields({"custom": _fields({"name": STR}, ("name",))}, ("custom",))})),
            "parallel_tool_calls": BOOL, "functions": _array(_FUNCTION),
            "function_call": _either({"type": "string", "enum": ["none", "auto"]}, _fields({"name": STR}, ("name",))),
            "response_format": _tagged({"text": _fields({}), "json_object": _fields({}), "json_schema": _fields(
                {"json_schema": _fields({"name": STR, "description": STR, "schema": OBJ, "strict": BOOL}, ("name",))},
                ("json_schema",))}),
            "logprobs": BOOL, "top_logprobs": _int(0, 20), "metadata": {"type": "object", "additionalProperties": STR},
            "store": BOOL, "modalities": _array(STR), "reasoning_effort": STR, "service_tier": STR, "verbosity": STR,
            "audio": OBJ, "prediction": OBJ, "web_search_options": OBJ, "prompt_cache_key": STR, "safety_identifier": STR,
        }, ("model", "messages")),
        "description": "OpenAI's chat request; AFMTS also reads `x-afmts-*` headers for requirements.",
    },
    "ChatMessage": _tagged({
        "system": _fields(_COMMON, ("content",)), "developer": _fields(_COMMON, ("content",)),
        "user": _fields(_COMMON, ("content",)),
        "assistant": _fields({**_COMMON, "refusal": STR, "function_call": _FUNCTION_CALL, "audio": OBJ}),
        "tool": _fields({**_COMMON, "tool_call_id": STR}, ("content",)),
        "function": _fields(_COMMON),
    }, tag="role"),
    "CompletionRequest": _fields({**_SAMPLING, "prompt": _either(STR, _array(STR)), "echo": BOOL,
                                  "best_of": _int(0, 20), "suffix": STR, "logprobs": _int(0, 5)}, ("model", "prompt")),
    "EmbeddingRequest": _fields({
        "model": _SAMPLING["model"],
        # One kind throughout: strings, token ids, or arrays of token ids.
        "input": _either({"type": "string", "minLength": 1}, _array(STR, minItems=1), _array(_int(0), minItems=1),
                         _array(_array(_int(0)), minItems=1)),
        "encoding_format": {"type": "string", "enum": ["float", "base64"]}, "dimensions": _int(1), "user": STR,
        "afmts": _SAMPLING["afmts"], "models": _SAMPLING["models"], "fallbacks": _SAMPLING["fallbacks"],
    }, ("model", "input")),
    "MessagesRequest": {
        **_fields({
            "model": _SAMPLING["model"], "max_tokens": _int(1),
            "messages": _array(_tagged({role: _fields({"content": _either(STR, _array(_BLOCKS))}, ("content",))
                                        for role in ("user", "assistant")}, tag="role"), minItems=1),
            "system": _either(STR, _array(_tagged({"text": _BLOCK_TEXT}))),
            "metadata": _fields({"user_id": STR}), "stop_sequences": _array(STR), "stream": BOOL,
            "temperature": _num(0, 1), "top_p": _num(0, 1), "top_k": _int(0),
            "tools": _array(_fields({"name": STR, "description": STR, "input_schema": OBJ, "type": STR,
                                     "cache_control": OBJ}, ("name",))),
            "tool_choice": _tagged({"auto": _A_CHOICE, "any": _A_CHOICE, "none": _fields({}),
                                    "tool": _fields({"name": STR, "disable_parallel_tool_use": BOOL}, ("name",))}),
            "thinking": OBJ, "service_tier": STR,
            "afmts": _SAMPLING["afmts"], "models": _SAMPLING["models"], "fallbacks": _SAMPLING["fallbacks"],
        }, ("model", "max_tokens", "messages")),
        "description": "Anthropic's Messages request.",
    },
}
COMPONENTS.update(GATEWAY_REQUESTS)
COMPONENTS["Message"] = {
    "type": "object", "description": "the reply's message",
    "properties": {"role": STR, "content": {"type": "string", "nullable": True},
                   "tool_calls": _array(OBJ), "refusal": {"type": "string", "nullable": True}},
}

DESCRIPTIONS = {
    400: "Malformed or invalid input; `param` names the field.",
    401: "No API key, or an unknown or revoked one.",
    403: "The key's scope does not allow this (writes need an admin key).",
    404: "No such object (in the path, or a provider named in the body), or a page past the last.",
    409: "Already exists (a duplicate name, slug or model id), or at odds with the stored object "
         "(a provider's kind, slug or endpoint).",
    413: "The body is over AFMTS_MAX_BODY_BYTES (AFMTS_GATEWAY_MAX_BODY_BYTES on /v1/*).",
    429: "The key's rate limit; wait Retry-After seconds.",
    500: "An internal error.",
    502: "The upstream provider failed.",
    503: "Nothing could serve the request now.",
    504: "The upstream provider timed out.",
}
# With 'stream': true, each server-sent event (OpenAPI 3.0: the schema of a text/event-stream is one event's).
SSE_EVENT = {
    "type": "object", "required": ["data"], "description": "one server-sent event ('stream': true)",
    "properties": {"event": STR, "id": STR, "retry": {"type": "integer"},
                   "data": {"type": "string", "description": "a JSON chunk in the API's streaming shape "
                                                             "(OpenAI's end with `[DONE]`)"}},
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
        content["text/event-stream"] = {"schema": SSE_EVENT}
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
# Bodies that need one of two fields, and need it not empty: what a JSON schema can say of the
# views' own checks (routing/api.py: AliasSerializer and TaskSerializer.validate).
ONE_OF_FIELDS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("/api/aliases", "post"): {"models": {"type": "array", "minItems": 1}, "policy": {"type": "string", "minLength": 1}},
    ("/api/tasks/route", "post"): {"input": {"type": "string", "minLength": 1},
                                   "description": {"type": "string", "minLength": 1}},
}
# The REST API refuses NUL in any string (afmts/parsers.py, registry/api/views.py: PostgreSQL cannot
# store it); strings the serializers leave unconstrained say so with this pattern. (Lone surrogates
# are refused too; a JSON schema pattern cannot name them portably, and they are not Unicode text.)
NO_NUL = "^[^\\u0000]*$"


# OpenAPI links from what a POST creates to what reads, changes or removes it (the id in its body):
# a client (and schemathesis' stateful run) can follow them.
LINKS = {
    ("/api/providers/", "post"): ("providers_retrieve", "providers_partial_update", "providers_destroy"),
    ("/api/models/register", "post"): ("models_retrieve", "models_update", "models_partial_update",
                                       "models_communication_retrieve", "models_destroy"),
    ("/api/agents/register", "post"): ("agents_retrieve", "agents_update", "agents_partial_update",
                                       "agents_heartbeat_create", "agents_models_retrieve"),
    ("/api/aliases", "post"): ("aliases_partial_update", "aliases_destroy"),
}


def _links(path: str, method: str, op: dict[str, Any], ids: set[str]) -> None:
    targets = [t for t in LINKS.get((path, method), ()) if t in ids]
    for code in ("200", "201"):
        if code in op["responses"] and targets:
            op["responses"][code]["links"] = {
                target: {"operationId": target, "parameters": {"id": "$response.body#/id"}} for target in targets}


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
        if schema and "$ref" not in schema:
            _no_nul(schema)
        if fields and schema:
            body["content"]["application/json"]["schema"] = {
                "allOf": [schema],
                "anyOf": [{"required": [name], "properties": {name: rule}} for name, rule in fields.items()]}
    for param in op.get("parameters", []):
        if param.get("in") == "query" and param["name"] in QUERY_BOUNDS:
            param["schema"] = {**param["schema"], **QUERY_BOUNDS[param["name"]]}
        if param.get("in") in ("query", "path"):
            _no_nul(param["schema"])


def _no_nul(schema: dict[str, Any]) -> None:
    """Add NO_NUL to every free string of `schema` (no pattern, format or enum of its own)."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if node.get("type") == "string" and not {"pattern", "format", "enum"} & node.keys():
            node["pattern"] = NO_NUL
        for key in ("properties", "additionalProperties", "items", "oneOf", "anyOf", "allOf"):
            value = node.get(key)
            if isinstance(value, dict):
                stack.extend(value.values() if key == "properties" else [value])
            elif isinstance(value, list):
                stack.extend(value)


def preprocess(endpoints: list[tuple]) -> list[tuple]:
    """Drop the slashless alias of /api/providers/ (one path, one operation id)."""
    return [e for e in endpoints if e[0] != "/api/providers"]


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Every REST operation answers errors in the envelope: 400, 401, 403, 404 and 429 always;
    409 and 413 where a body is sent. Then the gateway, /health and /metrics."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in schemas.items():
        if name.endswith("Request"):  # COMPONENT_SPLIT_REQUEST: what REST bodies are made of
            _no_nul(schema)
    schemas.update(COMPONENTS)
    ids = {op.get("operationId") for item in result.get("paths", {}).values() for op in item.values()
           if isinstance(op, dict)}
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
            _links(path, method, op, ids)
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
