from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from catalog.permissions import BROWSE_CATALOG
from catalog.selectors import catalog_counts
from core.api import error_body
from core.selectors import health_report
from governance.access import ANY_USER, PUBLIC, access


@access(GET=ANY_USER)
def home(request: HttpRequest) -> HttpResponse:
    context = {}
    if BROWSE_CATALOG.admits(request.user):
        context["counts"] = catalog_counts()
    return render(request, "core/home.html", context)


@access(GET=PUBLIC)
def health(request: HttpRequest) -> JsonResponse:
    """For load balancers and docker-compose: 200 when the database answers, else 503.
    Reveals no data, so it needs no login."""
    try:
        report = health_report(now=timezone.now())
    except DatabaseError:
        return JsonResponse({"database": "unavailable"}, status=503)
    return JsonResponse(report)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception=None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body("not_found", "No such resource."), status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            error_body("server_error", "Something went wrong on our side."), status=500
        )
    return render(request, "500.html", status=500)


def permission_denied(request: HttpRequest, exception=None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            error_body("permission_denied", "Your role does not allow this."), status=403
        )
    return render(request, "403.html", status=403)
