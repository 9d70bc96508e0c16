from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle


class KeyRateThrottle(BaseThrottle):
    """The per-key limit of the REST API: the throttle named in REST_FRAMEWORK
    DEFAULT_THROTTLE_CLASSES (routing.limits.KeyRateThrottle, which counts on the gateway's counter so
    a key's REST and gateway calls add up). Reached through the setting because registry does not
    import routing."""

    def __init__(self) -> None:
        self._impl = api_settings.DEFAULT_THROTTLE_CLASSES[0]()

    def allow_request(self, request, view) -> bool:
        return self._impl.allow_request(request, view)

    def wait(self) -> float | None:
        return self._impl.wait()
