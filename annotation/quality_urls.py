"""Mounted at /quality/ (see config/urls.py)."""

from annotation.views_quality import app_name, urlpatterns

__all__ = ["app_name", "urlpatterns"]
