from django.urls import path

from routing import api

urlpatterns = [
    path("routing/explain", api.ExplainView.as_view(), name="routing-explain"),
    path("routing/state", api.StateView.as_view(), name="routing-state"),
    path("tasks/route", api.TaskRouteView.as_view(), name="task-route"),
    path("aliases", api.AliasListView.as_view(), name="alias-list"),
    path("aliases/<int:pk>", api.AliasDetailView.as_view(), name="alias-detail"),
]
