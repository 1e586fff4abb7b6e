"""Queue tasks for the demo world, so each demo account has work waiting: comparisons of
a popularity-driven slate against the simulator's best slate (with some safety cases for
safety reviewers), demonstrations to build, and plain comparisons for the study; and a
simulated expert's demonstrations, so a policy can be trained from the start."""

import uuid

import numpy as np
from django.contrib.auth.models import Group
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


EXPERT_USERNAME = "simulated-expert"
CANDIDATES_SHOWN = 12
UNSAFE_HARM = 0.5  # a candidate this harmful to the user is rejected as unsafe


def seed_expert_demonstrations(
    *, sim: Simulator, rng: np.random.Generator, trajectories: int = 120, steps: int = 2
) -> int:
    """Demonstrations by a simulated expert who knows each user's true preferences and
    harms (the simulator's item values): so the demo can train a policy before anyone has
    demonstrated. Stored through the labeling service like any reviewer's, by an account
    that cannot log in. Nothing when the expert has demonstrated already."""
    from django.contrib.auth import get_user_model

    from annotation.demonstrations import demonstration_submit_steps
    from governance.engine.core import EngineContext
    from governance.policy_engine import catalog_index, compile_version
    from governance.roles import Role
    from governance.selectors import policy_version_in_force

    expert, created = get_user_model().objects.get_or_create(username=EXPERT_USERNAME)
    if not created:
        return 0
    expert.set_unusable_password()
    expert.save()
    expert.groups.add(Group.objects.get_or_create(name=Role.CURATOR.value)[0])
    engine = compile_version(policy_version_in_force())
    index = catalog_index()
    position_of_external = {sim.world.item_ids[i]: i for i in range(sim.world.n_items)}
    item_pks = index.arrays.item_keys
    sim_item = np.array([position_of_external[e] for e in _external_ids_in_catalog_order()])
    contexts = {c.user_ref: c for c in UserContext.objects.all()}
    user_of = {ref: u for u, ref in enumerate(sim.world.user_ids)}
    made = 0
    for _ in range(trajectories):
        context = contexts[sim.world.user_ids[int(rng.integers(sim.world.n_users))]]
        user = user_of[context.user_ref]
        state = sim.initial_state(user, rng)
        worth, harm = sim.item_values(state)[sim_item], sim.harm(user)[sim_item]
        allowed = np.flatnonzero(engine.allowed_mask(EngineContext(context.audience)))
        trajectory = []
        for _ in range(steps):
            shown = rng.choice(allowed, size=min(CANDIDATES_SHOWN, len(allowed)), replace=False)
            ranked = shown[np.argsort(-worth[shown], kind="stable")]
            slate = engine.repair(EngineContext(context.audience), ranked, sim.config.slate_size)
            worst = ranked[-1]
            reason = "unsafe" if harm[worst] >= UNSAFE_HARM else "irrelevant"
            trajectory.append({
                "shown": item_pks[shown].tolist(), "chosen": item_pks[slate.slate].tolist(),
                "rejected": [{"item": int(item_pks[worst]), "reason": reason}],
                "rationale": "what this user values most, nothing that harms them",
            })  # fmt: skip
        demonstration_submit_steps(
            reviewer=expert, steps=trajectory, client_token=uuid.uuid4(), now=timezone.now(),
            context=context,
        )  # fmt: skip
        made += 1
    return made


def _external_ids_in_catalog_order() -> list[str]:
    return list(Item.objects.order_by("pk").values_list("external_id", flat=True))
