"""The one redactor: everything stored, published or logged passes through `redact`.

It masks two things:
- the secrets this process knows: every provider key it decrypted or encrypted (`remember`, called
  by registry.crypto), whatever their shape — a provider's own key quoted back by its upstream;
- anything shaped like a credential: `Bearer …`, `sk-…`/`sk-ant-…`, `key-…`, `gsk_…`, `hf_…`,
  `xai-…`, `AIza…`, our own `afmts_…` keys, and `api_key=`/`key=`/`token=`/`Authorization:` values.

`sanitize` is `redact` plus whitespace folding and a length cap: the form in which upstream text
(untrusted, DESIGN.md) may be kept or shown. `RedactSecrets` is the logging filter installed on
every handler (settings.LOGGING, Celery's loggers in afmts.celery).
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
# Shorter strings are not remembered: masking "abc" everywhere would shred ordinary text.
MIN_SECRET = 8
MAX_KNOWN = 10_000

_TOKEN = r"[A-Za-z0-9._~+/=\-]{8,}"
PATTERNS = (
    rf"((?:bearer|(?-i:Basic))\s+){_TOKEN}",
    rf"((?:authorization|x-api-key|x-goog-api-key|api[ _-]?key(?:\s+provided)?|access[_-]?token|client[_-]?secret)"
    rf"[\"']?\s*[:=]\s*[\"']?){_TOKEN}",
    rf"([?&;](?:key|token|auth)=){_TOKEN}",
    # Key prefixes are matched case-sensitively: `AFMTS_SOME_SETTING` is a setting's name, not a key.
    r"()\b(?-i:sk-|key-|xai-|gsk_|hf_)[A-Za-z0-9_\-]{8,}",
    r"()\b(?-i:afmts_)[A-Za-z0-9]{8,}",
    r"()\b(?-i:AIza)[0-9A-Za-z_\-]{20,}",
    # A password in a URL (redis://:pw@host, postgres://user:pw@host), as connection errors quote it.
    r"(\b[a-z][a-z0-9+.\-]*://[^\s:/@]*:)[^\s@/]+(?=@)",
)
SECRET_RE = re.compile("|".join(f"(?:{p})" for p in PATTERNS), re.IGNORECASE)
# Literals every pattern needs (lower case). Text with none of them skips the regex: most text
# (a discovery cycle's model descriptions) has none, and the regex costs ~0.1 µs per character.
TRIGGERS = ("bearer", "basic", "authorization", "api_key", "api-key", "apikey", "api key", "access_token",
            "access-token", "accesstoken", "client_secret", "client-secret", "clientsecret", "key=", "token=",
            "auth=", "sk-", "key-", "xai-", "gsk_", "hf_", "afmts_", "aiza")
# Each trigger contains one of these: text with none of them (most text) is cleared in 13 scans
# instead of 23 — a discovery cycle's events are megabytes.
ANCHORS = ("bearer", "basic", "auth", "key", "access", "client", "token=", "sk-", "xai-", "gsk_", "hf_", "afmts_",
           "aiza")
# What the URL-password pattern needs; a plain URL ("endpoint": "https://…", in every model event)
# is no reason to run the whole regex.
URL_PASSWORD_HINT = re.compile(r"://[^\s:/@]*:[^\s@/]+@")

_known: frozenset[str] = frozenset()
_known_re: re.Pattern[str] | None = None
_lock = threading.Lock()


def remember(secret: str | None) -> None:
    """Add a secret (a provider key just decrypted or set) to those every `redact` masks."""
    global _known, _known_re
    if not secret or len(secret) < MIN_SECRET or secret in _known:
        return
    with _lock:
        known = set(_known) if len(_known) < MAX_KNOWN else set()
        known.add(secret)
        # Longest first, so a key that contains another is masked whole.
        _known_re = re.compile("|".join(re.escape(s) for s in sorted(known, key=len, reverse=True)))
        _known = frozenset(known)


def _mask(match: re.Match[str]) -> str:
    return next((g for g in match.groups() if g is not None), "") + MASK


def redact(text: str, *extra: str | None) -> str:
    """`text` without the known secrets, `extra` secrets (e.g. the adapter's own key) and anything
    shaped like a credential."""
    if not text:
        return text
    for secret in extra:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    known, pattern = _known, _known_re
    if pattern is not None and any(s in text for s in known):
        text = pattern.sub(MASK, text)
    low = text.lower()
    triggered = any(a in low for a in ANCHORS) and any(t in low for t in TRIGGERS)
    if not triggered and ("://" not in text or not URL_PASSWORD_HINT.search(text)):
        return text
    return SECRET_RE.sub(_mask, text)


def sanitize(text: object, limit: int = 300, *extra: str | None) -> str:
    """Untrusted text made fit to keep or show: redacted, whitespace folded, cut to `limit`."""
    folded = " ".join(redact(str(text or ""), *extra).split())
    return folded if len(folded) <= limit else folded[: limit - 1] + "…"


def redact_data(data: object) -> object:
    """A JSON-like structure with every string redacted (new containers only where needed)."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {k: redact_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(v) for v in data]
    return data


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string: let the handler report it
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        # A traceback is formatted after filters run, and an upstream error often quotes the URL or
        # header it was sent: format it now so that its text is masked too.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(handlers: list[logging.Handler]) -> None:
    """Put the filter on these handlers (once each): for loggers configured outside LOGGING."""
    for handler in handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
