"""URL configuration: each app owns its URLs; this file only mounts them."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("core.urls")),
    path("catalog/", include("catalog.urls")),
    path("admin/", admin.site.urls),
]
