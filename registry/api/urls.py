from django.urls import path

from registry.api import views as v

urlpatterns = [
    path("models", v.ModelListView.as_view(), name="model-list"),
    path("models/register", v.ModelRegisterView.as_view(), name="model-register"),
    path("models/find", v.ModelFindView.as_view(), name="model-find"),
    path("models/<int:pk>", v.ModelDetailView.as_view(), name="model-detail"),
    path("models/<int:pk>/communication", v.ModelCommunicationView.as_view(), name="model-communication"),
    path("agents", v.AgentListView.as_view(), name="agent-list"),
    path("agents/register", v.AgentRegisterView.as_view(), name="agent-register"),
    path("agents/<int:pk>", v.AgentDetailView.as_view(), name="agent-detail"),
    path("agents/<int:pk>/heartbeat", v.AgentHeartbeatView.as_view(), name="agent-heartbeat"),
    path("agents/<int:pk>/models", v.AgentModelsView.as_view(), name="agent-models"),
    path("free-models", v.FreeModelListView.as_view(), name="free-models"),
    path("free-models/history", v.FreeModelHistoryView.as_view(), name="free-models-history"),
    path("providers/", v.ProviderListView.as_view(), name="provider-list"),
    path("providers", v.ProviderListView.as_view()),
    path("providers/<int:pk>", v.ProviderDetailView.as_view(), name="provider-detail"),
    path("events", v.EventListView.as_view(), name="events"),
    path("keys", v.ApiKeyListView.as_view(), name="key-list"),
    path("keys/<int:pk>", v.ApiKeyDetailView.as_view(), name="key-detail"),
    path("me", v.MeView.as_view(), name="me"),
]
