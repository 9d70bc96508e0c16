from django.contrib.auth.views import LogoutView
from django.urls import path

from dashboard import routing, views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("figures", views.overview_figures, name="figures"),
    path("login/", views.Login.as_view(), name="login"),
    path("logout/", LogoutView.as_view(next_page="dashboard:login"), name="logout"),
    path("models/", views.models, name="models"),
    path("models/add/", views.model_add, name="model-add"),
    path("models/<int:pk>/", views.model_detail, name="model"),
    path("models/<int:pk>/action", views.model_action, name="model-action"),
    path("free/", views.free, name="free"),
    path("providers/", views.providers, name="providers"),
    path("providers/add", views.provider_add, name="provider-add"),
    path("providers/<int:pk>/discover", views.provider_discover, name="provider-discover"),
    path("providers/<int:pk>/probe", views.provider_probe, name="provider-probe"),
    path("requests/", views.requests_page, name="requests"),
    path("requests/<int:pk>/why", views.why, name="why"),
    path("agents/", views.agents, name="agents"),
    path("playground/", views.playground, name="playground"),
    path("playground/explain", routing.playground_explain, name="playground-explain"),
    path("playground/run", routing.playground_run, name="playground-run"),
]
