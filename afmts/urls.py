from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from afmts import errors
from afmts.health import health
from afmts.metrics import metrics
from routing.api import task_route

urlpatterns = [
    path("health", health, name="health"),
    path("metrics", metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its script from a URL, so the page needs no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    # Optional JWT for Django users, beside API keys (README "Security").
    path("api/auth/token/", TokenObtainPairView.as_view(), name="token-obtain"),
    path("api/auth/token/refresh/", TokenRefreshView.as_view(), name="token-refresh"),
    path("api/", include("registry.api.urls")),
    path("api/", include("analytics.urls")),  # performance, usage, costs, keys/me, key budgets
    # Async (a long task waits on the event loop); routing.urls' TaskRouteView, behind it, documents it.
    path("api/tasks/route", task_route, name="task-route"),
    path("api/", include("routing.urls")),
    path("admin/", admin.site.urls),
    # The operator's dashboard (dashboard/); `/` and the seed's /dashboard.html lead to it.
    path("dashboard/", include("dashboard.urls")),
    path("dashboard.html", RedirectView.as_view(pattern_name="dashboard:overview"), name="dashboard-html"),
    path("", RedirectView.as_view(pattern_name="dashboard:overview"), name="root"),
]

handler400 = errors.handler400
handler403 = errors.handler403
handler404 = errors.handler404
handler500 = errors.handler500
