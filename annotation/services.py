"""The labeling queue's writes: leasing the next task, heartbeats, skips, reclaiming
expired leases, and storing labels (idempotently, within the task's overlap).

Every service that touches a task's counters runs in one transaction that also locks the
task row, so ``labels_count + leased_count <= overlap_target`` holds whatever runs at
the same time (and a database constraint refuses anything else).
"""

import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Case, Exists, F, JSONField, OuterRef, Q, Value, When
from django.utils import timezone

from annotation import quality
from annotation.models import (
    Assignment,
    AssignmentState,
    Channel,
    Comparison,
    Demonstration,
    Judgment,
    LabelRevision,
    QueueTask,
    ReviewerProfile,
    TaskAudience,
    TaskKind,
    TaskResolution,
    TaskStatus,
)
from governance.audit import audit_record, snapshot
from governance.models import Criterion, GuidelineVersion, PolicyVersion, VersionStatus
from governance.policy_engine import active_version
from governance.roles import Role, user_roles

# Task kinds answered with a comparison (gold tasks are comparisons whose answer is known).
COMPARED_KINDS = (TaskKind.COMPARE, TaskKind.GOLD)
# States in which a reviewer has had a task: they are not offered it again.
HAD_IT = (AssignmentState.LEASED, AssignmentState.SUBMITTED, AssignmentState.RELEASED)


class LabelRefused(ValidationError):
    """The label cannot be stored (the task has all its labels, or it is not yours)."""


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.SHEPHERD_LEASE_SECONDS)


def task_audiences_for(user) -> list[str]:
    """The task audiences a user's roles let them take."""
    roles = user_roles(user)
    audiences = []
    if roles & {Role.CURATOR, Role.SAFETY_REVIEWER}:
        audiences.append(TaskAudience.LABELER)
    if Role.SAFETY_REVIEWER in roles:
        audiences.append(TaskAudience.SAFETY_REVIEWER)
    if Role.STUDY_PARTICIPANT in roles:
        audiences.append(TaskAudience.STUDY_PARTICIPANT)
    return audiences


def channel_for(task: QueueTask) -> str:
    return {
        TaskAudience.SAFETY_REVIEWER: Channel.SAFETY_REVIEW,
        TaskAudience.STUDY_PARTICIPANT: Channel.USER_STUDY,
    }.get(task.audience, Channel.CURATION)


# --- leases ----------------------------------------------------------------------------


@transaction.atomic
def task_lease_next(
    *,
    reviewer,
    now: datetime,
    kinds: list[str] | None = None,
    audiences: list[str] | None = None,
    exclude_tasks: list[int] = (),
) -> Assignment | None:
    """Lease the highest-priority task the reviewer may take, or None.

    A task waits for a matching expert: its audience must be one the reviewer's roles
    allow and its skills a subset of theirs. Gold tasks are mixed in, looking like any
    comparison, at the rate the queue settings give. On PostgreSQL the candidate row is
    locked with FOR UPDATE SKIP LOCKED over the index on (priority desc, id) of open tasks,
    so concurrent reviewers never wait for each other and never get the same slot; on
    SQLite the transaction itself is serialized (IMMEDIATE), which is correct if slower.
    """
    audiences = task_audiences_for(reviewer) if audiences is None else audiences
    if not audiences:
        return None
    skills = reviewer_skills(reviewer)
    kinds = list(kinds) if kinds else None
    task_id = None
    if (kinds is None or TaskKind.COMPARE in kinds) and random.random() < quality.gold_rate():
        task_id = _next_task_id(reviewer, audiences, [TaskKind.GOLD], exclude_tasks, skills)
    if task_id is None:
        ordinary = [k for k in kinds if k != TaskKind.GOLD] if kinds else None
        task_id = _next_task_id(reviewer, audiences, ordinary, exclude_tasks, skills, no_gold=True)
    if task_id is None:
        return None
    QueueTask.objects.filter(pk=task_id).update(leased_count=F("leased_count") + 1)
    return Assignment.objects.create(
        task_id=task_id,
        reviewer=reviewer,
        leased_at=now,
        expires_at=now + lease_duration(),
        heartbeat_at=now,
        left=random.choice("ab"),
    )


def reviewer_skills(reviewer) -> list[str]:
    profile = ReviewerProfile.objects.filter(user=reviewer).values_list("skills", flat=True).first()
    return list(profile or [])


def _next_task_id(
    reviewer, audiences, kinds, exclude_tasks, skills, *, no_gold: bool = False
) -> int | None:
    had_it = Assignment.objects.filter(task=OuterRef("pk"), reviewer=reviewer, state__in=HAD_IT)
    # Adjudicators and gold takers must not have labeled the task they derive from.
    labeled_source = Comparison.objects.filter(task=OuterRef("source_task"), reviewer=reviewer)
    candidates = (
        QueueTask.objects.filter(
            status=TaskStatus.OPEN,
            audience__in=audiences,
            labels_count__lt=F("overlap_target") - F("leased_count"),
        )
        .exclude(Exists(had_it))
        .exclude(Exists(labeled_source))
        .order_by("-priority", "id")
    )
    if kinds:
        candidates = candidates.filter(kind__in=kinds)
    if no_gold:
        candidates = candidates.exclude(kind=TaskKind.GOLD)
    if exclude_tasks:
        candidates = candidates.exclude(pk__in=exclude_tasks)
    if connection.vendor == "postgresql":
        # Every skill the task needs must be one the reviewer has (jsonb <@).
        candidates = candidates.filter(skills__contained_by=Value(skills, JSONField()))
        candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        return candidates.values_list("pk", flat=True).first()
    return _first_with_skills(candidates, set(skills))


def _first_with_skills(candidates, skills: set[str], window: int = 200) -> int | None:
    """SQLite has no JSON containment: check skills in Python over the best candidates
    (the transaction is serialized there, so nothing is taken meanwhile)."""
    for pk, needed in candidates.values_list("pk", "skills")[:window]:
        if set(needed or ()) <= skills:
            return pk
    return None


@transaction.atomic
def assignment_heartbeat(*, assignment: Assignment, now: datetime) -> Assignment:
    """Extend a live lease while its page is open. An expired one is taken back if its
    task still has a free slot; otherwise the state says the lease is gone."""
    assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
    if assignment.state == AssignmentState.LEASED:
        assignment.heartbeat_at = now
        assignment.expires_at = now + lease_duration()
        assignment.save(update_fields=["heartbeat_at", "expires_at"])
    elif assignment.state == AssignmentState.EXPIRED and _take_lease_slot(assignment.task_id):
        assignment.state = AssignmentState.LEASED
        assignment.heartbeat_at = now
        assignment.expires_at = now + lease_duration()
        assignment.save(update_fields=["state", "heartbeat_at", "expires_at"])
    return assignment


@transaction.atomic
def assignment_release(*, assignment: Assignment, now: datetime, reason: str = "") -> Assignment:
    """Skip or close: the slot is free again at once."""
    assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
    if assignment.state == AssignmentState.LEASED:
        QueueTask.objects.filter(pk=assignment.task_id).update(leased_count=F("leased_count") - 1)
        assignment.state = AssignmentState.RELEASED
        assignment.ended_at = now
        assignment.skip_reason = reason[:200]
        assignment.save(update_fields=["state", "ended_at", "skip_reason"])
    return assignment


def leases_reclaim_expired(*, now: datetime, limit: int = 500) -> int:
    """Free the slots of leases whose page stopped beating. Tasks are updated in id
    order, so two reclaims running at once cannot deadlock."""
    with transaction.atomic():
        expired = Assignment.objects.filter(state=AssignmentState.LEASED, expires_at__lt=now)
        if connection.features.has_select_for_update_skip_locked:
            expired = expired.select_for_update(skip_locked=True)
        rows = list(expired.values_list("pk", "task_id")[:limit])
        if not rows:
            return 0
        Assignment.objects.filter(pk__in=[pk for pk, _ in rows]).update(
            state=AssignmentState.EXPIRED, ended_at=now
        )
        for task_id, count in sorted(Counter(task for _, task in rows).items()):
            QueueTask.objects.filter(pk=task_id).update(leased_count=F("leased_count") - count)
    return len(rows)


def _take_lease_slot(task_id: int) -> bool:
    """Lease a free slot of an open task again (one conditional UPDATE: atomic)."""
    return bool(
        QueueTask.objects.filter(
            pk=task_id,
            status=TaskStatus.OPEN,
            labels_count__lt=F("overlap_target") - F("leased_count"),
        ).update(leased_count=F("leased_count") + 1)
    )


# --- labels ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ComparisonInput:
    judgments: dict[str, str]
    confidence: int
    rationale: str = ""
    reason_tags: tuple[str, ...] = ()
    time_spent_ms: int = 0


def comparison_problems(data: ComparisonInput) -> dict[str, str]:
    """What is wrong with a comparison's answers, by field (empty when nothing)."""
    criteria = {c.slug: c for c in Criterion.objects.filter(active=True)}
    problems = {}
    missing = [slug for slug in criteria if slug not in data.judgments]
    if missing:
        problems["judgments"] = f"judge every criterion: {', '.join(missing)} missing"
    unknown = [slug for slug in data.judgments if slug not in criteria]
    if unknown:
        problems["judgments"] = f"unknown criteria: {', '.join(unknown)}"
    bad = [slug for slug, choice in data.judgments.items() if choice not in Judgment.values]
    if bad:
        problems["judgments"] = f"choose a, b, tie or cannot_tell for {', '.join(bad)}"
    if not 1 <= data.confidence <= 5:
        problems["confidence"] = "must be from 1 to 5"
    if not problems and not data.rationale.strip() and _needs_rationale(criteria, data.judgments):
        problems["rationale"] = (
            "explain a safety judgment, and any choice that goes against a veto criterion"
        )
    return problems


def _needs_rationale(criteria: dict[str, Criterion], judgments: dict[str, str]) -> bool:
    """A safety judgment (a preference on a veto criterion) needs a rationale. Any choice
    that goes against a veto criterion implies such a preference, so it is covered."""
    return any(
        criterion.is_veto and judgments.get(slug) in (Judgment.A, Judgment.B)
        for slug, criterion in criteria.items()
    )


@transaction.atomic
def comparison_submit(
    *,
    reviewer,
    assignment: Assignment,
    data: ComparisonInput,
    client_token: uuid.UUID,
    now: datetime,
) -> Comparison:
    """Store a comparison once. A retry with the same client token returns the first
    one; a lease that expired still counts when its task has a free slot."""
    stored = Comparison.objects.filter(client_token=client_token).first()
    if stored is not None:
        if stored.reviewer_id != reviewer.pk:
            raise LabelRefused("this submission belongs to someone else")
        return stored
    problems = comparison_problems(data)
    if problems:
        raise ValidationError(problems)
    assignment = label_slot_claim(assignment, reviewer, now)
    task = assignment.task
    if task.kind not in COMPARED_KINDS:  # refused before commit: the claim rolls back
        raise ValidationError({"task": f"a {task.kind} task takes no comparison"})
    comparison = Comparison.objects.create(
        task=task,
        assignment=assignment,
        reviewer=reviewer,
        context_id=task.context_id,
        channel=channel_for(task),
        guideline_version=guideline_in_force(task.kind),
        policy_version=policy_in_force(),
        slate_a=task.slate_a,
        slate_b=task.slate_b,
        left=assignment.left,
        judgments=data.judgments,
        confidence=data.confidence,
        rationale=data.rationale.strip(),
        reason_tags=list(data.reason_tags),
        time_spent_ms=data.time_spent_ms,
        client_token=client_token,
    )
    if task.overlap_target > 1 or task.kind == TaskKind.GOLD:  # nothing to tally alone
        quality.label_recorded(comparison)
    return comparison


def label_slot_claim(assignment: Assignment, reviewer, now: datetime) -> Assignment:
    """Turn the reviewer's lease into a label slot, or take a free slot for a lease that
    expired or was released; refuse when the task has all its labels. The task is marked
    done by the same UPDATE that counts its last label."""
    assignment = Assignment.objects.select_for_update().select_related("task").get(pk=assignment.pk)
    if assignment.reviewer_id != reviewer.pk:
        raise LabelRefused("this task is not yours")
    if assignment.state == AssignmentState.SUBMITTED:
        raise LabelRefused("you have already labeled this task")
    counted = QueueTask.objects.filter(pk=assignment.task_id)
    if assignment.state == AssignmentState.LEASED:
        changes = {"leased_count": F("leased_count") - 1}
    else:  # expired or released: a free slot, if any, is taken now
        counted = counted.filter(
            status=TaskStatus.OPEN, labels_count__lt=F("overlap_target") - F("leased_count")
        )
        changes = {}
    last_label = Q(labels_count__gte=F("overlap_target") - 1)
    if not counted.update(
        labels_count=F("labels_count") + 1,
        status=Case(When(last_label, then=Value(TaskStatus.DONE)), default=F("status")),
        done_at=Case(When(last_label, then=Value(now)), default=F("done_at")),
        **changes,
    ):
        raise LabelRefused(
            "this task already has all the labels it needs: your lease ran out and others "
            "finished it"
        )
    assignment.state = AssignmentState.SUBMITTED
    assignment.ended_at = now
    assignment.save(update_fields=["state", "ended_at"])
    return assignment


def guideline_in_force(task_kind: str) -> GuidelineVersion | None:
    """The published guideline for the task's kind, else the general one."""
    published = GuidelineVersion.objects.filter(status=VersionStatus.PUBLISHED).select_related(
        "guideline"
    )
    return (
        published.filter(guideline__task_kind=task_kind).first()
        or published.filter(guideline__task_kind="").first()
    )


def policy_in_force() -> PolicyVersion | None:
    return active_version()


def task_create(
    *,
    kind: str,
    reason: str,
    context_id: int,
    slate_a: list[int] = (),
    slate_b: list[int] = (),
    audience: str = TaskAudience.LABELER,
    overlap_target: int | None = None,
    skills: list[str] = (),
    urgency: int = 0,
    now: datetime | None = None,
) -> QueueTask:
    """A new task: its priority comes from its reason and the time (see
    quality.task_priority), its overlap from the queue settings unless given."""
    now = now or timezone.now()
    settings = quality.cached_queue_settings()
    if overlap_target is None:
        overlap_target = (
            settings.overlap_demonstrate
            if kind == TaskKind.DEMONSTRATE
            else settings.overlap_compare
        )
    task = QueueTask(
        kind=kind, reason=reason, context_id=context_id, slate_a=list(slate_a),
        slate_b=list(slate_b), audience=audience, overlap_target=overlap_target,
        skills=list(skills), priority=quality.task_priority(reason, created=now, extra=urgency),
    )  # fmt: skip
    task.full_clean(exclude=["context", "source_task"])
    task.save()
    return task


# --- editing and locking labels --------------------------------------------------------------

COMPARISON_EDITABLE = ("judgments", "confidence", "rationale")


@transaction.atomic
def comparison_edit(
    *, actor, comparison: Comparison, judgments: dict[str, str], confidence: int, rationale: str
) -> Comparison:
    """A reviewer corrects their own label until an admin locks it. The version it
    replaces is kept (LabelRevision) and the edit is audited."""
    comparison = Comparison.objects.select_for_update().get(pk=comparison.pk)
    if comparison.reviewer_id != actor.pk:
        raise LabelRefused("only its author can edit a label")
    if comparison.locked:
        raise LabelRefused("this label is locked")
    problems = comparison_problems(
        ComparisonInput(judgments=judgments, confidence=confidence, rationale=rationale)
    )
    if problems:
        raise ValidationError(problems)
    before = snapshot(comparison, list(COMPARISON_EDITABLE))
    LabelRevision.objects.create(comparison=comparison, edited_by=actor, before=before)
    comparison.judgments, comparison.confidence = judgments, confidence
    comparison.rationale = rationale.strip()
    comparison.save(update_fields=[*COMPARISON_EDITABLE, "updated_at"])
    audit_record(
        actor=actor, action="comparison.edit", target=comparison,
        before=before, after=snapshot(comparison, list(COMPARISON_EDITABLE)),
    )  # fmt: skip
    return comparison


@transaction.atomic
def labels_lock(*, actor, comparisons=(), demonstrations=()) -> int:
    """Freeze labels (before training on them, or after adjudication); audited."""
    locked = 0
    for model, pks in ((Comparison, comparisons), (Demonstration, demonstrations)):
        pks = list(model.objects.filter(pk__in=pks, locked=False).values_list("pk", flat=True))
        model.objects.filter(pk__in=pks).update(locked=True)
        for pk in pks:
            audit_record(
                actor=actor, action=f"{model._meta.model_name}.lock",
                object_type=model._meta.label_lower, object_id=pk,
                before={"locked": False}, after={"locked": True},
            )  # fmt: skip
        locked += len(pks)
    return locked


# --- adjudication --------------------------------------------------------------------------


@transaction.atomic
def adjudication_submit(
    *, reviewer, assignment: Assignment, judgments: dict[str, str], rationale: str, now: datetime
) -> TaskResolution:
    """A senior reviewer's decision on a task the labelers disagreed on: it becomes the
    task's resolved label, with its rationale."""
    assignment = label_slot_claim(assignment, reviewer, now)
    task = assignment.task
    if task.kind != TaskKind.ADJUDICATE or task.source_task_id is None:
        raise ValidationError({"task": "this lease is not of an adjudication task"})
    criteria = set(Criterion.objects.filter(active=True).values_list("slug", flat=True))
    problems = {}
    if set(judgments) != criteria or any(v not in Judgment.values for v in judgments.values()):
        problems["judgments"] = f"decide every criterion ({', '.join(sorted(criteria))})"
    if not rationale.strip():
        problems["rationale"] = "say why: the decision becomes the accepted label"
    if problems:
        raise ValidationError(problems)
    resolution, _ = TaskResolution.objects.update_or_create(
        task_id=task.source_task_id,
        defaults={
            "judgments": judgments, "source": TaskResolution.Source.ADJUDICATION,
            "rationale": rationale.strip(), "adjudicator": reviewer,
        },
    )  # fmt: skip
    return resolution
