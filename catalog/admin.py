from django.contrib import admin

from catalog.models import ImportRun, Item, Source, Topic, UserContext


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    """Read-only: whether a topic is sensitive is a governed change (Shepherd's Topics
    page, audited)."""

    list_display = ("slug", "name", "sensitive")
    list_filter = ("sensitive",)
    search_fields = ("slug", "name")

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("slug", "name")
    search_fields = ("slug", "name")


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("external_id", "title", "source", "sensitivity", "audience_rating")
    list_filter = ("sensitivity", "audience_rating")
    search_fields = ("external_id", "title")
    list_select_related = ("source",)
    exclude = ("features",)
    show_full_result_count = False  # counting 10⁶ rows on every page is slow


@admin.register(UserContext)
class UserContextAdmin(admin.ModelAdmin):
    list_display = ("external_id", "user_ref", "segment", "audience")
    list_filter = ("audience",)
    search_fields = ("external_id", "user_ref", "segment")
    show_full_result_count = False


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = ("kind", "source_name", "rows", "created", "seconds", "finished_at")
    list_filter = ("kind",)

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # provenance: read-only
