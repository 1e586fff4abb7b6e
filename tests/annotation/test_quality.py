"""Label quality as labels arrive: running agreement tallies equal a batch computation,
finished tasks are resolved by majority or adjudicated, gold answers score and flag
reviewers, tasks wait for the right expert, in the right order."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation import agreement, quality, quality_selectors, services
from annotation.models import (
    AgreementCell,
    AgreementPairs,
    Comparison,
    PairCell,
    QueueTask,
    ReviewerCriterionStats,
    ReviewerProfile,
    TaskKind,
    TaskReason,
    TaskResolution,
)
from governance import services as governance
from governance.models import AuditEvent, Criterion
from governance.roles import Role
from tests.annotation.factories import ALL_TIE, compare_tasks, ensure_criteria, small_catalog
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    ensure_criteria()
    return small_catalog()


def reviewers(n: int, *skills: str):
    people = [make_user(f"r{i}", Role.CURATOR) for i in range(n)]
    for person in people:
        if skills:
            ReviewerProfile.objects.create(user=person, skills=list(skills))
    return people


def label(reviewer, task, judgments):
    assignment = services.task_lease_next(reviewer=reviewer, now=timezone.now())
    assert assignment is not None
    assert assignment.task_id == task.pk
    return services.comparison_submit(
        reviewer=reviewer, assignment=assignment, client_token=uuid.uuid4(), now=timezone.now(),
        data=services.ComparisonInput(judgments=judgments, confidence=3),
    )  # fmt: skip


def answers(**choices) -> dict:
    return {**ALL_TIE, **choices}


def test_running_tallies_equal_a_batch_computation(world):
    context, items = world
    tasks = compare_tasks(context, items, 3, overlap_target=3)
    people = reviewers(3)
    plan = [
        ["a", "a", "b"],
        ["tie", "tie", "tie"],
        ["b", "cannot_tell", "b"],
    ]
    for task, relevance in zip(tasks, plan, strict=True):
        for person, choice in zip(people, relevance, strict=True):
            label(person, task, answers(relevance=choice))

    cells = {
        (c.first, c.second): c.weight for c in AgreementCell.objects.filter(criterion="relevance")
    }
    batch = {}
    for unit in plan:
        agreement.add(batch, agreement.unit_coincidences(unit))
    assert cells.keys() == batch.keys()
    for pair, weight in batch.items():
        assert cells[pair] == pytest.approx(weight)
    pairs = AgreementPairs.objects.get(criterion="relevance")
    assert (pairs.pairs, pairs.agreeing) == (9, 1 + 3 + 1)
    view = quality_selectors.criterion_agreement(Criterion.objects.get(slug="relevance"))
    assert view.alpha == pytest.approx(agreement.alpha_nominal(batch))
    assert sum(p.shared for p in view.kappas) == 3 * 3
    assert PairCell.objects.filter(criterion="relevance").count() > 0


def test_a_finished_task_with_agreement_is_resolved_by_its_majority(world):
    context, items = world
    task = compare_tasks(context, items, 1, overlap_target=3)[0]
    for person in reviewers(3):
        label(person, task, answers(overall="a"))

    resolution = TaskResolution.objects.get(task=task)
    assert resolution.source == TaskResolution.Source.MAJORITY
    assert resolution.judgments["overall"] == "a"
    stats = ReviewerCriterionStats.objects.filter(criterion="overall")
    assert [(s.majority_agreed, s.majority_total) for s in stats] == [(1, 1)] * 3


def test_disagreement_goes_to_a_senior_reviewer_who_did_not_label_it(world):
    context, items = world
    task = compare_tasks(context, items, 1, overlap_target=3)[0]
    labelers = reviewers(3)
    for person, choice in zip(labelers, ["a", "b", "tie"], strict=True):
        label(person, task, answers(overall=choice))
    adjudication = QueueTask.objects.get(kind=TaskKind.ADJUDICATE)
    assert adjudication.source_task == task
    assert adjudication.skills == ["senior"]
    assert not TaskResolution.objects.filter(task=task).exists()

    # A labeler, even senior, is not offered it; an outside senior reviewer is.
    ReviewerProfile.objects.filter(user=labelers[0]).delete()
    ReviewerProfile.objects.create(user=labelers[0], skills=["senior"])
    assert (
        services.task_lease_next(
            reviewer=labelers[0], now=timezone.now(), kinds=[TaskKind.ADJUDICATE]
        )
        is None
    )
    junior = make_user("junior", Role.CURATOR)
    assert (
        services.task_lease_next(reviewer=junior, now=timezone.now(), kinds=[TaskKind.ADJUDICATE])
        is None
    )
    senior = make_user("senior", Role.CURATOR)
    ReviewerProfile.objects.create(user=senior, skills=["senior"])
    lease = services.task_lease_next(
        reviewer=senior, now=timezone.now(), kinds=[TaskKind.ADJUDICATE]
    )
    assert lease.task == adjudication

    services.adjudication_submit(
        reviewer=senior, assignment=lease, judgments=answers(overall="b"),
        rationale="B respects the user's history", now=timezone.now(),
    )  # fmt: skip

    resolution = TaskResolution.objects.get(task=task)
    assert resolution.source == TaskResolution.Source.ADJUDICATION
    assert resolution.judgments["overall"] == "b"
    assert resolution.adjudicator == senior
    assert resolution.rationale == "B respects the user's history"


def test_gold_answers_score_reviewers_and_flag_the_unreliable(world, policy_admin):
    context, items = world
    source = compare_tasks(context, items, 1)[0]
    quality.queue_settings_update(
        actor=policy_admin, gold_rate=1.0, gold_min_answers=4, gold_min_accuracy=0.75
    )
    golds = [
        quality.gold_create(actor=policy_admin, task=source, judgments=answers(overall="a"))
        for _ in range(4)
    ]
    careless = make_user("careless", Role.CURATOR)

    for _ in golds:
        lease = services.task_lease_next(reviewer=careless, now=timezone.now())
        assert lease.task.kind == TaskKind.GOLD
        assert lease.task.displayed_kind == TaskKind.COMPARE  # unmarked
        services.comparison_submit(
            reviewer=careless, assignment=lease, client_token=uuid.uuid4(), now=timezone.now(),
            data=services.ComparisonInput(
                judgments=answers(relevance="b", diversity="b", overall="b"), confidence=3
            ),
        )  # fmt: skip

    stats = ReviewerCriterionStats.objects.get(reviewer=careless, criterion="overall")
    assert (stats.gold_correct, stats.gold_total) == (0, 4)
    profile = ReviewerProfile.objects.get(user=careless)
    assert profile.flagged_at is not None
    assert "gold accuracy" in profile.flag_reason
    assert quality_selectors.flagged_reviewers() == [profile]
    assert AuditEvent.objects.filter(action="gold.create").count() == 4
    reliability = quality_selectors.reviewer_reliability([careless.pk])[careless.pk]
    assert reliability < 0.75


def test_a_task_waits_for_a_reviewer_with_its_skills(world):
    context, items = world
    task = compare_tasks(context, items, 1, skills=["topic:gambling", "lang:de"])[0]
    generalist = make_user("generalist", Role.CURATOR)
    partial = make_user("partial", Role.CURATOR)
    ReviewerProfile.objects.create(user=partial, skills=["topic:gambling"])
    expert = make_user("expert", Role.CURATOR)
    ReviewerProfile.objects.create(user=expert, skills=["topic:gambling", "lang:de", "senior"])

    assert services.task_lease_next(reviewer=generalist, now=timezone.now()) is None
    assert services.task_lease_next(reviewer=partial, now=timezone.now()) is None
    assert services.task_lease_next(reviewer=expert, now=timezone.now()).task == task


def test_flags_come_before_stakes_before_uncertainty_before_audit(world, curator):
    context, items = world
    now = timezone.now()
    order = [TaskReason.AUDIT, TaskReason.UNCERTAINTY, TaskReason.FLAG, TaskReason.STAKES]
    created = {}
    for reason in order:
        created[reason] = compare_tasks(
            context, items, 1, reason=reason, priority=quality.task_priority(reason, created=now)
        )[0]

    leased = []
    while lease := services.task_lease_next(reviewer=curator, now=now):
        leased.append(lease.task.reason)
        services.assignment_release(assignment=lease, now=now)

    assert leased == [TaskReason.FLAG, TaskReason.STAKES, TaskReason.UNCERTAINTY, TaskReason.AUDIT]


def test_a_waiting_task_ages_past_newer_more_urgent_ones(world):
    now = timezone.now()
    rate = quality.queue_settings().aging_points_per_hour
    gap = quality.REASON_RANK[TaskReason.UNCERTAINTY] - quality.REASON_RANK[TaskReason.AUDIT]
    waited = timedelta(hours=gap / rate + 1)

    old_audit = quality.task_priority(TaskReason.AUDIT, created=now - waited)
    new_uncertainty = quality.task_priority(TaskReason.UNCERTAINTY, created=now)

    assert old_audit > new_uncertainty


def test_a_guideline_change_re_queues_labels_made_under_earlier_versions(world, policy_admin):
    context, items = world
    guideline = governance.guideline_create(
        actor=policy_admin, slug="compare", title="C", task_kind="compare"
    )
    first = governance.guideline_version_create_draft(
        actor=policy_admin, guideline=guideline, body="# v1", changelog="v1"
    )
    first = governance.guideline_version_publish(actor=policy_admin, version=first)
    tasks = compare_tasks(context, items, 2)
    labeler = make_user("labeler", Role.CURATOR)
    governance.guideline_acknowledge(user=labeler, version=first)
    for task in tasks:
        label(labeler, task, ALL_TIE)
    second = governance.guideline_version_create_draft(
        actor=policy_admin, guideline=guideline, body="# v2", changelog="v2"
    )
    governance.guideline_version_update_draft(
        actor=policy_admin, version=second, body="# v2", changelog="safety redefined",
        affects_criteria=[Criterion.objects.get(slug="safety")],
    )  # fmt: skip
    governance.guideline_version_publish(actor=policy_admin, version=second)

    created = quality.labels_requeue_for_guideline(actor=policy_admin, version=second)
    again = quality.labels_requeue_for_guideline(actor=policy_admin, version=second)

    assert (created, again) == (2, 0)
    review = QueueTask.objects.filter(source_task__in=tasks)
    assert review.count() == 2
    assert all("changed safety" in t.note for t in review)
    assert AuditEvent.objects.filter(action="labels.requeue").count() == 2


def test_queue_settings_changes_are_audited(policy_admin):
    quality.queue_settings_update(actor=policy_admin, overlap_compare=5)

    event = AuditEvent.objects.get(action="queue_settings.update")
    assert (event.before["overlap_compare"], event.after["overlap_compare"]) == (3, 5)


def test_reliability_starts_at_the_prior_and_follows_the_record(world):
    context, items = world
    newcomer = make_user("newcomer", Role.CURATOR)
    assert quality_selectors.reviewer_reliability([newcomer.pk]) == {newcomer.pk: 0.8}
    task = compare_tasks(context, items, 1, overlap_target=3)[0]
    for person in reviewers(3):
        label(person, task, answers(overall="a"))
    reliable = Comparison.objects.filter(task=task).values_list("reviewer_id", flat=True)
    assert all(r > 0.8 for r in quality_selectors.reviewer_reliability(reliable).values())
