"""The API's foundation: the base view, access checks, pagination and one error body.

Every error, whatever raised it, answers
    {"error": {"code": "not_found", "message": "…", "fields": {"name": ["…"]}}}
where ``fields`` names the request fields that were wrong (empty otherwise).
"""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from core.pagination import Pagination

__all__ = ["ApiView", "FilteredListApi", "Pagination", "error_body", "error_response"]


class ApiView(APIView):
    """Declares ``access`` (method → audience) like the HTML views. Page login redirects
    do not apply: the API answers 401 to anonymous requests instead."""

    access: dict = {}

    @classmethod
    def as_view(cls, **initkwargs):
        return login_not_required(super().as_view(**initkwargs))


class FilteredListApi(ApiView):
    """A filtered page of rows. Subclasses set ``filterset_class`` and ``queryset`` (which
    only names the model, so the schema lists the filter parameters and the page shape);
    the rows themselves always come from the caller, who has already applied access."""

    filter_backends = [DjangoFilterBackend]
    pagination_class = Pagination
    filterset_class = None
    ordering = ("-pk",)

    def page_of(self, request, rows, render) -> Response:
        chosen = self.filterset_class(request.GET, queryset=rows)
        if not chosen.is_valid():
            raise exceptions.ValidationError(chosen.errors)
        page = Pagination()
        found = page.paginate_queryset(chosen.qs.order_by(*self.ordering), request, self)
        return page.get_paginated_response(render(found))


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_response(exc, context):
    """DRF's exception handler, reshaped into the one error body."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handling (JSON under /api/)
    if isinstance(exc, exceptions.ValidationError):
        fields = _fields(exc.detail)
        body = error_body("invalid", _first_message(fields) or "the request is invalid", fields)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = getattr(exc, "default_code", "error")
        body = error_body(str(code), str(detail))
    response.data = body
    return response


def _fields(detail) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        flat = {}
        for name, value in detail.items():
            if isinstance(value, dict):  # nested serializers: "parent.child"
                flat.update({f"{name}.{k}": v for k, v in _fields(value).items()})
            else:
                flat[str(name)] = [str(v) for v in (value if isinstance(value, list) else [value])]
        return flat
    return {
        "non_field_errors": [str(v) for v in (detail if isinstance(detail, list) else [detail])]
    }


def _first_message(fields: dict[str, list[str]]) -> str:
    for name, messages in fields.items():
        if messages:
            return messages[0] if name == "non_field_errors" else f"{name}: {messages[0]}"
    return ""
