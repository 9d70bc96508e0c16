"""Logins, failed logins and logouts of the admin site (Django's own signals carry the request)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit import service
from audit.models import Action, Source


def _meta(request) -> tuple[str | None, str]:
    return service.request_meta(request) if request is not None else (None, "")


@receiver(user_logged_in, dispatch_uid="audit-login")
def _logged_in(sender, request, user, **kwargs) -> None:
    ip, agent = _meta(request)
    service.record(action=Action.LOGIN, source=Source.ADMIN, actor=user.get_username(), ip=ip, user_agent=agent)


@receiver(user_logged_out, dispatch_uid="audit-logout")
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is None:
        return
    ip, agent = _meta(request)
    service.record(action=Action.LOGOUT, source=Source.ADMIN, actor=user.get_username(), ip=ip, user_agent=agent)


@receiver(user_login_failed, dispatch_uid="audit-login-failed")
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    # Django has already masked the password in `credentials`; only the name tried is kept.
    ip, agent = _meta(request)
    service.record(action=Action.LOGIN_FAILED, source=Source.ADMIN, actor=str(credentials.get("username", ""))[:160],
                   ip=ip, user_agent=agent)
