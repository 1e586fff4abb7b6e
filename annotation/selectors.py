"""Reads for the labeling pages and API: the reviewer's live lease, a comparison card with
what the content policy says of each item, the reviewer's queues, day and recent labels."""

from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Exists, F, OuterRef

from annotation.models import (
    Assignment,
    AssignmentState,
    Comparison,
    Demonstration,
    QueueTask,
    TaskKind,
    TaskStatus,
)
from annotation.permissions import READ_ALL_LABELS
from annotation.services import HAD_IT, task_audiences_for
from catalog.models import Item, UserContext
from governance.engine.core import Violation
from governance.models import Criterion, GuidelineVersion, VersionStatus
from governance.policy_engine import active_version, catalog_index, compile_version, engine_context

HISTORY_SHOWN = 10
COUNT_CAP = 1000  # queue counts stop here: counting a million open tasks per page view is waste


def live_assignment(
    *, reviewer, now: datetime, kinds: list[str], exclude: list[int] = ()
) -> Assignment | None:
    """The reviewer's oldest live lease of these kinds (a reload resumes it). Gold tasks
    pass for comparisons, as they do everywhere a reviewer can see."""
    if TaskKind.COMPARE in kinds:
        kinds = [*kinds, TaskKind.GOLD]
    lease_id = _live_lease_id(reviewer.pk, now, kinds, exclude)
    if lease_id is None:
        return None
    return Assignment.objects.select_related("task__context").get(pk=lease_id)


def _live_lease_id(reviewer_id: int, now: datetime, kinds: list[str], exclude) -> int | None:
    """Asked before every lease, and nearly always to find nothing: one plain query (the
    ORM's compilation of it costs more than the database's answer)."""
    kinds_in = ", ".join(["%s"] * len(kinds))
    not_excluded = f"AND a.task_id NOT IN ({', '.join(['%s'] * len(exclude))})" if exclude else ""
    sql = (
        "SELECT a.id FROM annotation_assignment a "
        "JOIN annotation_queuetask t ON t.id = a.task_id "
        "WHERE a.reviewer_id = %s AND a.state = %s AND a.expires_at > %s "
        f"AND t.kind IN ({kinds_in}) {not_excluded} "
        "ORDER BY a.leased_at LIMIT 1"
    )
    with connection.cursor() as cursor:
        when = connection.ops.adapt_datetimefield_value(now)
        cursor.execute(sql, [reviewer_id, AssignmentState.LEASED.value, when, *kinds, *exclude])
        row = cursor.fetchone()
    return row[0] if row else None


@dataclass
class CardItem:
    item: Item
    topics: list
    breaks: list[str] = field(default_factory=list)  # rule ids this item breaks


@dataclass
class CardSlate:
    label: str  # what the reviewer sees: "A" (left) or "B" (right)
    key: str  # the stored side: "a" or "b"
    items: list[CardItem]
    distinct_topics: int
    distinct_sources: int
    diversity: float  # intra-list diversity: mean pairwise cosine distance of features
    penalty: float
    violations: list[Violation]


@dataclass
class ComparisonCard:
    assignment: Assignment
    context: UserContext
    history: list[dict]
    left: CardSlate
    right: CardSlate
    criteria: list[Criterion]


def comparison_card(assignment: Assignment) -> ComparisonCard:
    task = assignment.task
    context = UserContext.objects.get(pk=task.context_id)
    slates = {"a": task.slate_a, "b": task.slate_b}
    right_key = "b" if assignment.left == "a" else "a"
    checker = _SlateChecker(context)
    return ComparisonCard(
        assignment=assignment,
        context=context,
        history=_history(context),
        left=checker.slate("A", assignment.left, slates[assignment.left]),
        right=checker.slate("B", right_key, slates[right_key]),
        criteria=list(Criterion.objects.filter(active=True)),
    )


def _history(context: UserContext) -> list[dict]:
    recent = context.history[-HISTORY_SHOWN:][::-1]
    items = Item.objects.prefetch_related("topics").in_bulk(
        [e["item"] for e in recent], field_name="external_id"
    )
    return [{**entry, "item_obj": items.get(entry["item"])} for entry in recent]


class _SlateChecker:
    """What the policy in force says of slates for one context."""

    def __init__(self, context: UserContext):
        version = active_version()
        self.index = catalog_index()
        self.engine = compile_version(version) if version else None
        self.situation = engine_context(context, index=self.index)

    def slate(self, label: str, key: str, pks: list[int]) -> CardSlate:
        by_pk = Item.objects.select_related("source").prefetch_related("topics").in_bulk(pks)
        items = [by_pk[pk] for pk in pks if pk in by_pk]
        cards = [CardItem(item=i, topics=list(i.topics.all())) for i in items]
        violations, penalty = self._verdict([i.pk for i in items])
        position_of = {self.index.position_of_pk.get(c.item.pk): c for c in cards}
        for violation in violations:
            for position in violation.items:
                if position in position_of:
                    position_of[position].breaks.append(violation.rule_id)
        return CardSlate(
            label=label, key=key, items=cards,
            distinct_topics=len({t.slug for c in cards for t in c.topics}),
            distinct_sources=len({c.item.source_id for c in cards}),
            diversity=_intra_list_diversity(items), penalty=penalty, violations=violations,
        )  # fmt: skip

    def _verdict(self, pks: list[int]) -> tuple[list[Violation], float]:
        known = [pk for pk in pks if pk in self.index.position_of_pk]
        if self.engine is None or not known:
            return [], 0.0
        positions = self.index.positions(known)
        return self.engine.violations(self.situation, positions), self.engine.penalty(
            self.situation, positions
        )


def _intra_list_diversity(items: list[Item]) -> float:
    """Mean pairwise cosine distance between the items' feature vectors (0 for < 2)."""
    vectors = [i.feature_vector for i in items]
    pairs = list(combinations(range(len(vectors)), 2))
    if not pairs:
        return 0.0
    matrix = np.stack(vectors).astype(np.float64)
    norms = np.linalg.norm(matrix, axis=1)
    norms[norms == 0] = 1.0
    unit = matrix / norms[:, None]
    return round(float(np.mean([1.0 - unit[i] @ unit[j] for i, j in pairs])), 3)


def queue_counts(*, reviewer) -> dict[str, int]:
    """Open tasks of each kind the reviewer could take now (capped at COUNT_CAP)."""
    audiences = task_audiences_for(reviewer)
    had_it = Assignment.objects.filter(task=OuterRef("pk"), reviewer=reviewer, state__in=HAD_IT)
    open_tasks = QueueTask.objects.filter(
        status=TaskStatus.OPEN, audience__in=audiences,
        labels_count__lt=F("overlap_target") - F("leased_count"),
    ).exclude(Exists(had_it))  # fmt: skip
    return {
        kind: open_tasks.filter(kind=kind)[:COUNT_CAP].count()
        for kind in (TaskKind.COMPARE, TaskKind.DEMONSTRATE)
    }


def labels_today(*, reviewer, now: datetime) -> int:
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return (
        Comparison.objects.filter(reviewer=reviewer, created_at__gte=start).count()
        + Demonstration.objects.filter(reviewer=reviewer, created_at__gte=start).count()
    )


def daily_target() -> int:
    return settings.SHEPHERD_DAILY_TARGET


def recent_labels(*, reviewer, limit: int = 10) -> list[Comparison | Demonstration]:
    comparisons = (
        Comparison.objects.filter(reviewer=reviewer)
        .select_related("context")
        .order_by("-created_at")[:limit]
    )
    demonstrations = (
        Demonstration.objects.filter(reviewer=reviewer)
        .select_related("context")
        .order_by("-created_at")[:limit]
    )
    merged = sorted(
        [*comparisons, *demonstrations], key=lambda label: label.created_at, reverse=True
    )
    return merged[:limit]


def guidelines_in_force() -> list[GuidelineVersion]:
    """The published guidelines a labeler works by: the general one and the task kinds'."""
    return list(
        GuidelineVersion.objects.filter(
            status=VersionStatus.PUBLISHED,
            guideline__task_kind__in=["", TaskKind.COMPARE, TaskKind.DEMONSTRATE],
        )
        .select_related("guideline")
        .order_by("guideline__task_kind")
    )


LABEL_RELATIONS = ("reviewer", "context", "guideline_version__guideline", "policy_version__policy")
# A label's row needs its context's external id, not the context's (long) history.
CONTEXT_BULK = ("context__history", "context__situation")


def labels_visible(model: type[Comparison] | type[Demonstration], *, user):
    """Blind labeling: one's own labels; every label for policy admins."""
    labels = model.objects.select_related(*LABEL_RELATIONS).defer(*CONTEXT_BULK)
    return labels if READ_ALL_LABELS.admits(user) else labels.filter(reviewer=user)
