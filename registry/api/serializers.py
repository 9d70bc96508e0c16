"""Input validation for the REST API. Fields are camelCase as in the seeds; snake_case keys are
accepted too (`camelize_keys`). Output is built by registry.selectors / services (one shape each)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from registry.models import AgentStatus, KeyScope, ModelStatus, ModelType, QuotaScope
from routing.providers import ADAPTERS

_SNAKE = re.compile(r"_([a-z0-9])")


def camelize_keys(data: Any) -> Any:
    """{"context_window": 1} -> {"contextWindow": 1}, one level deep plus `freeQuota`."""
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        camel = _SNAKE.sub(lambda m: m.group(1).upper(), key) if isinstance(key, str) else key
        if camel == "freeQuota" and isinstance(value, dict):
            value = camelize_keys(value)
        out.setdefault(camel, value)
    return out


class CamelInput:
    def to_internal_value(self, data):
        return super().to_internal_value(camelize_keys(data))




def strings(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=200, **kwargs)


class QuotaSerializer(CamelInput, serializers.Serializer):
    requestsPerMinute = serializers.IntegerField(source="free_rpm", min_value=0, required=False, allow_null=True)
    requestsPerDay = serializers.IntegerField(source="free_rpd", min_value=0, required=False, allow_null=True)
    tokensPerMinute = serializers.IntegerField(source="free_tpm", min_value=0, required=False, allow_null=True)
    tokensPerDay = serializers.IntegerField(source="free_tpd", min_value=0, required=False, allow_null=True)


def _round_price(value):
    # Providers list prices per token with up to 12 decimals; per million that needs 6.
    return None if value is None else value.quantize(Decimal("0.000001"))


class ModelFieldsSerializer(CamelInput, serializers.Serializer):
    """The model's own fields, shared by register and update."""

    displayName = serializers.CharField(source="name", max_length=255, required=False)
    type = serializers.ChoiceField(choices=ModelType.choices, required=False)
    capabilities = strings()
    contextWindow = serializers.IntegerField(source="context_window", min_value=1, required=False, allow_null=True)
    maxOutputTokens = serializers.IntegerField(source="max_output_tokens", min_value=1, required=False, allow_null=True)
    inputPrice = serializers.DecimalField(source="input_price", decimal_places=12, max_digits=24, min_value=0, required=False, allow_null=True)
    outputPrice = serializers.DecimalField(source="output_price", decimal_places=12, max_digits=24, min_value=0, required=False, allow_null=True)
    isFree = serializers.BooleanField(source="is_free", required=False, allow_null=True)
    freeReason = serializers.CharField(source="free_reason", max_length=255, required=False, allow_blank=True)
    freeQuota = QuotaSerializer(required=False)
    quotaScope = serializers.ChoiceField(source="quota_scope", choices=QuotaScope.choices, required=False)
    status = serializers.ChoiceField(choices=ModelStatus.choices, required=False)
    tags = strings()
    metadata = serializers.DictField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    disabled = serializers.BooleanField(required=False)
    pinnedFields = strings(source="pinned_fields")
    priority = serializers.IntegerField(required=False, min_value=-100, max_value=100)

    def validate(self, attrs):
        for name in ("input_price", "output_price"):
            if name in attrs:
                attrs[name] = _round_price(attrs[name])
        quota = attrs.pop("freeQuota", None)
        if quota:
            attrs.update(quota)
        if attrs.get("is_free") is False and "free_reason" not in attrs:
            attrs["free_reason"] = ""
        return attrs


class ModelRegisterSerializer(ModelFieldsSerializer):
    """POST /api/models/register — the seed's payload: name, type, provider, endpoint, apiKey,
    description, capabilities (and optionally anything of ModelFieldsSerializer)."""

    name = serializers.CharField(max_length=255)
    modelId = serializers.CharField(source="model_id", max_length=255, required=False)
    provider = serializers.SlugField(max_length=64)
    providerKind = serializers.CharField(source="provider_kind", required=False)
    endpoint = serializers.URLField(max_length=512, required=False, allow_blank=True)
    apiKey = serializers.CharField(source="api_key", required=False, allow_blank=True, write_only=True)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        from registry.models import Provider

        slug = attrs["provider"]
        kind = attrs.get("provider_kind")
        existing = Provider.objects.filter(slug=slug).values("kind", "base_url").first()
        if existing is None:
            kind = kind or slug
            if kind not in ADAPTERS:
                raise serializers.ValidationError({
                    "providerKind" if "provider_kind" in attrs else "provider": [
                        f"Unknown provider kind '{kind}'. Name a known kind ({', '.join(ADAPTERS)}) "
                        "or pass providerKind for a new provider slug."
                    ]
                })
        else:
            if kind and kind != existing["kind"]:
                raise serializers.ValidationError(
                    {"providerKind": [f"Provider '{slug}' exists with kind '{existing['kind']}'."]}
                )
            endpoint = (attrs.get("endpoint") or "").rstrip("/")
            if endpoint and endpoint != existing["base_url"].rstrip("/"):
                raise serializers.ValidationError({"endpoint": [
                    f"Provider '{slug}' exists with endpoint {existing['base_url']}; "
                    "register another provider slug (with providerKind) for another endpoint."
                ]})
        attrs["provider_kind"] = kind
        attrs.setdefault("model_id", attrs["name"])
        return attrs


class AgentSerializer(CamelInput, serializers.Serializer):
    name = serializers.CharField(max_length=128)
    type = serializers.CharField(max_length=64, required=False, allow_blank=True)
    capabilities = strings()
    endpoint = serializers.URLField(max_length=512, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=AgentStatus.choices, required=False)
    metadata = serializers.DictField(required=False)


class FindSerializer(CamelInput, serializers.Serializer):
    """POST /api/models/find criteria (seed: capability, maxLatency, minReliability, maxCostPerToken)."""

    capability = serializers.CharField(max_length=64, required=False)
    capabilities = strings()
    type = serializers.ChoiceField(choices=ModelType.choices, required=False)
    provider = serializers.SlugField(required=False)
    maxLatency = serializers.FloatField(source="max_latency", min_value=0, required=False)
    minReliability = serializers.FloatField(source="min_reliability", min_value=0, max_value=1, required=False)
    maxCostPerToken = serializers.FloatField(source="max_cost_per_token", min_value=0, required=False)
    freeOnly = serializers.BooleanField(source="free_only", required=False)
    minContext = serializers.IntegerField(source="min_context", min_value=1, required=False)
    tags = strings()
    policy = serializers.ChoiceField(choices=["auto", "free", "cheap", "fast"], required=False)
    includeUnavailable = serializers.BooleanField(source="include_unavailable", required=False)
    limit = serializers.IntegerField(min_value=1, max_value=500, default=20)

    def validate(self, attrs):
        caps = list(attrs.pop("capabilities", []))
        if "capability" in attrs:
            caps.insert(0, attrs.pop("capability"))
        attrs["capabilities"] = tuple(dict.fromkeys(caps))
        attrs["tags"] = tuple(attrs.get("tags", ()))
        if attrs.get("policy") == "free":
            attrs["free_only"] = True
        return attrs


class ApiKeyCreateSerializer(CamelInput, serializers.Serializer):
    name = serializers.CharField(max_length=128)
    scope = serializers.ChoiceField(choices=KeyScope.choices, default=KeyScope.USER)
    rateLimitPerMinute = serializers.IntegerField(source="rate_limit_per_minute", min_value=1, required=False, allow_null=True)


class ProviderSerializer(CamelInput, serializers.Serializer):
    slug = serializers.SlugField(max_length=64)
    kind = serializers.ChoiceField(choices=list(ADAPTERS))
    name = serializers.CharField(max_length=128, required=False)
    baseUrl = serializers.URLField(source="base_url", max_length=512, required=False)
    apiKey = serializers.CharField(source="api_key", required=False, allow_blank=True, write_only=True)
    enabled = serializers.BooleanField(required=False)
    discoveryEnabled = serializers.BooleanField(source="discovery_enabled", required=False)
    discoveryInterval = serializers.IntegerField(source="discovery_interval", min_value=5, max_value=86400, required=False)
    probeEnabled = serializers.BooleanField(source="probe_enabled", required=False)
    freeQuota = QuotaSerializer(required=False)
    metadata = serializers.DictField(required=False)

    def validate(self, attrs):
        attrs.update(attrs.pop("freeQuota", None) or {})
        return attrs
