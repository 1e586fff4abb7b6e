"""The labeling API, for programmatic labeling clients and outside user-study tools: take the
next task, keep its lease alive or skip it, submit comparisons and demonstrations, read
labels back. One view per operation; the same services and selectors as the pages.

Labeling is blind: everyone reads only their own labels and leases (policy admins read
every label), and anyone else's answers 404, as if it did not exist. Items are stored by
primary key and shown by external id, looked up once per response.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from annotation import selectors, services
from annotation.demonstrations import MAX_SHOWN, MAX_SLATE, MAX_STEPS, demonstration_submit_steps
from annotation.models import (
    Assignment,
    Channel,
    Comparison,
    Demonstration,
    DemonstrationStep,
    Judgment,
    QueueTask,
    RejectReason,
    TaskKind,
    TaskReason,
)
from annotation.permissions import LABEL, READ_LABELS, TAKE_TASKS
from catalog.models import Item, UserContext
from catalog.selectors import item_external_ids
from core.api import ApiView, FilteredListApi
from core.api_schema import ERROR_REF
from governance.selectors import active_criteria, guideline_versions_pending

MAX_TIME_SPENT_MS = 2**31 - 1  # the column is a 32-bit integer


# --- errors --------------------------------------------------------------------------------


class GuidelinesPending(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "guidelines_pending"
    default_detail = "read and acknowledge the new guideline versions first"


class LabelRefusedConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "label_refused"
    default_detail = "this label cannot be stored"


def _conflict(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ERROR_REF, description=description)


LABEL_REFUSED = _conflict(
    "label_refused: you already labeled this task, or your lease ran out and others "
    "finished it, or the client token is someone else's"
)


def _refused(refused: services.LabelRefused) -> LabelRefusedConflict:
    return LabelRefusedConflict(" ".join(refused.messages))


# --- items by external id ------------------------------------------------------------------


@extend_schema_field({"type": "string", "nullable": True, "description": "an item's external id"})
class ItemRef(serializers.Field):
    """An item primary key shown as its external id (null if the item left the catalog)."""

    def to_representation(self, pk):
        return self.context["external_ids"].get(pk)


class ItemRefs(serializers.ListField):
    child = ItemRef()


def _render(serializer_class, instance, *, many: bool = False) -> dict | list:
    """Serialize with every item the rows mention shown by its external id. One row of a
    class with an ``as_dict`` (the output of every label's two calls) is built by it."""
    rows = instance if many else [instance]
    external_ids = item_external_ids({pk for row in rows for pk in serializer_class.item_pks(row)})
    if not many and hasattr(serializer_class, "as_dict"):
        return serializer_class.as_dict(instance, external_ids)
    return serializer_class(instance, many=many, context={"external_ids": external_ids}).data


# The serializers define and document the output. For the two calls every label makes,
# ``as_dict`` builds the same dict directly: DRF constructs a serializer's fields on each
# call, which costs more CPU than the rest of the request. A test holds them equal.
_datetime = serializers.DateTimeField()


def _time(value) -> str | None:
    return None if value is None else _datetime.to_representation(value)


def _refs(pks: list[int], external_ids: dict) -> list:
    return [external_ids.get(pk) for pk in pks]


# --- assignments ---------------------------------------------------------------------------


# One named enum for task kinds, in and out (one choice set under two property names would
# otherwise be two schema enums, which the schema check refuses).
@extend_schema_field({"type": "string", "enum": TaskKind.values}, component_name="TaskKind")
class TaskKindField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=TaskKind.choices, **kwargs)


class ContextOut(serializers.ModelSerializer):
    situation = serializers.DictField()
    history = serializers.ListField(child=serializers.DictField(), help_text="oldest first")

    class Meta:
        model = UserContext
        fields = ["external_id", "segment", "audience", "situation", "history"]


class TaskOut(serializers.ModelSerializer):
    # Gold tasks are mixed in unmarked: they read as comparisons for an audit.
    kind = TaskKindField(source="displayed_kind")
    reason = serializers.ChoiceField(choices=TaskReason.choices, source="displayed_reason")
    context = ContextOut(read_only=True)
    slate_a = ItemRefs(help_text="best first; empty for demonstrations")
    slate_b = ItemRefs(help_text="best first; empty for demonstrations")
    criteria = serializers.SerializerMethodField(
        help_text="the criteria to judge, by slug (compare tasks; empty otherwise)"
    )

    class Meta:
        model = QueueTask
        fields = ["id", "kind", "reason", "audience", "context", "slate_a", "slate_b", "criteria"]

    def get_criteria(self, task) -> list[str]:
        if task.displayed_kind != TaskKind.COMPARE:
            return []
        return [c.slug for c in active_criteria()]


class AssignmentOut(serializers.ModelSerializer):
    left = serializers.CharField(help_text="the slate to show on the left: a or b")
    task = TaskOut(read_only=True)

    class Meta:
        model = Assignment
        fields = ["id", "state", "left", "leased_at", "expires_at", "task"]

    @staticmethod
    def item_pks(assignment) -> list[int]:
        return [*assignment.task.slate_a, *assignment.task.slate_b]

    @staticmethod
    def as_dict(assignment, external_ids: dict) -> dict:
        task, context = assignment.task, assignment.task.context
        compare = task.displayed_kind == TaskKind.COMPARE
        return {
            "id": assignment.id,
            "state": assignment.state,
            "left": assignment.left,
            "leased_at": _time(assignment.leased_at),
            "expires_at": _time(assignment.expires_at),
            "task": {
                "id": task.id,
                "kind": task.displayed_kind,
                "reason": task.displayed_reason,
                "audience": task.audience,
                "context": {
                    "external_id": context.external_id,
                    "segment": context.segment,
                    "audience": context.audience,
                    "situation": context.situation,
                    "history": context.history,
                },
                "slate_a": _refs(task.slate_a, external_ids),
                "slate_b": _refs(task.slate_b, external_ids),
                "criteria": [c.slug for c in active_criteria()] if compare else [],
            },
        }


def _own_assignment(user, pk: int) -> Assignment:
    return get_object_or_404(
        Assignment.objects.select_related("task__context").defer(*services.CONTEXT_HEAVY),
        pk=pk,
        reviewer=user,
    )


def _require_guidelines_read(user) -> None:
    pending = guideline_versions_pending(user=user)
    if pending:
        listed = ", ".join(f"{v.guideline.slug}:{v.number}" for v in pending)
        raise GuidelinesPending(
            f"read and acknowledge these guideline versions first: {listed} "
            "(POST /api/v1/guidelines/<slug>/versions/<number>/acknowledge/)"
        )


class AssignmentNextApi(ApiView):
    """Resume the reviewer's oldest live lease, else lease the next task they may take."""

    access = {"POST": TAKE_TASKS}

    class InputSerializer(serializers.Serializer):
        kinds = serializers.ListField(
            child=TaskKindField(), required=False, min_length=1,
            help_text="the task kinds wanted; omitted: any",
        )  # fmt: skip

    @extend_schema(
        request=InputSerializer,
        responses={
            201: AssignmentOut,
            200: OpenApiResponse(AssignmentOut, description="a live lease, resumed"),
            204: OpenApiResponse(description="no task is available"),
            409: _conflict("guidelines_pending: acknowledge the listed guideline versions"),
        },
        summary="Take the next task",
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _require_guidelines_read(request.user)
        kinds = data.validated_data.get("kinds")
        now = timezone.now()
        resumed = selectors.live_assignment(
            reviewer=request.user, now=now, kinds=kinds or TaskKind.values
        )
        assignment = resumed or services.task_lease_next(
            reviewer=request.user, now=now, kinds=kinds
        )
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(
            _render(AssignmentOut, assignment),
            status=status.HTTP_200_OK if resumed else status.HTTP_201_CREATED,
        )


class AssignmentHeartbeatApi(ApiView):
    access = {"POST": TAKE_TASKS}

    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Assignment
            fields = ["id", "state", "expires_at"]

    @extend_schema(
        request=None, responses=OutputSerializer, summary="Keep a lease alive",
        description="A state other than `leased` means the lease is gone.",
    )  # fmt: skip
    def post(self, request, pk: int):
        assignment = services.assignment_heartbeat(
            assignment=_own_assignment(request.user, pk), now=timezone.now()
        )
        return Response(self.OutputSerializer(assignment).data)


class AssignmentSkipApi(ApiView):
    access = {"POST": TAKE_TASKS}

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=200)

    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Assignment
            fields = ["id", "state"]

    @extend_schema(request=InputSerializer, responses=OutputSerializer, summary="Skip a task")
    def post(self, request, pk: int):
        assignment = _own_assignment(request.user, pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = services.assignment_release(
            assignment=assignment, now=timezone.now(), reason=data.validated_data["reason"]
        )
        return Response(self.OutputSerializer(assignment).data)


# --- labels: shared output ---------------------------------------------------------------


class GuidelineVersionRef(serializers.Serializer):
    id = serializers.IntegerField()
    guideline = serializers.CharField(source="guideline.slug")
    number = serializers.IntegerField()


class PolicyVersionRef(serializers.Serializer):
    id = serializers.IntegerField()
    policy = serializers.CharField(source="policy.slug")
    number = serializers.IntegerField()


LABEL_FIELDS = [
    "id", "task", "reviewer", "context", "channel", "guideline_version", "policy_version",
    "rationale", "time_spent_ms", "client_token", "created_at", "locked",
]  # fmt: skip


class LabelOut(serializers.ModelSerializer):
    reviewer = serializers.SlugRelatedField(
        slug_field="username", read_only=True, help_text="the reviewer's username"
    )
    context = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True, help_text="the context's external id"
    )
    guideline_version = GuidelineVersionRef(
        read_only=True, allow_null=True, help_text="the guideline in force when labeled"
    )
    policy_version = PolicyVersionRef(
        read_only=True, allow_null=True, help_text="the content policy in force when labeled"
    )


class ComparisonOut(LabelOut):
    slate_a = ItemRefs()
    slate_b = ItemRefs()
    left = serializers.CharField(help_text="the slate shown on the left: a or b")
    judgments = serializers.DictField(
        child=serializers.CharField(), help_text="criterion slug → a, b, tie or cannot_tell"
    )
    reason_tags = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Comparison
        fields = [
            *LABEL_FIELDS, "slate_a", "slate_b", "left", "judgments", "confidence", "reason_tags",
        ]  # fmt: skip

    @staticmethod
    def item_pks(comparison) -> list[int]:
        return [*comparison.slate_a, *comparison.slate_b]

    @staticmethod
    def as_dict(comparison, external_ids: dict) -> dict:
        guideline, policy = comparison.guideline_version, comparison.policy_version
        return {
            "id": comparison.id,
            "task": comparison.task_id,
            "reviewer": comparison.reviewer.username,
            "context": comparison.context.external_id,
            "channel": comparison.channel,
            "guideline_version": guideline and {
                "id": guideline.id, "guideline": guideline.guideline.slug,
                "number": guideline.number,
            },
            "policy_version": policy and {
                "id": policy.id, "policy": policy.policy.slug, "number": policy.number
            },
            "rationale": comparison.rationale,
            "time_spent_ms": comparison.time_spent_ms,
            "client_token": str(comparison.client_token),
            "created_at": _time(comparison.created_at),
            "locked": comparison.locked,
            "slate_a": _refs(comparison.slate_a, external_ids),
            "slate_b": _refs(comparison.slate_b, external_ids),
            "left": comparison.left,
            "judgments": comparison.judgments,
            "confidence": comparison.confidence,
            "reason_tags": comparison.reason_tags,
        }  # fmt: skip


class RejectionOut(serializers.Serializer):
    item = ItemRef()
    reason = serializers.CharField()


class DemonstrationStepOut(serializers.ModelSerializer):
    state = serializers.DictField(help_text="history, situation and topic fatigue at this step")
    shown = ItemRefs(help_text="every item the expert saw at this step")
    chosen = ItemRefs(help_text="the slate, best first")
    rejected = RejectionOut(many=True)

    class Meta:
        model = DemonstrationStep
        fields = ["index", "state", "shown", "chosen", "rejected", "rationale"]


class DemonstrationOut(LabelOut):
    tags = serializers.ListField(child=serializers.CharField())
    steps = DemonstrationStepOut(many=True, read_only=True)

    class Meta:
        model = Demonstration
        fields = [*LABEL_FIELDS, "expected_outcome", "tags", "steps"]

    @staticmethod
    def item_pks(demonstration) -> list[int]:
        return [
            pk
            for step in demonstration.steps.all()
            for pk in [*step.shown, *step.chosen, *(r["item"] for r in step.rejected)]
        ]


def _comparisons(user):
    return selectors.labels_visible(Comparison, user=user)


def _demonstrations(user):
    return selectors.labels_visible(Demonstration, user=user).prefetch_related("steps")


def _submit_once(model, user, client_token, submit) -> tuple:
    """(the label, 201) when stored now, (the stored one, 200) for a retry; someone else's
    lease is a 404, any other refusal a 409."""
    try:
        label, created = services.label_submit_once(
            model, reviewer=user, client_token=client_token, submit=submit
        )
    except services.NotYourLease:
        raise Http404 from None
    except services.LabelRefused as refused:
        raise _refused(refused) from None
    return label, status.HTTP_201_CREATED if created else status.HTTP_200_OK


# --- labels: lists and filters -------------------------------------------------------------


class LabelFilter(filters.FilterSet):
    task = filters.NumberFilter(help_text="a task id")
    channel = filters.ChoiceFilter(choices=Channel.choices)
    context = filters.CharFilter(field_name="context__external_id", help_text="external id")
    since = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    guideline_version = filters.NumberFilter(help_text="a guideline version id")
    reviewer = filters.CharFilter(
        field_name="reviewer__username", help_text="a username (policy admins read everyone's)"
    )


FILTER_FIELDS = ["task", "channel", "context", "since", "until", "guideline_version", "reviewer"]


class ComparisonFilter(LabelFilter):
    class Meta:
        model = Comparison
        fields = FILTER_FIELDS


class DemonstrationFilter(LabelFilter):
    class Meta:
        model = Demonstration
        fields = FILTER_FIELDS


class LabelListApi(FilteredListApi):
    """A page of labels, newest first, from the reader's visible labels."""

    ordering = ("-created_at", "-pk")

    def labels_page(self, request, labels, serializer_class) -> Response:
        return self.page_of(
            request, labels, lambda rows: _render(serializer_class, rows, many=True)
        )


# --- comparisons ---------------------------------------------------------------------------


class ComparisonSubmitApi(ApiView):
    """Stored once per client token: a retry answers 200 with the first comparison."""

    access = {"POST": TAKE_TASKS}

    class InputSerializer(serializers.Serializer):
        judgments = serializers.DictField(
            child=serializers.ChoiceField(choices=Judgment.choices),
            help_text="every active criterion's slug → a, b, tie or cannot_tell",
        )
        confidence = serializers.IntegerField(min_value=1, max_value=5)
        rationale = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=10000,
            help_text="required for a preference on a veto criterion (safety)",
        )  # fmt: skip
        reason_tags = serializers.ListField(
            child=serializers.CharField(max_length=40), required=False, default=list,
            max_length=20,
        )  # fmt: skip
        time_spent_ms = serializers.IntegerField(
            min_value=0, max_value=MAX_TIME_SPENT_MS, required=False, default=0
        )
        client_token = serializers.UUIDField(help_text="one per submission; resend it on retry")

    @extend_schema(
        request=InputSerializer,
        responses={
            201: ComparisonOut,
            200: OpenApiResponse(ComparisonOut, description="a retry: the stored comparison"),
            409: LABEL_REFUSED,
        },
        summary="Submit a comparison",
    )
    def post(self, request, pk: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        comparison, answer = _submit_once(
            Comparison, request.user, values["client_token"],
            lambda: services.comparison_submit(
                # The service reads and locks the lease itself (and checks it is theirs).
                reviewer=request.user, assignment=Assignment(pk=pk), data=self._input(values),
                client_token=values["client_token"], now=timezone.now(),
            ),
        )  # fmt: skip
        return Response(_render(ComparisonOut, comparison), status=answer)

    @staticmethod
    def _input(values: dict) -> services.ComparisonInput:
        return services.ComparisonInput(
            judgments=values["judgments"], confidence=values["confidence"],
            rationale=values["rationale"], reason_tags=tuple(values["reason_tags"]),
            time_spent_ms=values["time_spent_ms"],
        )  # fmt: skip


class ComparisonListApi(LabelListApi):
    access = {"GET": READ_LABELS}
    queryset = Comparison.objects.none()
    filterset_class = ComparisonFilter

    @extend_schema(responses=ComparisonOut(many=True), summary="Comparisons", filters=True)
    def get(self, request):
        return self.labels_page(request, _comparisons(request.user), ComparisonOut)


class ComparisonDetailApi(ApiView):
    access = {"GET": READ_LABELS}

    @extend_schema(responses=ComparisonOut, summary="A comparison")
    def get(self, request, pk: int):
        comparison = get_object_or_404(_comparisons(request.user), pk=pk)
        return Response(_render(ComparisonOut, comparison))


# --- demonstrations ------------------------------------------------------------------------

# Problems the service finds in a step are about the request's ``steps``.
STEP_PROBLEMS = {"chosen", "rejected", "shown"}


class RejectionIn(serializers.Serializer):
    item = serializers.CharField(max_length=128, help_text="an item's external id")
    reason = serializers.ChoiceField(choices=RejectReason.choices)


class DemonstrationStepIn(serializers.Serializer):
    chosen = serializers.ListField(
        child=serializers.CharField(max_length=128), min_length=1, max_length=MAX_SLATE,
        help_text="the slate: item external ids, best first",
    )  # fmt: skip
    rejected = serializers.ListField(
        child=RejectionIn(), required=False, default=list, max_length=MAX_SHOWN
    )
    shown = serializers.ListField(
        child=serializers.CharField(max_length=128), required=False, default=list,
        max_length=MAX_SHOWN, help_text="other candidates the expert saw (external ids)",
    )  # fmt: skip
    rationale = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class DemonstrationListApi(LabelListApi):
    """Read demonstrations, or submit a whole trajectory in one request (stored once per
    client token: a retry answers 200 with the first)."""

    access = {"GET": READ_LABELS, "POST": LABEL}
    queryset = Demonstration.objects.none()
    filterset_class = DemonstrationFilter

    class InputSerializer(serializers.Serializer):
        assignment = serializers.IntegerField(
            required=False, help_text="your lease of a demonstrate task (or give `context`)"
        )
        context = serializers.CharField(
            required=False, max_length=128,
            help_text="a context's external id, for a demonstration from the catalog",
        )  # fmt: skip
        steps = serializers.ListField(
            child=DemonstrationStepIn(), min_length=1, max_length=MAX_STEPS
        )
        expected_outcome = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=5000
        )
        tags = serializers.ListField(
            child=serializers.CharField(max_length=40), required=False, default=list,
            max_length=20,
        )  # fmt: skip
        rationale = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=10000
        )
        time_spent_ms = serializers.IntegerField(
            min_value=0, max_value=MAX_TIME_SPENT_MS, required=False, default=0
        )
        client_token = serializers.UUIDField(help_text="one per submission; resend it on retry")

        def validate(self, attrs):
            if ("assignment" in attrs) == ("context" in attrs):
                raise serializers.ValidationError("give either an assignment or a context")
            return attrs

    @extend_schema(responses=DemonstrationOut(many=True), summary="Demonstrations", filters=True)
    def get(self, request):
        return self.labels_page(request, _demonstrations(request.user), DemonstrationOut)

    @extend_schema(
        request=InputSerializer,
        responses={
            201: DemonstrationOut,
            200: OpenApiResponse(DemonstrationOut, description="a retry: the stored one"),
            409: LABEL_REFUSED,
        },
        summary="Submit a demonstration",
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        origin = self._origin(request.user, values)
        steps = _steps_by_pk(values["steps"])
        try:
            demonstration, answer = _submit_once(
                Demonstration, request.user, values["client_token"],
                lambda: demonstration_submit_steps(
                    reviewer=request.user, **origin, steps=steps,
                    client_token=values["client_token"], now=timezone.now(),
                    expected_outcome=values["expected_outcome"], tags=values["tags"],
                    rationale=values["rationale"], time_spent_ms=values["time_spent_ms"],
                ),
            )  # fmt: skip
        except DjangoValidationError as problems:
            raise _about_steps(problems) from None
        demonstration = _demonstrations(request.user).get(pk=demonstration.pk)
        return Response(_render(DemonstrationOut, demonstration), status=answer)

    @staticmethod
    def _origin(user, values: dict) -> dict:
        """The lease (one of the user's own) or the context the demonstration starts from."""
        if "assignment" in values:
            assignment = Assignment.objects.filter(pk=values["assignment"], reviewer=user).first()
            if assignment is None:
                raise serializers.ValidationError({"assignment": ["you hold no such lease"]})
            return {"assignment": assignment}
        context = UserContext.objects.filter(external_id=values["context"]).first()
        if context is None:
            raise serializers.ValidationError(
                {"context": [f"unknown context {values['context']!r}"]}
            )
        return {"context": context}


def _step_items(step: dict) -> list[str]:
    return [*step["chosen"], *step["shown"], *(r["item"] for r in step["rejected"])]


def _steps_by_pk(steps: list[dict]) -> list[dict]:
    """The steps with items as primary keys; unknown external ids are named by step."""
    named = {e for step in steps for e in _step_items(step)}
    pk_of = dict(Item.objects.filter(external_id__in=named).values_list("external_id", "pk"))
    for number, step in enumerate(steps, start=1):
        unknown = [e for e in _step_items(step) if e not in pk_of]
        if unknown:
            raise serializers.ValidationError(
                {"steps": [f"step {number}: unknown items {', '.join(unknown[:5])}"]}
            )
    return [
        {
            "chosen": [pk_of[e] for e in step["chosen"]],
            "shown": [pk_of[e] for e in step["shown"]],
            "rejected": [
                {"item": pk_of[r["item"]], "reason": r["reason"]} for r in step["rejected"]
            ],
            "rationale": step["rationale"],
        }
        for step in steps
    ]


def _about_steps(problems: DjangoValidationError) -> serializers.ValidationError:
    """The service names a step's problems by the step's own fields: file them under
    ``steps`` (each message says which step)."""
    by_field = problems.message_dict if hasattr(problems, "error_dict") else {}
    if not by_field:
        return serializers.ValidationError(problems.messages)
    regrouped: dict[str, list[str]] = {}
    for name, messages in by_field.items():
        regrouped.setdefault("steps" if name in STEP_PROBLEMS else name, []).extend(messages)
    return serializers.ValidationError(regrouped)


class DemonstrationDetailApi(ApiView):
    access = {"GET": READ_LABELS}

    @extend_schema(responses=DemonstrationOut, summary="A demonstration")
    def get(self, request, pk: int):
        demonstration = get_object_or_404(_demonstrations(request.user), pk=pk)
        return Response(_render(DemonstrationOut, demonstration))
