"""Labeling: the queue of tasks, leases on them, and the labels experts give.

The database holds the queue's invariants, not only the code:
- a task never has more labels (plus live leases) than its overlap target
  (``labels_count + leased_count <= overlap_target``, kept by the services in the same
  transaction as each lease and label, and checked by a constraint);
- a reviewer holds at most one live lease per task, and labels a task at most once
  (partial unique constraints);
- a submission is stored once, whatever the retries (a unique client token).
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from catalog.models import UserContext
from governance.models import GuidelineVersion, PolicyVersion


class TaskKind(models.TextChoices):
    COMPARE = "compare"
    DEMONSTRATE = "demonstrate"
    REVIEW_FLAG = "review_flag"
    ADJUDICATE = "adjudicate"
    GOLD = "gold"


class TaskReason(models.TextChoices):
    UNCERTAINTY = "uncertainty"
    STAKES = "stakes"
    FLAG = "flag"
    DISAGREEMENT = "disagreement"
    CONFLICT = "conflict"  # the reward model's criteria pull apart (relevance A, safety B)
    AUDIT = "audit"
    GOLD = "gold"
    MANUAL = "manual"


class TaskStatus(models.TextChoices):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class TaskAudience(models.TextChoices):
    """Who may take a task: any labeler (curators and safety reviewers), safety reviewers
    only, or study participants only (their simplified pages)."""

    LABELER = "labeler"
    SAFETY_REVIEWER = "safety_reviewer"
    STUDY_PARTICIPANT = "study_participant"


class Channel(models.TextChoices):
    CURATION = "curation"
    SAFETY_REVIEW = "safety_review"
    USER_STUDY = "user_study"


class QueueTask(models.Model):
    kind = models.CharField(max_length=16, choices=TaskKind.choices)
    reason = models.CharField(max_length=16, choices=TaskReason.choices)
    status = models.CharField(max_length=12, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    audience = models.CharField(
        max_length=20, choices=TaskAudience.choices, default=TaskAudience.LABELER
    )
    skills = models.JSONField(default=list, blank=True, help_text="skills a reviewer needs")
    context = models.ForeignKey(UserContext, on_delete=models.PROTECT, related_name="+")
    # Item primary keys, best first; slate_b is empty for demonstrations.
    slate_a = models.JSONField(default=list, blank=True)
    slate_b = models.JSONField(default=list, blank=True)
    priority = models.IntegerField(default=0, help_text="higher first")
    # The task this one derives from: the labeled task an adjudication resolves, the one a
    # gold task copies, the one a re-review re-asks.
    source_task = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="derived_tasks"
    )
    # Why a person made it, e.g. "re-review: general v3 changed safety".
    note = models.CharField(max_length=200, blank=True)
    proposed_by = models.ForeignKey(
        "training.ModelVersion", on_delete=models.PROTECT, null=True, blank=True,
        related_name="proposed_tasks", help_text="the reward model that proposed it",
    )  # fmt: skip
    overlap_target = models.PositiveSmallIntegerField(default=1)
    labels_count = models.PositiveSmallIntegerField(default=0)
    leased_count = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(overlap_target__gte=1), name="task_overlap_at_least_one"
            ),
            models.CheckConstraint(
                condition=Q(labels_count__lte=F("overlap_target") - F("leased_count")),
                name="task_labels_and_leases_within_overlap",
            ),
            models.CheckConstraint(condition=Q(kind__in=TaskKind.values), name="task_kind_valid"),
        ]
        indexes = [
            # The order the queue hands tasks out in, over open tasks only.
            models.Index(
                F("priority").desc(), "id", condition=Q(status=TaskStatus.OPEN),
                name="task_open_by_priority",
            ),
            # The same order within one kind: a lease for a rare kind (gold, adjudication,
            # flags) finds its few open tasks here instead of walking past every open
            # comparison; at 10⁶ tasks that walk was a full scan taking up to 0.9 s.
            models.Index(
                "kind", F("priority").desc(), "id", condition=Q(status=TaskStatus.OPEN),
                name="task_open_by_kind_priority",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.kind} task {self.pk} ({self.status})"

    @property
    def displayed_kind(self) -> str:
        """Gold tasks are mixed in unmarked: reviewers see a comparison."""
        return TaskKind.COMPARE if self.kind == TaskKind.GOLD else self.kind

    @property
    def displayed_reason(self) -> str:
        return TaskReason.AUDIT if self.kind == TaskKind.GOLD else self.reason

    @property
    def slots_left(self) -> int:
        return self.overlap_target - self.labels_count - self.leased_count


class AssignmentState(models.TextChoices):
    LEASED = "leased"
    SUBMITTED = "submitted"
    RELEASED = "released"  # skipped or closed by the reviewer
    EXPIRED = "expired"


class Assignment(models.Model):
    """A lease of one slot of a task by one reviewer."""

    task = models.ForeignKey(QueueTask, on_delete=models.CASCADE, related_name="assignments")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments"
    )
    state = models.CharField(
        max_length=12, choices=AssignmentState.choices, default=AssignmentState.LEASED
    )
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # Comparisons: which slate was shown on the left ("a" or "b"), chosen at random.
    left = models.CharField(max_length=1, default="a")
    skip_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["task", "reviewer"],
                condition=Q(state=AssignmentState.LEASED),
                name="assignment_one_live_lease_per_reviewer",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(state=AssignmentState.LEASED),
                name="assignment_live_by_expiry",
            ),
            models.Index(fields=["reviewer", "task"], name="assignment_reviewer_task"),
            # A reviewer's live leases, looked for before every lease.
            models.Index(
                fields=["reviewer", "leased_at"], condition=Q(state=AssignmentState.LEASED),
                name="assignment_live_by_reviewer",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"lease of task {self.task_id} by {self.reviewer_id} ({self.state})"


class Judgment(models.TextChoices):
    A = "a", "A"
    B = "b", "B"
    TIE = "tie", "Tie"
    CANNOT_TELL = "cannot_tell", "Cannot tell"


class LabelBase(models.Model):
    """What every label records: who, through which channel, under which guideline and
    policy versions, how long it took; editable until an admin locks it."""

    task = models.ForeignKey(
        QueueTask, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    context = models.ForeignKey(UserContext, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    guideline_version = models.ForeignKey(
        GuidelineVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    policy_version = models.ForeignKey(
        PolicyVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    rationale = models.TextField(blank=True)
    time_spent_ms = models.PositiveIntegerField(default=0)
    client_token = models.UUIDField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    locked = models.BooleanField(default=False)

    class Meta:
        abstract = True


class Comparison(LabelBase):
    """Slate A against slate B, judged per criterion."""

    slate_a = models.JSONField()
    slate_b = models.JSONField()
    left = models.CharField(max_length=1, help_text="the slate shown on the left: a or b")
    # {criterion slug: "a" | "b" | "tie" | "cannot_tell"}
    judgments = models.JSONField()
    confidence = models.PositiveSmallIntegerField()
    reason_tags = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["task", "reviewer"], condition=Q(task__isnull=False),
                name="comparison_once_per_reviewer_and_task",
            ),
            models.CheckConstraint(
                condition=Q(confidence__gte=1, confidence__lte=5),
                name="comparison_confidence_1_to_5",
            ),
        ]  # fmt: skip
        indexes = [models.Index(fields=["reviewer", "-created_at"], name="comparison_by_reviewer")]

    def __str__(self) -> str:
        return f"comparison {self.pk} by {self.reviewer_id}"


class Demonstration(LabelBase):
    """A trajectory of steps an expert took from a context."""

    expected_outcome = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["task", "reviewer"], condition=Q(task__isnull=False),
                name="demonstration_once_per_reviewer_and_task",
            ),
        ]  # fmt: skip
        indexes = [
            models.Index(fields=["reviewer", "-created_at"], name="demonstration_by_reviewer")
        ]

    def __str__(self) -> str:
        return f"demonstration {self.pk} by {self.reviewer_id}"


class RejectReason(models.TextChoices):
    UNSAFE = "unsafe"
    IRRELEVANT = "irrelevant"
    REPETITIVE = "repetitive"
    LOW_QUALITY = "low_quality"
    OTHER = "other"


class DemonstrationStep(models.Model):
    demonstration = models.ForeignKey(Demonstration, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveSmallIntegerField()
    # The user's state at this step: history (item pks and events) and situation.
    state = models.JSONField()
    shown = models.JSONField(help_text="candidate item pks the expert saw")
    chosen = models.JSONField(help_text="the slate, item pks best first")
    rejected = models.JSONField(default=list, help_text='[{"item": pk, "reason": …}]')
    rationale = models.TextField(blank=True)

    class Meta:
        ordering = ["demonstration", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["demonstration", "index"], name="demonstration_step_once"
            ),
        ]

    def __str__(self) -> str:
        return f"step {self.index} of demonstration {self.demonstration_id}"


class DemonstrationDraft(models.Model):
    """The builder's whole state, saved as the expert works (a reload or a lost connection
    loses nothing). One per reviewer and task, or per reviewer and context when the
    demonstration starts from the catalog."""

    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    task = models.ForeignKey(
        QueueTask, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    context = models.ForeignKey(UserContext, on_delete=models.CASCADE, related_name="+")
    data = models.JSONField(default=dict)
    revision = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["reviewer", "task"], condition=Q(task__isnull=False),
                name="draft_once_per_reviewer_and_task",
            ),
            models.UniqueConstraint(
                fields=["reviewer", "context"], condition=Q(task__isnull=True),
                name="draft_once_per_reviewer_and_context",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"draft of {self.reviewer_id} on context {self.context_id}"


class LabelRevision(models.Model):
    """The version of a label an edit replaced (labels stay editable until locked)."""

    comparison = models.ForeignKey(
        Comparison, on_delete=models.CASCADE, null=True, blank=True, related_name="revisions"
    )
    demonstration = models.ForeignKey(
        Demonstration, on_delete=models.CASCADE, null=True, blank=True, related_name="revisions"
    )
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    edited_at = models.DateTimeField(auto_now_add=True)
    before = models.JSONField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(comparison__isnull=False) | Q(demonstration__isnull=False),
                name="revision_of_a_label",
            ),
        ]

    def __str__(self) -> str:
        return f"revision {self.pk}"


class QueueSettings(models.Model):
    """The queue's knobs, one row; changed by policy admins through a page (audited)."""

    overlap_compare = models.PositiveSmallIntegerField(default=3)
    overlap_demonstrate = models.PositiveSmallIntegerField(default=1)
    # Share of next-task requests answered with a gold task the reviewer has not seen.
    gold_rate = models.FloatField(default=0.05)
    # A reviewer whose gold accuracy (after at least gold_min_answers) falls below this is
    # flagged to admins.
    gold_min_accuracy = models.FloatField(default=0.7)
    gold_min_answers = models.PositiveSmallIntegerField(default=10)
    # A finished task whose agreement on a criterion (share of the modal answer) is below
    # this goes to adjudication by a senior reviewer.
    adjudicate_below = models.FloatField(default=0.67)
    # Priority points a waiting task gains per hour, so that nothing starves.
    aging_points_per_hour = models.PositiveIntegerField(default=100)

    class Meta:
        verbose_name_plural = "queue settings"
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="queue_settings_single_row"),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0, gold_rate__lte=1), name="queue_gold_rate_0_1"
            ),
            models.CheckConstraint(
                condition=Q(overlap_compare__gte=1, overlap_demonstrate__gte=1),
                name="queue_overlaps_at_least_one",
            ),
        ]

    def __str__(self) -> str:
        return "queue settings"


class ReviewerProfile(models.Model):
    """What routing knows of a reviewer: their skills ("topic:gambling", "lang:de",
    "senior"), and whether gold answers flagged them for an admin's attention."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviewer_profile"
    )
    skills = models.JSONField(default=list, blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True)
    flag_reason = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"profile of {self.user_id}"


class TaskResolution(models.Model):
    """A finished task's accepted answer: the majority's, or an adjudicator's decision."""

    class Source(models.TextChoices):
        MAJORITY = "majority"
        ADJUDICATION = "adjudication"

    task = models.OneToOneField(QueueTask, on_delete=models.CASCADE, related_name="resolution")
    judgments = models.JSONField()
    source = models.CharField(max_length=16, choices=Source.choices)
    rationale = models.TextField(blank=True)
    adjudicator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"resolution of task {self.task_id} ({self.source})"


class GoldAnswer(models.Model):
    """The accepted answers of a gold task (copied from a labeled task by an admin)."""

    task = models.OneToOneField(QueueTask, on_delete=models.CASCADE, related_name="gold_answer")
    judgments = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"gold answer of task {self.task_id}"


class AgreementCell(models.Model):
    """One cell o_ck of Krippendorff's coincidence matrix for a criterion, summed over
    tasks with two labels or more. Cells are incremented in place as labels arrive (no
    read-modify-write, so concurrent submissions never lose an update)."""

    criterion = models.CharField(max_length=64)
    first = models.CharField(max_length=16)
    second = models.CharField(max_length=16)
    weight = models.FloatField(default=0.0, db_default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["criterion", "first", "second"], name="agreement_cell_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.criterion}: {self.first}|{self.second}"


class AgreementPairs(models.Model):
    """Pairs of labels on the same task, per criterion, and how many agreed."""

    criterion = models.CharField(max_length=64, unique=True)
    pairs = models.PositiveIntegerField(default=0, db_default=0)
    agreeing = models.PositiveIntegerField(default=0, db_default=0)

    def __str__(self) -> str:
        return f"pairs on {self.criterion}"


class PairCell(models.Model):
    """Two reviewers' answers on tasks both labeled, per criterion (Cohen's kappa):
    reviewer_a (the lower id) answered ``first``, reviewer_b ``second``, ``count`` times."""

    criterion = models.CharField(max_length=64)
    reviewer_a = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    reviewer_b = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    first = models.CharField(max_length=16)
    second = models.CharField(max_length=16)
    count = models.PositiveIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["criterion", "reviewer_a", "reviewer_b", "first", "second"],
                name="pair_cell_once",
            ),
            models.CheckConstraint(
                condition=Q(reviewer_a__lt=F("reviewer_b")), name="pair_cell_ordered"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer_a_id}×{self.reviewer_b_id} on {self.criterion}"


class ReviewerCriterionStats(models.Model):
    """A reviewer's record on one criterion: agreement with the majority of finished
    tasks, and answers on gold tasks."""

    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    criterion = models.CharField(max_length=64)
    majority_agreed = models.PositiveIntegerField(default=0, db_default=0)
    majority_total = models.PositiveIntegerField(default=0, db_default=0)
    gold_correct = models.PositiveIntegerField(default=0, db_default=0)
    gold_total = models.PositiveIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["reviewer", "criterion"], name="reviewer_criterion_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer_id} on {self.criterion}"
