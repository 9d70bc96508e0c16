"""The live event feed: /ws/events/ (and / for the seeds' clients).

Authenticated like the API: `?api_key=<key>` (browsers cannot set headers on a WebSocket),
an `Authorization: Bearer` or `X-API-Key` header, or a staff session. Unauthenticated clients are
closed with code 4401. Messages are the seeds' envelope: {"event", "data", "ts"} (plus "id").
Admin keys and staff sessions get every event whole; other keys get them without failure detail
(registry.events.for_audience: `error`, `lastError`, ... — upstream words are for operators).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from audit.models import Source
from audit.service import note_scope as note_key_use
from dashboard import relay
from registry.auth import Principal, principal_for_secret
from registry.events import GROUP, for_audience
from registry.models import KeyScope


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
    admin = False

    async def connect(self) -> None:
        principal = await self._principal()
        if principal is None:
            await self.close(code=4401)
            return
        self.admin = principal.is_admin
        headers = {k.decode().lower(): v.decode() for k, v in self.scope.get("headers", [])}
        note_key_use(principal, self.scope, headers, source=Source.WEBSOCKET)
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await relay.client_joined()
        self.joined = True
        await self.accept()

    async def _principal(self) -> Principal | None:
        """Who is connecting: a staff session acts with admin scope (as on the API), else the key."""
        user = self.scope.get("user")
        if user is not None and getattr(user, "is_staff", False):
            return Principal(None, user.get_username(), KeyScope.ADMIN)
        secret = _secret(self.scope)
        return await database_sync_to_async(principal_for_secret)(secret) if secret else None

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)
        if getattr(self, "joined", False):
            relay.client_left()

    async def receive_json(self, content, **kwargs) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"event": "pong", "data": {}, "ts": None})

    async def event_message(self, message: dict) -> None:
        # One envelope: what a process of an earlier version sends, while a deployment rolls.
        await self.send_json(for_audience(message["message"], admin=self.admin))

    async def event_messages(self, message: dict) -> None:
        # Many envelopes to a channel-layer message (registry.events.send_envelopes), one per frame.
        for envelope in message["messages"]:
            await self.send_json(for_audience(envelope, admin=self.admin))
