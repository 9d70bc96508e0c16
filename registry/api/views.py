"""REST API views: parse, call a service or selector, answer. The seeds' endpoints, camelCase JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from afmts.errors import Conflict
from afmts.parsers import UNSTORABLE
from registry import selectors, services
from registry.api import serializers as s
from registry.api.pagination import Pagination, positive_int
from registry.api.throttles import KeyRateThrottle
from registry.events import for_audience
from registry.models import Agent, AgentStatus, AIModel, ApiKey, Event, ModelStatus, ModelType, Provider

ANY = OpenApiTypes.OBJECT


class Base(GenericAPIView):
    throttle_classes = [KeyRateThrottle]
    # OPTIONS is a 405 (CORS preflights are answered by the CORS middleware before any view): DRF's
    # metadata answer needs querysets these views do not declare, and documents nothing the schema lacks.
    metadata_class = None

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        for name, value in request.query_params.items():
            if UNSTORABLE.search(value):  # PostgreSQL cannot compare with it: a 400, not a 500
                raise ValidationError({name: ["A NUL character or a lone surrogate is not allowed."]})


def _time_param(raw: str, name: str) -> datetime:
    """An ISO 8601 time as UTC (naive = UTC); a 400 naming `name` when it is none or out of range."""
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationError({name: ["An ISO 8601 time."]}) from None


def _bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ValidationError({name: [f"Must be true or false, not '{raw}'."]})


def _choice_param(request: Request, name: str, choices: list[str]) -> str | None:
    """One of `choices`, or None when absent; an empty value is no choice (a 400, as the schema's enum says)."""
    raw = request.query_params.get(name)
    if raw is not None and raw not in choices:
        raise ValidationError({name: [f"'{raw}' is not one of {', '.join(choices)}."]})
    return raw


# ------------------------------------------------------------------ models


class ModelListView(Base):
    pagination_class = Pagination

    @extend_schema(
        operation_id="models_list",
        summary="List models",
        parameters=[
            OpenApiParameter("type", str, enum=ModelType.values),
            OpenApiParameter("provider", str, description="provider slug"),
            OpenApiParameter("capability", str),
            OpenApiParameter("free", bool),
            OpenApiParameter("status", str, enum=ModelStatus.values),
            OpenApiParameter("search", str, description="substring of id, name or description"),
            OpenApiParameter("page", int), OpenApiParameter("pageSize", int),
        ],
        responses=ANY,
    )
    def get(self, request: Request) -> Response:
        models = selectors.model_list(
            type=_choice_param(request, "type", ModelType.values),
            provider=request.query_params.get("provider") or None,
            capability=request.query_params.get("capability") or None,
            free=_bool_param(request, "free"),
            status=_choice_param(request, "status", ModelStatus.values),
            search=request.query_params.get("search") or None,
        )
        page = self.paginate_queryset(models)
        return self.get_paginated_response([m.api for m in page])


class ModelRegisterView(Base):
    serializer_class = s.ModelRegisterSerializer

    @extend_schema(
        summary="Register a model (the seed's payload)",
        parameters=[OpenApiParameter("upsert", bool, description="update instead of 409 when it exists"),
                    OpenApiParameter("verify", bool, description="refuse (400) a base URL whose model listing does not answer")],
        responses={201: ANY, 200: ANY, 409: ANY},
    )
    def post(self, request: Request) -> Response:
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        provider_slug = fields.pop("provider")
        if _bool_param(request, "verify") and fields.get("endpoint"):
            kind = fields["provider_kind"] or provider_slug
            services.base_url_verify(kind=kind, base_url=services.canonical_base_url(kind, fields["endpoint"]),
                                     api_key=fields.get("api_key"), field="endpoint")
        model, created = services.model_register(
            provider_slug=provider_slug,
            provider_kind=fields.pop("provider_kind"),
            endpoint=fields.pop("endpoint", None) or None,
            api_key=fields.pop("api_key", None) or None,
            model_fields=fields,
            upsert=bool(_bool_param(request, "upsert")),
        )
        return Response(services.model_data(model), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ModelFindView(Base):
    serializer_class = s.FindSerializer
    any_key_may_post = True

    @extend_schema(summary="Find models by criteria, ranked best first with the score's parts", responses=ANY)
    def post(self, request: Request) -> Response:
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        criteria = dict(data.validated_data)
        limit = criteria.pop("limit")
        results = selectors.model_find(selectors.Criteria(**criteria), limit=limit)
        return Response({"count": len(results), "models": results})


class ModelDetailView(Base):
    serializer_class = s.ModelUpdateSerializer

    def get_serializer_class(self):
        return s.ModelReplaceSerializer if self.request.method == "PUT" else s.ModelUpdateSerializer

    def get_object(self) -> AIModel:
        return get_object_or_404(AIModel.objects.select_related("provider"), pk=self.kwargs["pk"])

    @extend_schema(summary="A model", responses=ANY)
    def get(self, request: Request, pk: int) -> Response:
        return Response(services.model_data(self.get_object()))

    @extend_schema(summary="Replace a model's editable fields (displayName required; a field not sent takes its default)",
                   request=s.ModelReplaceSerializer, responses=ANY)
    def put(self, request: Request, pk: int) -> Response:
        return self.patch(request, pk)

    @extend_schema(summary="Change the fields sent of a model", request=s.ModelUpdateSerializer, responses=ANY)
    def patch(self, request: Request, pk: int) -> Response:
        model = self.get_object()
        data = self.get_serializer(data=request.data, partial=request.method == "PATCH")
        data.is_valid(raise_exception=True)
        model = services.model_update(model=model, fields=dict(data.validated_data))
        return Response(services.model_data(model))

    @extend_schema(summary="Delete a model", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.model_delete(model=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ModelCommunicationView(Base):
    @extend_schema(summary="How to talk to a model: formats, auth method, endpoint (never the secret)", responses=ANY)
    def get(self, request: Request, pk: int) -> Response:
        model = get_object_or_404(AIModel.objects.select_related("provider"), pk=pk)
        return Response(selectors.communication(model))


# ------------------------------------------------------------------ agents


class AgentRegisterView(Base):
    serializer_class = s.AgentSerializer

    @extend_schema(summary="Register an agent (re-registering the same name brings it back online)", responses={201: ANY, 200: ANY})
    def post(self, request: Request) -> Response:
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields.pop("status", None)
        agent, created = services.agent_register(name=fields.pop("name"), fields=fields)
        return Response(services.agent_data(agent), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class AgentListView(Base):
    pagination_class = Pagination

    @extend_schema(operation_id="agents_list", summary="List agents", parameters=[OpenApiParameter("status", str, enum=AgentStatus.values)], responses=ANY)
    def get(self, request: Request) -> Response:
        agents = Agent.objects.all()
        wanted = _choice_param(request, "status", AgentStatus.values)
        if wanted:
            agents = agents.filter(status=wanted)
        page = self.paginate_queryset(agents)
        return self.get_paginated_response([services.agent_data(a) for a in page])


class AgentDetailView(Base):
    serializer_class = s.AgentSerializer

    def get_serializer_class(self):
        return s.AgentReplaceSerializer if self.request.method == "PUT" else s.AgentSerializer

    @extend_schema(summary="An agent", responses=ANY)
    def get(self, request: Request, pk: int) -> Response:
        return Response(services.agent_data(get_object_or_404(Agent, pk=pk)))

    @extend_schema(summary="Replace an agent (name required; a field not sent takes its default)",
                   request=s.AgentReplaceSerializer, responses=ANY)
    def put(self, request: Request, pk: int) -> Response:
        return self.patch(request, pk)

    @extend_schema(summary="Change the fields sent of an agent (status, capabilities, endpoint, ...)",
                   request=s.AgentSerializer, responses=ANY)
    def patch(self, request: Request, pk: int) -> Response:
        agent = get_object_or_404(Agent, pk=pk)
        data = self.get_serializer(data=request.data, partial=request.method == "PATCH")
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        if "name" in fields and fields["name"] != agent.name and Agent.objects.filter(name=fields["name"]).exists():
            raise Conflict(f"An agent named '{fields['name']}' exists.")
        return Response(services.agent_data(services.agent_update(agent=agent, fields=fields)))


class AgentHeartbeatView(Base):
    @extend_schema(summary="Agent heartbeat", request=None, responses=ANY)
    def post(self, request: Request, pk: int) -> Response:
        agent = services.agent_heartbeat(agent=get_object_or_404(Agent, pk=pk))
        return Response(services.agent_data(agent))


class AgentModelsView(Base):
    @extend_schema(summary="Models matching the agent's capabilities, best first", responses=ANY)
    def get(self, request: Request, pk: int) -> Response:
        agent = get_object_or_404(Agent, pk=pk)
        wanted = set(agent.capabilities or [])
        models = [
            {**m.api, **selectors.explain(m, "auto")}
            for m in selectors.rank(selectors.Criteria())
            if m.capabilities & wanted
        ]
        return Response({"agent": agent.id, "count": len(models), "models": models})


# ------------------------------------------------------------------ events, keys


class EventListView(Base):
    @extend_schema(
        summary="Recent events, oldest first",
        parameters=[
            OpenApiParameter("since", {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                                                 {"type": "string", "format": "date-time"}]},
                             description="an event id, or an ISO 8601 time"),
            OpenApiParameter("event", str), OpenApiParameter("limit", int),
        ],
        responses=ANY,
    )
    def get(self, request: Request) -> Response:
        events = Event.objects.all()
        since = request.query_params.get("since")
        if since is not None:  # an empty value is neither an id nor a time: a 400
            if since.isascii() and since.isdigit():
                if int(since) >= 2**63:
                    raise ValidationError({"since": ["An event id (up to 2^63 - 1) or an ISO 8601 time."]})
                events = events.filter(id__gt=int(since))
            else:
                events = events.filter(ts__gt=_time_param(since, "since"))
        if request.query_params.get("event"):
            events = events.filter(event=request.query_params["event"])
        limit = positive_int(request, "limit", 1000) or 100
        rows = list(events.order_by("id")[:limit])
        # Failure detail (upstream words) is for admins: other keys get the events without it.
        admin = request.user.is_admin
        return Response({"count": len(rows), "events": [for_audience(e.envelope(), admin=admin) for e in rows]})


def key_data(key: ApiKey) -> dict:
    return {
        "id": key.id, "name": key.name, "prefix": key.prefix, "scope": key.scope,
        "rateLimitPerMinute": key.rate_limit_per_minute, "createdAt": key.created_at,
        "lastUsedAt": key.last_used_at, "revoked": key.revoked,
        "monthlyBudgetUsd": None if key.monthly_budget_usd is None else str(key.monthly_budget_usd),
    }


class ApiKeyListView(Base):
    serializer_class = s.ApiKeyCreateSerializer
    admin_only = True

    @extend_schema(summary="API keys (admin)", responses=ANY)
    def get(self, request: Request) -> Response:
        return Response({"keys": [key_data(k) for k in ApiKey.objects.all()]})

    @extend_schema(
        summary="Create an API key (admin); the secret is in this response only",
        responses={201: inline_serializer("CreatedKey", {"key": serializers.CharField()})},
    )
    def post(self, request: Request) -> Response:
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        key, secret = services.apikey_create(**data.validated_data)
        return Response({**key_data(key), "key": secret}, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(Base):
    admin_only = True

    @extend_schema(summary="Revoke an API key (admin)", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.apikey_revoke(key=get_object_or_404(ApiKey, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    throttle_classes = [KeyRateThrottle]
    metadata_class = None

    @extend_schema(summary="Who am I (the key's name and scope)", responses=ANY)
    def get(self, request: Request) -> Response:
        return Response({"name": request.user.name, "scope": request.user.scope})


# ------------------------------------------------------------------ free models


class FreeModelListView(Base):
    @extend_schema(
        summary="What is free right now, with its quota and what remains of it",
        parameters=[OpenApiParameter("provider", str), OpenApiParameter("capability", str)],
        responses=ANY,
    )
    def get(self, request: Request) -> Response:
        from django.utils import timezone

        from registry.models import QuotaState
        from registry.quota import quota_for, quota_pools

        models = [
            m for m in selectors.model_list(
                free=True, provider=request.query_params.get("provider") or None,
                capability=request.query_params.get("capability") or None,
            )
            if m.routable and m.status != ModelStatus.DOWN
        ]
        provider_ids = {m.provider_id for m in models}
        states: dict = {}
        for state in QuotaState.objects.filter(provider_id__in=provider_ids):
            states.setdefault((state.provider_id, state.model_id), []).append(state)
        now = timezone.now()
        rows = []
        for m in models:
            rows.append({**m.api, "quota": quota_for(m.api, m.provider_id, states, now)})
        pools = quota_pools([(m.provider_id, m.api) for m in models], states, now)
        return Response({"count": len(rows), "models": rows, "pools": pools})


class FreeModelHistoryView(Base):
    pagination_class = Pagination
    EVENTS = ["model_became_free", "model_stopped_being_free"]

    @extend_schema(
        summary="When models became or stopped being free, and why, newest first",
        parameters=[
            OpenApiParameter("provider", str, description="provider slug"),
            OpenApiParameter("model", str, description="public id (provider/model)"),
            OpenApiParameter("event", str, enum=EVENTS),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="ISO 8601 time (after)"),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="ISO 8601 time (up to)"),
            OpenApiParameter("page", int), OpenApiParameter("pageSize", int),
        ],
        responses=ANY,
    )
    def get(self, request: Request) -> Response:
        from registry.models import ModelChange

        changes = ModelChange.objects.filter(field="is_free")
        provider = request.query_params.get("provider")
        if provider:
            changes = changes.filter(public_id__startswith=f"{provider}/")
        if request.query_params.get("model"):
            changes = changes.filter(public_id=request.query_params["model"])
        event = _choice_param(request, "event", self.EVENTS)
        if event:
            changes = changes.filter(event=event)
        since = request.query_params.get("since")
        if since is not None:
            changes = changes.filter(at__gt=_time_param(since, "since"))
        until = request.query_params.get("until")
        if until is not None:
            changes = changes.filter(at__lte=_time_param(until, "until"))
        page = self.paginate_queryset(changes.order_by("-at", "-id"))
        return self.get_paginated_response([
            {
                "model": c.public_id, "modelPk": c.model_id,
                "event": c.event if c.event in self.EVENTS else self.EVENTS[0] if c.new else self.EVENTS[1],
                "isFree": bool(c.new), "reason": c.reason, "at": c.at.isoformat().replace("+00:00", "Z"),
            }
            for c in page
        ])


# ------------------------------------------------------------------ providers


class ProviderListView(Base):
    serializer_class = s.ProviderSerializer
    admin_only = True

    @extend_schema(operation_id="providers_list", summary="Providers (admin): one account at one upstream each", responses=ANY)
    def get(self, request: Request) -> Response:
        return Response({"providers": [services.provider_data(p) for p in Provider.objects.all()]})

    @extend_schema(summary="Add a provider (admin); its models are discovered on the next cycle", responses={201: ANY},
                   parameters=[OpenApiParameter("verify", bool, description="refuse (400) a base URL whose model listing does not answer")])
    def post(self, request: Request) -> Response:
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        if Provider.objects.filter(slug=fields["slug"]).exists():
            raise Conflict(f"Provider '{fields['slug']}' exists.")
        if _bool_param(request, "verify"):
            url = services.canonical_base_url(fields["kind"], fields["base_url"]) if fields.get("base_url") else None
            services.base_url_verify(kind=fields["kind"], base_url=url or services.adapter_class(fields["kind"]).default_base_url,
                                     api_key=fields.get("api_key"))
        provider = services.provider_create(
            slug=fields.pop("slug"), kind=fields.pop("kind"), base_url=fields.pop("base_url", None),
            api_key=fields.pop("api_key", None) or None, name=fields.pop("name", None), **fields,
        )
        return Response(services.provider_data(provider), status=status.HTTP_201_CREATED)


class ProviderDetailView(Base):
    serializer_class = s.ProviderSerializer
    admin_only = True

    @extend_schema(summary="A provider (admin)", responses=ANY)
    def get(self, request: Request, pk: int) -> Response:
        return Response(services.provider_data(get_object_or_404(Provider, pk=pk)))

    @extend_schema(summary="Change a provider (admin); apiKey is write-only", responses=ANY, parameters=[OpenApiParameter("verify", bool, description="refuse (400) a base URL whose model listing does not answer")])
    def patch(self, request: Request, pk: int) -> Response:
        provider = get_object_or_404(Provider, pk=pk)
        data = self.get_serializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        # A well-formed body at odds with the stored provider: a conflict (409), not a bad request.
        if "kind" in fields and fields["kind"] != provider.kind:
            raise Conflict("A provider's kind cannot change; add another provider.", code="kind_immutable")
        if "slug" in fields and fields["slug"] != provider.slug:
            raise Conflict("A provider's slug cannot change (it is part of its models' ids).", code="slug_immutable")
        if _bool_param(request, "verify") and fields.get("base_url"):
            services.base_url_verify(kind=provider.kind, base_url=services.canonical_base_url(provider.kind, fields["base_url"]),
                                     api_key=fields.get("api_key") or provider.api_key)
        return Response(services.provider_data(services.provider_update(provider=provider, fields=fields)))

    @extend_schema(summary="Remove a provider and its models (admin)", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.provider_delete(provider=get_object_or_404(Provider, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
