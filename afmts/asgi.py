"""The ASGI entry point: Django (REST API, admin, pages) over HTTP, and the Channels WebSocket
routes (/ws/events/, and / for the seeds' clients). The gateway's lean /v1/* handler joins here."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "afmts.settings")
# Django must be set up before anything imports models (consumers do).
django_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from afmts.bodylimit import BodyLimit  # noqa: E402
from dashboard.consumers import EventConsumer  # noqa: E402
from routing.gateway.app import Gateway  # noqa: E402

websocket_routes = [
    path("ws/events/", EventConsumer.as_asgi()),
    path("", EventConsumer.as_asgi()),
]

gateway = Gateway(BodyLimit(django_app))  # Django reads whole bodies before middleware: cap them here
application = ProtocolTypeRouter({
    # /v1/* is the gateway's lean hot path; everything else is Django.
    "http": gateway,
    "websocket": AuthMiddlewareStack(URLRouter(websocket_routes)),
    # Shutdown writes the buffered usage records (the server has drained its connections by then).
    "lifespan": gateway,
})
