"""A small labeled store with a learnable signal, for the training app's tests.

The demo world (a small simulator's catalog and contexts) is written to the database,
then comparisons are made by a rule a model can learn from the item features: safety
prefers the slate with the lower total sensitivity, the other criteria the slate whose
items score higher on the first feature dimension (ties when the two are close)."""

import uuid

import numpy as np
from django.utils import timezone

from annotation.models import Channel, Comparison, QueueTask, TaskKind, TaskReason
from catalog.demo import seed_demo_world
from catalog.models import FEATURE_DTYPE, Item, UserContext
from governance.roles import Role
from tests.annotation.factories import ensure_criteria
from tests.conftest import make_user
from training.ml.simulator import SimConfig, Simulator

SLATE = 5
TIE_MARGIN = 0.05


def demo_world(*, items: int = 120, users: int = 40, seed: int = 0) -> None:
    ensure_criteria()
    sim = Simulator(SimConfig(n_items=items, n_users=users), seed=seed)
    seed_demo_world(sim=sim, interactions=0, rng=np.random.default_rng(seed))


def _judge(score_a: float, score_b: float) -> str:
    if abs(score_a - score_b) < TIE_MARGIN:
        return "tie"
    return "a" if score_a > score_b else "b"


def labeled_store(
    *, comparisons: int = 400, audit_share: float = 0.2, seed: int = 0, reviewer=None
) -> list[Comparison]:
    """``comparisons`` labels on as many compare tasks (a share of them random audits)."""
    rng = np.random.default_rng(seed)
    reviewer = reviewer or make_user(f"labeler-{seed}", Role.CURATOR)
    rows = list(Item.objects.order_by("pk").values_list("pk", "sensitivity", "features"))
    pks = np.array([r[0] for r in rows])
    sensitivity = np.array([r[1] for r in rows], dtype=float)
    quality = np.array([np.frombuffer(r[2], dtype=FEATURE_DTYPE)[0] for r in rows])
    contexts = list(UserContext.objects.values_list("pk", flat=True))
    tasks, labels = [], []
    for _ in range(comparisons):
        picks = rng.choice(len(pks), size=2 * SLATE, replace=False)
        a, b = picks[:SLATE], picks[SLATE:]
        reason = TaskReason.AUDIT if rng.random() < audit_share else TaskReason.UNCERTAINTY
        context = int(rng.choice(contexts))
        tasks.append(
            QueueTask(
                kind=TaskKind.COMPARE, reason=reason, context_id=context,
                slate_a=pks[a].tolist(), slate_b=pks[b].tolist(), status="done", labels_count=1,
            )
        )  # fmt: skip
        better = _judge(quality[a].mean(), quality[b].mean())
        judgments = {
            "safety": _judge(-sensitivity[a].sum(), -sensitivity[b].sum()),
            "relevance": better,
            "diversity": better,
            "overall": better,
        }
        labels.append((context, pks[a].tolist(), pks[b].tolist(), judgments))
    tasks = QueueTask.objects.bulk_create(tasks)
    return Comparison.objects.bulk_create(
        Comparison(
            task=task, reviewer=reviewer, context_id=context, channel=Channel.CURATION,
            slate_a=slate_a, slate_b=slate_b, left="a", judgments=judgments, confidence=4,
            client_token=uuid.uuid4(),
        )
        for task, (context, slate_a, slate_b, judgments) in zip(tasks, labels, strict=True)
    )  # fmt: skip


def demonstrated_store(*, demonstrations: int = 40, steps: int = 2, shown: int = 12, seed: int = 0):
    """Trajectories whose every slate is the best-quality allowed items among those shown
    (first feature dimension, as ``labeled_store`` judges), repaired to keep the content
    policy in force; one rejected candidate per step (the worst shown). Stored through the
    labeling service, so states are the builder's. Needs a published content policy."""
    from annotation.demonstrations import demonstration_submit_steps
    from governance.engine.core import EngineContext
    from governance.policy_engine import compile_version
    from governance.selectors import policy_version_in_force

    rng = np.random.default_rng(seed)
    reviewer = make_user(f"demonstrator-{seed}", Role.CURATOR)
    engine = compile_version(policy_version_in_force())
    rows = list(Item.objects.order_by("pk").values_list("pk", "features"))
    pks = np.array([pk for pk, _ in rows])
    quality = np.array([np.frombuffer(f, dtype=FEATURE_DTYPE)[0] for _, f in rows])
    contexts = list(UserContext.objects.all())
    made = []
    for _ in range(demonstrations):
        context = contexts[int(rng.integers(len(contexts)))]
        allowed = engine.allowed_mask(EngineContext(context.audience))
        trajectory = []
        for _ in range(steps):
            candidates = rng.choice(np.flatnonzero(allowed), size=shown, replace=False)
            ranked = candidates[np.argsort(-quality[candidates], kind="stable")]
            slate = engine.repair(EngineContext(context.audience), ranked, SLATE).slate
            trajectory.append({
                "shown": pks[candidates].tolist(),
                "chosen": pks[slate].tolist(),
                "rejected": [{"item": int(pks[ranked[-1]]), "reason": "irrelevant"}],
                "rationale": "the most relevant items first",
            })  # fmt: skip
        made.append(
            demonstration_submit_steps(
                reviewer=reviewer,
                steps=trajectory,
                client_token=uuid.uuid4(),
                now=timezone.now(),
                context=context,
            )  # fmt: skip
        )
    return made
