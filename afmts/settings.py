"""AFMTS settings: every knob comes from the environment (django-environ), here and nowhere else.

Two modes (DESIGN.md):
- embedded (no DATABASE_URL, no REDIS_URL): SQLite in WAL mode under AFMTS_DATA_DIR, local-memory
  cache, in-memory channel layer, Celery on kombu's filesystem transport; generated secrets persist
  in the data folder.
- server: REDIS_URL switches cache, channel layer and Celery broker to Redis; DATABASE_URL switches
  to PostgreSQL. Secrets must then come from the environment.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta
from pathlib import Path

import environ
from cryptography.fernet import Fernet

from afmts.security import private_data_dir

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    environ.Env.read_env(str(env_file))

DATA_DIR = Path(env("AFMTS_DATA_DIR", default=str(BASE_DIR / "data")))
# Sessions, keys and usage live here: the folder is 0700 and what this process creates 0600/0700
# (AFMTS_UMASK, octal), set before anything opens a file.
private_data_dir(DATA_DIR, int(env("AFMTS_UMASK", default="077"), 8))

# Prometheus series of every process (web workers, Celery workers) go to files in this folder and
# /metrics sums them (afmts/metrics.py). Set here, before prometheus_client is first imported.
AFMTS_METRICS_DIR = Path(env("AFMTS_METRICS_DIR", default=str(DATA_DIR / "metrics")))
AFMTS_METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(AFMTS_METRICS_DIR)
# A Celery worker in its own container serves its series on this port (0: off; on one machine the
# web processes read the worker's files already).
AFMTS_WORKER_METRICS_PORT = env.int("AFMTS_WORKER_METRICS_PORT", default=0)
AFMTS_WORKER_METRICS_ADDRESS = env("AFMTS_WORKER_METRICS_ADDRESS", default="0.0.0.0")

REDIS_URL = env("REDIS_URL", default="")
SERVER_MODE = bool(env("DATABASE_URL", default="") or REDIS_URL)
MODE = "server" if SERVER_MODE else "embedded"


def _persisted_secret(name: str, make) -> str:
    """Generated once in embedded mode and kept in the data folder (0600) so restarts keep it."""
    path = DATA_DIR / name
    if path.exists():
        return path.read_text().strip()
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def _secret(var: str, filename: str, make) -> str:
    value = env(var, default="")
    if value:
        return value
    if SERVER_MODE and not env.bool("AFMTS_ALLOW_GENERATED_SECRETS", default=False):
        raise environ.ImproperlyConfigured(f"{var} must be set in server mode (DATABASE_URL/REDIS_URL set)")
    return _persisted_secret(filename, make)


# ---------------------------------------------------------------- core
SECRET_KEY = _secret("SECRET_KEY", "secret_key", lambda: secrets.token_urlsafe(50))
# Comma-separated Fernet keys, newest first: the first encrypts, all decrypt (key rotation).
FERNET_KEYS = [
    k.strip()
    for k in _secret("FERNET_KEYS", "fernet_keys", lambda: Fernet.generate_key().decode()).split(",")
    if k.strip()
]
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])


def _own_addresses() -> list[str]:
    """This host's loopback and interface addresses, as Host header values."""
    found = {"127.0.0.1", "[::1]"}
    try:
        for *_, addr in socket.getaddrinfo(socket.gethostname(), None):
            found.add(f"[{addr[0]}]" if ":" in addr[0] else addr[0])
    except OSError:
        pass
    return sorted(found)


# Containers (docker/compose.yml): requests addressed to the container's own IP only come from inside
# its network — Prometheus scrapes each web replica by address, the image's health check calls
# 127.0.0.1 — while public requests come through nginx with the public name.
if env.bool("AFMTS_ALLOW_OWN_ADDRESSES", default=False):
    ALLOWED_HOSTS += [a for a in _own_addresses() if a not in ALLOWED_HOSTS]
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
PORT = env.int("PORT", default=3001)
# ASGI server of `make run` / `make web`: uvicorn (uvloop + httptools), measured fastest here; or daphne.
AFMTS_SERVER = env("AFMTS_SERVER", default="uvicorn")
# Web processes of `manage.py serve` (`make run WORKERS=N`): uvicorn --workers.
AFMTS_WEB_WORKERS = env.int("AFMTS_WEB_WORKERS", default=1)

INSTALLED_APPS = [
    # Daphne's app only makes `runserver` serve ASGI, and it imports Twisted and Autobahn (~220
    # modules, ~9 MB) into every process: the uvicorn web processes and Celery workers go without.
    *(["daphne"] if AFMTS_SERVER == "daphne" else []),
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "corsheaders",
    "axes",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "django_prometheus",
    "registry",
    "routing",
    "analytics",
    "dashboard",
    "audit",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Outermost, so every answer below (413, 429, static files) carries the headers and CORS.
    "django.middleware.security.SecurityMiddleware",
    "afmts.middleware.SecurityHeadersMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "afmts.middleware.BodySizeLimitMiddleware",
    "afmts.middleware.ClientLimitsMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",  # async under ASGI (WhiteNoise is sync-only)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    # Who wrote what through the API and admin, and API key use (audit/): after authentication.
    "audit.middleware.AuditMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "afmts.urls"
WSGI_APPLICATION = "afmts.wsgi.application"
ASGI_APPLICATION = "afmts.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ---------------------------------------------------------------- database
DATABASES = {
    "default": env.db(
        "DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'afmts.sqlite3'}"
    )
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the Celery worker writes; IMMEDIATE transactions take
    # the write lock up front, so concurrent writers wait on busy_timeout instead of failing.
    _db["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    _db["TEST"] = {"NAME": env("AFMTS_TEST_SQLITE", default=str(DATA_DIR / "test.sqlite3"))}
else:
    _db.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    _db.setdefault("CONN_HEALTH_CHECKS", True)
    # A database that does not answer fails a connect in seconds (threads waiting on it hold requests).
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------- cache, channels, celery
if REDIS_URL:
    # Short timeouts: a Redis that is away must cost a request milliseconds, not seconds.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    # A file cache in the data folder: the web process and the worker share it on one machine (the
    # rollup lock, the dashboard's discovery results); nothing on the gateway's request path uses it.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": str(DATA_DIR / "cache")}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=2)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

# ---------------------------------------------------------------- auth, API
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

# ---------------------------------------------------------------- security (README "Security")
# Requests a minute per API key (or JWT user) that sets no limit of its own; a key's own
# rateLimitPerMinute wins, 0 = unlimited. REST and gateway count on one counter (routing.limits).
AFMTS_DEFAULT_KEY_RATE_PER_MINUTE = env.int("AFMTS_DEFAULT_KEY_RATE_PER_MINUTE", default=600)
# Per client address: failed authentications a minute before 429 on every authenticated request and
# login (REST, gateway, admin, token endpoint); requests a minute to anonymous endpoints (/health,
# /metrics, /api/schema/, /api/docs/, the login pages). 0 = no limit.
AFMTS_AUTH_FAILURES_PER_MINUTE = env.int("AFMTS_AUTH_FAILURES_PER_MINUTE", default=20)
AFMTS_ANON_RATE_PER_MINUTE = env.int("AFMTS_ANON_RATE_PER_MINUTE", default=300)
# Proxies (addresses or CIDRs, e.g. nginx) whose X-Forwarded-For names the client; without them the
# connecting address is the client, and X-Forwarded-For is ignored.
AFMTS_TRUSTED_PROXIES = env.list("AFMTS_TRUSTED_PROXIES", default=[])

# Admin login lockout (django-axes): AXES_FAILURE_LIMIT wrong passwords for one username from one
# address lock that pair out for AXES_COOLOFF_MINUTES (429 with Retry-After); a success resets.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "routing.limits.axes_ip"
AXES_LOCKOUT_CALLABLE = "afmts.security.lockout_response"

# CORS: only these origins (comma-separated scheme://host[:port]) may call /api/* and /v1/* from a
# browser; preflights are answered on both (the gateway's in afmts/asgi.py). No cookies cross.
CORS_ALLOWED_ORIGINS = env.list("CORS_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/(api|v1)/.*$"
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "x-api-key", "x-request-id", "x-afmts-policy")
CORS_EXPOSE_HEADERS = ("retry-after", "x-request-id")
CORS_PREFLIGHT_MAX_AGE = 600

# Headers: SecurityMiddleware sends nosniff, Referrer-Policy and Cross-Origin-Opener-Policy,
# XFrameOptionsMiddleware X-Frame-Options; this CSP (afmts.middleware) suits admin and Swagger UI.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
AFMTS_CSP = env("AFMTS_CSP", default=(
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
))
# Behind TLS (AFMTS_HTTPS=1, DEBUG off): HSTS, redirect to https and secure cookies, each overridable.
# Off by default so `make run` on http://127.0.0.1 works. /health and /metrics are never redirected
# (probes inside the network speak plain HTTP).
AFMTS_HTTPS = env.bool("AFMTS_HTTPS", default=False) and not DEBUG
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=AFMTS_HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if AFMTS_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=AFMTS_HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=AFMTS_HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=AFMTS_HTTPS)
# Set when a proxy that terminates TLS sets X-Forwarded-Proto (and strips a client's own).
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Static files are public: collected world-readable whatever AFMTS_UMASK says (another user, such as
# the image's runtime user or nginx, may serve them).
FILE_UPLOAD_PERMISSIONS = 0o644
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o755

# Optional JWT for Django users (POST /api/auth/token/, /api/auth/token/refresh/), beside API keys:
# staff users get admin scope, others user scope. HS256 with SECRET_KEY.
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("AFMTS_JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(hours=env.int("AFMTS_JWT_REFRESH_HOURS", default=24)),
    "ALGORITHM": "HS256",
    "TOKEN_OBTAIN_SERIALIZER": "registry.auth.TokenObtainSerializer",
    "TOKEN_REFRESH_SERIALIZER": "registry.auth.TokenRefreshSerializer",
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "registry.auth.ApiKeyAuthentication",
        "registry.auth.JwtAuthentication",
        "registry.auth.StaffSessionAuthentication",
    ],
    # One per-key counter with the gateway (routing.limits).
    "DEFAULT_THROTTLE_CLASSES": ["routing.limits.KeyRateThrottle"],
    "DEFAULT_PERMISSION_CLASSES": ["registry.auth.AdminWritesKeyReads"],
    "DEFAULT_PARSER_CLASSES": ["afmts.parsers.LimitedJSONParser", "afmts.parsers.AnyAsJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "registry.api.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "afmts.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "AFMTS API",
    "DESCRIPTION": "Automatic Free Model Tracking System: registry, discovery and routing of AI models.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # afmts/schema.py: auth schemes, the error envelope on every operation, /v1/*, /health, /metrics.
    "PREPROCESSING_HOOKS": ["afmts.schema.preprocess"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "afmts.schema.postprocess"],
    "ENUM_NAME_OVERRIDES": {
        "ModelStatusEnum": "registry.models.ModelStatus",
        "AgentStatusEnum": "registry.models.AgentStatus",
        "ProviderKindEnum": "registry.providers.ADAPTERS",
    },
}

# Bodies over this many bytes get 413 (the gateway has its own limit for prompts).
AFMTS_MAX_BODY_BYTES = env.int("AFMTS_MAX_BODY_BYTES", default=1_048_576)
DATA_UPLOAD_MAX_MEMORY_SIZE = AFMTS_MAX_BODY_BYTES
# /metrics is open by default (Prometheus scrapers rarely carry keys); set to require an admin key.
AFMTS_METRICS_REQUIRE_KEY = env.bool("AFMTS_METRICS_REQUIRE_KEY", default=False)
# How often a process re-reads the registry version to notice writes made by other processes.
AFMTS_REGISTRY_POLL_SECONDS = env.float("AFMTS_REGISTRY_POLL_SECONDS", default=1.0)
# last_used of API keys is written in batches at most this often.
AFMTS_KEY_USAGE_FLUSH_SECONDS = env.float("AFMTS_KEY_USAGE_FLUSH_SECONDS", default=30.0)
# Recent-events table keeps at most this many rows.
AFMTS_EVENTS_KEEP = env.int("AFMTS_EVENTS_KEEP", default=10_000)
AFMTS_DEMO = env.bool("AFMTS_DEMO", default=False)
# Port of the fake provider server that plays the demo providers.
AFMTS_DEMO_PORT = env.int("AFMTS_DEMO_PORT", default=8900)
# Demo providers stay the last fallbacks of auto/free even after a real model has answered.
AFMTS_DEMO_KEEP = env.bool("AFMTS_DEMO_KEEP", default=False)
# Embedded mode: how often a web process forwards events written by other processes to its sockets.
AFMTS_EVENT_RELAY_SECONDS = env.float("AFMTS_EVENT_RELAY_SECONDS", default=0.5)

# ---------------------------------------------------------------- tracker
# Period of the beat row that runs a discovery cycle (editable in admin once created).
AFMTS_DISCOVERY_CYCLE_SECONDS = env.int("AFMTS_DISCOVERY_CYCLE_SECONDS", default=30)
AFMTS_DISCOVERY_TIMEOUT_SECONDS = env.float("AFMTS_DISCOVERY_TIMEOUT_SECONDS", default=20.0)
AFMTS_DISCOVERY_MAX_BACKOFF_SECONDS = env.int("AFMTS_DISCOVERY_MAX_BACKOFF_SECONDS", default=300)
# A provider whose models answered (traffic or probe) this recently is not down, whatever its listing says.
AFMTS_PROVIDER_TRAFFIC_SECONDS = env.int("AFMTS_PROVIDER_TRAFFIC_SECONDS", default=300)
# A discovered model missing from its provider's listing this long is retired (kept, with history).
AFMTS_RETIRE_GRACE_SECONDS = env.int("AFMTS_RETIRE_GRACE_SECONDS", default=3600)
# last_seen is refreshed at most this often, so an unchanged discovery cycle writes nothing.
AFMTS_LAST_SEEN_RESOLUTION_SECONDS = env.int("AFMTS_LAST_SEEN_RESOLUTION_SECONDS", default=600)
# An online agent without a heartbeat for this long is marked offline (agent_disconnected).
AFMTS_AGENT_TIMEOUT_SECONDS = env.int("AFMTS_AGENT_TIMEOUT_SECONDS", default=90)
# Health: the rolling window a model's reliability is computed over, and when a model without
# traffic gets an active probe (free models and local servers only; see README "Health").
AFMTS_HEALTH_WINDOW = env.int("AFMTS_HEALTH_WINDOW", default=20)
AFMTS_HEALTH_WINDOW_SECONDS = env.int("AFMTS_HEALTH_WINDOW_SECONDS", default=1800)
AFMTS_HEALTH_EWMA_ALPHA = env.float("AFMTS_HEALTH_EWMA_ALPHA", default=0.3)
AFMTS_HEALTH_KEEP_SECONDS = env.int("AFMTS_HEALTH_KEEP_SECONDS", default=86400)
AFMTS_HEALTH_REFRESH_SECONDS = env.int("AFMTS_HEALTH_REFRESH_SECONDS", default=30)
AFMTS_PROBE_IDLE_SECONDS = env.int("AFMTS_PROBE_IDLE_SECONDS", default=600)
AFMTS_PROBE_MAX_BACKOFF_SECONDS = env.int("AFMTS_PROBE_MAX_BACKOFF_SECONDS", default=3600)
AFMTS_PROBE_TIMEOUT_SECONDS = env.float("AFMTS_PROBE_TIMEOUT_SECONDS", default=20.0)
# An account-wide free quota with fewer requests a day than this is too scarce to probe.
AFMTS_PROBE_SCARCE_RPD = env.int("AFMTS_PROBE_SCARCE_RPD", default=1000)
# Gateway: in-flight requests per model at which its load part reaches 0.
AFMTS_MODEL_CONCURRENCY = env.int("AFMTS_MODEL_CONCURRENCY", default=16)
# Gateway usage records are written in batches this often (off the request path).
AFMTS_USAGE_FLUSH_SECONDS = env.float("AFMTS_USAGE_FLUSH_SECONDS", default=1.0)
# While the database is unreachable, usage batches are kept in memory up to this many records (the
# oldest past it spill to JSON-lines files in AFMTS_USAGE_SPILL_DIR, replayed later) and retried with
# back-off up to AFMTS_USAGE_RETRY_MAX_SECONDS (sooner when a cheap probe finds the database back).
AFMTS_USAGE_BUFFER_MAX = env.int("AFMTS_USAGE_BUFFER_MAX", default=100_000)
AFMTS_USAGE_RETRY_MAX_SECONDS = env.float("AFMTS_USAGE_RETRY_MAX_SECONDS", default=30.0)
AFMTS_USAGE_SPILL_DIR = env("AFMTS_USAGE_SPILL_DIR", default=str(DATA_DIR / "usage-spill"))
# The paid model savings are measured against (public id); empty = the cheapest comparable one.
AFMTS_REFERENCE_MODEL = env("AFMTS_REFERENCE_MODEL", default="")
# Operators' own free-tier and price tables (same format as registry/providers/*.json); empty = shipped.
AFMTS_FREE_TIERS_FILE = env("AFMTS_FREE_TIERS_FILE", default="")
AFMTS_PRICES_FILE = env("AFMTS_PRICES_FILE", default="")
# Retention (analytics.rollups): raw usage records, then minute, hour and day rollups, in days. Hour
# rollups are kept at least as long as raw records (an old hour is rebuilt from them).
METRICS_RETENTION_DAYS = env.int("METRICS_RETENTION_DAYS", default=30)
METRICS_ROLLUP_MINUTE_DAYS = env.int("METRICS_ROLLUP_MINUTE_DAYS", default=2)
METRICS_ROLLUP_HOUR_DAYS = env.int("METRICS_ROLLUP_HOUR_DAYS", default=90)
METRICS_ROLLUP_DAY_DAYS = env.int("METRICS_ROLLUP_DAY_DAYS", default=730)
# Budgets: the share of a key's monthly budget at which `budget_warning` is published.
AFMTS_BUDGET_WARNING_RATIO = env.float("AFMTS_BUDGET_WARNING_RATIO", default=0.8)
# Gateway limits: attempts per request (first try + failovers), total deadline, body size.
AFMTS_GATEWAY_MAX_ATTEMPTS = env.int("AFMTS_GATEWAY_MAX_ATTEMPTS", default=4)
AFMTS_GATEWAY_DEADLINE_SECONDS = env.float("AFMTS_GATEWAY_DEADLINE_SECONDS", default=120.0)
# One non-streaming attempt gives up after this without a reply, and fails over.
AFMTS_GATEWAY_ATTEMPT_SECONDS = env.float("AFMTS_GATEWAY_ATTEMPT_SECONDS", default=45.0)
# A streaming attempt gives up without its first chunk after this (and fails over); once it streams,
# a gap between chunks longer than IDLE ends it. The deadline above bounds failover only: a stream
# that is producing runs until STREAM_MAX (a cap that is not counted against the model).
AFMTS_GATEWAY_FIRST_BYTE_SECONDS = env.float("AFMTS_GATEWAY_FIRST_BYTE_SECONDS", default=20.0)
AFMTS_GATEWAY_IDLE_SECONDS = env.float("AFMTS_GATEWAY_IDLE_SECONDS", default=30.0)
AFMTS_GATEWAY_STREAM_MAX_SECONDS = env.float("AFMTS_GATEWAY_STREAM_MAX_SECONDS", default=1800.0)
# A stream cut after it produced text goes on from another candidate given the text so far.
AFMTS_GATEWAY_STREAM_RESUME = env.bool("AFMTS_GATEWAY_STREAM_RESUME", default=True)
# Breakers judge failure rates: open at RATIO of at least MIN_REQUESTS calls within WINDOW, or after
# CONSECUTIVE failures at low traffic; half-open after COOLDOWN (doubled per failed trial, capped).
AFMTS_BREAKER_WINDOW_SECONDS = env.float("AFMTS_BREAKER_WINDOW_SECONDS", default=60.0)
AFMTS_BREAKER_MIN_REQUESTS = env.int("AFMTS_BREAKER_MIN_REQUESTS", default=10)
AFMTS_BREAKER_FAILURE_RATIO = env.float("AFMTS_BREAKER_FAILURE_RATIO", default=0.5)
AFMTS_BREAKER_CONSECUTIVE_FAILURES = env.int("AFMTS_BREAKER_CONSECUTIVE_FAILURES", default=5)
AFMTS_BREAKER_COOLDOWN_SECONDS = env.float("AFMTS_BREAKER_COOLDOWN_SECONDS", default=10.0)
AFMTS_BREAKER_MAX_COOLDOWN_SECONDS = env.float("AFMTS_BREAKER_MAX_COOLDOWN_SECONDS", default=120.0)
# A 429 without Retry-After cools its quota scope down this long.
AFMTS_RATE_LIMIT_COOLDOWN_SECONDS = env.float("AFMTS_RATE_LIMIT_COOLDOWN_SECONDS", default=10.0)
# Live state shared through Redis: every call's timeout, and how often processes exchange state.
AFMTS_LIVE_REDIS_TIMEOUT_SECONDS = env.float("AFMTS_LIVE_REDIS_TIMEOUT_SECONDS", default=0.25)
AFMTS_LIVE_SYNC_SECONDS = env.float("AFMTS_LIVE_SYNC_SECONDS", default=0.5)
# Key limits under this many a minute are counted in Redis request by request (exact); larger ones in
# each process, reconciled every sync (no Redis call on the request path).
AFMTS_EXACT_KEY_LIMIT_BELOW = env.int("AFMTS_EXACT_KEY_LIMIT_BELOW", default=120)
AFMTS_GATEWAY_MAX_BODY_BYTES = env.int("AFMTS_GATEWAY_MAX_BODY_BYTES", default=20 * 1024 * 1024)
# /api/tasks/route: how long an agent may take to answer a task.
AFMTS_AGENT_CALL_SECONDS = env.float("AFMTS_AGENT_CALL_SECONDS", default=30.0)
# Outbound HTTP to providers: "native" (aiohttp, measured fastest), "aiohttp" (httpx on aiohttp's
# pool) or "httpx" (plain httpx). See registry/providers/http.py.
AFMTS_UPSTREAM_TRANSPORT = env("AFMTS_UPSTREAM_TRANSPORT", default="native")
# Outbound URL policy (afmts/urlpolicy.py): hosted kinds and agents may reach loopback/private
# addresses only with ALLOW_PRIVATE, or for the hosts ("host" or "host:port") listed in ALLOWED_HOSTS
# (a proxy). Replies are capped: a whole reply at MAX_REPLY, one stream line/event at MAX_LINE.
AFMTS_ALLOW_PRIVATE_UPSTREAMS = env.bool("AFMTS_ALLOW_PRIVATE_UPSTREAMS", default=False)
AFMTS_ALLOWED_UPSTREAM_HOSTS = env.list("AFMTS_ALLOWED_UPSTREAM_HOSTS", default=[])
AFMTS_UPSTREAM_MAX_REPLY_BYTES = env.int("AFMTS_UPSTREAM_MAX_REPLY_BYTES", default=32 * 1024 * 1024)
AFMTS_UPSTREAM_MAX_LINE_BYTES = env.int("AFMTS_UPSTREAM_MAX_LINE_BYTES", default=1024 * 1024)
# A provider whose listing failed this many times in a row is down.
AFMTS_PROVIDER_DOWN_AFTER = env.int("AFMTS_PROVIDER_DOWN_AFTER", default=2)

# ---------------------------------------------------------------- i18n, static
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# The Docker image collects static files at build time, outside the data volume (AFMTS_STATIC_ROOT).
STATIC_ROOT = Path(env("AFMTS_STATIC_ROOT", default=str(DATA_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
SERVESTATIC_USE_FINDERS = True

# ---------------------------------------------------------------- logging
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"secrets": {"()": "afmts.logging.RedactSecrets"}, "one_line": {"()": "afmts.security.OneLine"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["secrets"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"}, "httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"},
        # The ASGI servers configure their own handlers before Django starts; these replace them with
        # the redacting console handler (an access line can hold `?api_key=...`). Celery's handlers
        # get the filter in afmts.celery.
        "uvicorn": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "uvicorn.error": {"level": LOG_LEVEL},
        "uvicorn.access": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "daphne": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # A request with a Host not in ALLOWED_HOSTS: one line, not a traceback (scanners send many).
        "django.security.DisallowedHost": {"handlers": ["console"], "level": "ERROR", "filters": ["one_line"],
                                           "propagate": False},
    },
}
