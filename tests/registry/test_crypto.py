"""Provider secrets at rest: Fernet ciphertext in the database, never in a response, event or log
line; FERNET_KEYS rotates (newest first encrypts, every key decrypts)."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.db import connection
from django.test import override_settings

from afmts.logging import RedactSecrets, redact
from registry import crypto
from registry.models import Provider

SECRET = "sk-proj-AbCdEf0123456789SecretValue"


@pytest.fixture
def fresh_fernet():
    """crypto caches its MultiFernet; a test that changes FERNET_KEYS must drop it before and after."""
    crypto._fernet.cache_clear()
    yield
    crypto._fernet.cache_clear()


def raw_key_column(slug: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted FROM registry_provider WHERE slug = %s", [slug])
        return cursor.fetchone()[0]


def register(admin_api, **extra):
    payload = {
        "name": "gpt-4o-mini", "type": "llm", "provider": "openai", "endpoint": "https://api.openai.com/v1",
        "apiKey": SECRET, "description": "seed payload", "capabilities": ["text-generation"],
    } | extra
    return admin_api.post("/api/models/register", payload, format="json")


# ------------------------------------------------------------------ at rest and in responses


def test_registering_with_an_api_key_stores_only_ciphertext(admin_api):
    assert register(admin_api).status_code == 201
    stored = raw_key_column("openai")
    assert stored
    assert SECRET not in stored
    assert crypto.decrypt(stored) == SECRET
    assert Provider.objects.get(slug="openai").api_key == SECRET


def test_the_secret_never_appears_in_api_responses(admin_api, user_api):
    response = register(admin_api)
    assert response.status_code == 201
    model_id = response.json()["id"]
    stored = raw_key_column("openai")
    bodies = {
        "register": response.content,
        "detail": user_api.get(f"/api/models/{model_id}").content,
        "communication": user_api.get(f"/api/models/{model_id}/communication").content,
        "list": user_api.get("/api/models").content,
        "find": user_api.post("/api/models/find", {"capability": "text-generation"}, format="json").content,
        "events": admin_api.get("/api/events").content,
    }
    assert json.loads(bodies["events"])["count"] >= 2  # provider_registered and model_registered
    for name, body in bodies.items():
        text = body.decode()
        assert SECRET not in text, name
        assert stored not in text, name
        assert "apiKey" not in text, name


def test_a_key_given_again_on_registration_replaces_the_stored_one(admin_api):
    assert register(admin_api).status_code == 201
    first = raw_key_column("openai")
    assert register(admin_api, name="gpt-4.1", apiKey="sk-proj-RotatedKey987654321").status_code == 201
    second = raw_key_column("openai")
    assert second != first
    assert "sk-proj-RotatedKey987654321" not in second
    assert Provider.objects.get(slug="openai").api_key == "sk-proj-RotatedKey987654321"


def test_ciphertext_differs_each_time_the_same_key_is_encrypted(fresh_fernet):
    assert crypto.encrypt(SECRET) != crypto.encrypt(SECRET)


# ------------------------------------------------------------------ rotation


def test_an_old_ciphertext_still_decrypts_after_rotation(make_provider, fresh_fernet):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FERNET_KEYS=[old]):
        crypto._fernet.cache_clear()
        provider = make_provider("openai", api_key=SECRET)
    stored = raw_key_column("openai")

    with override_settings(FERNET_KEYS=[new, old]):
        crypto._fernet.cache_clear()
        provider = Provider.objects.get(pk=provider.pk)
        assert provider.api_key == SECRET
        # New writes use the newest key: they no longer decrypt with the old one alone.
        provider.api_key = SECRET
        provider.save()
        rewritten = raw_key_column("openai")
    assert rewritten != stored
    assert Fernet(new.encode()).decrypt(rewritten.encode()).decode() == SECRET
    with pytest.raises(InvalidToken):
        Fernet(old.encode()).decrypt(rewritten.encode())


def test_a_ciphertext_of_a_dropped_key_does_not_decrypt(make_provider, fresh_fernet):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FERNET_KEYS=[old]):
        crypto._fernet.cache_clear()
        provider = make_provider("openai", api_key=SECRET)
    with override_settings(FERNET_KEYS=[new]):
        crypto._fernet.cache_clear()
        with pytest.raises(InvalidToken):
            Provider.objects.get(pk=provider.pk).api_key  # noqa: B018


def test_mask_shows_too_little_to_use():
    masked = crypto.mask(SECRET)
    assert masked.startswith("sk-") and masked.endswith("ue")
    assert len(masked) < 8
    assert crypto.mask("short") == "…"
    assert crypto.mask("") == ""


# ------------------------------------------------------------------ never logged


@pytest.mark.parametrize("secret, kept", [
    ("sk-proj-AbCdEf0123456789SecretValue", ""),
    ("sk-ant-api03-AbCdEf0123456789", ""),
    ("afmts_Zae3yCV7Qh2AlAW3ikKMyr2E5CK373ww", ""),
    ("gsk_AbCdEf0123456789xyz", ""),
    ("hf_AbCdEf0123456789xyz", ""),
    ("AIzaSyAbCdEf0123456789_abcdefghij", ""),
    ("Bearer abcdefgh.ijklmnop-qrst", "Bearer "),
    ("bearer abcdefgh.ijklmnop-qrst", "bearer "),
])
def test_redact_masks_credentials(secret, kept):
    token = secret.split(" ", 1)[-1]
    line = redact(f"calling upstream with {secret} now")
    assert token not in line
    assert line == f"calling upstream with {kept}*** now"


def test_redact_leaves_ordinary_text_alone():
    text = "model openai/gpt-4o-mini answered in 120 ms (task-42, sk- prefix unknown)"
    assert redact(text) == text


def record(msg: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("afmts.test", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_filter_masks_secrets_in_the_message_and_its_arguments():
    rec = record("auth %s failed for %s", "Bearer afmts_Zae3yCV7Qh2AlAW3ikKMyr2E5", SECRET)
    assert RedactSecrets().filter(rec) is True
    message = rec.getMessage()
    assert "afmts_Zae3yCV7Qh2AlAW3ikKMyr2E5" not in message
    assert SECRET not in message
    assert message == "auth Bearer *** failed for ***"


def test_filter_masks_secrets_in_a_logged_exception():
    try:
        raise RuntimeError(f"upstream said 401 for https://x.test/v1?key=AIzaSyAbCdEf0123456789_abcdefghij {SECRET}")
    except RuntimeError:
        import sys

        rec = record("call failed", exc_info=sys.exc_info())
    RedactSecrets().filter(rec)
    text = logging.Formatter("%(message)s").format(rec)
    assert "RuntimeError" in text
    assert SECRET not in text
    assert "AIzaSyAbCdEf0123456789_abcdefghij" not in text


def test_the_console_handler_redacts(capsys):
    from django.conf import settings

    assert "secrets" in settings.LOGGING["handlers"]["console"]["filters"]
    handler = logging.StreamHandler()
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("afmts.test.redaction")
    logger.addHandler(handler)
    try:
        logger.warning("provider key is %s", SECRET)
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "provider key is ***" in err
    assert SECRET not in err


def test_registering_a_provider_logs_no_secret(admin_api, caplog):
    with caplog.at_level(logging.DEBUG):
        assert register(admin_api).status_code == 201
    assert SECRET not in caplog.text
