from django.urls import path

from governance import apis

urlpatterns = [
    path("me/", apis.MeApi.as_view(), name="api-me"),
    path("tokens/", apis.TokenListApi.as_view(), name="api-tokens"),
    path("tokens/<int:pk>/", apis.TokenRevokeApi.as_view(), name="api-token"),
    path("criteria/", apis.CriterionListApi.as_view(), name="api-criteria"),
    path("criteria/<slug:slug>/", apis.CriterionDetailApi.as_view(), name="api-criterion"),
    path("policies/", apis.PolicyListApi.as_view(), name="api-policies"),
    path("policies/<slug:slug>/", apis.PolicyDetailApi.as_view(), name="api-policy"),
    path("policies/<slug:slug>/check/", apis.PolicyCheckApi.as_view(), name="api-policy-check"),
    path(
        "policies/<slug:slug>/versions/",
        apis.PolicyVersionListApi.as_view(),
        name="api-policy-versions",
    ),
    path(
        "policies/<slug:slug>/versions/<int:number>/",
        apis.PolicyVersionDetailApi.as_view(),
        name="api-policy-version",
    ),
    path(
        "policies/<slug:slug>/versions/<int:number>/publish/",
        apis.PolicyVersionPublishApi.as_view(),
        name="api-policy-version-publish",
    ),
    path("guidelines/", apis.GuidelineListApi.as_view(), name="api-guidelines"),
    path(
        "guidelines/<slug:slug>/versions/",
        apis.GuidelineVersionListApi.as_view(),
        name="api-guideline-versions",
    ),
    path(
        "guidelines/<slug:slug>/versions/<int:number>/",
        apis.GuidelineVersionDetailApi.as_view(),
        name="api-guideline-version",
    ),
    path(
        "guidelines/<slug:slug>/versions/<int:number>/publish/",
        apis.GuidelineVersionPublishApi.as_view(),
        name="api-guideline-version-publish",
    ),
    path(
        "guidelines/<slug:slug>/versions/<int:number>/acknowledge/",
        apis.GuidelineAcknowledgeApi.as_view(),
        name="api-guideline-version-acknowledge",
    ),
    path("users/", apis.UserListApi.as_view(), name="api-users"),
    path("users/<int:pk>/roles/", apis.UserRolesApi.as_view(), name="api-user-roles"),
    path("audit-events/", apis.AuditEventListApi.as_view(), name="api-audit-events"),
]
