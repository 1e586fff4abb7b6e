"""32 reviewers at once on PostgreSQL, taking and submitting from 2,000 tasks: no task
over its overlap, no reviewer twice on a task, no lost submission, every task finished."""

import threading
import time
import uuid
from collections import Counter

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from annotation import services
from annotation.models import Assignment, AssignmentState, Comparison, QueueTask, TaskStatus
from governance.roles import Role
from tests.annotation.factories import ALL_TIE, compare_tasks, ensure_criteria, small_catalog
from tests.conftest import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REVIEWERS = 32
TASKS = 2000


def _left_for(reviewer) -> bool:
    """Whether an open task remains that the reviewer has not had. A lease skips rows that
    other reviewers' transactions hold (SKIP LOCKED), so "nothing for you now" near the end
    of the queue is not "nothing left": the reviewer asks again, as a person told "nothing
    right now" would."""
    return (
        QueueTask.objects.filter(status=TaskStatus.OPEN)
        .exclude(assignments__reviewer=reviewer)
        .exists()
    )


def _work(reviewer, submitted: list, errors: list) -> None:
    try:
        while True:
            now = timezone.now()
            assignment = services.task_lease_next(reviewer=reviewer, now=now)
            if assignment is None:
                if _left_for(reviewer):
                    time.sleep(0.01)
                    continue
                return
            label = services.comparison_submit(
                reviewer=reviewer,
                assignment=assignment,
                data=services.ComparisonInput(judgments=ALL_TIE, confidence=3),
                client_token=uuid.uuid4(),
                now=timezone.now(),
            )
            submitted.append((reviewer.pk, label.task_id, label.pk))
    except Exception as error:  # reported by the test, not swallowed
        errors.append(repr(error))
    finally:
        close_old_connections()
        connection.close()


@pytest.mark.parametrize("overlap", [1, 3])
def test_32_reviewers_finish_2000_tasks_without_breaking_an_invariant(overlap):
    assert connection.vendor == "postgresql"
    ensure_criteria()
    context, items = small_catalog()
    compare_tasks(context, items, TASKS, overlap_target=overlap)
    reviewers = [make_user(f"reviewer-{n}", Role.CURATOR) for n in range(REVIEWERS)]
    submitted, errors = [], []

    threads = [threading.Thread(target=_work, args=(r, submitted, errors)) for r in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)

    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    stored = list(Comparison.objects.values_list("reviewer_id", "task_id", "pk"))
    # No lost submission: every label a reviewer was told about is stored, and no other.
    assert sorted(stored) == sorted(submitted)
    assert len(stored) == TASKS * overlap
    # Nobody twice on a task; no task over its overlap; every task finished.
    assert max(Counter((r, t) for r, t, _ in stored).values()) == 1
    per_task = Counter(t for _, t, _ in stored)
    assert set(per_task.values()) == {overlap}
    assert QueueTask.objects.exclude(status=TaskStatus.DONE).count() == 0
    assert not QueueTask.objects.exclude(labels_count=overlap).exists()
    assert not QueueTask.objects.exclude(leased_count=0).exists()
    assert not Assignment.objects.filter(state=AssignmentState.LEASED).exists()
