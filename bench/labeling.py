"""The labeling queue's two hot calls, in process (no HTTP), on PostgreSQL.

    python bench/labeling.py [--tasks 100000] [--reviewers 32] [--iterations 2000]

Seeds TASKS open comparison tasks and REVIEWERS curator accounts in a fresh database,
then, round-robin over the reviewers, times `task_lease_next` and `comparison_submit`
(each its own transaction, as a request would run it) ITERATIONS times after a short
warm-up. Prints one JSON line last:
{"tasks", "reviewers", "iterations", "next_p50_ms", "next_p95_ms", "submit_p50_ms",
 "submit_p95_ms"}.
"""

import argparse
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import django_setup, emit, fresh_database, manage

WARM_UP = 50


def seed(tasks: int, reviewers: int):
    from django.contrib.auth.models import Group, User

    from annotation.models import QueueTask, TaskKind, TaskReason
    from catalog.demo import seed_demo_world
    from catalog.models import Item, UserContext
    from training.ml.simulator import SimConfig, Simulator

    sim = Simulator(SimConfig(n_items=2000, n_users=500), seed=0)
    seed_demo_world(sim=sim, interactions=0, rng=np.random.default_rng(0))
    item_pks = np.array(Item.objects.values_list("pk", flat=True))
    context_pks = np.array(UserContext.objects.values_list("pk", flat=True))
    rng = np.random.default_rng(1)
    batch = []
    for n in range(tasks):
        slates = rng.choice(item_pks, size=10, replace=False).tolist()
        batch.append(
            QueueTask(
                kind=TaskKind.COMPARE, reason=TaskReason.AUDIT,
                context_id=int(rng.choice(context_pks)), slate_a=slates[:5], slate_b=slates[5:],
                priority=int(rng.integers(0, 100)),
            )
        )  # fmt: skip
        if len(batch) == 10_000 or n == tasks - 1:
            QueueTask.objects.bulk_create(batch)
            batch = []
    curators = Group.objects.get(name="curator")
    users = []
    for n in range(reviewers):
        user = User.objects.create_user(f"bench-reviewer-{n}", password=None)
        user.groups.add(curators)
        users.append(user)
    return users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--reviewers", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--database", default="shepherd_bench_labeling")
    args = parser.parse_args()

    database_url = fresh_database(args.database)
    manage("migrate", "-v0", database_url=database_url)
    django_setup(database_url)
    from django.db import connection
    from django.utils import timezone

    from annotation import services
    from governance.demo import seed_governance
    from governance.models import Criterion

    reviewers = seed(args.tasks, args.reviewers)
    seed_governance()
    connection.cursor().execute("ANALYZE")
    judgments = dict.fromkeys(Criterion.objects.values_list("slug", flat=True), "tie")
    answers = services.ComparisonInput(judgments=judgments, confidence=3)

    next_ms, submit_ms = [], []
    for n in range(WARM_UP + args.iterations):
        reviewer = reviewers[n % len(reviewers)]
        started = time.perf_counter()
        assignment = services.task_lease_next(reviewer=reviewer, now=timezone.now())
        leased = time.perf_counter()
        services.comparison_submit(
            reviewer=reviewer, assignment=assignment, data=answers,
            client_token=uuid.uuid4(), now=timezone.now(),
        )  # fmt: skip
        done = time.perf_counter()
        if n >= WARM_UP:
            next_ms.append((leased - started) * 1000)
            submit_ms.append((done - leased) * 1000)
    emit(
        {
            "tasks": args.tasks,
            "reviewers": args.reviewers,
            "iterations": args.iterations,
            "next_p50_ms": round(float(np.percentile(next_ms, 50)), 2),
            "next_p95_ms": round(float(np.percentile(next_ms, 95)), 2),
            "submit_p50_ms": round(float(np.percentile(submit_ms, 50)), 2),
            "submit_p95_ms": round(float(np.percentile(submit_ms, 95)), 2),
        }
    )


if __name__ == "__main__":
    main()
