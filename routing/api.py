"""REST endpoints of the router: explain a routing decision without sending the request, show the
live routing state (breakers, free quota, load), and manage operators' aliases."""

from __future__ import annotations

import time
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from afmts.errors import Conflict, envelope, error_response
from registry.api.serializers import CamelInput, Choice, Integer, Price, Slug, Text
from registry.api.views import Base
from registry.events import publish
from registry.models import Agent, Alias
from routing.gateway.engine import GatewayError
from routing.gateway.requests import requirements
from routing.gateway.runtime import _view, runtime
from routing.router import UnknownModel, plan


class ExplainView(Base):
    any_key_may_post = True

    @extend_schema(
        summary="Rank the candidates for a request without sending it",
        description="The body is a chat (or embeddings) request as it would be sent to /v1/*.",
        request={"application/json": {"type": "object", "required": ["model"], "properties": {
            "model": {"type": "string", "minLength": 1, "description": "a model id, an alias or a policy"},
            "messages": {"type": "array", "items": {"type": "object"}},
            "input": {"description": "an embeddings request's input"},
        }}},
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ValidationError({"model": ["A model id, an alias or a policy (auto, free, cheap, fast)."]})
        kind = "embedding" if "input" in body and "messages" not in body else "chat"
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            req = requirements(body, headers, kind=kind)
        except GatewayError as exc:
            raise ValidationError({exc.param or "body": [exc.message]}) from None
        view = _view.get()
        try:
            p = plan(model, req, view.snap, live=runtime.live, now=time.time(), aliases=view.aliases, max_candidates=10,
                     explain=True)
        except UnknownModel:
            raise NotFound(f"The model '{model}' does not exist.") from None
        return Response({
            "model": model,
            "policy": p.policy,
            "requirements": {
                "capabilities": sorted(req.capabilities), "minContext": req.min_context, "maxOutput": req.max_output,
                "maxPrice": req.max_price, "preferProviders": list(req.prefer_providers),
                "excludeProviders": sorted(req.exclude_providers), "fallbacks": list(req.fallbacks),
            },
            "candidates": [c.as_dict() for c in p.candidates],
            "rejected": [r.as_dict() for r in p.rejections],
            "rejectedCount": p.rejected_count,
            "explanation": p.explain() if not p.candidates else None,
        })


class StateView(Base):
    @extend_schema(summary="Live routing state: circuit breakers, free quota, in-flight load", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        live = runtime.live
        now = time.time()
        snap = _view.get().snap
        names = {f"model:{m.pk}": m.public_id for m in snap.models}
        breakers = {names.get(key, key): state for key, state in live.breakers.snapshot(now).items()}
        quotas = {m.public_id: live.quota_view(m, now) for m in snap.ranked["free"] if m.is_free}
        load = {snap.by_pk[pk].public_id: n for pk, n in live.inflight.items() if n and pk in snap.by_pk}
        return Response({"breakers": breakers, "freeQuota": quotas, "inFlight": load, "at": now})


class AliasSerializer(CamelInput, serializers.Serializer):
    name = Slug(max_length=128)
    models = serializers.ListField(child=Text(max_length=320), required=False, source="targets", max_length=50)
    policy = Choice(choices=["auto", "free", "cheap", "fast"], required=False, allow_blank=True)
    capabilities = serializers.ListField(child=Text(max_length=64), required=False, max_length=200)
    minContext = Integer(source="min_context", min_value=1, required=False, allow_null=True)
    maxPrice = Price(source="max_price", required=False, allow_null=True)
    excludeProviders = serializers.ListField(child=Slug(max_length=64), source="exclude_providers", required=False, max_length=200)
    preferProviders = serializers.ListField(child=Slug(max_length=64), source="prefer_providers", required=False, max_length=200)
    description = Text(max_length=255, required=False, allow_blank=True)

    def validate(self, attrs):
        if not attrs.get("targets") and not attrs.get("policy") and not self.partial:
            raise ValidationError({"models": ["Name models, or a policy."]})
        return attrs


def alias_data(alias: Alias) -> dict:
    return {
        "id": alias.id, "name": alias.name, "models": alias.targets, "policy": alias.policy or None,
        "capabilities": alias.capabilities, "minContext": alias.min_context,
        "maxPrice": float(alias.max_price) if alias.max_price is not None else None,
        "excludeProviders": alias.exclude_providers, "preferProviders": alias.prefer_providers,
        "description": alias.description,
    }


class AliasListView(Base):
    serializer_class = AliasSerializer

    @extend_schema(summary="Routing aliases", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response({"aliases": [alias_data(a) for a in Alias.objects.all()]})

    @extend_schema(summary="Add an alias (admin)", responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        if Alias.objects.filter(name=data.validated_data["name"]).exists():
            raise Conflict(f"Alias '{data.validated_data['name']}' exists.")
        with transaction.atomic():
            alias = Alias.objects.create(**data.validated_data)
            publish("alias_created", alias_data(alias))
        return Response(alias_data(alias), status=status.HTTP_201_CREATED)


class AliasDetailView(Base):
    serializer_class = AliasSerializer

    @extend_schema(summary="Change an alias (admin)", responses=OpenApiTypes.OBJECT)
    def patch(self, request: Request, pk: int) -> Response:
        alias = get_object_or_404(Alias, pk=pk)
        data = self.get_serializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        name = data.validated_data.get("name", alias.name)
        if name != alias.name and Alias.objects.filter(name=name).exists():
            raise Conflict(f"Alias '{name}' exists.")
        with transaction.atomic():
            for key, value in data.validated_data.items():
                setattr(alias, key, value)
            alias.save()
            publish("alias_updated", alias_data(alias))
        return Response(alias_data(alias))

    @extend_schema(summary="Remove an alias (admin)", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        alias = get_object_or_404(Alias, pk=pk)
        with transaction.atomic():
            data = alias_data(alias)
            alias.delete()
            publish("alias_deleted", data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TaskSerializer(CamelInput, serializers.Serializer):
    id = Text(max_length=128, required=False)
    type = Text(max_length=64, default="text-generation")
    description = Text(required=False, allow_blank=True, max_length=100_000)
    input = Text(required=False, allow_blank=True, max_length=1_000_000)
    system = Text(required=False, allow_blank=True, max_length=100_000)
    maxTokens = Integer(min_value=1, max_value=1_000_000, required=False)
    language = Text(required=False, max_length=64)
    fromLanguage = Text(required=False, max_length=64)
    toLanguage = Text(required=False, max_length=64)
    style = Text(required=False, max_length=128)
    priority = Text(required=False, max_length=32)
    model = Text(required=False, max_length=320)
    requirements = serializers.DictField(required=False)
    fallbacks = serializers.ListField(child=Text(max_length=320), required=False, max_length=20)

    def validate(self, attrs):
        if not attrs.get("input") and not attrs.get("description"):
            raise ValidationError({"input": ["A task needs an input or a description."]})
        return attrs


class TaskRouteView(Base):
    """POST /api/tasks/route as the OpenAPI schema and DRF see it: the key, scope, throttle and body
    checks (`task_checked`). The path itself is served by the async `task_route` (afmts/urls.py
    routes it there first), so a long task waits on the event loop, holding no database connection."""

    serializer_class = TaskSerializer
    any_key_may_post = True

    @extend_schema(
        summary="Route a task (the seed's routeTask): to an agent that declares its type, or the best model",
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request: Request) -> Response:
        raise NotFound("POST /api/tasks/route is served by routing.api.task_route.")  # never routed here


def task_checked(request: HttpRequest) -> tuple[dict[str, Any], Any, list[Agent]] | HttpResponse:
    """(task, principal, agents) for a task request, or the error response refusing it. The same
    DRF checks as every endpoint (authentication, permission, throttle, TaskSerializer), answered in
    the one error envelope."""
    from routing.tasks import agents_for

    view = TaskRouteView()
    view.setup(request)
    drf = view.initialize_request(request)
    view.request, view.headers, view.format_kwarg = drf, view.default_response_headers, None
    try:
        view.initial(drf)
        data = view.get_serializer(data=drf.data)
        data.is_valid(raise_exception=True)
        task = dict(data.validated_data)
        # With explicit fallbacks, any named agent with an endpoint may run it; else those declaring the type.
        agents = list(Agent.objects.exclude(endpoint="")) if task.get("fallbacks") else agents_for(task["type"])
    except Exception as exc:  # noqa: BLE001 - DRF answers it (or re-raises what it does not know)
        return view.finalize_response(drf, view.handle_exception(exc))
    finally:
        connection.close()  # a pool thread's connection must not outlive the checks
    return task, drf.user, agents


@csrf_exempt  # as DRF's views: session callers are CSRF-checked by StaffSessionAuthentication
async def task_route(request: HttpRequest) -> HttpResponse:
    """POST /api/tasks/route: run a task (routing.tasks.run_task). Async: the checks run in a pool
    thread, the task itself on the event loop."""
    if request.method != "POST":
        return error_response(405, f'Method "{request.method}" not allowed.', code="method_not_allowed",
                              headers={"Allow": "POST"})
    from routing.tasks import TaskFailed, run_task

    checked = await sync_to_async(task_checked, thread_sensitive=False)(request)
    if isinstance(checked, HttpResponse):
        return checked
    task, principal, agents = checked
    try:
        result = await run_task(task, principal=principal, agents=agents)
    except TaskFailed as failed:
        # No Retry-After: nothing says when waiting would help (DESIGN.md, "One error envelope").
        body = envelope(failed.message, type="service_unavailable" if failed.status == 503 else "invalid_request_error",
                        code="task_failed")
        return JsonResponse({**body, **failed.result.as_dict()}, status=failed.status)
    return JsonResponse(result.as_dict())
