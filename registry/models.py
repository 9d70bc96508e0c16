from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models

from registry import crypto
from registry.providers import KIND_CHOICES


class QuotaScope(models.TextChoices):
    MODEL = "model", "per model"
    ACCOUNT = "account", "per account"


class QuotaFields(models.Model):
    """A free-tier quota: how much of a free model can be used per window. Null = not known."""

    free_rpm = models.PositiveIntegerField("requests/minute", null=True, blank=True)
    free_rpd = models.PositiveIntegerField("requests/day", null=True, blank=True)
    free_tpm = models.PositiveIntegerField("tokens/minute", null=True, blank=True)
    free_tpd = models.PositiveIntegerField("tokens/day", null=True, blank=True)

    class Meta:
        abstract = True

    def quota(self) -> dict:
        return {
            "requestsPerMinute": self.free_rpm,
            "requestsPerDay": self.free_rpd,
            "tokensPerMinute": self.free_tpm,
            "tokensPerDay": self.free_tpd,
        }


class ProviderStatus(models.TextChoices):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


class Provider(QuotaFields):
    """One account at one upstream: a kind of adapter, a base URL and one credential."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=128)
    kind = models.CharField(max_length=32, choices=KIND_CHOICES)
    base_url = models.URLField(max_length=512)
    enabled = models.BooleanField(default=True)
    is_demo = models.BooleanField(default=False, help_text="A demo provider (the fake server).")
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    # The default free quota above applies to the whole account (e.g. OpenRouter's 20/min, 50/day).
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Discovery and health (the tracker). Written only when something changes, so an unchanged
    # discovery cycle writes nothing.
    discovery_enabled = models.BooleanField(default=True)
    discovery_interval = models.PositiveIntegerField(
        default=30, help_text="Seconds between listings (the beat row's period is the floor)."
    )
    probe_enabled = models.BooleanField(
        default=False,
        help_text="Allow active completion probes even when the free quota is account-wide and scarce.",
    )
    status = models.CharField(max_length=8, choices=ProviderStatus.choices, default=ProviderStatus.UNKNOWN)
    failures = models.PositiveIntegerField(default=0, help_text="Consecutive failed listings.")
    last_error = models.TextField(blank=True, default="")
    last_discovery_at = models.DateTimeField(null=True, blank=True)
    next_discovery_at = models.DateTimeField(null=True, blank=True, help_text="Back-off after failures.")

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted)

    @api_key.setter
    def api_key(self, value: str | None) -> None:
        self.api_key_encrypted = crypto.encrypt(value) if value else ""

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)


class ModelType(models.TextChoices):
    LLM = "llm"  # the umbrella: chat and completion models are LLMs too (registry.selectors)
    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDING = "embedding"
    VISION = "vision"
    IMAGE = "image"
    AUDIO = "audio"
    RERANK = "rerank"


class ModelStatus(models.TextChoices):
    AVAILABLE = "available"
    DEGRADED = "degraded"
    DOWN = "down"
    RETIRED = "retired"


class Source(models.TextChoices):
    MANUAL = "manual"
    DISCOVERED = "discovered"


PRICE = dict(
    max_digits=14, decimal_places=6, null=True, blank=True, validators=[MinValueValidator(0)],
    help_text="USD per million tokens; empty when unknown.",
)


class AIModel(QuotaFields):
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    model_id = models.CharField("model id", max_length=255, help_text="The id as the provider names it.")
    name = models.CharField(max_length=255)
    type = models.CharField(max_length=16, choices=ModelType.choices, default=ModelType.LLM)
    capabilities = models.JSONField(default=list, blank=True)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    input_price = models.DecimalField("input $/M tokens", **PRICE)
    output_price = models.DecimalField("output $/M tokens", **PRICE)
    is_free = models.BooleanField(default=False)
    free_reason = models.CharField(max_length=255, blank=True, default="")
    quota_scope = models.CharField(max_length=16, choices=QuotaScope.choices, default=QuotaScope.MODEL)
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.AVAILABLE)
    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True, default="")
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    latency_ms = models.FloatField("latency EWMA (ms)", null=True, blank=True)
    reliability = models.FloatField("success ratio", null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    # Operator controls: discovery honours them (DESIGN.md).
    disabled = models.BooleanField(default=False)
    pinned_fields = models.JSONField(default=list, blank=True, help_text="Fields discovery must not overwrite.")
    priority = models.IntegerField(default=0, help_text="Higher ranks first among otherwise equal models.")
    # Digest of the listing entry discovery last applied: an unchanged entry is skipped unread.
    fingerprint = models.CharField(max_length=40, blank=True, default="", editable=False)
    # When the provider ends the model's free offer (OpenRouter's expiration_date); past it the
    # model is not routed and its history says it expired.
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "AI model"
        ordering = ["provider__slug", "model_id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model_id"], name="unique_model_per_provider"),
        ]
        indexes = [
            models.Index(fields=["is_free", "status"]),
            models.Index(fields=["type"]),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def public_id(self) -> str:
        return f"{self.provider.slug}/{self.model_id}"


class AgentStatus(models.TextChoices):
    ONLINE = "online"
    OFFLINE = "offline"
    BUSY = "busy"


class Agent(models.Model):
    name = models.CharField(max_length=128, unique=True)
    type = models.CharField(max_length=64, blank=True, default="")
    capabilities = models.JSONField(default=list, blank=True)
    endpoint = models.URLField(max_length=512, blank=True, default="")
    status = models.CharField(max_length=16, choices=AgentStatus.choices, default=AgentStatus.ONLINE)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class KeyScope(models.TextChoices):
    ADMIN = "admin"
    USER = "user"


class ApiKey(models.Model):
    """A key for the API and gateway. Only its SHA-256 is stored; `prefix` is shown to tell keys apart."""

    name = models.CharField(max_length=128)
    prefix = models.CharField(max_length=16, unique=True)
    hashed = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(max_length=8, choices=KeyScope.choices, default=KeyScope.USER)
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text="Empty = unlimited.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Budget (analytics.budgets): past the monthly limit the gateway serves the key from free models
    # only. The month's spend is refreshed by the rollup task, not per request.
    monthly_budget_usd = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="Monthly spend limit in USD; empty = none."
    )
    budget_spent_usd = models.DecimalField(max_digits=20, decimal_places=8, default=0, editable=False)
    budget_month = models.DateField(null=True, blank=True, editable=False)  # the month budget_spent_usd counts
    budget_level = models.CharField(max_length=9, blank=True, default="", editable=False)  # "", warning, exhausted

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class RegistryState(models.Model):
    """A single row: the registry version, bumped by every published event so that every process
    notices a write (its in-memory snapshots and key cache rebuild when it changes)."""

    version = models.BigIntegerField(default=0)


class Event(models.Model):
    """The recent-events table behind GET /api/events; bounded (AFMTS_EVENTS_KEEP)."""

    event = models.CharField(max_length=64, db_index=True)
    data = models.JSONField(default=dict)
    ts = models.DateTimeField(db_index=True)
    version = models.BigIntegerField()
    # The process that published it: the embedded-mode relay forwards only other processes' events.
    origin = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def envelope(self) -> dict:
        return envelope(self.id, self.event, self.data, self.ts.isoformat())


def envelope(pk: int, event: str, data: dict, ts: str) -> dict:
    """An event as its clients receive it (WebSocket, GET /api/events); `ts` in ISO 8601."""
    return {"id": pk, "event": event, "data": data, "ts": ts}


class ModelChange(models.Model):
    """History: one row per changed field of a model (registered, updated, retired, free or not)."""

    model = models.ForeignKey(AIModel, on_delete=models.SET_NULL, null=True, related_name="changes")
    public_id = models.CharField(max_length=320, db_index=True)
    event = models.CharField(max_length=64)
    field = models.CharField(max_length=64, blank=True, default="")
    old = models.JSONField(null=True, blank=True)
    new = models.JSONField(null=True, blank=True)
    # Why a model became or stopped being free: listed, price, withdrawn, returned, expired, operator.
    reason = models.CharField(max_length=32, blank=True, default="")
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["field", "at"])]

    def __str__(self) -> str:
        return f"{self.public_id} {self.event} {self.field}"


class QuotaState(models.Model):
    """What is known of one window of a free quota: the provider's own word (rate-limit headers,
    429 bodies) and what AFMTS has counted since. `model` is empty for an account-wide quota."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="quota_states")
    model = models.ForeignKey(AIModel, on_delete=models.CASCADE, null=True, blank=True, related_name="quota_states")
    window = models.CharField(max_length=32, help_text='"requests/minute", "tokens/day", ...')
    limit = models.PositiveBigIntegerField(null=True, blank=True)
    remaining = models.BigIntegerField(null=True, blank=True, help_text="As last reported by the provider.")
    used = models.PositiveBigIntegerField(default=0, help_text="Counted by AFMTS since the report or reset.")
    reset_at = models.DateTimeField(null=True, blank=True)
    observed_at = models.DateTimeField()
    source = models.CharField(max_length=16, default="headers")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "model", "window"], name="unique_quota_window"),
            models.UniqueConstraint(
                fields=["provider", "window"], condition=models.Q(model__isnull=True), name="unique_account_quota_window"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider_id}/{self.model_id or '*'} {self.window}"


class HealthSample(models.Model):
    """One piece of health evidence for a model: a gateway result, or an active probe."""

    model = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="health_samples")
    ok = models.BooleanField()
    latency_ms = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=16, default="traffic")  # traffic | probe
    error = models.CharField(max_length=255, blank=True, default="")
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["model", "-at"])]
        ordering = ["-at"]


class Alias(models.Model):
    """An operator's name for a route: a fixed list of models (tried in order), or a routing policy
    with requirements. Requests name it in `model`, like a model."""

    name = models.SlugField(max_length=128, unique=True)
    targets = models.JSONField(default=list, blank=True, help_text="Public ids of models, tried in order.")
    policy = models.CharField(
        max_length=8, blank=True, default="",
        choices=[("auto", "auto"), ("free", "free"), ("cheap", "cheap"), ("fast", "fast")],
        help_text="Used when no models are listed.",
    )
    capabilities = models.JSONField(default=list, blank=True)
    min_context = models.PositiveIntegerField(null=True, blank=True)
    max_price = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    exclude_providers = models.JSONField(default=list, blank=True)
    prefer_providers = models.JSONField(default=list, blank=True)
    description = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "aliases"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def route(self) -> dict:
        """The alias as the router reads it (routing.router.plan's `aliases`)."""
        out: dict = {"models": list(self.targets or []), "policy": self.policy or "auto"}
        if self.capabilities:
            out["capabilities"] = list(self.capabilities)
        if self.min_context:
            out["min_context"] = self.min_context
        if self.max_price is not None:
            out["max_price"] = float(self.max_price)
        if self.exclude_providers:
            out["exclude_providers"] = list(self.exclude_providers)
        if self.prefer_providers:
            out["prefer_providers"] = list(self.prefer_providers)
        return out
