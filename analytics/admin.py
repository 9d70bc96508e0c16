"""Usage records and rollups in Django admin: read-only, filterable by key, model, provider, outcome
and date. Each record shows what it saved (analytics.rollups.savings_of: the README's rule)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.db.models import Q
from django.utils import timezone

from analytics.models import OutcomeClass, Resolution, UsageRecord, UsageRollup
from analytics.rollups import EVERY_KEY, savings_of
from registry.admin import ReadOnlyAdmin
from registry.models import ApiKey, Provider

# The outcome classes as conditions on a record's status and HTTP status, in analytics.rollups.outcome_of's order.
_CONDITIONS = [
    (OutcomeClass.OK, Q(status__in=["ok", "stream_capped"])),
    (OutcomeClass.STREAM_INTERRUPTED, Q(status="stream_interrupted")),
    (OutcomeClass.CANCELLED, Q(status__in=["client_disconnected", "cancelled"]) | Q(http_status=499)),
    (OutcomeClass.RATE_LIMITED, Q(http_status=429) | Q(status="rate_limited")),
    (OutcomeClass.TIMEOUT, Q(status__contains="timeout") | Q(http_status=504)),
    (OutcomeClass.CLIENT, Q(http_status__gte=400, http_status__lt=500)),
    (OutcomeClass.UPSTREAM, Q(http_status__gte=500)),
]


def outcome_q(outcome: str) -> Q:
    earlier = Q()
    for cls, cond in _CONDITIONS:
        if cls == outcome:
            return cond & ~earlier if earlier else cond
        earlier |= cond
    return Q(pk__in=[])


class KeyFilter(admin.SimpleListFilter):
    title = "API key"
    parameter_name = "key"

    def lookups(self, request, model_admin):
        return [(str(k.id), f"{k.name} ({k.prefix}…)") for k in ApiKey.objects.only("id", "name", "prefix")]

    def queryset(self, request, queryset):
        return queryset.filter(key_id=int(self.value())) if self.value() and self.value().isdigit() else queryset


class ProviderFilter(admin.SimpleListFilter):
    title = "provider"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        return [(slug, slug) for slug in Provider.objects.order_by("slug").values_list("slug", flat=True)]

    def queryset(self, request, queryset):
        return queryset.filter(provider=self.value()) if self.value() else queryset


class ModelFilter(admin.SimpleListFilter):
    """The models that served traffic in the last 7 days (from the day rollups: a few rows)."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        since = timezone.now() - timedelta(days=7)
        names = (UsageRollup.objects.filter(res=Resolution.DAY, start__gte=since).exclude(public_id="")
                 .order_by("public_id").values_list("public_id", flat=True).distinct())
        return [(n, n) for n in names]

    def queryset(self, request, queryset):
        return queryset.filter(public_id=self.value()) if self.value() else queryset


class RecordOutcomeFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return OutcomeClass.choices

    def queryset(self, request, queryset):
        return queryset.filter(outcome_q(self.value())) if self.value() else queryset


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = ("ts", "key_name", "public_id", "provider", "endpoint", "status", "http_status", "tokens_in",
                    "tokens_out", "latency_ms", "attempts", "cost", "savings", "reference_model")
    list_filter = (KeyFilter, ModelFilter, ProviderFilter, RecordOutcomeFilter, "endpoint", "is_free", "ts")
    search_fields = ("request_id", "public_id", "requested_model")
    date_hierarchy = "ts"
    show_full_result_count = False  # a count over millions of rows on every page is slow
    readonly_fields = ("savings",)

    @admin.display(description="savings (USD)")
    def savings(self, obj: UsageRecord):
        return savings_of(obj.cost, obj.reference_cost)


class RollupKeyFilter(KeyFilter):
    def lookups(self, request, model_admin):
        return [(str(EVERY_KEY), "every key (together)"), *super().lookups(request, model_admin)]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(key_id=int(value)) if value and value.lstrip("-").isdigit() else queryset


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    list_display = ("start", "res", "public_id", "provider", "key_id", "endpoint", "outcome", "requests", "errors",
                    "tokens_in", "tokens_out", "failovers", "cost", "reference_cost", "savings")
    list_filter = ("res", RollupKeyFilter, ModelFilter, ProviderFilter, "outcome", "endpoint", "start")
    search_fields = ("public_id",)
    date_hierarchy = "start"
    show_full_result_count = False
    exclude = ("lat_hist", "ttft_hist")
