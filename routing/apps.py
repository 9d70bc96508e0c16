from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"

    def ready(self) -> None:
        from registry import quota
        from routing.live import pool_usage

        # /api/free-models shows the account pools as the gateway counts them (registry cannot
        # import routing: it is handed the reader).
        quota.live_pool_usage_from(pool_usage)
