"""The labeling API (see annotation/apis.py)."""

urlpatterns: list = []
