"""The lease and the label claim as single PostgreSQL statements.

They are the hottest statements in Shepherd (every label runs both), and each is three
ORM round trips otherwise: find and lock, count, record. Here each is one statement whose
common table expressions do the same steps in the same order, under the same row locks.
``services.task_lease_next`` and ``services.label_slot_claim`` call them on PostgreSQL and
keep the ORM form for SQLite (the demo), which the test suite runs too.
"""

import functools
from datetime import datetime

from django.db import connection

from annotation.models import Assignment, QueueTask, TaskStatus
from catalog.models import UserContext
from core.sql import columns, instance, width

# The best open task this reviewer may take, locked (skipping rows other leases hold),
# its lease counted, the assignment recorded; the three rows come back.
LEASE = """
WITH picked AS (
    SELECT t.id FROM annotation_queuetask t
    WHERE t.status = 'open'
      AND t.audience = ANY(%(audiences)s)
      AND t.labels_count < t.overlap_target - t.leased_count
      AND (%(kinds)s::text[] IS NULL OR t.kind = ANY(%(kinds)s))
      AND NOT (t.kind = ANY(%(never_kinds)s))
      AND NOT (t.id = ANY(%(exclude)s))
      -- every skill the task needs is one the reviewer has (jsonb containment)
      AND t.skills <@ COALESCE(
          (SELECT p.skills FROM annotation_reviewerprofile p WHERE p.user_id = %(reviewer)s),
          '[]'::jsonb)
      AND NOT EXISTS (
          SELECT 1 FROM annotation_assignment a
          WHERE a.task_id = t.id AND a.reviewer_id = %(reviewer)s
            AND a.state = ANY(%(had_it)s))
      -- adjudicators and gold takers must not have labeled the task they derive from
      AND NOT EXISTS (
          SELECT 1 FROM annotation_comparison c
          WHERE c.task_id = t.source_task_id AND c.reviewer_id = %(reviewer)s)
    ORDER BY t.priority DESC, t.id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
), counted AS (
    UPDATE annotation_queuetask t SET leased_count = t.leased_count + 1
    FROM picked WHERE t.id = picked.id
    RETURNING {task}
), leased AS (
    INSERT INTO annotation_assignment AS a
        (task_id, reviewer_id, state, leased_at, expires_at, heartbeat_at, "left", skip_reason)
    SELECT counted.id, %(reviewer)s, 'leased', %(now)s, %(expires)s, %(now)s, %(left)s, ''
    FROM counted
    RETURNING {assignment}
)
SELECT leased.*, counted.*, {context}
FROM leased
JOIN counted ON counted.id = leased.task_id
JOIN catalog_usercontext x ON x.id = counted.context_id
"""

# A live lease of this reviewer turned into a label slot: the assignment marked submitted
# and its task's counts moved from leased to labeled (done with its last label), in one
# statement. Anything else (an expired or released lease, someone else's, one already
# labeled) matches no row and is left to the general path.
CLAIM_LEASED = """
WITH claimed AS (
    UPDATE annotation_assignment a SET state = 'submitted', ended_at = %(now)s
    WHERE a.id = %(assignment)s AND a.reviewer_id = %(reviewer)s AND a.state = 'leased'
    RETURNING {assignment}
), counted AS (
    UPDATE annotation_queuetask t SET
        labels_count = t.labels_count + 1,
        leased_count = t.leased_count - 1,
        status = CASE WHEN t.labels_count >= t.overlap_target - 1
                      THEN %(done)s ELSE t.status END,
        done_at = CASE WHEN t.labels_count >= t.overlap_target - 1
                       THEN %(now)s ELSE t.done_at END
    FROM claimed WHERE t.id = claimed.task_id
    RETURNING {task}
)
SELECT claimed.*, counted.*, {context}
FROM claimed
JOIN counted ON counted.id = claimed.task_id
JOIN catalog_usercontext x ON x.id = counted.context_id
"""

# What a label needs of its context: not the history or the situation.
CLAIM_CONTEXT_FIELDS = ("id", "external_id", "user_ref", "segment", "audience")


@functools.cache
def _lease_sql() -> str:
    return LEASE.format(
        task=columns(QueueTask, "t"),
        assignment=columns(Assignment),
        context=columns(UserContext, "x"),
    )


@functools.cache
def _claim_sql() -> str:
    return CLAIM_LEASED.format(
        assignment=columns(Assignment),
        task=columns(QueueTask, "t"),
        context=", ".join(f"x.{name}" for name in CLAIM_CONTEXT_FIELDS),
    )


def lease_statement(
    *,
    reviewer_id: int,
    audiences: list[str],
    kinds: list[str] | None,
    never_kinds: list[str],
    exclude: list[int],
    had_it: tuple[str, ...],
    now: datetime,
    expires: datetime,
    left: str,
) -> tuple[str, dict]:
    """The lease statement and its parameters (``lease`` runs them; tests explain them)."""
    params = {
        "reviewer": reviewer_id, "audiences": list(audiences), "kinds": kinds,
        "never_kinds": list(never_kinds), "exclude": list(exclude), "had_it": list(had_it),
        "now": now, "expires": expires, "left": left,
    }  # fmt: skip
    return _lease_sql(), params


def lease(**arguments) -> Assignment | None:
    """Lease the best task for the reviewer (arguments as ``lease_statement``); the
    assignment with its task and context attached, or None when nothing fits."""
    with connection.cursor() as cursor:
        cursor.execute(*lease_statement(**arguments))
        row = cursor.fetchone()
    if row is None:
        return None
    assignment = instance(Assignment, row)
    task = instance(QueueTask, row, width(Assignment))
    task.context = instance(UserContext, row, width(Assignment) + width(QueueTask))
    assignment.task = task
    return assignment


def claim_leased(*, assignment_id: int, reviewer_id: int, now: datetime) -> Assignment | None:
    """Turn the reviewer's live lease into a label slot; None when it is not a live lease
    of theirs (the caller's general path decides what then)."""
    sql = _claim_sql()
    params = {
        "assignment": assignment_id, "reviewer": reviewer_id, "now": now,
        "done": TaskStatus.DONE.value,
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    assignment = instance(Assignment, row)
    task = instance(QueueTask, row, width(Assignment))
    start = width(Assignment) + width(QueueTask)
    task.context = UserContext.from_db(
        connection.alias, list(CLAIM_CONTEXT_FIELDS), row[start : start + len(CLAIM_CONTEXT_FIELDS)]
    )
    assignment.task = task
    return assignment
