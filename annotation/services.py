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
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When
from django.utils import timezone

from annotation import pg_leases, quality
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
from governance.models import Criterion
from governance.roles import Role, user_roles
from governance.selectors import active_criteria, guideline_in_force, policy_version_in_force

# Task kinds answered with a comparison (gold tasks are comparisons whose answer is known).
COMPARED_KINDS = (TaskKind.COMPARE, TaskKind.GOLD)
# States in which a reviewer has had a task: they are not offered it again.
HAD_IT = (AssignmentState.LEASED, AssignmentState.SUBMITTED, AssignmentState.RELEASED)


class LabelRefused(ValidationError):
    """The label cannot be stored (the task has all its labels, or it is not yours)."""


class NotYourLease(LabelRefused):
    """The lease is someone else's (or does not exist): the API answers 404."""


# What a label needs of its task's context is the id and external id, not the history.
CONTEXT_HEAVY = ("task__context__history", "task__context__situation")


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
    locked with FOR UPDATE SKIP LOCKED over the index on (priority desc, id) of open tasks
    (or, for a rare kind such as gold, on (kind, priority desc, id)), so concurrent
    reviewers never wait for each other and never get the same slot; on
    SQLite the transaction itself is serialized (IMMEDIATE), which is correct if slower.
    """
    audiences = task_audiences_for(reviewer) if audiences is None else audiences
    if not audiences:
        return None
    kinds = list(kinds) if kinds else None
    wanted = []  # (kinds, kinds never) to try in turn
    if (kinds is None or TaskKind.COMPARE in kinds) and random.random() < quality.gold_rate():
        wanted.append(([TaskKind.GOLD], []))
    wanted.append(([k for k in kinds if k != TaskKind.GOLD] if kinds else None, [TaskKind.GOLD]))
    lease = _lease_postgresql if connection.vendor == "postgresql" else _lease_orm
    for only, never in wanted:
        assignment = lease(reviewer, audiences, only, never, list(exclude_tasks), now)
        if assignment is not None:
            return assignment
    return None


def _lease_postgresql(reviewer, audiences, kinds, never_kinds, exclude, now) -> Assignment | None:
    assignment = pg_leases.lease(
        reviewer_id=reviewer.pk, audiences=audiences, kinds=kinds, never_kinds=never_kinds,
        exclude=exclude, had_it=HAD_IT, now=now, expires=now + lease_duration(),
        left=random.choice("ab"),
    )  # fmt: skip
    if assignment is not None:
        assignment.reviewer = reviewer
    return assignment


def _lease_orm(reviewer, audiences, kinds, never_kinds, exclude, now) -> Assignment | None:
    """The lease as three ORM statements (what ``pg_leases.LEASE`` does in one)."""
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
        .exclude(kind__in=never_kinds)
        .exclude(pk__in=exclude)
        .order_by("-priority", "id")
    )
    if kinds:
        candidates = candidates.filter(kind__in=kinds)
    pk = _first_with_skills(candidates, set(reviewer_skills(reviewer)))
    if pk is None:
        return None
    QueueTask.objects.filter(pk=pk).update(leased_count=F("leased_count") + 1)
    return Assignment.objects.create(
        task=QueueTask.objects.select_related("context").get(pk=pk),
        reviewer=reviewer,
        leased_at=now,
        expires_at=now + lease_duration(),
        heartbeat_at=now,
        left=random.choice("ab"),
    )


def reviewer_skills(reviewer) -> list[str]:
    profile = ReviewerProfile.objects.filter(user=reviewer).values_list("skills", flat=True).first()
    return list(profile or [])


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
    criteria = {c.slug: c for c in active_criteria()}
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
    """Store a comparison once; a lease that expired still counts when its task has a
    free slot. A retry of a stored submission is refused (the lease has its label, or the
    client token is taken): callers answer it with ``label_by_token``."""
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
        context=task.context,
        channel=channel_for(task),
        guideline_version=guideline_in_force(task.kind),
        policy_version=policy_version_in_force(),
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


def label_submit_once(model, *, reviewer, client_token, submit) -> tuple:
    """Run ``submit`` (a label service) so that a client token stores one label: returns
    (the label, True) when this call stored it, (the stored one, False) for a retry. A
    retry is refused by the service (its lease has its label, or the unique token trips,
    when it raced the original): the stored label answers it instead."""
    started = timezone.now()
    try:
        label = submit()
    except NotYourLease:
        raise
    except (LabelRefused, IntegrityError) as failure:
        label = model.objects.filter(client_token=client_token, reviewer=reviewer).first()
        if label is not None:
            return label, False
        if isinstance(failure, IntegrityError):
            raise LabelRefused("this client token belongs to another submission") from None
        raise
    return label, label.created_at >= started  # a service may return a stored label


def label_slot_claim(assignment: Assignment, reviewer, now: datetime) -> Assignment:
    """Turn the reviewer's lease into a label slot, or take a free slot for a lease that
    expired or was released; refuse when the task has all its labels. The task is marked
    done by the same UPDATE that counts its last label."""
    if connection.vendor == "postgresql":  # the common case, a live lease, in one statement
        claimed = pg_leases.claim_leased(
            assignment_id=assignment.pk, reviewer_id=reviewer.pk, now=now
        )
        if claimed is not None:
            claimed.reviewer = reviewer
            return claimed
    claimed = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("task__context")
        .defer(*CONTEXT_HEAVY)
        .filter(pk=assignment.pk, reviewer=reviewer)
        .first()
    )
    if claimed is None:
        raise NotYourLease("this task is not yours")
    assignment = claimed
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
    note: str = "",
    proposed_by=None,
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
        note=note[:200], proposed_by=proposed_by,
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
    criteria = {c.slug for c in active_criteria()}
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
