"""Django admin for the registry. Every save and delete publishes through the one event publisher,
so the admin is a first-class writer like the API; provider secrets are write-only and masked."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction

from afmts import urlpolicy
from registry import services
from registry.budget import budget_set
from registry.events import publish
from registry.models import Agent, AIModel, Alias, ApiKey, Event, Provider, Source


class ReadOnlyAdmin(admin.ModelAdmin):
    """For rows only the services write (usage records, rollups, the audit log): viewable, never
    added, changed or deleted by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class PublishingAdmin(admin.ModelAdmin):
    created_event: str
    updated_event: str
    deleted_event: str

    def event_data(self, obj) -> dict:
        raise NotImplementedError

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            publish(self.updated_event if change else self.created_event, self.event_data(obj))

    def delete_model(self, request, obj):
        with transaction.atomic():
            data = self.event_data(obj)
            super().delete_model(request, obj)
            publish(self.deleted_event, data)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            data = [self.event_data(obj) for obj in queryset]
            super().delete_queryset(request, queryset)
            for item in data:
                publish(self.deleted_event, item)


class ProviderForm(forms.ModelForm):
    api_key = forms.CharField(
        label="API key", required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: stored encrypted, never shown. Leave empty to keep the current key.",
    )
    clear_api_key = forms.BooleanField(label="Remove the stored key", required=False)

    class Meta:
        model = Provider
        fields = "__all__"

    def clean(self):
        data = super().clean()
        url, kind = data.get("base_url"), data.get("kind") or getattr(self.instance, "kind", None)
        refusal = urlpolicy.message_for(url, kind=kind or "unknown") if url else None
        if refusal:
            self.add_error("base_url", refusal)
        return data

    def save(self, commit=True):
        provider = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            provider.api_key = None
        elif self.cleaned_data.get("api_key"):
            provider.api_key = self.cleaned_data["api_key"]
        if commit:
            provider.save()
        return provider


@admin.register(Provider)
class ProviderAdmin(PublishingAdmin):
    form = ProviderForm
    created_event, updated_event, deleted_event = "provider_registered", "provider_updated", "provider_deleted"
    list_display = ("slug", "name", "kind", "base_url", "enabled", "is_demo", "key_status", "model_count", "updated_at")
    list_filter = ("kind", "enabled", "is_demo")
    search_fields = ("slug", "name", "base_url")
    prepopulated_fields = {"slug": ("name",)}

    def event_data(self, obj):
        return services.provider_data(obj)

    @admin.display(description="API key")
    def key_status(self, obj: Provider) -> str:
        return "set (hidden)" if obj.has_api_key else "—"

    @admin.display(description="models")
    def model_count(self, obj: Provider) -> int:
        return obj.models.count()


@admin.register(AIModel)
class AIModelAdmin(PublishingAdmin):
    created_event, updated_event, deleted_event = "model_registered", "model_updated", "model_deleted"
    list_display = (
        "public_id", "name", "type", "status", "is_free", "input_price", "output_price", "context_window",
        "latency_ms", "reliability", "source", "disabled", "priority", "last_seen",
    )
    list_filter = ("status", "type", "is_free", "source", "disabled", "provider")
    search_fields = ("model_id", "name", "description", "provider__slug")
    list_select_related = ("provider",)
    readonly_fields = ("first_seen", "last_seen", "updated_at")
    list_editable = ("disabled", "priority")
    actions = ("disable", "enable")

    def event_data(self, obj):
        return services.model_data(obj)

    def save_model(self, request, obj, form, change):
        if change and obj.source == Source.DISCOVERED and "pinned_fields" not in form.changed_data:
            # An operator's edit outlives the next discovery run, as through the API (model_update).
            edited = set(form.changed_data) - {"disabled", "priority"}
            obj.pinned_fields = sorted(set(obj.pinned_fields) | edited)
        super().save_model(request, obj, form, change)

    @admin.display(description="id", ordering="model_id")
    def public_id(self, obj: AIModel) -> str:
        return obj.public_id

    def _set_disabled(self, request, queryset, value: bool):
        with transaction.atomic():
            for model in queryset.select_related("provider"):
                services.model_update(model=model, fields={"disabled": value})
        messages.success(request, f"{queryset.count()} model(s) {'disabled' if value else 'enabled'}.")

    @admin.action(description="Disable selected models")
    def disable(self, request, queryset):
        self._set_disabled(request, queryset, True)

    @admin.action(description="Enable selected models")
    def enable(self, request, queryset):
        self._set_disabled(request, queryset, False)


class AgentForm(forms.ModelForm):
    class Meta:
        model = Agent
        fields = "__all__"

    def clean_endpoint(self):
        url = self.cleaned_data.get("endpoint")
        refusal = urlpolicy.message_for(url, kind=urlpolicy.AGENT) if url else None
        if refusal:
            raise forms.ValidationError(refusal)
        return url


@admin.register(Agent)
class AgentAdmin(PublishingAdmin):
    form = AgentForm
    created_event, updated_event, deleted_event = "agent_connected", "agent_updated", "agent_deleted"
    list_display = ("name", "type", "status", "endpoint", "last_heartbeat", "updated_at")
    list_filter = ("status", "type")
    search_fields = ("name", "type", "endpoint")

    def event_data(self, obj):
        return services.agent_data(obj)


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("name", "scope", "rate_limit_per_minute", "monthly_budget_usd")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are made with a secret shown once (in a message) and revoked, never edited into existence."""

    form = ApiKeyForm
    list_display = ("name", "prefix", "scope", "rate_limit_per_minute", "monthly_budget_usd", "budget_spent_usd",
                    "created_at", "last_used_at", "revoked_at")
    list_filter = ("scope",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def save_model(self, request, obj, form, change):
        if change:
            with transaction.atomic():
                obj.save()
                publish("api_key_updated", {"id": obj.id, "name": obj.name, "prefix": obj.prefix, "scope": obj.scope})
                if "monthly_budget_usd" in form.changed_data:
                    budget_set.send(sender=ApiKey, key=obj)
            return
        key, secret = services.apikey_create(
            name=obj.name, scope=obj.scope, rate_limit_per_minute=obj.rate_limit_per_minute,
            monthly_budget_usd=obj.monthly_budget_usd,
        )
        obj.pk, obj.prefix, obj.hashed, obj.created_at = key.pk, key.prefix, key.hashed, key.created_at
        messages.warning(request, f"New API key (shown only now, copy it): {secret}")

    def delete_model(self, request, obj):
        services.apikey_revoke(key=obj)
        obj.delete()

    def delete_queryset(self, request, queryset):
        for key in queryset:
            self.delete_model(request, key)

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            services.apikey_revoke(key=key)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "event", "ts", "version")
    list_filter = ("event",)
    readonly_fields = ("event", "data", "ts", "version")

    def has_add_permission(self, request):
        return False


admin.site.site_header = "AFMTS administration"
admin.site.site_title = "AFMTS"


@admin.register(Alias)
class AliasAdmin(PublishingAdmin):
    created_event, updated_event, deleted_event = "alias_created", "alias_updated", "alias_deleted"
    list_display = ("name", "policy", "targets", "capabilities", "min_context", "max_price", "updated_at")
    search_fields = ("name", "description")

    def event_data(self, obj):
        return {"name": obj.name, **obj.route()}
