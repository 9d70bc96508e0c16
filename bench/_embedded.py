"""Embedded-mode Django in a temporary data folder of the bench's own, set up before Django reads
its settings (the benches that run the project in-process import this first)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup(prefix: str, *, database_url: str | None = None, redis_url: str | None = None) -> Path:
    """Point the project at a new temporary data folder in embedded mode, set Django up, return the folder.
    Given a database URL and a Redis URL, it runs in server mode on them instead (secrets generated
    in the folder)."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "FERNET_KEYS", "SECRET_KEY"):
        os.environ.pop(name, None)
    if database_url and redis_url:
        os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis_url, AFMTS_ALLOW_GENERATED_SECRETS="1")
    os.environ["AFMTS_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "afmts.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # The fake providers play hosted kinds (groq, openai, ...) on 127.0.0.1: the operator allows that.
    os.environ.setdefault("AFMTS_ALLOW_PRIVATE_UPSTREAMS", "1")
    sys.path.insert(0, str(ROOT))

    import django

    django.setup()
    return data_dir
