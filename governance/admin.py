"""The Django admin for governed objects is read-only: their changes must go through the
services (validation, immutability, the audit log), which the Shepherd pages call. Users'
roles edited here are audited like on the People page."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

from governance import services
from governance.audit import audit_record
from governance.models import (
    ApiToken,
    AuditEvent,
    ContentPolicy,
    Criterion,
    Guideline,
    GuidelineAcknowledgement,
    GuidelineVersion,
    PolicyVersion,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Criterion)
class CriterionAdmin(ReadOnlyAdmin):
    list_display = ("slug", "name", "is_veto", "weight", "active")


@admin.register(ContentPolicy)
class ContentPolicyAdmin(ReadOnlyAdmin):
    list_display = ("slug", "name", "created_at")


@admin.register(PolicyVersion)
class PolicyVersionAdmin(ReadOnlyAdmin):
    list_display = ("policy", "number", "status", "changelog", "published_at")
    list_filter = ("status", "policy")


@admin.register(Guideline)
class GuidelineAdmin(ReadOnlyAdmin):
    list_display = ("slug", "title", "task_kind")


@admin.register(GuidelineVersion)
class GuidelineVersionAdmin(ReadOnlyAdmin):
    list_display = ("guideline", "number", "status", "changelog", "published_at")
    list_filter = ("status", "guideline")


@admin.register(GuidelineAcknowledgement)
class GuidelineAcknowledgementAdmin(ReadOnlyAdmin):
    list_display = ("user", "version", "acknowledged_at")


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    exclude = ("key_hash",)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor_name", "action", "object_type", "object_id")
    list_filter = ("action", "object_type")
    search_fields = ("actor_name", "object_id", "object_repr", "request_id")
    show_full_result_count = False


admin.site.unregister(User)


@admin.register(User)
class AuditedUserAdmin(UserAdmin):
    """Role groups changed here are audited like on the People page (the admin's save
    runs in one transaction, which the event joins)."""

    def save_related(self, request, form, formsets, change):
        before = services.user_roles_of(form.instance) if change else frozenset()
        super().save_related(request, form, formsets, change)
        after = services.user_roles_of(form.instance)
        if after != before:
            audit_record(
                actor=request.user, action="user.roles", target=form.instance,
                before={"roles": sorted(r.value for r in before)},
                after={"roles": sorted(r.value for r in after)},
            )  # fmt: skip
