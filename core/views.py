from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from catalog.selectors import catalog_counts
from core.selectors import health_report
from governance.roles import STAFF_ROLES, has_any_role


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    context = {}
    if has_any_role(request.user, STAFF_ROLES):
        context["counts"] = catalog_counts()
    return render(request, "core/home.html", context)


@login_not_required
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """For load balancers and docker-compose: 200 when the database answers, else 503.
    Reveals no data, so it needs no login."""
    try:
        report = health_report(now=timezone.now())
    except DatabaseError:
        return JsonResponse({"database": "unavailable"}, status=503)
    return JsonResponse(report)
