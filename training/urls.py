"""Mounted at /training/ (see config/urls.py)."""

from training.views import app_name, urlpatterns

__all__ = ["app_name", "urlpatterns"]
