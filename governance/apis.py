"""Governance through the API: who am I, tokens, criteria, content policies and their
versions, the engine's verdict on a slate, guidelines, roles, and the audit log.
One view per operation; the same services and selectors as the pages."""

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from catalog.models import Item, UserContext
from core.api import ApiView, FilteredListApi
from governance import selectors, services
from governance.access import ANY_USER, POLICY_ADMINS, STAFF
from governance.models import (
    ApiToken,
    AuditEvent,
    ContentPolicy,
    Criterion,
    Guideline,
    GuidelineVersion,
    PolicyVersion,
    VersionStatus,
)
from governance.rendering import render_guideline
from governance.roles import Role, user_roles

# --- shared output shapes --------------------------------------------------------------


class CriterionOut(serializers.ModelSerializer):
    class Meta:
        model = Criterion
        fields = [
            "slug", "name", "description", "plain_description", "weight", "is_veto", "active",
            "position",
        ]  # fmt: skip


class PolicyVersionOut(serializers.ModelSerializer):
    policy = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    published_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    rules = serializers.ListField(child=serializers.DictField())

    class Meta:
        model = PolicyVersion
        fields = [
            "policy", "number", "status", "rules", "changelog", "created_by", "created_at",
            "published_by", "published_at", "retired_at",
        ]  # fmt: skip


class PolicyOut(serializers.ModelSerializer):
    active_version = serializers.SerializerMethodField()

    class Meta:
        model = ContentPolicy
        fields = ["slug", "name", "description", "created_at", "active_version"]

    def get_active_version(self, policy) -> int | None:
        active = next(
            (v for v in policy.versions.all() if v.status == VersionStatus.PUBLISHED), None
        )
        return active.number if active else None


class GuidelineVersionOut(serializers.ModelSerializer):
    guideline = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    html = serializers.SerializerMethodField(help_text="the body rendered to sanitized HTML")
    affects_criteria = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)

    class Meta:
        model = GuidelineVersion
        fields = [
            "guideline", "number", "status", "body", "html", "changelog", "affects_criteria",
            "created_at", "published_at",
        ]  # fmt: skip

    def get_html(self, version) -> str:
        return render_guideline(version.body)


class GuidelineOut(serializers.ModelSerializer):
    published_version = serializers.SerializerMethodField()

    class Meta:
        model = Guideline
        fields = ["slug", "title", "task_kind", "published_version"]

    def get_published_version(self, guideline) -> int | None:
        published = next(
            (v for v in guideline.versions.all() if v.status == VersionStatus.PUBLISHED), None
        )
        return published.number if published else None


def _version_or_404(policy_slug: str, number: int) -> PolicyVersion:
    return get_object_or_404(
        PolicyVersion.objects.select_related("policy", "created_by", "published_by"),
        policy__slug=policy_slug,
        number=number,
    )


# --- me and tokens ------------------------------------------------------------------------


class MeApi(ApiView):
    access = {"GET": ANY_USER}

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        roles = serializers.ListField(
            child=serializers.ChoiceField(choices=[r.value for r in Role])
        )
        pending_guidelines = serializers.ListField(
            child=serializers.CharField(), help_text="guideline versions to read, as slug:number"
        )

    @extend_schema(responses=OutputSerializer, summary="Who am I")
    def get(self, request):
        pending = selectors.guideline_versions_pending(user=request.user)
        data = {
            "username": request.user.get_username(),
            "roles": sorted(role.value for role in user_roles(request.user)),
            "pending_guidelines": [f"{v.guideline.slug}:{v.number}" for v in pending],
        }
        return Response(self.OutputSerializer(data).data)


class TokenOut(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]


class TokenListApi(ApiView):
    access = {"GET": ANY_USER, "POST": ANY_USER}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)

    class CreatedSerializer(TokenOut):
        secret = serializers.CharField(read_only=True, help_text="shown once, never again")

        class Meta(TokenOut.Meta):
            fields = [*TokenOut.Meta.fields, "secret"]

    @extend_schema(responses=TokenOut(many=True), summary="My API tokens")
    def get(self, request):
        tokens = ApiToken.objects.filter(user=request.user).select_related("user")
        return Response(TokenOut(tokens, many=True).data)

    @extend_schema(
        request=InputSerializer, responses={201: CreatedSerializer}, summary="Create a token"
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, secret = services.token_create(user=request.user, name=data.validated_data["name"])
        token.secret = secret
        return Response(self.CreatedSerializer(token).data, status=status.HTTP_201_CREATED)


class TokenRevokeApi(ApiView):
    """Owners revoke their own tokens; policy admins anyone's. Others get 404."""

    access = {"DELETE": ANY_USER}

    @extend_schema(responses={204: None}, summary="Revoke a token")
    def delete(self, request, pk: int):
        token = ApiToken.objects.filter(pk=pk).first()
        if token is None or not services.token_owner_may_manage(actor=request.user, token=token):
            raise NotFound
        services.token_revoke(actor=request.user, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- criteria ------------------------------------------------------------------------------


class CriterionListApi(ApiView):
    access = {"GET": ANY_USER, "POST": POLICY_ADMINS}

    class InputSerializer(serializers.Serializer):
        slug = serializers.SlugField(max_length=64)
        name = serializers.CharField(max_length=120)
        description = serializers.CharField()
        plain_description = serializers.CharField(required=False, allow_blank=True, default="")
        weight = serializers.FloatField(min_value=0, default=1.0)
        is_veto = serializers.BooleanField(default=False)

    @extend_schema(responses=CriterionOut(many=True), summary="Criteria reviewers judge by")
    def get(self, request):
        return Response(CriterionOut(Criterion.objects.all(), many=True).data)

    @extend_schema(
        request=InputSerializer, responses={201: CriterionOut}, summary="Add a criterion"
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        criterion = services.criterion_create(actor=request.user, **data.validated_data)
        return Response(CriterionOut(criterion).data, status=status.HTTP_201_CREATED)


class CriterionDetailApi(ApiView):
    access = {"GET": ANY_USER, "PATCH": POLICY_ADMINS}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120, required=False)
        description = serializers.CharField(required=False)
        plain_description = serializers.CharField(required=False, allow_blank=True)
        weight = serializers.FloatField(min_value=0, required=False)
        is_veto = serializers.BooleanField(required=False)
        active = serializers.BooleanField(required=False)

    @extend_schema(responses=CriterionOut, summary="A criterion")
    def get(self, request, slug: str):
        return Response(CriterionOut(get_object_or_404(Criterion, slug=slug)).data)

    @extend_schema(request=InputSerializer, responses=CriterionOut, summary="Change a criterion")
    def patch(self, request, slug: str):
        criterion = get_object_or_404(Criterion, slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        criterion = services.criterion_update(
            actor=request.user, criterion=criterion, **data.validated_data
        )
        return Response(CriterionOut(criterion).data)


# --- content policies ----------------------------------------------------------------------


class PolicyListApi(ApiView):
    access = {"GET": STAFF, "POST": POLICY_ADMINS}

    class InputSerializer(serializers.Serializer):
        slug = serializers.SlugField(max_length=64)
        name = serializers.CharField(max_length=120)
        description = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(responses=PolicyOut(many=True), summary="Content policies")
    def get(self, request):
        policies = ContentPolicy.objects.prefetch_related("versions")
        return Response(PolicyOut(policies, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: PolicyOut}, summary="Create a policy")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy = services.policy_create(actor=request.user, **data.validated_data)
        return Response(PolicyOut(policy).data, status=status.HTTP_201_CREATED)


class PolicyDetailApi(ApiView):
    access = {"GET": STAFF}

    @extend_schema(responses=PolicyOut, summary="A content policy")
    def get(self, request, slug: str):
        policy = get_object_or_404(ContentPolicy.objects.prefetch_related("versions"), slug=slug)
        return Response(PolicyOut(policy).data)


class RulesField(serializers.ListField):
    child = serializers.DictField()


class PolicyVersionListApi(ApiView):
    access = {"GET": STAFF, "POST": POLICY_ADMINS}

    class InputSerializer(serializers.Serializer):
        rules = RulesField(required=False, help_text="omitted: a copy of the active version's")
        changelog = serializers.CharField(
            max_length=300, required=False, allow_blank=True, default=""
        )

    @extend_schema(responses=PolicyVersionOut(many=True), summary="Versions of a policy")
    def get(self, request, slug: str):
        policy = get_object_or_404(ContentPolicy, slug=slug)
        versions = policy.versions.select_related("policy", "created_by", "published_by")
        return Response(PolicyVersionOut(versions, many=True).data)

    @extend_schema(
        request=InputSerializer, responses={201: PolicyVersionOut}, summary="Start a draft"
    )
    def post(self, request, slug: str):
        policy = get_object_or_404(ContentPolicy, slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.policy_version_create_draft(
            actor=request.user, policy=policy, rules=data.validated_data.get("rules"),
            changelog=data.validated_data["changelog"],
        )  # fmt: skip
        return Response(PolicyVersionOut(version).data, status=status.HTTP_201_CREATED)


class PolicyVersionDetailApi(ApiView):
    access = {"GET": STAFF, "PATCH": POLICY_ADMINS, "DELETE": POLICY_ADMINS}

    class InputSerializer(serializers.Serializer):
        rules = RulesField()
        changelog = serializers.CharField(max_length=300, allow_blank=True)

    class OutputSerializer(PolicyVersionOut):
        problems = serializers.SerializerMethodField(
            help_text="what would stop this version from being published"
        )

        class Meta(PolicyVersionOut.Meta):
            fields = [*PolicyVersionOut.Meta.fields, "problems"]

        def get_problems(self, version) -> list[str]:
            return services.rules_errors(version.rules) if version.is_draft else []

    @extend_schema(responses=OutputSerializer, summary="A policy version")
    def get(self, request, slug: str, number: int):
        return Response(self.OutputSerializer(_version_or_404(slug, number)).data)

    @extend_schema(request=InputSerializer, responses=OutputSerializer, summary="Edit a draft")
    def patch(self, request, slug: str, number: int):
        version = _version_or_404(slug, number)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.policy_version_update_draft(
            actor=request.user, version=version, **data.validated_data
        )
        return Response(self.OutputSerializer(version).data)

    @extend_schema(responses={204: None}, summary="Delete a draft")
    def delete(self, request, slug: str, number: int):
        services.policy_version_delete_draft(
            actor=request.user, version=_version_or_404(slug, number)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class PolicyVersionPublishApi(ApiView):
    access = {"POST": POLICY_ADMINS}

    @extend_schema(request=None, responses=PolicyVersionOut, summary="Publish a draft")
    def post(self, request, slug: str, number: int):
        version = services.policy_version_publish(
            actor=request.user, version=_version_or_404(slug, number)
        )
        return Response(PolicyVersionOut(version).data)


class PolicyCheckViolation(serializers.Serializer):
    rule = serializers.CharField()
    kind = serializers.CharField()
    items = serializers.ListField(child=serializers.CharField(), help_text="external ids")
    message = serializers.CharField()


class PolicyCheckApi(ApiView):
    """What the constraint engine says of a slate for a context."""

    access = {"POST": STAFF}

    class InputSerializer(serializers.Serializer):
        context = serializers.CharField(help_text="a user context's external id")
        slate = serializers.ListField(child=serializers.CharField(), min_length=1, max_length=100)
        version = serializers.IntegerField(
            required=False, help_text="a version number; omitted: the active version"
        )

    class OutputSerializer(serializers.Serializer):
        version = serializers.IntegerField()
        allowed = serializers.BooleanField(help_text="no hard rule is broken")
        violations = PolicyCheckViolation(many=True)
        penalty = serializers.FloatField()
        penalty_terms = serializers.DictField(child=serializers.FloatField())

    @extend_schema(request=InputSerializer, responses=OutputSerializer, summary="Check a slate")
    def post(self, request, slug: str):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        context = _context_or_400(data.validated_data["context"])
        external_ids = _items_or_400(data.validated_data["slate"])
        version = self._version(slug, data.validated_data.get("version"))
        verdict = selectors.slate_verdict(
            version=version, context=context, external_ids=external_ids
        )
        return Response(self.OutputSerializer({"version": version.number, **verdict}).data)

    @staticmethod
    def _version(slug: str, number: int | None) -> PolicyVersion:
        versions = PolicyVersion.objects.filter(policy__slug=slug)
        if number is None:
            version = versions.filter(status=VersionStatus.PUBLISHED).first()
        else:
            version = versions.filter(number=number).first()
        if version is None or (version.is_draft and services.rules_errors(version.rules)):
            raise NotFound("no such version, or it is a draft with invalid rules")
        return version


def _context_or_400(external_id: str) -> UserContext:
    context = UserContext.objects.filter(external_id=external_id).first()
    if context is None:
        raise serializers.ValidationError({"context": [f"unknown context {external_id!r}"]})
    return context


def _items_or_400(external_ids: list[str]) -> list[str]:
    if len(set(external_ids)) != len(external_ids):
        raise serializers.ValidationError({"slate": ["shows an item twice"]})
    known = set(
        Item.objects.filter(external_id__in=external_ids).values_list("external_id", flat=True)
    )
    unknown = [e for e in external_ids if e not in known]
    if unknown:
        raise serializers.ValidationError({"slate": [f"unknown items: {', '.join(unknown[:5])}"]})
    return external_ids


# --- guidelines ------------------------------------------------------------------------------


class GuidelineListApi(ApiView):
    access = {"GET": ANY_USER}

    @extend_schema(responses=GuidelineOut(many=True), summary="Guidelines")
    def get(self, request):
        return Response(
            GuidelineOut(Guideline.objects.prefetch_related("versions"), many=True).data
        )


class GuidelineVersionListApi(ApiView):
    access = {"GET": ANY_USER, "POST": POLICY_ADMINS}

    class InputSerializer(serializers.Serializer):
        body = serializers.CharField(required=False, help_text="omitted: the published version's")
        changelog = serializers.CharField(
            max_length=300, required=False, allow_blank=True, default=""
        )

    @extend_schema(responses=GuidelineVersionOut(many=True), summary="Versions of a guideline")
    def get(self, request, slug: str):
        guideline = get_object_or_404(Guideline, slug=slug)
        versions = selectors.guideline_versions_visible(user=request.user, guideline=guideline)
        return Response(GuidelineVersionOut(versions, many=True).data)

    @extend_schema(
        request=InputSerializer, responses={201: GuidelineVersionOut}, summary="Start a draft"
    )
    def post(self, request, slug: str):
        guideline = get_object_or_404(Guideline, slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.guideline_version_create_draft(
            actor=request.user, guideline=guideline, body=data.validated_data.get("body"),
            changelog=data.validated_data["changelog"],
        )  # fmt: skip
        return Response(GuidelineVersionOut(version).data, status=status.HTTP_201_CREATED)


class GuidelineVersionDetailApi(ApiView):
    """Drafts are visible to policy admins only (404 for everyone else)."""

    access = {"GET": ANY_USER, "PATCH": POLICY_ADMINS}

    class InputSerializer(serializers.Serializer):
        body = serializers.CharField()
        changelog = serializers.CharField(max_length=300, allow_blank=True)
        affects_criteria = serializers.SlugRelatedField(
            slug_field="slug", queryset=Criterion.objects.all(), many=True, required=False
        )

    @extend_schema(responses=GuidelineVersionOut, summary="A guideline version")
    def get(self, request, slug: str, number: int):
        return Response(GuidelineVersionOut(_guideline_version(request.user, slug, number)).data)

    @extend_schema(request=InputSerializer, responses=GuidelineVersionOut, summary="Edit a draft")
    def patch(self, request, slug: str, number: int):
        version = _guideline_version(request.user, slug, number)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.guideline_version_update_draft(
            actor=request.user, version=version, **data.validated_data
        )
        return Response(GuidelineVersionOut(version).data)


def _guideline_version(user, slug: str, number: int) -> GuidelineVersion:
    guideline = get_object_or_404(Guideline, slug=slug)
    visible = selectors.guideline_versions_visible(user=user, guideline=guideline)
    return get_object_or_404(visible, number=number)


class GuidelineVersionPublishApi(ApiView):
    access = {"POST": POLICY_ADMINS}

    @extend_schema(request=None, responses=GuidelineVersionOut, summary="Publish a draft")
    def post(self, request, slug: str, number: int):
        version = _guideline_version(request.user, slug, number)
        version = services.guideline_version_publish(actor=request.user, version=version)
        return Response(GuidelineVersionOut(version).data)


class GuidelineAcknowledgeApi(ApiView):
    access = {"POST": ANY_USER}

    class OutputSerializer(serializers.Serializer):
        guideline = serializers.CharField()
        number = serializers.IntegerField()
        acknowledged_at = serializers.DateTimeField()

    @extend_schema(request=None, responses=OutputSerializer, summary="I have read this version")
    def post(self, request, slug: str, number: int):
        version = _guideline_version(request.user, slug, number)
        ack = services.guideline_acknowledge(user=request.user, version=version)
        return Response(
            self.OutputSerializer(
                {"guideline": slug, "number": number, "acknowledged_at": ack.acknowledged_at}
            ).data
        )


# --- users' roles ----------------------------------------------------------------------------


class UserOut(serializers.ModelSerializer):
    roles = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "is_active", "roles"]

    def get_roles(self, user) -> list[str]:
        return sorted(role.value for role in services.user_roles_of(user))


class UserFilter(filters.FilterSet):
    username = filters.CharFilter(lookup_expr="icontains")
    role = filters.ChoiceFilter(
        field_name="groups__name", choices=[(r.value, r.value) for r in Role]
    )

    class Meta:
        model = User
        fields = ["username", "role"]


class UserListApi(FilteredListApi):
    access = {"GET": POLICY_ADMINS}
    queryset = User.objects.none()
    filterset_class = UserFilter
    ordering = ("username",)

    @extend_schema(responses=UserOut(many=True), summary="People and their roles", filters=True)
    def get(self, request):
        users = User.objects.prefetch_related("groups")
        return self.page_of(request, users, lambda rows: UserOut(rows, many=True).data)


class UserRolesApi(ApiView):
    access = {"PUT": POLICY_ADMINS}

    class InputSerializer(serializers.Serializer):
        roles = serializers.ListField(
            child=serializers.ChoiceField(choices=[r.value for r in Role]), allow_empty=True
        )

    @extend_schema(request=InputSerializer, responses=UserOut, summary="Set someone's roles")
    def put(self, request, pk: int):
        user = get_object_or_404(User, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        roles = {Role(value) for value in data.validated_data["roles"]}
        return Response(
            UserOut(services.user_roles_set(actor=request.user, user=user, roles=roles)).data
        )


# --- the audit log -------------------------------------------------------------------------


class AuditEventFilter(filters.FilterSet):
    actor = filters.CharFilter(field_name="actor_name")
    action = filters.CharFilter()
    object_type = filters.CharFilter()
    object_id = filters.CharFilter()
    since = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "object_type", "object_id", "since", "until"]


class AuditEventOut(serializers.ModelSerializer):
    before = serializers.JSONField()
    after = serializers.JSONField()

    class Meta:
        model = AuditEvent
        fields = [
            "id", "created_at", "actor_name", "action", "object_type", "object_id",
            "object_repr", "before", "after", "request_id",
        ]  # fmt: skip


class AuditEventListApi(FilteredListApi):
    access = {"GET": POLICY_ADMINS}
    queryset = AuditEvent.objects.none()
    filterset_class = AuditEventFilter
    ordering = ("-created_at", "-id")

    @extend_schema(responses=AuditEventOut(many=True), summary="The audit log", filters=True)
    def get(self, request):
        return self.page_of(
            request, AuditEvent.objects.all(), lambda rows: AuditEventOut(rows, many=True).data
        )
