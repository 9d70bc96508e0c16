from django.urls import path

from analytics import api

urlpatterns = [
    path("stats", api.StatsView.as_view(), name="stats"),
    path("performance", api.PerformanceView.as_view(), name="performance"),
    path("usage/<path:model_id>", api.ModelUsageView.as_view(), name="model-usage"),
    path("analytics/costs", api.CostsView.as_view(), name="analytics-costs"),
    path("keys/me", api.KeyMeView.as_view(), name="key-me"),
    path("keys/<int:pk>/budget", api.KeyBudgetView.as_view(), name="key-budget"),
]
