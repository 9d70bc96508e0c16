from rest_framework.throttling import SimpleRateThrottle

from registry.auth import Principal


class KeyRateThrottle(SimpleRateThrottle):
    """The per-key limit (ApiKey.rate_limit_per_minute); keys without one are not limited."""

    scope = "key"

    def get_rate(self):
        return None

    def allow_request(self, request, view):
        principal = request.user
        if not isinstance(principal, Principal) or not principal.rate_limit_per_minute:
            return True
        self.rate = f"{principal.rate_limit_per_minute}/min"
        self.num_requests, self.duration = principal.rate_limit_per_minute, 60
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        return f"throttle_key_{request.user.pk}"
