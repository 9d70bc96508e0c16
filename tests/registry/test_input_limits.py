"""Input limits on the REST API: body size (chunked too), JSON depth and string length, integers that
fit their column, and the 500s schemathesis found (slug spellings, alias and agent renames, null
isFree) answered as 400 or 409 naming the problem."""

from __future__ import annotations

import json
import socket

import pytest

from registry.models import AIModel, Provider

BIG = 2**63


def deep(levels: int) -> str:
    return '{"metadata": ' + '{"a": ' * levels + "1" + "}" * levels + "}"


@pytest.mark.parametrize("path", ["/api/models/register", "/api/models/find"])
def test_json_nested_ten_thousand_deep_is_a_400_naming_the_depth(admin_api, path):
    response = admin_api.post(path, deep(10_000), content_type="application/json")

    assert response.status_code == 400
    assert "nested deeper than 32" in response.json()["error"]["message"]


def test_json_nested_past_the_cap_is_refused_below_the_recursion_limit(admin_api):
    response = admin_api.post("/api/models/find", deep(40), content_type="application/json")

    assert response.status_code == 400 and response.json()["error"]["code"] == "json_too_deep"


def test_a_string_past_the_cap_is_refused_with_its_length(admin_api, settings):
    settings.AFMTS_MAX_BODY_BYTES = 3_000_000
    body = json.dumps({"capability": "x" * 1_000_001})

    response = admin_api.post("/api/models/find", body, content_type="application/json")

    assert response.status_code == 400 and "1000001 characters" in response.json()["error"]["message"]
    assert response.json()["error"]["code"] == "string_too_long"


@pytest.mark.parametrize("field, payload", [
    ("contextWindow", {"contextWindow": BIG}),
    ("maxOutputTokens", {"maxOutputTokens": BIG}),
    ("freeQuota.requestsPerDay", {"freeQuota": {"requestsPerDay": BIG}}),
    ("freeQuota.tokensPerMinute", {"freeQuota": {"tokensPerMinute": 2_147_483_648}}),
    ("inputPrice", {"inputPrice": 10**20}),
])
def test_an_integer_too_big_for_its_column_is_a_400_naming_the_field(admin_api, field, payload):
    response = admin_api.post("/api/models/register", {"name": "m", "provider": "openai", **payload}, format="json")

    assert response.status_code == 400 and response.json()["error"]["param"] == field
    assert not AIModel.objects.exists()


def test_the_largest_value_a_column_holds_is_accepted(admin_api):
    response = admin_api.post("/api/models/register", {"name": "m", "provider": "openai", "contextWindow": 2_147_483_647,
                                                       "inputPrice": 99_999_999}, format="json")

    assert response.status_code == 201 and response.json()["contextWindow"] == 2_147_483_647


def test_a_key_rate_limit_too_big_for_its_column_is_a_400(admin_api):
    response = admin_api.post("/api/keys", {"name": "k", "rateLimitPerMinute": BIG}, format="json")

    assert response.status_code == 400 and response.json()["error"]["param"] == "rateLimitPerMinute"


def test_a_provider_slug_spelled_differently_is_the_same_provider_409(admin_api, make_provider):
    make_provider("demo-groq", kind="groq")

    for slug in ("Demo-Groq", "_demo-groq_", "DEMO-GROQ"):
        response = admin_api.post("/api/providers/", {"slug": slug, "kind": "groq"}, format="json")
        assert response.status_code == 409, slug
        assert response.json()["error"]["type"] == "conflict_error"
    assert Provider.objects.count() == 1


def test_a_model_registered_under_a_differently_spelled_provider_slug_joins_that_provider(admin_api, make_provider):
    make_provider("demo-groq", kind="groq")

    response = admin_api.post("/api/models/register", {"name": "m", "provider": "Demo-Groq"}, format="json")

    assert response.status_code == 201 and response.json()["provider"] == "demo-groq"
    assert Provider.objects.count() == 1


def test_a_slug_with_no_letter_or_digit_is_a_400(admin_api):
    response = admin_api.post("/api/providers/", {"slug": "__", "kind": "groq"}, format="json")

    assert response.status_code == 400 and response.json()["error"]["param"] == "slug"


def test_renaming_an_alias_onto_another_is_a_409(admin_api):
    admin_api.post("/api/aliases", {"name": "a", "policy": "free"}, format="json")
    b = admin_api.post("/api/aliases", {"name": "b", "policy": "free"}, format="json").json()

    response = admin_api.patch(f"/api/aliases/{b['id']}", {"name": "a"}, format="json")

    assert response.status_code == 409
    assert admin_api.patch(f"/api/aliases/{b['id']}", {"name": "b"}, format="json").status_code == 200


def test_renaming_an_agent_onto_another_is_a_409(admin_api):
    admin_api.post("/api/agents/register", {"name": "a"}, format="json")
    b = admin_api.post("/api/agents/register", {"name": "b"}, format="json").json()

    assert admin_api.patch(f"/api/agents/{b['id']}", {"name": "a"}, format="json").status_code == 409
    assert admin_api.put(f"/api/agents/{b['id']}", {"name": "a"}, format="json").status_code == 409


def test_patching_is_free_to_null_is_a_400(admin_api, make_model):
    model = make_model("m")

    response = admin_api.patch(f"/api/models/{model.id}", {"isFree": None}, format="json")

    assert response.status_code == 400 and response.json()["error"]["param"] == "isFree"


def test_put_replaces_a_model_and_requires_its_display_name(admin_api, make_model):
    model = make_model("m", tags=["prod"], priority=3, description="kept?")

    assert admin_api.put(f"/api/models/{model.id}", {"tags": ["x"]}, format="json").json()["error"]["param"] == "displayName"
    body = admin_api.put(f"/api/models/{model.id}", {"displayName": "M", "contextWindow": 4096}, format="json").json()

    assert body["name"] == "M" and body["contextWindow"] == 4096
    assert body["tags"] == [] and body["priority"] == 0 and body["description"] == ""


def test_put_replaces_an_agent(admin_api):
    agent = admin_api.post("/api/agents/register", {"name": "a", "type": "coder", "capabilities": ["code"]}, format="json").json()

    body = admin_api.put(f"/api/agents/{agent['id']}", {"name": "a2"}, format="json").json()

    assert body["name"] == "a2" and body["capabilities"] == [] and body["type"] == ""


def test_put_is_gone_from_providers_and_aliases_patch_remains(admin_api, make_provider):
    provider = make_provider("groq")
    alias = admin_api.post("/api/aliases", {"name": "a", "policy": "free"}, format="json").json()

    assert admin_api.put(f"/api/providers/{provider.id}", {"enabled": False}, format="json").status_code == 405
    assert admin_api.put(f"/api/aliases/{alias['id']}", {"policy": "fast"}, format="json").status_code == 405


@pytest.mark.parametrize("payload, field", [
    ({"name": 123, "provider": "openai"}, "name"),
    ({"name": "m", "provider": "openai", "contextWindow": "8192"}, "contextWindow"),
    ({"name": "m", "provider": "openai", "isFree": 1}, "isFree"),
    ({"name": "m", "provider": "openai", "contextWindow": True}, "contextWindow"),
    ({"name": "m", "provider": "openai", "inputPrice": "1e5"}, "inputPrice"),
])
def test_a_value_of_the_wrong_json_type_is_not_coerced(admin_api, payload, field):
    response = admin_api.post("/api/models/register", payload, format="json")

    assert response.status_code == 400 and response.json()["error"]["param"] == field


@pytest.mark.parametrize("query, param", [
    ("pageSize=abc", "pageSize"), ("pageSize=0", "pageSize"), ("pageSize=501", "pageSize"), ("page=abc", "page"),
])
def test_bad_paging_parameters_are_a_400_naming_them(user_api, query, param):
    response = user_api.get(f"/api/models?{query}")

    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_an_events_limit_out_of_range_is_a_400(user_api):
    assert user_api.get("/api/events?limit=0").status_code == 400
    assert user_api.get("/api/events?limit=1000").status_code == 200


# ------------------------------------------------------------------ the body cap over real HTTP


def chunked_post(address: tuple[str, int], path: str, chunks, headers: str = "") -> tuple[int, bytes, int]:
    """POST `chunks` with Transfer-Encoding: chunked; (status, body, bytes the server let us send)."""
    sent = 0
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     f"Transfer-Encoding: chunked\r\n{headers}\r\n".encode())
        try:
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: what the cap is for
        reply = b""
        try:
            while b"\r\n\r\n" not in reply or len(reply.partition(b"\r\n\r\n")[2]) < 10:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
        except ConnectionResetError:
            pass
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body, sent


def test_a_chunked_body_over_the_cap_is_a_413_before_it_is_all_read(asgi_address, transactional_db):
    chunk = b" " * 65536
    status, body, sent = chunked_post(asgi_address, "/api/models/register", (chunk for _ in range(800)))  # 50 MB

    assert status == 413
    assert b"request_too_large" in body
    assert sent < 20 * 1024 * 1024


def test_a_chunked_body_under_the_cap_is_read(asgi_address, transactional_db):
    from registry import services

    key = services.apikey_create(name="u", scope="user")[1]
    payload = json.dumps({"capability": "code", "limit": 3}).encode()

    status, body, _ = chunked_post(asgi_address, "/api/models/find", [payload[:10], payload[10:]],
                                   headers=f"Authorization: Bearer {key}\r\n")

    assert status == 200, body


def test_a_content_length_over_the_cap_is_a_413_without_reading(asgi_address, transactional_db):
    with socket.create_connection(asgi_address, timeout=10) as sock:
        sock.sendall(b"POST /api/models/register HTTP/1.1\r\nHost: localhost\r\nContent-Length: 52428800\r\n\r\n")
        reply = sock.recv(65536)

    assert reply.startswith(b"HTTP/1.1 413")


# ------------------------------------------------------------------ what PostgreSQL cannot store or compare


def test_a_nul_character_anywhere_in_a_body_is_a_400(admin_api):
    body = '{"name": "a", "metadata": {"k\\u0000": "v"}}'

    response = admin_api.post("/api/agents/register", body, content_type="application/json")

    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_string"


def test_a_lone_surrogate_in_a_body_is_a_400(admin_api):
    response = admin_api.post("/api/agents/register", '{"name": "\\ud800"}', content_type="application/json")

    assert response.status_code == 400


def test_a_nul_character_in_a_query_parameter_is_a_400_naming_it(user_api):
    response = user_api.get("/api/events?event=a%00b")

    assert response.status_code == 400 and response.json()["error"]["param"] == "event"


@pytest.mark.parametrize("since", ["0744-04-06T04:02:36.3+20:07", "0001-01-01T00:00:00+01:00", str(2**64)])
def test_a_since_far_back_or_with_an_odd_offset_is_answered_not_a_500(user_api, since):
    from urllib.parse import quote

    for path in ("/api/events", "/api/free-models/history"):
        response = user_api.get(f"{path}?since={quote(since)}")
        assert response.status_code in (200, 400), (path, since, response.status_code)
