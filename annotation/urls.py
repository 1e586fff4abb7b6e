from django.urls import path

from annotation import views, views_demonstrations

app_name = "annotation"
urlpatterns = [
    path("", views.home, name="home"),
    path("compare/", views.compare, name="compare"),
    path("compare/prefetch/", views.compare_prefetch, name="compare_prefetch"),
    path("compare/waiting/", views.compare_waiting, name="compare_waiting"),
    path("assignments/<int:pk>/comparison/", views.compare_submit, name="compare_submit"),
    path("assignments/<int:pk>/skip/", views.assignment_skip, name="assignment_skip"),
    path(
        "assignments/<int:pk>/heartbeat/", views.assignment_heartbeat, name="assignment_heartbeat"
    ),
    path("study/", views.study, name="study"),
    path("comparisons/<int:pk>/edit/", views.comparison_edit, name="comparison_edit"),
    *views_demonstrations.urlpatterns,
]
