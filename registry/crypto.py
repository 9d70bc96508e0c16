"""Provider secrets at rest: Fernet with key rotation (FERNET_KEYS, newest first)."""

from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings

from afmts.logging import remember


@cache
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(k.encode()) for k in settings.FERNET_KEYS])


def encrypt(plain: str) -> str:
    remember(plain)
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    """The plain secret; from now on every redaction in this process masks it (afmts.logging)."""
    plain = _fernet().decrypt(token.encode()).decode() if token else ""
    remember(plain)
    return plain


def mask(secret: str) -> str:
    """What an operator may see of a secret: enough to tell two apart, never enough to use."""
    if not secret:
        return ""
    return f"{secret[:3]}…{secret[-2:]}" if len(secret) > 12 else "…"
