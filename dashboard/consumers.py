"""The live event feed: /ws/events/ (and / for the seeds' clients).

Authenticated like the API: `?api_key=<key>` (browsers cannot set headers on a WebSocket),
an `Authorization: Bearer` or `X-API-Key` header, or a staff session. Unauthenticated clients are
closed with code 4401. Messages are the seeds' envelope: {"event", "data", "ts"} (plus "id").
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from dashboard import relay
from registry.auth import principal_for_secret
from registry.events import GROUP


def _secret(scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode())
    for name in ("api_key", "key", "token"):
        if query.get(name):
            return query[name][0]
    headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get("x-api-key") or None


class EventConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        if not await self._authenticated():
            await self.close(code=4401)
            return
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await relay.client_joined()
        self.joined = True
        await self.accept()

    async def _authenticated(self) -> bool:
        user = self.scope.get("user")
        if user is not None and getattr(user, "is_staff", False):
            return True
        secret = _secret(self.scope)
        return bool(secret) and await database_sync_to_async(principal_for_secret)(secret) is not None

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)
        if getattr(self, "joined", False):
            relay.client_left()

    async def receive_json(self, content, **kwargs) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"event": "pong", "data": {}, "ts": None})

    async def event_message(self, message: dict) -> None:
        await self.send_json(message["message"])
