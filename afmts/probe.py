"""`python -m afmts.probe DATABASE_URL REDIS_URL`: exit 0 when both answer (used by make test)."""

import socket
import sys
from urllib.parse import urlsplit


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    database, redis = sys.argv[1:3]
    sys.exit(0 if reachable(database, 5432) and reachable(redis, 6379) else 1)
