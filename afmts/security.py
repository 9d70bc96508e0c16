"""Small security glue: the admin-login lockout answer (django-axes), the one-line log of a
disallowed Host, and the private data folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: 429 with Retry-After (the cool-off), in the JSON error envelope, with no
    CORS header of its own (axes would send `Access-Control-Allow-Origin: *` to XHR callers)."""
    from django.conf import settings

    from afmts.errors import error_response

    cool_off = settings.AXES_COOLOFF_TIME
    seconds = int(cool_off.total_seconds()) if cool_off else 3600
    return error_response(
        429, "Too many failed logins for this account from this address; try again later.",
        type="rate_limit_error", code="account_locked", headers={"Retry-After": str(max(1, seconds))},
    )


class OneLine(logging.Filter):
    """Drops the traceback of a record: a disallowed Host header is an everyday probe, worth one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def private_data_dir(path: Path, umask: int) -> None:
    """Files this process creates get `umask` (077: 0600 files, 0700 folders: the SQLite database and
    its WAL/SHM, generated secrets, broker folders, usage spill files); the data folder is made 0700
    and what is already at its top level 0600 (files) / 0700 (folders), for installs made before.
    Deeper entries are out of reach once their parent folders are 0700."""
    os.umask(umask)
    path.mkdir(parents=True, exist_ok=True)
    try:
        _chmod(path, 0o700)
        for entry in path.iterdir():
            if entry.is_symlink():
                continue
            _chmod(entry, 0o700 if entry.is_dir() else 0o600)
    except OSError:  # a folder owned by someone else (a mounted volume): leave it as the operator set it
        pass


def _chmod(path: Path, mode: int) -> None:
    if path.stat().st_mode & 0o777 != mode:
        path.chmod(mode)
