"""URL configuration: each app owns its URLs; this file only mounts them."""

from django.contrib import admin
from django.urls import include, path

from core.api_schema import DocsView, SchemaView

handler403 = "core.views.permission_denied"
handler404 = "core.views.not_found"
handler500 = "core.views.server_error"

api_v1 = [
    path("", include("governance.api_urls")),
    path("", include("annotation.api_urls")),
]

urlpatterns = [
    path("", include("core.urls")),
    path("catalog/", include("catalog.urls")),
    path("governance/", include("governance.urls")),
    path("label/", include("annotation.urls")),
    path("quality/", include("annotation.quality_urls")),
    path("training/", include("training.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/docs/", DocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
