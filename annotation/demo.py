"""Queue tasks for the demo world, so each demo account has work waiting: comparisons of
a popularity-driven slate against the simulator's best slate (with some safety cases for
safety reviewers), demonstrations to build, and plain comparisons for the study."""

import numpy as np
from django.db import transaction
from django.utils import timezone

from annotation.models import QueueTask, TaskAudience, TaskKind, TaskReason
from annotation.quality import task_priority
from catalog.models import Item, UserContext
from training.ml.simulator import LoggingPolicy, Simulator


@transaction.atomic
def seed_labeling_queue(
    *,
    sim: Simulator,
    rng: np.random.Generator,
    compare: int = 300,
    demonstrate: int = 30,
    study: int = 60,
) -> int:
    """Create the demo's tasks once (nothing when the queue already has tasks)."""
    if QueueTask.objects.exists():
        return 0
    pk_of_item = dict(Item.objects.values_list("external_id", "pk"))
    contexts = {c.user_ref: c for c in UserContext.objects.all()}
    policy = LoggingPolicy(sim)
    world, k = sim.world, sim.config.slate_size
    tasks = []
    for n in range(compare + study + demonstrate):
        user = int(rng.integers(0, world.n_users))
        context = contexts.get(world.user_ids[user])
        if context is None:
            continue
        popular, _ = policy.sample(np.array([user]), k, rng)
        best = sim.greedy_slate(sim.initial_state(user, rng), k)
        slates = [[pk_of_item[world.item_ids[i]] for i in slate] for slate in (popular[0], best)]
        tasks.append(_task(n, compare, study, context, slates, world.user_minor[user]))
    QueueTask.objects.bulk_create(tasks)
    return len(tasks)


def _task(n: int, compare: int, study: int, context, slates, minor: bool) -> QueueTask:
    if n < compare:
        audience = TaskAudience.SAFETY_REVIEWER if minor and n % 3 == 0 else TaskAudience.LABELER
        reason = TaskReason.STAKES if audience == TaskAudience.SAFETY_REVIEWER else TaskReason.AUDIT
        return QueueTask(
            kind=TaskKind.COMPARE, reason=reason, audience=audience, context=context,
            slate_a=slates[0], slate_b=slates[1], overlap_target=2,
            priority=task_priority(reason, created=timezone.now()),
        )  # fmt: skip
    if n < compare + study:
        return QueueTask(
            kind=TaskKind.COMPARE, reason=TaskReason.AUDIT,
            audience=TaskAudience.STUDY_PARTICIPANT, context=context,
            slate_a=slates[0], slate_b=slates[1], overlap_target=3,
            priority=task_priority(TaskReason.AUDIT, created=timezone.now()),
        )  # fmt: skip
    return QueueTask(
        kind=TaskKind.DEMONSTRATE, reason=TaskReason.MANUAL, context=context,
        priority=task_priority(TaskReason.MANUAL, created=timezone.now()),
    )  # fmt: skip
