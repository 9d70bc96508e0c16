"""Audit of what goes through Django: REST writes, the admin site's actions, API key use."""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from audit import service
from audit.models import Action, Source

log = logging.getLogger(__name__)

WRITES = {"POST": Action.CREATE, "PUT": Action.UPDATE, "PATCH": Action.UPDATE, "DELETE": Action.DELETE}
# REST collections whose writes are audited, by their path segment.
TARGETS = {"models": "model", "providers": "provider", "agents": "agent", "keys": "key", "aliases": "alias"}
# POSTs that do not write anything an operator audits: queries and liveness.
NOT_WRITES = ("/find", "/heartbeat")


class AuditMiddleware:
    """After a response: a successful REST write (create/update/delete of providers, models,
    agents, keys, aliases) is recorded with its caller; an admin-site POST mirrors the LogEntry
    rows it made (with the address Django's own log lacks); a request made with an API key notes
    the key's use (written in batches). Auditing never fails the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = timezone.now()
        response = self.get_response(request)
        try:
            self._audit(request, response, started)
        except Exception:  # noqa: BLE001 - the response stands; the gap is logged
            log.exception("could not write the audit log for %s %s", request.method, request.path)
        return response

    def _audit(self, request, response, started) -> None:
        path = request.path
        principal = getattr(request, "user", None)
        if path.startswith("/api/"):
            if getattr(principal, "key_id", None) is not None:
                ip, agent = service.request_meta(request)
                service.key_uses.note(principal, source=Source.API, ip=ip, user_agent=agent)
            if request.method in WRITES and 200 <= response.status_code < 400:
                self._rest_write(request, response, principal)
        elif path.startswith("/admin/") and request.method == "POST" and getattr(principal, "is_staff", False):
            self._admin_actions(request, principal, started)

    def _rest_write(self, request, response, principal: Any) -> None:
        parts = request.path.split("/")
        kind = TARGETS.get(parts[2] if len(parts) > 2 else "")
        if kind is None or request.path.rstrip("/").endswith(NOT_WRITES):
            return
        match = request.resolver_match
        data = getattr(response, "data", None)
        data = data if isinstance(data, dict) else {}
        target_id = (match.kwargs.get("pk") if match else None) or data.get("id") or ""
        label = data.get("publicId") or data.get("slug") or data.get("name") or ""
        ip, agent = service.request_meta(request)
        service.record(
            action=WRITES[request.method], source=Source.API, actor=service.actor_of(principal),
            key_id=getattr(principal, "key_id", None), target_type=kind, target_id=target_id, target=label,
            detail={"method": request.method, "path": request.path, "status": response.status_code}, ip=ip,
            user_agent=agent,
        )

    def _admin_actions(self, request, user, started) -> None:
        from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry

        from audit.models import Entry

        rows = list(LogEntry.objects.filter(user_id=user.pk, action_time__gte=started).select_related("content_type"))
        if not rows:
            return
        actions = {ADDITION: Action.CREATE, CHANGE: Action.UPDATE, DELETION: Action.DELETE}
        ip, agent = service.request_meta(request)
        Entry.objects.bulk_create([
            Entry(at=row.action_time, action=actions.get(row.action_flag, Action.UPDATE), source=Source.ADMIN,
                  actor=user.get_username()[:160], target_type=row.content_type.model if row.content_type else "",
                  target_id=(row.object_id or "")[:64], target=row.object_repr[:255],
                  detail={"change": row.get_change_message()[:500], "path": request.path}, ip=ip,
                  user_agent=agent, admin_log_id=row.pk)
            for row in rows
        ], ignore_conflicts=True)
