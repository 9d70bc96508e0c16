"""The ASGI entry point: Django (REST API, admin, pages) over HTTP, and the Channels WebSocket
routes (/ws/events/, and / for the seeds' clients). The gateway's lean /v1/* handler joins here,
behind its CORS (GatewayCors); WebSockets from a browser page of another origin are refused."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "afmts.settings")
# Django must be set up before anything imports models (consumers do).
django_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from afmts.bodylimit import BodyLimit  # noqa: E402
from dashboard.consumers import EventConsumer  # noqa: E402
from routing.gateway.app import Gateway  # noqa: E402
from routing.gateway.asgi import SECURITY_HEADERS  # noqa: E402


class BrowserOriginValidator(OriginValidator):
    """Channels' AllowedHostsOriginValidator (ALLOWED_HOSTS, plus CORS_ORIGINS), except that a client
    sending no Origin is let through to authenticate with its key: programs (the seeds' clients)
    send none, while a browser always does, so a page of another site riding a staff session
    cookie is refused (403 at the handshake)."""

    def __init__(self, application):
        super().__init__(application, [*settings.ALLOWED_HOSTS, *settings.CORS_ALLOWED_ORIGINS])

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or self.validate_origin(parsed_origin)


_origins_cache: tuple[tuple[str, ...], frozenset[bytes]] = ((), frozenset())


def _cors_origins() -> frozenset[bytes]:
    global _origins_cache
    configured = tuple(settings.CORS_ALLOWED_ORIGINS)
    if _origins_cache[0] != configured:
        _origins_cache = (configured, frozenset(o.rstrip("/").lower().encode("latin-1") for o in configured))
    return _origins_cache[1]


class GatewayCors:
    """CORS for /v1/*, which Django's CorsMiddleware never sees, with the same origins (CORS_ORIGINS):
    a preflight is answered here, before any key is asked for; a request from an allowed origin gets
    Access-Control-Allow-Origin on its response. A request without Origin (every non-browser client)
    costs one scan of its headers; other paths pass straight through."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        origin = requested = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-headers":
                requested = value
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = origin.rstrip(b"/").lower() in _cors_origins()
        if scope["method"] == "OPTIONS":
            await self._preflight(send, origin if allowed else None, requested)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return
        extra = [(b"access-control-allow-origin", origin), (b"vary", b"origin"),
                 (b"access-control-expose-headers", ", ".join(settings.CORS_EXPOSE_HEADERS).encode())]

        async def send_cors(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_cors)

    @staticmethod
    async def _preflight(send, origin: bytes | None, requested: bytes | None) -> None:
        """204; with the CORS headers only for an allowed origin (the browser then refuses the call)."""
        headers = [*SECURITY_HEADERS, (b"vary", b"origin"), (b"content-length", b"0")]
        if origin is not None:
            headers += [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                # The SDKs send headers of their own (x-stainless-*, anthropic-version): the origin is
                # trusted, so whatever it asks for may come.
                (b"access-control-allow-headers", requested or b"authorization, content-type"),
                (b"access-control-max-age", str(settings.CORS_PREFLIGHT_MAX_AGE).encode()),
            ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


websocket_routes = [
    path("ws/events/", EventConsumer.as_asgi()),
    path("", EventConsumer.as_asgi()),
]

gateway = Gateway(BodyLimit(django_app))  # Django reads whole bodies before middleware: cap them here
application = ProtocolTypeRouter({
    # /v1/* is the gateway's lean hot path; everything else is Django.
    "http": GatewayCors(gateway),
    "websocket": BrowserOriginValidator(AuthMiddlewareStack(URLRouter(websocket_routes))),
    # Shutdown writes the buffered usage records (the server has drained its connections by then).
    "lifespan": gateway,
})
