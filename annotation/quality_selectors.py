"""Reads of label quality: agreement per criterion (from the running tallies), reviewer
statistics, the flagged reviewers, and the reliability training weighs labels by."""

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import Count, Q, Sum

from annotation import agreement
from annotation.models import (
    AgreementCell,
    AgreementPairs,
    Assignment,
    AssignmentState,
    Comparison,
    Demonstration,
    PairCell,
    ReviewerCriterionStats,
    ReviewerProfile,
)
from governance.models import Criterion

# Reliability's prior: as if every reviewer had agreed with accepted answers 4 times out
# of 5 before their first label (a Beta(4, 1) prior), so one early miss does not sink
# them and a few lucky answers do not crown them.
PRIOR_AGREED, PRIOR_TOTAL = 4, 5
RECENT_LABELS = 500  # the median time per task is taken over a reviewer's latest labels


@dataclass(frozen=True)
class PairKappa:
    reviewer_a: str
    reviewer_b: str
    kappa: float | None
    shared: int


@dataclass(frozen=True)
class CriterionAgreementView:
    criterion: Criterion
    alpha: float | None
    pairs: int
    observed: float | None  # share of agreeing pairs of labels on the same task
    ceiling: tuple[float, float] | None
    kappas: list[PairKappa]


def criterion_agreement(criterion: Criterion, *, with_pairs: bool = True) -> CriterionAgreementView:
    cells = {
        (c.first, c.second): c.weight
        for c in AgreementCell.objects.filter(criterion=criterion.slug)
    }
    tally = AgreementPairs.objects.filter(criterion=criterion.slug).first()
    observed = tally.agreeing / tally.pairs if tally and tally.pairs else None
    return CriterionAgreementView(
        criterion=criterion,
        alpha=agreement.alpha_nominal(cells),
        pairs=tally.pairs if tally else 0,
        observed=observed,
        ceiling=agreement.ceiling(observed) if observed is not None else None,
        kappas=_pair_kappas(criterion.slug) if with_pairs else [],
    )


def _pair_kappas(criterion: str) -> list[PairKappa]:
    confusions: dict[tuple[str, str], dict] = {}
    for cell in PairCell.objects.filter(criterion=criterion).select_related(
        "reviewer_a", "reviewer_b"
    ):
        names = (cell.reviewer_a.username, cell.reviewer_b.username)
        confusions.setdefault(names, {})[(cell.first, cell.second)] = cell.count
    return sorted(
        (
            PairKappa(a, b, agreement.cohens_kappa(confusion), sum(confusion.values()))
            for (a, b), confusion in confusions.items()
        ),
        key=lambda pair: (-pair.shared, pair.reviewer_a, pair.reviewer_b),
    )


def all_criteria_agreement() -> list[CriterionAgreementView]:
    return [criterion_agreement(c, with_pairs=False) for c in Criterion.objects.filter(active=True)]


@dataclass(frozen=True)
class ReviewerStats:
    reviewer: User
    labels: int
    labels_last_week: int
    labels_per_hour: float | None  # per hour of time spent on tasks
    median_seconds: float | None
    majority_agreement: float | None
    gold_accuracy: float | None
    gold_answers: int
    skip_rate: float | None
    reliability: float
    flagged: str


def reviewer_stats(reviewer: User, *, now: datetime) -> ReviewerStats:
    labels = Comparison.objects.filter(reviewer=reviewer)
    demonstrations = Demonstration.objects.filter(reviewer=reviewer)
    count = labels.count() + demonstrations.count()
    week = now - timedelta(days=7)
    recent = (
        labels.filter(created_at__gte=week).count()
        + demonstrations.filter(created_at__gte=week).count()
    )
    spent = (labels.aggregate(ms=Sum("time_spent_ms"))["ms"] or 0) + (
        demonstrations.aggregate(ms=Sum("time_spent_ms"))["ms"] or 0
    )
    times = list(
        labels.order_by("-created_at").values_list("time_spent_ms", flat=True)[:RECENT_LABELS]
    )
    record = _record(reviewer.pk)
    profile = ReviewerProfile.objects.filter(user=reviewer).first()
    return ReviewerStats(
        reviewer=reviewer,
        labels=count,
        labels_last_week=recent,
        labels_per_hour=round(count / (spent / 3_600_000), 1) if spent else None,
        median_seconds=round(statistics.median(times) / 1000, 1) if times else None,
        majority_agreement=_share(record["majority_agreed"], record["majority_total"]),
        gold_accuracy=_share(record["gold_correct"], record["gold_total"]),
        gold_answers=record["gold_total"] or 0,
        skip_rate=_skip_rate(reviewer),
        reliability=_reliability(record),
        flagged=profile.flag_reason if profile and profile.flagged_at else "",
    )


def _record(reviewer_id: int) -> dict:
    return ReviewerCriterionStats.objects.filter(reviewer_id=reviewer_id).aggregate(
        majority_agreed=Sum("majority_agreed"), majority_total=Sum("majority_total"),
        gold_correct=Sum("gold_correct"), gold_total=Sum("gold_total"),
    )  # fmt: skip


def _share(part, whole) -> float | None:
    return round(part / whole, 3) if whole else None


def _skip_rate(reviewer: User) -> float | None:
    ended = Assignment.objects.filter(
        reviewer=reviewer, state__in=[AssignmentState.SUBMITTED, AssignmentState.RELEASED]
    ).aggregate(all=Count("id"), skipped=Count("id", filter=Q(state=AssignmentState.RELEASED)))
    return _share(ended["skipped"], ended["all"])


def _reliability(record: dict) -> float:
    """The posterior mean of agreeing with accepted answers (gold and majorities)."""
    agreed = (record["gold_correct"] or 0) + (record["majority_agreed"] or 0)
    total = (record["gold_total"] or 0) + (record["majority_total"] or 0)
    return round((agreed + PRIOR_AGREED) / (total + PRIOR_TOTAL), 3)


def reviewer_reliability(reviewer_ids) -> dict[int, float]:
    """Each reviewer's reliability in [0, 1], for the reward model's sample weights."""
    rows = (
        ReviewerCriterionStats.objects.filter(reviewer_id__in=list(reviewer_ids))
        .values("reviewer_id")
        .annotate(
            majority_agreed=Sum("majority_agreed"), majority_total=Sum("majority_total"),
            gold_correct=Sum("gold_correct"), gold_total=Sum("gold_total"),
        )
    )  # fmt: skip
    found = {row["reviewer_id"]: _reliability(row) for row in rows}
    prior = round(PRIOR_AGREED / PRIOR_TOTAL, 3)
    return {pk: found.get(pk, prior) for pk in reviewer_ids}


def team(*, now: datetime) -> list[ReviewerStats]:
    labelers = User.objects.filter(
        Q(pk__in=Comparison.objects.values("reviewer_id"))
        | Q(pk__in=Demonstration.objects.values("reviewer_id"))
    ).order_by("username")
    return [reviewer_stats(user, now=now) for user in labelers]


def flagged_reviewers() -> list[ReviewerProfile]:
    return list(
        ReviewerProfile.objects.filter(flagged_at__isnull=False)
        .select_related("user")
        .order_by("-flagged_at")
    )
