"""Usage analytics over REST: performance, one model's usage, costs, a key's budget. DRF views that
validate their query, call analytics.selectors and answer JSON or, with `?format=csv`, stream CSV.

Who sees what: a user key sees its own usage only; an admin key (or staff session) sees every key's,
and may narrow to one with `?key=`. Money is a decimal string (exact), times are UTC ISO 8601.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC
from typing import Any

from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from analytics.budgets import key_budget_set, state
from analytics.models import UsageRollup
from analytics.selectors import WINDOWS
from registry.api.views import Base as RegistryView
from registry.budget import month_start
from registry.models import Agent, AgentStatus, AIModel, ApiKey, ModelStatus, Provider

KEY_MAX = 2**63 - 1  # a bigint id
NOBODY = -2  # a non-admin caller without a key (a user's JWT) has no usage of its own


class CSVRenderer(BaseRenderer):
    """Selects `?format=csv`; the views stream the CSV themselves (errors still answer JSON)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):  # only errors reach it
        return JSONRenderer().render(data)


def csv_response(header: list[str], rows: Iterable[list[Any]], filename: str) -> HttpResponse:
    """The table as one CSV body. Not streamed: the rows are in memory already, and Django under ASGI
    would read a sync iterator whole anyway (warning that it must)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# ------------------------------------------------------------------ query and response shapes


class WindowQuery(serializers.Serializer):
    """Any combination is valid, as the schema says (OpenAPI cannot state one between parameters):
    `until` defaults to now and `since` to `until` minus the window (24h by default), so a window
    is the length of a missing `since`; an `until` at or before `since` reads nothing after `since`."""

    window = serializers.ChoiceField(choices=list(WINDOWS), required=False,
                                     help_text="1h, 24h, 7d or 30d ending now (default 24h); or since/until")
    since = serializers.DateTimeField(required=False, help_text="start (ISO 8601; UTC when no offset)")
    until = serializers.DateTimeField(required=False, help_text="end, exclusive (default now)")
    key = serializers.IntegerField(required=False, min_value=1, max_value=KEY_MAX, help_text="one API key's id (admin keys)")
    format = serializers.ChoiceField(choices=["json", "csv"], required=False)

    def validate(self, attrs):
        for name in ("since", "until"):
            if attrs.get(name) is not None:
                attrs[name] = attrs[name].astimezone(UTC)
        if attrs.get("until") is not None and attrs.get("since") is None:
            try:
                attrs["since"] = attrs["until"] - WINDOWS[attrs.get("window") or "24h"]
            except OverflowError:  # an until in year 1
                attrs["since"] = attrs["until"]
        if attrs.get("since") is not None:
            attrs.pop("window", None)  # a named window ends now; this one does not
        return attrs


QUERY = [
    OpenApiParameter("window", str, enum=list(WINDOWS),
                     description="a window ending now (default 24h); with `until` alone, the length before it"),
    OpenApiParameter("since", OpenApiTypes.DATETIME,
                     description="start of a custom window (UTC if no offset; default: until minus the window)"),
    OpenApiParameter("until", OpenApiTypes.DATETIME,
                     description="end of a custom window, exclusive (default now; at or before since: an empty window)"),
    OpenApiParameter("key", {"type": "integer", "minimum": 1, "maximum": KEY_MAX}, description="one API key's id: admin keys only (a user key sees its own usage)"),
    OpenApiParameter("format", str, enum=["json", "csv"], description="csv streams a CSV table"),
]

def Money(**kw) -> serializers.CharField:  # noqa: N802 - a field factory: a decimal string, exact
    return serializers.CharField(help_text="USD, a decimal string", **kw)


class DistributionSerializer(serializers.Serializer):
    avg = serializers.FloatField(allow_null=True)
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


ErrorsByClassSerializer = type("ErrorsByClassSerializer", (serializers.Serializer,), {
    name: serializers.IntegerField() for name in selectors.ERROR_NAMES.values()})


class SummarySerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    errorRate = serializers.FloatField()
    errorsByClass = ErrorsByClassSerializer()
    failovers = serializers.IntegerField()
    freeRequests = serializers.IntegerField()
    tokensIn = serializers.IntegerField()
    tokensOut = serializers.IntegerField()
    latencyMs = DistributionSerializer(help_text="from rollup histograms: within +9.05 %/-8.30 % of exact")
    ttftMs = DistributionSerializer()
    costUsd = Money()
    referenceCostUsd = Money()
    savingsUsd = Money()
    unpricedRequests = serializers.IntegerField()


class ModelPerformanceSerializer(SummarySerializer):
    modelId = serializers.IntegerField(allow_null=True)
    model = serializers.CharField()
    provider = serializers.CharField()


class ProviderPerformanceSerializer(SummarySerializer):
    provider = serializers.CharField()


class PointSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    errorRate = serializers.FloatField()
    latencyMs = DistributionSerializer()
    ttftMs = DistributionSerializer()
    tokensIn = serializers.IntegerField()
    tokensOut = serializers.IntegerField()
    costUsd = Money()
    savingsUsd = Money()


class HeadSerializer(serializers.Serializer):
    window = serializers.CharField(allow_null=True)
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    resolution = serializers.ChoiceField(choices=["minute", "hour", "day"])


class PerformanceSerializer(HeadSerializer):
    totals = SummarySerializer()
    models = ModelPerformanceSerializer(many=True)
    providers = ProviderPerformanceSerializer(many=True)
    series = PointSerializer(many=True)


class ModelUsageSerializer(HeadSerializer):
    modelId = serializers.IntegerField(allow_null=True)
    model = serializers.CharField()
    totals = SummarySerializer()
    series = PointSerializer(many=True)


class CostRowSerializer(serializers.Serializer):
    day = serializers.DateField()
    keyId = serializers.IntegerField(allow_null=True)
    key = serializers.CharField()
    provider = serializers.CharField()
    requests = serializers.IntegerField()
    tokensIn = serializers.IntegerField()
    tokensOut = serializers.IntegerField()
    costUsd = Money()
    referenceCostUsd = Money()
    savingsUsd = Money()
    unpricedRequests = serializers.IntegerField()


class CostsSerializer(HeadSerializer):
    rows = CostRowSerializer(many=True)


class BudgetSerializer(serializers.Serializer):
    month = serializers.DateField()
    monthlyBudgetUsd = Money(allow_null=True)
    spentUsd = Money()
    remainingUsd = Money(allow_null=True)
    exhausted = serializers.BooleanField()
    freeOnly = serializers.BooleanField()


class KeyMeSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()
    prefix = serializers.CharField()
    scope = serializers.CharField()
    budget = BudgetSerializer()


class ErrorBodySerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField()
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


Error = ErrorEnvelopeSerializer
ERRORS = {
    400: OpenApiResponse(Error, description="invalid query"),
    401: OpenApiResponse(Error, description="no key, or an invalid one"),
    403: OpenApiResponse(Error, description="a user key asking for another key's usage"),
    429: OpenApiResponse(Error, description="this key's request rate is over its limit"),
}
CSV = OpenApiResponse(OpenApiTypes.STR, description="with ?format=csv: a CSV table, streamed")


# ------------------------------------------------------------------ views


class AnalyticsView(APIView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    def handle_exception(self, exc):
        # Errors answer in the JSON envelope whatever format was asked for.
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return super().handle_exception(exc)

    def query(self, request: Request) -> tuple[selectors.Window, int | None, bool]:
        """The window, whose usage (a key id, or None for every key) and whether CSV was asked for."""
        # A plain dict: DRF reads an empty form value as absent; here `window=` is a 400, as the schema says.
        q = WindowQuery(data=request.query_params.dict())
        q.is_valid(raise_exception=True)
        v = q.validated_data
        w = selectors.window(v.get("window"), v.get("since"), v.get("until"))
        if v.get("until") is not None and v["until"] <= v["since"]:
            w = replace(w, until=w.since)  # nothing is in it
        principal = request.user
        key_id = v.get("key")
        if not principal.is_admin:
            own = principal.key_id or NOBODY
            if key_id is not None and key_id != own:
                raise PermissionDenied("A user key sees its own usage only.", code="not_your_key")
            key_id = own
        return w, key_id, v.get("format") == "csv"


SUMMARY_CSV = ["requests", "errors", "errorRate", "failovers", "freeRequests", "tokensIn", "tokensOut",
               "latencyP50Ms", "latencyP95Ms", "latencyP99Ms", "ttftP50Ms", "ttftP95Ms", "ttftP99Ms",
               "costUsd", "referenceCostUsd", "savingsUsd", "unpricedRequests"]


def _summary_row(s: dict[str, Any]) -> list[Any]:
    lat, ttft = s["latencyMs"], s["ttftMs"]
    return [s["requests"], s["errors"], s["errorRate"], s["failovers"], s["freeRequests"], s["tokensIn"],
            s["tokensOut"], lat["p50"], lat["p95"], lat["p99"], ttft["p50"], ttft["p95"], ttft["p99"],
            s["costUsd"], s["referenceCostUsd"], s["savingsUsd"], s["unpricedRequests"]]


def _series_csv(points: list[dict[str, Any]], filename: str) -> HttpResponse:
    header = ["start", "requests", "errors", "errorRate", "latencyP50Ms", "latencyP95Ms", "latencyP99Ms",
              "ttftP50Ms", "ttftP95Ms", "ttftP99Ms", "tokensIn", "tokensOut", "costUsd", "savingsUsd"]
    return csv_response(header, ([p["start"], p["requests"], p["errors"], p["errorRate"], p["latencyMs"]["p50"],
                                p["latencyMs"]["p95"], p["latencyMs"]["p99"], p["ttftMs"]["p50"], p["ttftMs"]["p95"],
                                p["ttftMs"]["p99"], p["tokensIn"], p["tokensOut"], p["costUsd"], p["savingsUsd"]]
                               for p in points), filename)


class PerformanceView(AnalyticsView):
    @extend_schema(
        operation_id="performance_retrieve",
        summary="Requests, errors, latency and TTFT percentiles, tokens, cost and savings over a window: "
                "overall, per model, per provider, and a time series",
        parameters=QUERY, responses={(200, "application/json"): PerformanceSerializer, (200, "text/csv"): CSV, **ERRORS},
    )
    def get(self, request: Request):
        w, key_id, as_csv = self.query(request)
        report = selectors.performance(w, key_id=key_id)
        if as_csv:
            rows = [["(all)", "", "", *_summary_row(report["totals"])]]
            rows += [[m["model"], m["modelId"] or "", m["provider"], *_summary_row(m)] for m in report["models"]]
            return csv_response(["model", "modelId", "provider", *SUMMARY_CSV], rows, "performance.csv")
        return Response(report)


def _model_of(model_id: str) -> tuple[int, str]:
    """(pk, public id) of a numeric id or a public id `provider/model`; a public id no longer in the
    registry still reads its recorded usage."""
    if model_id.isdigit():
        m = get_object_or_404(AIModel.objects.select_related("provider"), pk=int(model_id))
        return m.pk, f"{m.provider.slug}/{m.model_id}"
    slug, _, name = model_id.partition("/")
    m = AIModel.objects.filter(provider__slug=slug, model_id=name).only("pk").first()
    if m is not None:
        return m.pk, model_id
    if name and UsageRollup.objects.filter(public_id=model_id).exists():
        return 0, model_id
    raise NotFound(f"No model '{model_id}'.", code="model_not_found")


class ModelUsageView(AnalyticsView):
    @extend_schema(
        operation_id="usage_retrieve",
        summary="One model's usage over a window: figures and a time series (numeric id or provider/model)",
        parameters=[OpenApiParameter("model_id", str, OpenApiParameter.PATH,
                                     description="the numeric id, or the public id provider/model"), *QUERY],
        responses={(200, "application/json"): ModelUsageSerializer, (200, "text/csv"): CSV, **ERRORS,
                   404: OpenApiResponse(Error, description="no such model")},
    )
    def get(self, request: Request, model_id: str):
        w, key_id, as_csv = self.query(request)
        pk, public_id = _model_of(model_id)
        report = selectors.model_usage(w, (pk, public_id), key_id=key_id)
        if as_csv:
            return _series_csv(report["series"], "usage.csv")
        return Response({**report, "modelId": pk or None, "model": public_id})


class CostsView(AnalyticsView):
    @extend_schema(
        operation_id="analytics_costs_retrieve",
        summary="Spend and savings by day × key × provider (days in UTC)",
        parameters=QUERY, responses={(200, "application/json"): CostsSerializer, (200, "text/csv"): CSV, **ERRORS},
    )
    def get(self, request: Request):
        w, key_id, as_csv = self.query(request)
        rows = selectors.costs(w, key_id=key_id)
        if as_csv:
            fields = ["day", "keyId", "key", "provider", "requests", "tokensIn", "tokensOut", "costUsd",
                      "referenceCostUsd", "savingsUsd", "unpricedRequests"]
            return csv_response(fields, ([r[f] if r[f] is not None else "" for f in fields] for r in rows), "costs.csv")
        head = {"window": w.name or None, "since": w.since, "until": w.until, "resolution": "day"}
        return Response({**head, "rows": rows})


class KeyMeView(APIView):
    @extend_schema(
        operation_id="keys_me_retrieve",
        summary="The calling key: name, scope, this month's spend and what is left of its budget",
        responses={200: KeyMeSerializer, 401: ERRORS[401], 429: ERRORS[429]},
    )
    def get(self, request: Request) -> Response:
        principal = request.user
        key = ApiKey.objects.filter(pk=principal.key_id).first() if principal.key_id else None
        if key is None:  # a staff session or a user's JWT: no key, no budget
            budget = {"month": month_start(timezone.now()).date().isoformat(),
                      "monthlyBudgetUsd": None, "spentUsd": "0.00000000", "remainingUsd": None,
                      "exhausted": False, "freeOnly": False}
            return Response({"id": None, "name": principal.name, "prefix": "", "scope": principal.scope, "budget": budget})
        return Response({"id": key.id, "name": key.name, "prefix": key.prefix, "scope": key.scope, "budget": state(key)})


BUDGET_TEXT = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"


@extend_schema_field({"oneOf": [{"type": "integer", "minimum": 0, "maximum": 9_999_999_999},
                                {"type": "string", "pattern": BUDGET_TEXT}], "nullable": True})
class BudgetField(serializers.DecimalField):
    """USD: a whole number or a decimal string with at most two decimals (the column's numeric(12, 2));
    no float (0.1 is not exact) and no coercion of anything else."""

    def __init__(self, **kwargs):
        super().__init__(max_digits=12, decimal_places=2, min_value=0, **kwargs)

    def run_validation(self, data=serializers.empty):
        # Before DRF's own: it reads "" as null when null is allowed.
        if data is not None and data is not serializers.empty and (
                isinstance(data, bool) or not isinstance(data, (int, str))
                or (isinstance(data, str) and not re.fullmatch(BUDGET_TEXT, data))):
            raise serializers.ValidationError('USD: a whole number, or a decimal string such as "20.00".',
                                              code="invalid")
        return super().run_validation(data)


class BudgetInput(serializers.Serializer):
    monthlyBudgetUsd = BudgetField(allow_null=True, help_text="USD a month; null removes the budget")


class KeyBudgetView(APIView):
    admin_only = True

    @extend_schema(
        operation_id="keys_budget_update",
        summary="Set or remove an API key's monthly budget (admin): past it the key is served by free models only",
        request=BudgetInput,
        responses={200: BudgetSerializer, 400: ERRORS[400], 401: ERRORS[401],
                   403: OpenApiResponse(Error, description="not an admin key"),
                   404: OpenApiResponse(Error, description="no such key"), 429: ERRORS[429]},
    )
    def put(self, request: Request, pk: int) -> Response:
        data = BudgetInput(data=request.data)
        data.is_valid(raise_exception=True)
        key = get_object_or_404(ApiKey, pk=pk)
        key_budget_set(key=key, limit=data.validated_data["monthlyBudgetUsd"])
        return Response(state(key))


class StatsView(RegistryView):
    """The registry's counts with today's usage (UTC) from the rollups: GET /api/stats."""

    @extend_schema(summary="Registry statistics", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        models = AIModel.objects

        def counts(field: str) -> dict[str, int]:
            return {row[field]: row["n"] for row in models.values(field).annotate(n=Count("id")).order_by(field)}

        agents = Agent.objects.aggregate(total=Count("id"), online=Count("id", filter=Q(status=AgentStatus.ONLINE)))
        free = models.filter(is_free=True).exclude(status=ModelStatus.RETIRED)
        return Response({
            "models": {
                "total": models.count(),
                "byStatus": counts("status"),
                "byType": counts("type"),
                "byProvider": counts("provider__slug"),
                "free": free.count(),
                "freeAvailable": free.filter(status=ModelStatus.AVAILABLE, disabled=False).count(),
            },
            "providers": {"total": Provider.objects.count(), "enabled": Provider.objects.filter(enabled=True).count()},
            "agents": {"total": agents["total"], "online": agents["online"], "offline": agents["total"] - agents["online"]},
            # Today (UTC) from the usage rollups: the caller's own for a user key, everyone's for an admin.
            "today": selectors.today(key_id=None if request.user.is_admin else (request.user.key_id or -2)),
        })
