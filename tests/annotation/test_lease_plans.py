"""The lease's query plans on PostgreSQL: a lease must never scan the open tasks whole.

At 10⁶ open comparisons a lease for a rare kind (the gold tasks mixed into every
reviewer's stream) once fell back to a sequential scan costing up to 0.9 s; these tests
hold the planner to an index for every kind, common or rare.
"""

import pytest
from django.db import connection
from django.utils import timezone

from annotation import pg_leases, services
from annotation.models import TaskKind
from tests.annotation.factories import compare_tasks, small_catalog
from tests.conftest import make_user

OPEN_COMPARISONS = 20_000


@pytest.fixture
def crowded_queue(db):
    assert connection.vendor == "postgresql"
    context, items = small_catalog()
    compare_tasks(context, items, OPEN_COMPARISONS)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE annotation_queuetask")


def lease_plan(reviewer, kinds: list[str] | None, never_kinds: list[str]) -> str:
    now = timezone.now()
    sql, params = pg_leases.lease_statement(
        reviewer_id=reviewer.pk, audiences=["labeler"], kinds=kinds, never_kinds=never_kinds,
        exclude=[], had_it=services.HAD_IT, now=now, expires=now, left="a",
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    ("kinds", "never_kinds"),
    [
        ([TaskKind.GOLD], []),  # the gold mixed in: none open, among 20,000 comparisons
        ([TaskKind.ADJUDICATE], []),
        ([TaskKind.COMPARE], [TaskKind.GOLD]),
        (None, [TaskKind.GOLD]),
    ],
)
def test_a_lease_reads_an_index_of_open_tasks_never_the_whole_table(
    crowded_queue, kinds, never_kinds
):
    plan = lease_plan(make_user("curator"), kinds, never_kinds)
    assert "Seq Scan on annotation_queuetask" not in plan, plan
    assert "task_open_by" in plan, plan
