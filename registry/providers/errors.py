"""One typed hierarchy for everything that goes wrong upstream, shared by adapters, router and views.

`retryable` says whether the same request may succeed later or elsewhere (the router falls back or
backs off); `retry_after` is the provider's own wait in seconds when it gave one; `message` keeps the
provider's words (redacted of secrets, afmts.logging) and `provider_code` its machine code (e.g. "context_length_exceeded")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from afmts.logging import redact

if TYPE_CHECKING:
    from registry.providers.types import RateLimitInfo


class ProviderError(Exception):
    retryable: bool = False
    kind: str = "provider_error"

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        provider_code: str | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
        retryable: bool | None = None,
        rate_limit: RateLimitInfo | None = None,
    ):
        # Upstream text may quote the key it was sent: masked here, once, for every later use.
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.provider_code = provider_code
        self.retry_after = retry_after
        self.provider = provider
        self.rate_limit = rate_limit
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        where = f"{self.provider} " if self.provider else ""
        status = f"{self.status} " if self.status else ""
        return f"{where}{status}{self.kind}: {self.message}".strip()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status}, code={self.provider_code!r})"


class AuthError(ProviderError):
    kind = "auth"


class NotFoundError(ProviderError):
    kind = "not_found"


class RateLimited(ProviderError):
    retryable = True
    kind = "rate_limited"


class ContextTooLong(ProviderError):
    kind = "context_too_long"


class BadRequest(ProviderError):
    kind = "bad_request"


class UpstreamUnavailable(ProviderError):
    retryable = True
    kind = "upstream_unavailable"


class Timeout(ProviderError):
    retryable = True
    kind = "timeout"


class MalformedReply(ProviderError):
    retryable = True
    kind = "malformed_reply"


ERROR_CLASSES: dict[str, type[ProviderError]] = {
    cls.kind: cls
    for cls in (AuthError, NotFoundError, RateLimited, ContextTooLong, BadRequest, UpstreamUnavailable, Timeout,
                MalformedReply)
}
