"""The operator's dashboard: server-rendered pages (Django templates) for logged-in users.

Every page is readable by any active user; every change (model actions, adding providers and
models, "Discover now", "Probe now", running a prompt) needs a staff user. A page asked for with
`?part=<name>` answers only that region's HTML: the page's script fetches it again when a live event
concerns it (static/dashboard/app.js), and htmx when a filter changes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from rest_framework.exceptions import ValidationError

from dashboard import figures
from registry import services
from registry.models import Agent, AIModel, ModelType, Provider
from registry.providers import ADAPTERS, KIND_CHOICES
from registry.selectors import snapshot

LOGIN = "/dashboard/login/"
# What the dashboard lets an operator pin on a model (discovery then leaves them alone).
PINNABLE = ("name", "type", "capabilities", "context_window", "max_output_tokens", "input_price", "output_price",
            "is_free", "free_reason", "status", "description")
# The seed's preset buttons (OpenAI, Anthropic, Ollama, Local AI / OpenAI-compatible).
PRESETS = {
    "openai": {"kind": "openai", "slug": "openai", "baseUrl": ADAPTERS["openai"].default_base_url,
               "model": "gpt-4o-mini", "capabilities": "text-generation, reasoning, code-generation", "key": True},
    "anthropic": {"kind": "anthropic", "slug": "anthropic", "baseUrl": ADAPTERS["anthropic"].default_base_url,
                  "model": "claude-3-5-haiku-latest", "capabilities": "text-generation, reasoning", "key": True},
    "ollama": {"kind": "ollama", "slug": "ollama", "baseUrl": ADAPTERS["ollama"].default_base_url,
               "model": "llama2", "capabilities": "text-generation", "key": False},
    "local": {"kind": "openai_compatible", "slug": "local-ai", "baseUrl": ADAPTERS["openai_compatible"].default_base_url,
              "model": "local-model", "capabilities": "text-generation", "key": False},
}


def page(view: Callable) -> Callable:
    """A page: login required (anonymous visitors go to the login page)."""
    return login_required(view, login_url=LOGIN)


def staff_only(view: Callable) -> Callable:
    """A change: a logged-in staff user, on POST, with the CSRF token (Django's middleware)."""

    @wraps(view)
    def check(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("Only staff users can change things; this account can read.")
        return view(request, *args, **kwargs)

    return page(require_POST(check))


def _render(request: HttpRequest, template: str, context: dict[str, Any], parts: dict[str, str] | None = None) -> HttpResponse:
    part = request.GET.get("part")
    if part:
        if not parts or part not in parts:
            raise Http404("No such part.")
        response = render(request, parts[part], context)
    else:
        response = render(request, template, context)
    response["Vary"] = "HX-Request, Cookie"
    return response


class Login(LoginView):
    template_name = "dashboard/login.html"
    redirect_authenticated_user = True
    next_page = "dashboard:overview"


# ------------------------------------------------------------------ overview


@page
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    context = {"nav": "overview", "counts": figures.counts(), "traffic": figures.traffic()}
    return _render(request, "dashboard/overview.html", context, {"counts": "dashboard/parts/counts.html"})


@page
@require_GET
def overview_figures(request: HttpRequest) -> JsonResponse:
    """The overview's numbers and chart series (read by its script every few seconds and on events)."""
    return JsonResponse({"counts": figures.counts(), "traffic": figures.traffic(),
                         "charts": figures.charts(request.GET.get("window") or "1h")})


# ------------------------------------------------------------------ models


@page
@require_GET
def models(request: HttpRequest) -> HttpResponse:
    f = figures.Filters.parse(request.GET)
    found = figures.models_page(f)
    context = {"nav": "models", "page": found, "f": f, "facets": figures.facets(), "sizes": figures.PAGE_SIZES,
               **_links(request, f, found)}
    if request.headers.get("HX-Request") and not request.GET.get("part"):
        return render(request, "dashboard/parts/models_table.html", context)
    return _render(request, "dashboard/models.html", context, {"table": "dashboard/parts/models_table.html"})


def _links(request: HttpRequest, f: figures.Filters, found: figures.Page) -> dict[str, Any]:
    """The table's sort and page links, keeping the filters."""
    base = request.GET.copy()
    base.pop("part", None)

    def url(**changes: Any) -> str:
        q = base.copy()
        for name, value in changes.items():
            q[name] = str(value)
        return "?" + q.urlencode()

    sorts = {name: url(sort=name, dir="desc" if f.sort == name and not f.desc else "asc", page=1) for name in figures.SORTS}
    return {
        "sorts": sorts,
        "prev": url(page=found.page - 1) if found.page > 1 else "",
        "next": url(page=found.page + 1) if found.page < found.pages else "",
    }


@page
@require_GET
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    m = snapshot().by_pk.get(pk)
    if m is None:
        raise Http404("No such model.")
    quota = figures.model_quota(m) if m.is_free else None
    samples = figures.health_samples(pk)
    context = {
        "nav": "models", "m": m, "api": m.api, "quota": quota, "windows": figures.windows(quota) if quota else [],
        "history": figures.free_history(model_pk=pk), "samples": samples[:30],
        "latency": figures.latency_series(pk, samples), "pinnable": PINNABLE,
    }
    return _render(request, "dashboard/model.html", context, {"detail": "dashboard/parts/model_detail.html"})


@staff_only
def model_action(request: HttpRequest, pk: int) -> HttpResponse:
    """Disable or enable, pin fields, set priority."""
    model = get_object_or_404(AIModel.objects.select_related("provider"), pk=pk)
    action = request.POST.get("action")
    if action == "disable":
        fields: dict[str, Any] = {"disabled": True}
    elif action == "enable":
        fields = {"disabled": False}
    elif action == "pin":
        fields = {"pinned_fields": sorted(set(request.POST.getlist("pinned")) & set(PINNABLE))}
    elif action == "priority":
        try:
            priority = int(request.POST.get("priority", ""))
        except ValueError:
            priority = None
        if priority is None or not -100 <= priority <= 100:
            return HttpResponse("Priority is a whole number from -100 to 100.", status=400)
        fields = {"priority": priority}
    else:
        return HttpResponse("Unknown action.", status=400)
    services.model_update(model=model, fields=fields)
    return redirect("dashboard:model", pk=pk)


def _errors(exc: ValidationError) -> dict[str, list[str]]:
    detail = exc.detail if isinstance(exc.detail, dict) else {"form": exc.detail}
    return {k: [str(e) for e in (v if isinstance(v, list) else [v])] for k, v in detail.items()}


@page
def model_add(request: HttpRequest) -> HttpResponse:
    """The seed's "Add a model" form (POST /api/models/register's payload), with its presets."""
    from registry.api.serializers import ModelRegisterSerializer

    errors: dict[str, list[str]] = {}
    values = request.POST if request.method == "POST" else {}
    if request.method == "POST":
        if not request.user.is_staff:
            raise PermissionDenied("Only staff users can add models.")
        payload = {
            "name": values.get("name", ""), "provider": values.get("provider", ""), "type": values.get("type") or "llm",
            "capabilities": [c.strip() for c in values.get("capabilities", "").split(",") if c.strip()],
            "description": values.get("description", ""),
        }
        for field in ("providerKind", "endpoint", "apiKey"):
            if values.get(field):
                payload[field] = values[field]
        for field in ("inputPrice", "outputPrice", "contextWindow"):
            if values.get(field):
                payload[field] = values[field]
        if values.get("isFree") in ("yes", "no"):
            payload["isFree"] = values["isFree"] == "yes"
        data = ModelRegisterSerializer(data=payload)
        try:
            data.is_valid(raise_exception=True)
            fields = dict(data.validated_data)
            with transaction.atomic():
                model, _ = services.model_register(
                    provider_slug=fields.pop("provider"), provider_kind=fields.pop("provider_kind"),
                    endpoint=fields.pop("endpoint", None) or None, api_key=fields.pop("api_key", None) or None,
                    model_fields=fields,
                )
            return redirect("dashboard:model", pk=model.pk)
        except ValidationError as exc:
            errors = _errors(exc)
        except Exception as exc:  # noqa: BLE001 - a conflict or refused URL: shown on the form
            if not hasattr(exc, "status_code"):
                raise
            errors = {"form": [str(getattr(exc, "detail", exc))]}
    context = {"nav": "add", "presets": PRESETS, "errors": errors, "values": values,
               "types": [t.value for t in ModelType], "kinds": KIND_CHOICES}
    return render(request, "dashboard/model_add.html", context, status=400 if errors else 200)


# ------------------------------------------------------------------ free models


@page
@require_GET
def free(request: HttpRequest) -> HttpResponse:
    context = {"nav": "free", "groups": figures.free_now(), "timeline": figures.free_history(limit=100)}
    return _render(request, "dashboard/free.html", context, {
        "free": "dashboard/parts/free_groups.html", "timeline": "dashboard/parts/free_timeline.html"})


# ------------------------------------------------------------------ providers


def _providers_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {"nav": "providers", "providers": figures.providers(), "presets": PRESETS, "kinds": KIND_CHOICES,
            "errors": {}, "values": {}, **extra}


@page
@require_GET
def providers(request: HttpRequest) -> HttpResponse:
    return _render(request, "dashboard/providers.html", _providers_context(request),
                   {"list": "dashboard/parts/providers_list.html"})


@staff_only
def provider_add(request: HttpRequest) -> HttpResponse:
    """The "Add provider" form: kind, base URL, key (validated as POST /api/providers/ does)."""
    from registry.api.serializers import ProviderSerializer

    values = request.POST
    kind = values.get("kind", "")
    payload = {"slug": values.get("slug") or kind.replace("_", "-"), "kind": kind}
    if values.get("baseUrl"):
        payload["baseUrl"] = values["baseUrl"]
    if values.get("apiKey"):
        payload["apiKey"] = values["apiKey"]
    data = ProviderSerializer(data=payload)
    errors: dict[str, list[str]] = {}
    try:
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        if Provider.objects.filter(slug=fields["slug"]).exists():
            raise ValidationError({"slug": [f"Provider '{fields['slug']}' exists; choose another slug."]})
        services.provider_create(slug=fields.pop("slug"), kind=fields.pop("kind"), base_url=fields.pop("base_url", None),
                                 api_key=fields.pop("api_key", None) or None, **fields)
    except ValidationError as exc:
        errors = _errors(exc)
    if errors:
        context = _providers_context(request, errors=errors, values={k: v for k, v in values.items() if k != "apiKey"})
        return render(request, "dashboard/providers.html", context, status=400)
    return redirect(reverse("dashboard:providers") + "#p-" + payload["slug"])


@staff_only
def provider_discover(request: HttpRequest, pk: int) -> HttpResponse:
    """Discover now: list this provider at once (its deadline bounds the wait)."""
    from registry import tracker

    provider = get_object_or_404(Provider, pk=pk)
    results = tracker.discover(slugs=[provider.slug])
    for result in results:
        figures.keep_discovery(provider.slug, result)
    return redirect(reverse("dashboard:providers") + f"#p-{provider.slug}")


@staff_only
def provider_probe(request: HttpRequest, pk: int) -> HttpResponse:
    """Probe now: a one-token probe of the provider's free and local models (an operator's choice,
    so even an account-wide quota is spent)."""
    from registry import tracker

    provider = get_object_or_404(Provider, pk=pk)
    targets = list(AIModel.objects.filter(provider=provider, is_free=True, disabled=False)
                   .exclude(status="retired").select_related("provider")[:10])
    if targets:
        tracker.probe(targets)
    return redirect(reverse("dashboard:providers") + f"#p-{provider.slug}")


# ------------------------------------------------------------------ live requests


@page
@require_GET
def requests_page(request: HttpRequest) -> HttpResponse:
    if request.GET.get("part") == "rows":
        try:
            after = int(request.GET.get("after") or 0)
        except ValueError:
            after = 0
        return render(request, "dashboard/parts/request_rows.html", {"rows": figures.requests_after(after)})
    return render(request, "dashboard/requests.html", {"nav": "requests", "rows": figures.requests_after(0)})


@page
@require_GET
def why(request: HttpRequest, pk: int) -> HttpResponse:
    """Why this model: the routing explanation for the request's model, as the router sees it now."""
    from analytics.models import UsageRecord
    from dashboard.routing import explain

    record = get_object_or_404(UsageRecord, pk=pk)
    result = explain({"model": record.requested_model or "auto",
                      **({"input": "x"} if record.endpoint == "embeddings" else {"messages": []})})
    return render(request, "dashboard/why.html", {"nav": "requests", "r": record, "x": result})


# ------------------------------------------------------------------ agents


@page
@require_GET
def agents(request: HttpRequest) -> HttpResponse:
    return _render(request, "dashboard/agents.html", {"nav": "agents", "agents": list(Agent.objects.all())},
                   {"list": "dashboard/parts/agents_list.html"})


# ------------------------------------------------------------------ routing playground


@page
@require_GET
def playground(request: HttpRequest) -> HttpResponse:
    from dashboard.routing import POLICIES

    return render(request, "dashboard/playground.html", {"nav": "playground", "policies": POLICIES})
