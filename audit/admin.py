from django.contrib import admin

from audit.models import Entry
from registry.admin import ReadOnlyAdmin


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    """Read-only: entries are written by the service, never by hand."""

    list_display = ("at", "actor", "action", "source", "target_type", "target", "ip", "user_agent")
    list_filter = ("action", "source", "target_type", ("at", admin.DateFieldListFilter))
    search_fields = ("actor", "target", "target_id", "ip", "user_agent")
    date_hierarchy = "at"
    readonly_fields = [f.name for f in Entry._meta.fields]
