from django.contrib import admin

from audit.models import Entry


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin):
    """Read-only: entries are written by the service, never by hand."""

    list_display = ("at", "actor", "action", "source", "target_type", "target", "ip", "user_agent")
    list_filter = ("action", "source", "target_type", ("at", admin.DateFieldListFilter))
    search_fields = ("actor", "target", "target_id", "ip", "user_agent")
    date_hierarchy = "at"
    readonly_fields = [f.name for f in Entry._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
