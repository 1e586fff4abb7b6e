"""The audit log: filter it, page through it, export it as CSV (policy admins only)."""

import csv
import json

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path

from governance.access import POLICY_ADMINS, access
from governance.apis import AuditEventFilter
from governance.models import AuditEvent

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = [
    "id", "created_at", "actor_name", "action", "object_type", "object_id", "object_repr",
    "before", "after", "request_id",
]  # fmt: skip


def _filtered(request: HttpRequest) -> AuditEventFilter:
    return AuditEventFilter(request.GET, queryset=AuditEvent.objects.all())


@access(GET=POLICY_ADMINS)
def audit_list(request: HttpRequest) -> HttpResponse:
    events = _filtered(request)
    rows = events.qs if events.is_valid() else AuditEvent.objects.none()
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    actions = AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct()
    context = {"page": page, "filter": events, "actions": actions}
    template = "governance/audit/list.html" + ("#results" if request.htmx else "")
    return render(request, template, context)


class _Echo:
    def write(self, value: str) -> str:
        return value


@access(GET=POLICY_ADMINS)
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered log as CSV, streamed (it may be long)."""
    events = _filtered(request)
    rows = (
        events.qs.order_by("created_at", "id") if events.is_valid() else AuditEvent.objects.none()
    )
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(EXPORT_COLUMNS)
        for event in rows.iterator(chunk_size=2000):
            yield writer.writerow([_cell(getattr(event, name)) for name in EXPORT_COLUMNS])

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="shepherd-audit.csv"'
    return response


def _cell(value) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    if value is None:
        text = ""
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    elif isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    return "'" + text if text[:1] in FORMULA_STARTS else text


urlpatterns = [
    path("audit/", audit_list, name="audit_list"),
    path("audit/export.csv", audit_export, name="audit_export"),
]
