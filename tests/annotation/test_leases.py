"""Leases: expiry frees slots, a reviewer never holds two leases on one task, skips free
slots at once and are not offered back."""

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation import services
from annotation.models import Assignment, AssignmentState, QueueTask
from annotation.tasks import reclaim_expired_leases
from governance.roles import Role
from tests.annotation.factories import ALL_TIE, compare_tasks, ensure_criteria, small_catalog
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def task():
    ensure_criteria()
    context, items = small_catalog()
    return compare_tasks(context, items, 1, overlap_target=2)[0]


def test_an_expired_lease_frees_its_slot_for_someone_else(task, curator, safety_reviewer):
    now = timezone.now()
    services.task_lease_next(reviewer=curator, now=now)
    services.task_lease_next(reviewer=safety_reviewer, now=now)
    task.refresh_from_db()
    assert task.slots_left == 0

    later = now + timedelta(seconds=services.lease_duration().total_seconds() + 1)
    assert services.leases_reclaim_expired(now=later) == 2

    task.refresh_from_db()
    assert task.leased_count == 0
    assert set(Assignment.objects.values_list("state", flat=True)) == {AssignmentState.EXPIRED}


def test_beats_task_reclaims_through_the_same_service(task, curator):
    lease = services.task_lease_next(reviewer=curator, now=timezone.now() - timedelta(hours=1))

    assert reclaim_expired_leases() == 1
    lease.refresh_from_db()
    assert lease.state == AssignmentState.EXPIRED


def test_the_database_refuses_a_second_live_lease_of_one_task_by_one_reviewer(task, curator):
    services.task_lease_next(reviewer=curator, now=timezone.now())
    now = timezone.now()

    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.create(
            task=task, reviewer=curator, leased_at=now, expires_at=now, heartbeat_at=now
        )


def test_the_database_refuses_more_leases_and_labels_than_the_overlap(task):
    with pytest.raises(IntegrityError), transaction.atomic():
        QueueTask.objects.filter(pk=task.pk).update(leased_count=2, labels_count=1)


def test_a_skipped_task_is_not_offered_back_to_the_skipper(task, curator):
    lease = services.task_lease_next(reviewer=curator, now=timezone.now())
    services.assignment_release(assignment=lease, now=timezone.now(), reason="no")

    assert services.task_lease_next(reviewer=curator, now=timezone.now()) is None
    task.refresh_from_db()
    assert task.leased_count == 0


def test_a_late_submission_is_kept_when_a_slot_is_free_and_refused_when_not(
    task, curator, safety_reviewer
):
    answers = services.ComparisonInput(judgments=ALL_TIE, confidence=3)
    now = timezone.now()
    slow = services.task_lease_next(reviewer=curator, now=now)
    services.leases_reclaim_expired(now=now + timedelta(hours=1))

    kept = services.comparison_submit(
        reviewer=curator, assignment=slow, data=answers, client_token=uuid.uuid4(), now=now
    )
    assert kept.pk

    slower = services.task_lease_next(reviewer=safety_reviewer, now=now)
    services.leases_reclaim_expired(now=now + timedelta(hours=1))
    third = make_user("third", Role.CURATOR)  # meanwhile takes the last slot
    lease = services.task_lease_next(reviewer=third, now=now)
    services.comparison_submit(
        reviewer=third, assignment=lease, data=answers, client_token=uuid.uuid4(), now=now
    )

    with pytest.raises(services.LabelRefused, match="already has all the labels"):
        services.comparison_submit(
            reviewer=safety_reviewer, assignment=slower, data=answers,
            client_token=uuid.uuid4(), now=now,
        )  # fmt: skip
