"""The labeling API (see annotation/apis.py)."""

from django.urls import path

from annotation import apis

urlpatterns = [
    path("assignments/next/", apis.AssignmentNextApi.as_view(), name="api-assignment-next"),
    path(
        "assignments/<int:pk>/heartbeat/",
        apis.AssignmentHeartbeatApi.as_view(),
        name="api-assignment-heartbeat",
    ),
    path(
        "assignments/<int:pk>/skip/", apis.AssignmentSkipApi.as_view(), name="api-assignment-skip"
    ),
    path(
        "assignments/<int:pk>/comparison/",
        apis.ComparisonSubmitApi.as_view(),
        name="api-assignment-comparison",
    ),
    path("comparisons/", apis.ComparisonListApi.as_view(), name="api-comparisons"),
    path("comparisons/<int:pk>/", apis.ComparisonDetailApi.as_view(), name="api-comparison"),
    path("demonstrations/", apis.DemonstrationListApi.as_view(), name="api-demonstrations"),
    path(
        "demonstrations/<int:pk>/",
        apis.DemonstrationDetailApi.as_view(),
        name="api-demonstration",
    ),
]
