from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"

    def ready(self) -> None:
        from analytics.budgets import on_budget_set
        from registry.budget import budget_set

        budget_set.connect(on_budget_set, dispatch_uid="analytics.budgets.on_budget_set")
