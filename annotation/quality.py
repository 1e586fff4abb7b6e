"""Label quality: agreement tallies kept up to date as labels arrive, gold answers scored,
finished tasks resolved by majority or sent to adjudication, reviewers flagged, and the
reliability the reward model weighs labels by.

``label_recorded`` runs inside the transaction that stores a comparison, so a label and
its effect on every tally commit together; tallies are incremented in place (see
core.db.increment), so concurrent submissions never lose an update.
"""

from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from annotation import agreement
from annotation.models import (
    AgreementCell,
    AgreementPairs,
    Comparison,
    GoldAnswer,
    PairCell,
    QueueSettings,
    QueueTask,
    ReviewerCriterionStats,
    ReviewerProfile,
    TaskAudience,
    TaskKind,
    TaskReason,
    TaskResolution,
    TaskStatus,
)
from core.cache import ttl_cache
from core.db import increment
from governance.audit import audit_record, snapshot
from governance.models import GuidelineVersion

SENIOR_SKILL = "senior"
# Priority points per reason: flags first, then high stakes, then model uncertainty, then
# random audit. Waiting adds aging points on top (see task_priority).
REASON_RANK = {
    TaskReason.FLAG: 50_000,
    TaskReason.DISAGREEMENT: 45_000,
    TaskReason.STAKES: 40_000,
    TaskReason.CONFLICT: 35_000,
    TaskReason.UNCERTAINTY: 30_000,
    TaskReason.MANUAL: 25_000,
    TaskReason.AUDIT: 20_000,
    TaskReason.GOLD: 0,
}
# Aging is folded into the priority at creation: a task created h hours earlier ranks as
# if it had gained rate·h points, so the order needs no updates and stays indexable.
AGING_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def queue_settings() -> QueueSettings:
    return QueueSettings.objects.get_or_create(pk=1)[0]


# Every lease reads the gold rate: a few seconds' staleness in another process is harmless
# and saves a query on the hottest path. An update in this process clears it at once.
SETTINGS_TTL_SECONDS = 5.0


@ttl_cache(SETTINGS_TTL_SECONDS)
def cached_queue_settings() -> QueueSettings:
    return queue_settings()


def gold_rate() -> float:
    return cached_queue_settings().gold_rate


def task_priority(reason: str, *, created: datetime, extra: int = 0) -> int:
    """rank(reason) − rate × hours since the epoch: older tasks rank higher, at
    ``aging_points_per_hour`` points per hour of waiting."""
    hours = (created - AGING_EPOCH).total_seconds() / 3600
    return REASON_RANK.get(reason, 0) + extra - int(queue_settings().aging_points_per_hour * hours)


# --- as labels arrive ----------------------------------------------------------------------


def label_recorded(comparison: Comparison) -> None:
    """Update gold scores or agreement tallies, and resolve the task if it is finished."""
    task = comparison.task
    if task is None:
        return
    if task.kind == TaskKind.GOLD:
        _score_gold(comparison, task)
        return
    if task.kind == TaskKind.ADJUDICATE:
        return
    earlier = list(
        Comparison.objects.filter(task=task)
        .exclude(pk=comparison.pk)
        .values_list("reviewer_id", "judgments")
    )
    if earlier:
        _tally_agreement(comparison, earlier)
    task.refresh_from_db(fields=["status", "labels_count", "overlap_target"])
    if task.status == TaskStatus.DONE and task.overlap_target >= 2:
        _resolve(task)


def _tally_agreement(comparison: Comparison, earlier: list[tuple[int, dict]]) -> None:
    for criterion, answer in comparison.judgments.items():
        before = [judgments[criterion] for _, judgments in earlier if criterion in judgments]
        after = [*before, answer]
        change = dict(agreement.unit_coincidences(after))
        agreement.add(change, agreement.unit_coincidences(before), sign=-1)
        for (first, second), weight in change.items():
            increment(
                AgreementCell,
                {"criterion": criterion, "first": first, "second": second},
                {"weight": weight},
            )
        agreeing_now, pairs_now = agreement.agreeing_pairs(after)
        agreeing_then, pairs_then = agreement.agreeing_pairs(before)
        increment(
            AgreementPairs, {"criterion": criterion},
            {"pairs": pairs_now - pairs_then, "agreeing": agreeing_now - agreeing_then},
        )  # fmt: skip
        for other, judgments in earlier:
            if criterion in judgments:
                _tally_pair(criterion, comparison.reviewer_id, answer, other, judgments[criterion])


def _tally_pair(criterion: str, reviewer: int, answer: str, other: int, other_answer: str) -> None:
    (low, low_answer), (high, high_answer) = sorted([(reviewer, answer), (other, other_answer)])
    increment(
        PairCell,
        {"criterion": criterion, "reviewer_a_id": low, "reviewer_b_id": high,
         "first": low_answer, "second": high_answer},
        {"count": 1},
    )  # fmt: skip


def _resolve(task: QueueTask) -> None:
    """Every label is in: credit each reviewer's agreement with the majority, then accept
    the majority's answers, or send the task to a senior reviewer if agreement is low."""
    labels = list(Comparison.objects.filter(task=task).values_list("reviewer_id", "judgments"))
    criteria = sorted({c for _, judgments in labels for c in judgments})
    accepted, low = {}, []
    threshold = queue_settings().adjudicate_below
    for criterion in criteria:
        answers = [j[criterion] for _, j in labels if criterion in j]
        modal, share = agreement.majority(answers)
        accepted[criterion] = modal
        if modal is None or share < threshold:
            low.append(criterion)
        for reviewer, judgments in labels:
            if criterion in judgments:
                others = [j[criterion] for r, j in labels if r != reviewer and criterion in j]
                peer_modal, _ = agreement.majority(others)
                agreed = int(judgments[criterion] == peer_modal)
                increment(
                    ReviewerCriterionStats, {"reviewer_id": reviewer, "criterion": criterion},
                    {"majority_agreed": agreed, "majority_total": 1},
                )  # fmt: skip
    if low:
        _send_to_adjudication(task, low)
    else:
        TaskResolution.objects.get_or_create(
            task=task, defaults={"judgments": accepted, "source": TaskResolution.Source.MAJORITY}
        )


def _send_to_adjudication(task: QueueTask, criteria: list[str]) -> QueueTask | None:
    if QueueTask.objects.filter(source_task=task, kind=TaskKind.ADJUDICATE).exists():
        return None
    now = timezone.now()
    return QueueTask.objects.create(
        kind=TaskKind.ADJUDICATE, reason=TaskReason.DISAGREEMENT, audience=TaskAudience.LABELER,
        skills=[SENIOR_SKILL], context_id=task.context_id, slate_a=task.slate_a,
        slate_b=task.slate_b, source_task=task, overlap_target=1,
        priority=task_priority(TaskReason.DISAGREEMENT, created=now),
    )  # fmt: skip


def _score_gold(comparison: Comparison, task: QueueTask) -> None:
    answer = GoldAnswer.objects.filter(task=task).first()
    if answer is None:
        return
    for criterion, accepted in answer.judgments.items():
        if criterion in comparison.judgments:
            increment(
                ReviewerCriterionStats,
                {"reviewer_id": comparison.reviewer_id, "criterion": criterion},
                {"gold_correct": int(comparison.judgments[criterion] == accepted), "gold_total": 1},
            )  # fmt: skip
    _flag_if_unreliable(comparison.reviewer_id)


def _flag_if_unreliable(reviewer_id: int) -> None:
    stats = ReviewerCriterionStats.objects.filter(reviewer_id=reviewer_id).aggregate(
        correct=Sum("gold_correct"), total=Sum("gold_total")
    )
    settings = queue_settings()
    total = stats["total"] or 0
    if total < settings.gold_min_answers:
        return
    accuracy = (stats["correct"] or 0) / total
    profile, _ = ReviewerProfile.objects.get_or_create(user_id=reviewer_id)
    if accuracy < settings.gold_min_accuracy and profile.flagged_at is None:
        profile.flagged_at = timezone.now()
        profile.flag_reason = f"gold accuracy {accuracy:.0%} over {total} answers"
        profile.save(update_fields=["flagged_at", "flag_reason"])


# --- admins' actions ---------------------------------------------------------------------------


@transaction.atomic
def gold_create(*, actor, task: QueueTask, judgments: dict[str, str]) -> QueueTask:
    """Copy a labeled task as a gold task with its accepted answers; the queue mixes it in,
    unmarked, for reviewers who have not labeled the original."""
    gold = QueueTask.objects.create(
        kind=TaskKind.GOLD, reason=TaskReason.GOLD, audience=TaskAudience.LABELER,
        context_id=task.context_id, slate_a=task.slate_a, slate_b=task.slate_b,
        source_task=task, overlap_target=10_000, priority=0,
    )  # fmt: skip
    GoldAnswer.objects.create(task=gold, judgments=judgments, created_by=actor)
    audit_record(
        actor=actor, action="gold.create", target=gold,
        after={"source_task": task.pk, "judgments": judgments},
    )  # fmt: skip
    return gold


@transaction.atomic
def queue_settings_update(*, actor, **values) -> QueueSettings:
    settings = QueueSettings.objects.select_for_update().get_or_create(pk=1)[0]
    before = snapshot(settings)
    for name, value in values.items():
        setattr(settings, name, value)
    settings.full_clean()
    settings.save()
    cached_queue_settings.clear()
    transaction.on_commit(cached_queue_settings.clear)
    audit_record(
        actor=actor, action="queue_settings.update", target=settings,
        before=before, after=snapshot(settings),
    )  # fmt: skip
    return settings


@transaction.atomic
def reviewer_skills_set(*, actor, user, skills: list[str]) -> ReviewerProfile:
    profile, _ = ReviewerProfile.objects.select_for_update().get_or_create(user=user)
    before = {"skills": list(profile.skills)}
    profile.skills = sorted({s.strip() for s in skills if s.strip()})
    profile.save(update_fields=["skills"])
    audit_record(
        actor=actor, action="user.skills", target=user, before=before,
        after={"skills": profile.skills},
    )  # fmt: skip
    return profile


@transaction.atomic
def reviewer_flag_clear(*, actor, user) -> None:
    profile = ReviewerProfile.objects.select_for_update().filter(user=user).first()
    if profile is None or profile.flagged_at is None:
        return
    before = {"flagged_at": profile.flagged_at.isoformat(), "flag_reason": profile.flag_reason}
    profile.flagged_at, profile.flag_reason = None, ""
    profile.save(update_fields=["flagged_at", "flag_reason"])
    audit_record(actor=actor, action="user.flag_clear", target=user, before=before, after={})


@transaction.atomic
def labels_requeue_for_guideline(*, actor, version) -> int:
    """After a guideline version that changes the meaning of some criteria, ask again
    (one re-review task per labeled task) the comparisons made under earlier versions."""
    criteria = sorted(version.affects_criteria.values_list("slug", flat=True))
    if not criteria:
        raise ValidationError("this version marks no criteria as affected: nothing to re-queue")
    note = f"re-review: {version.guideline.slug} v{version.number} changed {', '.join(criteria)}"
    earlier = GuidelineVersion.objects.filter(
        guideline=version.guideline, number__lt=version.number
    )
    tasks = (
        QueueTask.objects.filter(
            pk__in=Comparison.objects.filter(
                guideline_version__in=earlier, task__isnull=False
            ).values("task_id")
        )
        .exclude(derived_tasks__note=note)
        .exclude(kind__in=[TaskKind.GOLD, TaskKind.ADJUDICATE])
    )
    now = timezone.now()
    created = QueueTask.objects.bulk_create(
        QueueTask(
            kind=TaskKind.COMPARE, reason=TaskReason.MANUAL, audience=task.audience,
            skills=task.skills, context_id=task.context_id, slate_a=task.slate_a,
            slate_b=task.slate_b, source_task=task, note=note, overlap_target=1,
            priority=task_priority(TaskReason.MANUAL, created=now),
        )
        for task in tasks
    )  # fmt: skip
    audit_record(
        actor=actor, action="labels.requeue", target=version,
        after={"tasks": len(created), "criteria": criteria},
    )  # fmt: skip
    return len(created)
