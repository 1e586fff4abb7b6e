"""Governance pages, one module per area; each exposes ``urlpatterns``."""
