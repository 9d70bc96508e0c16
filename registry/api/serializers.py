"""Input validation for the REST API. Fields are camelCase as in the seeds; snake_case keys are
accepted too (`camelize_keys`). Output is built by registry.selectors / services (one shape each)."""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound

from afmts import urlpolicy
from afmts.errors import Conflict
from registry.models import AgentStatus, KeyScope, ModelStatus, ModelType, QuotaScope
from registry.providers import ADAPTERS

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


# The largest value of a PositiveIntegerField / IntegerField column on PostgreSQL (and so everywhere).
INT_MAX = 2_147_483_647
# Prices are numeric(14, 6): 8 digits before the point.
PRICE_MAX = Decimal("99999999")  # rounded to 6 places, it still fits


NO_NUL = RegexValidator(r"^[^\x00]*$", message="Null characters are not allowed.", code="null_characters_not_allowed")


class Strict:
    """JSON types as the schema states them: no "12" for an integer, no 1 for a boolean, no 123 for
    a string (DRF coerces all of these)."""

    json_types: tuple[type, ...] = ()

    def to_internal_value(self, data):
        if not isinstance(data, self.json_types) or (isinstance(data, bool) and bool not in self.json_types):
            raise serializers.ValidationError(
                f"Expected {self.json_name}, got {type(data).__name__}.", code="invalid_type"
            )
        return super().to_internal_value(data)

    @property
    def json_name(self) -> str:
        return {str: "a string", int: "an integer", bool: "a boolean"}.get(self.json_types[0], "a number")


class Text(Strict, serializers.CharField):
    """A string as sent (not trimmed), without NUL characters (PostgreSQL cannot store them): the
    schema says both (a pattern), so what it calls valid is accepted."""

    json_types = (str,)

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        self.validators.append(NO_NUL)


class Slug(Strict, serializers.SlugField):
    json_types = (str,)


class Choice(Strict, serializers.ChoiceField):
    """A closed list; a refusal names every valid value."""

    json_types = (str,)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        valid = ", ".join(str(c) for c in self.choices)
        self.error_messages["invalid_choice"] = f'"{{input}}" is not a valid choice: one of {valid}.'


class Integer(Strict, serializers.IntegerField):
    json_types = (int,)

    def __init__(self, **kwargs):
        kwargs.setdefault("max_value", INT_MAX)
        kwargs.setdefault("min_value", -INT_MAX - 1)
        super().__init__(**kwargs)


class Boolean(Strict, serializers.BooleanField):
    json_types = (bool,)


class Float(Strict, serializers.FloatField):
    json_types = (int, float)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value != value or value in (float("inf"), float("-inf")):
            raise serializers.ValidationError("Expected a finite number.", code="invalid")
        return value


PRICE_TEXT = r"^[0-9]{1,8}(\.[0-9]{1,12})?$"


@extend_schema_field({"oneOf": [
    {"type": "number", "minimum": 0, "maximum": int(PRICE_MAX)},
    {"type": "string", "pattern": PRICE_TEXT},
]})
class Price(Strict, serializers.DecimalField):
    """USD per million tokens: a JSON number, or a decimal string ("2.5") for exact values."""

    json_types = (int, float, str)

    def __init__(self, **kwargs):
        # No precision check: to_internal_value rounds to the column's 6 decimal places.
        kwargs.update(max_digits=None, decimal_places=None, min_value=0, max_value=PRICE_MAX, coerce_to_string=False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and not re.fullmatch(PRICE_TEXT, data):
            raise serializers.ValidationError("A decimal string such as \"2.5\" (at most 8 digits before the point).",
                                              code="invalid")
        value = super().to_internal_value(data)
        if not 0 <= value <= PRICE_MAX:
            return value  # the min/max validators refuse it
        # Providers list prices per token with up to 12 decimals; per million that needs 6 (the column's).
        return value.quantize(Decimal("0.000001"))


class ProviderSlug(Slug):
    """A provider slug as stored: Django's slugify of what is sent ("Demo-Groq" is "demo-groq"), so
    two spellings of one slug are one provider, found before a write rather than by the database."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        from django.utils.text import slugify

        slug = slugify(super().to_internal_value(data))
        if not slug:
            raise serializers.ValidationError("A slug needs a letter or a digit.", code="invalid")
        return slug


def strings(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=Text(max_length=64), required=False, max_length=200, **kwargs)


class OutboundURL(serializers.URLField):
    """A URL AFMTS will call (afmts/urlpolicy.py). Refused here, naming the rule, when it breaks a
    rule that holds for every kind (scheme, metadata, link-local, IPv4 notation, ...); the
    serializer checks the kind's own rule (loopback/private) with `check_outbound`."""

    def to_internal_value(self, data):
        url = super().to_internal_value(data)
        refusal = urlpolicy.message_for(url, kind=None, resolve=False) if url else None
        if refusal:
            raise serializers.ValidationError(refusal, code="url_policy")
        return url


def check_outbound(url: str | None, *, kind: str, field: str) -> None:
    """The whole outbound URL policy for `kind`, the host resolved when that is quick: a 400 naming
    `field` and the rule. The connect-time check stays the real guard (DNS may change)."""
    refusal = urlpolicy.message_for(url, kind=kind) if url else None
    if refusal:
        raise serializers.ValidationError({field: [refusal]}, code="url_policy")


class QuotaSerializer(CamelInput, serializers.Serializer):
    requestsPerMinute = Integer(source="free_rpm", min_value=0, required=False, allow_null=True)
    requestsPerDay = Integer(source="free_rpd", min_value=0, required=False, allow_null=True)
    tokensPerMinute = Integer(source="free_tpm", min_value=0, required=False, allow_null=True)
    tokensPerDay = Integer(source="free_tpd", min_value=0, required=False, allow_null=True)


class ModelFieldsSerializer(CamelInput, serializers.Serializer):
    """The model's own fields, shared by register and update."""

    displayName = Text(source="name", max_length=255, required=False)
    type = Choice(choices=ModelType.choices, required=False)
    capabilities = strings()
    contextWindow = Integer(source="context_window", min_value=1, required=False, allow_null=True)
    maxOutputTokens = Integer(source="max_output_tokens", min_value=1, required=False, allow_null=True)
    inputPrice = Price(source="input_price", required=False, allow_null=True)
    outputPrice = Price(source="output_price", required=False, allow_null=True)
    isFree = Boolean(source="is_free", required=False, allow_null=True)
    freeReason = Text(source="free_reason", max_length=255, required=False, allow_blank=True)
    freeQuota = QuotaSerializer(required=False)
    quotaScope = Choice(source="quota_scope", choices=QuotaScope.choices, required=False)
    status = Choice(choices=ModelStatus.choices, required=False)
    tags = strings()
    metadata = serializers.DictField(required=False)
    description = Text(required=False, allow_blank=True, max_length=10_000)
    disabled = Boolean(required=False)
    pinnedFields = strings(source="pinned_fields")
    priority = Integer(required=False, min_value=-100, max_value=100)

    def validate(self, attrs):
        quota = attrs.pop("freeQuota", None)
        if quota:
            attrs.update(quota)
        if attrs.get("is_free") is False and "free_reason" not in attrs:
            attrs["free_reason"] = ""
        return attrs


class ModelUpdateSerializer(ModelFieldsSerializer):
    """PATCH /api/models/{id}: the fields sent change, the others stay. `isFree` is true or false
    here (null, "decide for me", exists only on registration)."""

    isFree = Boolean(source="is_free", required=False)


class ModelReplaceSerializer(ModelUpdateSerializer):
    """PUT /api/models/{id}: a full replace of the operator-editable fields. `displayName` is
    required; every field not sent takes the default a new model has."""

    displayName = Text(source="name", max_length=255)

    DEFAULTS: dict[str, Any] = {
        "type": ModelType.LLM, "capabilities": [], "context_window": None, "max_output_tokens": None,
        "input_price": None, "output_price": None, "is_free": False, "free_reason": "",
        "free_rpm": None, "free_rpd": None, "free_tpm": None, "free_tpd": None,
        "quota_scope": QuotaScope.MODEL, "status": ModelStatus.AVAILABLE, "tags": [], "metadata": {},
        "description": "", "disabled": False, "priority": 0,
    }  # pinnedFields not sent: the fields that change are pinned on a discovered model, as on PATCH

    def validate(self, attrs):
        return {**copy.deepcopy(self.DEFAULTS), **super().validate(attrs)}


class ModelRegisterSerializer(ModelFieldsSerializer):
    """POST /api/models/register — the seed's payload: name, type, provider, endpoint, apiKey,
    description, capabilities (and optionally anything of ModelFieldsSerializer)."""

    name = Text(max_length=255)
    modelId = Text(source="model_id", max_length=255, required=False)
    provider = ProviderSlug()
    providerKind = Choice(source="provider_kind", choices=list(ADAPTERS), required=False)
    endpoint = OutboundURL(max_length=512, required=False, allow_blank=True)
    apiKey = Text(source="api_key", required=False, allow_blank=True, write_only=True, max_length=4096)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        from registry.models import Provider

        slug = attrs["provider"]
        kind = attrs.get("provider_kind")
        existing = Provider.objects.filter(slug=slug).values("kind", "base_url").first()
        # What the registry holds decides the rest: a missing provider is a 404 and a clash with the
        # stored one a 409, never a 400 (the body is well formed whatever the registry holds).
        if existing is None:
            kind = kind or slug
            if kind not in ADAPTERS:
                raise NotFound(f"No provider '{slug}', and it is no provider kind ({', '.join(ADAPTERS)}): "
                               "pass providerKind to add it.", code="provider_not_found")
            check_outbound(attrs.get("endpoint"), kind=kind, field="endpoint")
        else:
            if kind and kind != existing["kind"]:
                raise Conflict(f"Provider '{slug}' exists with kind '{existing['kind']}'.")
            from registry.services import canonical_base_url

            endpoint = canonical_base_url(existing["kind"], attrs["endpoint"]) if attrs.get("endpoint") else ""
            if endpoint and endpoint != existing["base_url"].rstrip("/"):
                raise Conflict(f"Provider '{slug}' exists with endpoint {existing['base_url']}; "
                               "register another provider slug (with providerKind) for another endpoint.")
        attrs["provider_kind"] = kind
        attrs.setdefault("model_id", attrs["name"])
        return attrs


class AgentSerializer(CamelInput, serializers.Serializer):
    name = Text(max_length=128)
    type = Text(max_length=64, required=False, allow_blank=True)
    capabilities = strings()
    endpoint = OutboundURL(max_length=512, required=False, allow_blank=True)
    status = Choice(choices=AgentStatus.choices, required=False)
    metadata = serializers.DictField(required=False)

    def validate(self, attrs):
        check_outbound(attrs.get("endpoint"), kind=urlpolicy.AGENT, field="endpoint")
        return attrs


class AgentReplaceSerializer(AgentSerializer):
    """PUT /api/agents/{id}: a full replace; `name` is required, every field not sent takes the
    default a new agent has."""

    DEFAULTS: dict[str, Any] = {
        "type": "", "capabilities": [], "endpoint": "", "status": AgentStatus.ONLINE, "metadata": {},
    }

    def validate(self, attrs):
        return {**copy.deepcopy(self.DEFAULTS), **super().validate(attrs)}


class FindSerializer(CamelInput, serializers.Serializer):
    """POST /api/models/find criteria (seed: capability, maxLatency, minReliability, maxCostPerToken)."""

    capability = Text(max_length=64, required=False)
    capabilities = strings()
    type = Choice(choices=ModelType.choices, required=False)
    provider = Slug(max_length=64, required=False)
    maxLatency = Float(source="max_latency", min_value=0, required=False)
    minReliability = Float(source="min_reliability", min_value=0, max_value=1, required=False)
    maxCostPerToken = Float(source="max_cost_per_token", min_value=0, required=False)
    freeOnly = Boolean(source="free_only", required=False)
    minContext = Integer(source="min_context", min_value=1, required=False)
    tags = strings()
    policy = Choice(choices=["auto", "free", "cheap", "fast"], required=False)
    includeUnavailable = Boolean(source="include_unavailable", required=False)
    limit = Integer(min_value=1, max_value=500, default=20)

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
    name = Text(max_length=128)
    scope = Choice(choices=KeyScope.choices, default=KeyScope.USER)
    rateLimitPerMinute = Integer(source="rate_limit_per_minute", min_value=1, required=False, allow_null=True)


class ProviderSerializer(CamelInput, serializers.Serializer):
    slug = ProviderSlug()
    kind = Choice(choices=list(ADAPTERS))
    name = Text(max_length=128, required=False)
    baseUrl = OutboundURL(source="base_url", max_length=512, required=False)
    apiKey = Text(source="api_key", required=False, allow_blank=True, write_only=True, max_length=4096)
    enabled = Boolean(required=False)
    discoveryEnabled = Boolean(source="discovery_enabled", required=False)
    discoveryInterval = Integer(source="discovery_interval", min_value=5, max_value=86400, required=False)
    probeEnabled = Boolean(source="probe_enabled", required=False)
    freeQuota = QuotaSerializer(required=False)
    metadata = serializers.DictField(required=False)

    def validate(self, attrs):
        attrs.update(attrs.pop("freeQuota", None) or {})
        if attrs.get("base_url"):
            check_outbound(attrs["base_url"], kind=attrs.get("kind") or self._stored_kind(), field="baseUrl")
        return attrs

    def _stored_kind(self) -> str:
        """A PATCH names no kind: the provider's own (unknown counts as hosted, the strict rule)."""
        from registry.models import Provider

        view = self.context.get("view")
        pk = getattr(view, "kwargs", {}).get("pk")
        return Provider.objects.filter(pk=pk).values_list("kind", flat=True).first() or "unknown"
