"""OpenAPI post-processing: every operation documents the error body for the errors it
can answer, so clients see one shape in the schema as on the wire."""

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from governance.access import ANY_USER, DeclaredAccess

ERROR_STATUSES = {
    "400": "The request is invalid; `fields` names what is wrong.",
    "401": "Not authenticated: log in, or send `Authorization: Bearer <token>`.",
    "403": "Your role does not allow this.",
    "404": "No such resource (or not yours).",
}
ERROR_SCHEMA = {
    "type": "object",
    "description": "The body of every error response.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "example": "invalid"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "description": "Request fields that were wrong, with what is wrong.",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path in result.get("paths", {}).values():
        for method, operation in path.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for code, description in ERROR_STATUSES.items():
                if code == "400" and method in ("get", "delete"):
                    continue
                operation["responses"].setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": ERROR_REF}},
                    },
                )
    return result


class SchemaView(SpectacularAPIView):
    """The OpenAPI 3 schema, for any logged-in user (or token)."""

    access = {"GET": ANY_USER}
    permission_classes = [DeclaredAccess]


class DocsView(SpectacularSwaggerView):
    """Swagger UI over the schema, from vendored assets (drf-spectacular-sidecar)."""

    access = {"GET": ANY_USER}
    permission_classes = [DeclaredAccess]
