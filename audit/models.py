"""The audit log: who did what, when, from where. Written by the REST API (admin writes), the admin
site (mirrored from Django's LogEntry), logins, and the first use of an API key per day and client
address (batched, never on the gateway's request path). Read-only in admin."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Action(models.TextChoices):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    KEY_USED = "key_used"


class Source(models.TextChoices):
    API = "api", "REST API"
    ADMIN = "admin", "admin site"
    GATEWAY = "gateway"
    WEBSOCKET = "websocket"


class Entry(models.Model):
    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=16, choices=Action.choices, db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices, db_index=True)
    # Who: a user name, or an API key's name and prefix (never the key).
    actor = models.CharField(max_length=160, blank=True, default="", db_index=True)
    key_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    target_type = models.CharField(max_length=64, blank=True, default="", db_index=True)
    target_id = models.CharField(max_length=64, blank=True, default="")
    target = models.CharField(max_length=255, blank=True, default="")
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    user_agent = models.CharField(max_length=255, blank=True, default="")
    # The admin site's own LogEntry this row mirrors (each is mirrored once).
    admin_log_id = models.BigIntegerField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        what = f" {self.target_type} {self.target or self.target_id}".rstrip()
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor or '-'} {self.action}{what}"
