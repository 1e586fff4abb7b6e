"""Active learning: the promoted reward model proposes the comparisons experts should make
next.

For a sample of contexts, candidate slates come from demonstrations (an expert's slate with
an item or two swapped for catalog neighbours), from catalog neighbourhoods (an item the
user clicked and its nearest items) and from the promoted policy (its greedy slate and
POLICY_SAMPLES it draws) once there is one. Pairs of them are scored by the ensemble's
disagreement (BALD, ``training.ml.active``) and by their stakes (sensitive items,
minors), and a batch is drawn: a share uniformly at random
(reason ``audit``, the unbiased sample held-out evaluation needs), the rest by stochastic
power acquisition. Each task records why it was proposed (uncertainty, stakes, or criteria
that pull apart), the model version that proposed it and who may take it.
"""

import logging
from dataclasses import dataclass

import numpy as np
from django.db import transaction

from annotation.models import DemonstrationStep, QueueTask, TaskAudience, TaskKind, TaskReason
from annotation.models import TaskStatus as Status
from annotation.services import task_create
from catalog.models import UserContext
from training.datasets import FeatureSpace, VocabularyChanged
from training.ml.active import AcquisitionConfig, disagreement, select_batch
from training.ml.train_reward import predict_probabilities
from training.models import ModelKind
from training.runs import training_settings
from training.selectors import promoted_reward_model

log = logging.getLogger(__name__)

CONTEXTS_PER_REFRESH = 64
PAIRS_PER_CONTEXT = 24
SLATE_SIZE = 5
NEIGHBOURS = 20  # a seed item's slate is drawn from its nearest NEIGHBOURS items
STAKES_BOOST = 1.0  # a high-stakes pair's score counts (1 + boost) times
SENSITIVE_LEVEL = 2  # items this sensitive or more make a pair high-stakes
CONFLICT = 0.15  # criteria pull apart when one prefers A and another B by this much


@dataclass
class Pool:
    """Candidate pairs: the context (state) and the two slates (item pks) of each."""

    context_ids: list[int]
    states: list[dict]
    slates_a: list[list[int]]
    slates_b: list[list[int]]


def queue_refresh(*, now, rng: np.random.Generator | None = None) -> int:
    """Add up to ``proposals_per_refresh`` comparison tasks; how many were added."""
    try:
        loaded = promoted_reward_model()
    except VocabularyChanged as error:
        log.warning("queue refresh skipped: %s", error)
        return 0
    if loaded is None:
        return 0
    version, model, space = loaded
    settings = training_settings()
    waiting = QueueTask.objects.filter(status=Status.OPEN, proposed_by__isnull=False).count()
    budget = min(settings.proposals_per_refresh, 2 * settings.proposals_per_refresh - waiting)
    rng = rng or np.random.default_rng()
    pool = candidate_pool(space, rng)
    if budget <= 0 or not pool.states:
        return 0
    slates_a, slates_b = space.slates(pool.slates_a), space.slates(pool.slates_b)
    x_a = space.features(pool.states, slates_a)
    x_b = space.features(pool.states, slates_b)
    uncertainty = disagreement(model, x_a, x_b, "bald")
    stakes = _stakes(space, pool.states, slates_a, slates_b)
    scores = np.maximum(uncertainty, 1e-12) * (1.0 + STAKES_BOOST * stakes)
    config = AcquisitionConfig(score="bald", random_share=settings.audit_share)
    chosen = select_batch(scores, np.arange(len(scores)), budget, config, rng)
    n_audit = int(round(config.random_share * min(budget, len(scores))))
    preferences = predict_probabilities(model, x_a[chosen], x_b[chosen])
    with transaction.atomic():
        for rank, row in enumerate(chosen):
            _propose(
                pool, int(row), version, now=now, audit=rank < n_audit, stakes=bool(stakes[row]),
                uncertainty=float(uncertainty[row]), preference=preferences[rank],
                criteria=model.criteria,
            )  # fmt: skip
    return len(chosen)


def _propose(pool, row, version, *, now, audit, stakes, uncertainty, preference, criteria):
    p_a = preference[:, 0] / np.maximum(preference[:, 0] + preference[:, 1], 1e-12)
    prefers_a = [c for c, p in zip(criteria, p_a, strict=True) if p >= 0.5 + CONFLICT]
    prefers_b = [c for c, p in zip(criteria, p_a, strict=True) if p <= 0.5 - CONFLICT]
    if audit:
        reason, why = TaskReason.AUDIT, "drawn at random for unbiased evaluation"
    elif stakes:
        reason, why = TaskReason.STAKES, "sensitive items or a minor's context"
    elif prefers_a and prefers_b:
        reason = TaskReason.CONFLICT
        why = f"{', '.join(prefers_a)} prefer A; {', '.join(prefers_b)} prefer B"
    else:
        reason, why = TaskReason.UNCERTAINTY, "the ensemble disagrees"
    task_create(
        kind=TaskKind.COMPARE, reason=reason, context_id=pool.context_ids[row],
        slate_a=pool.slates_a[row], slate_b=pool.slates_b[row],
        audience=TaskAudience.SAFETY_REVIEWER if stakes else TaskAudience.LABELER,
        note=f"reward v{version.version}: {why} (BALD {uncertainty:.3f})", proposed_by=version,
        now=now,
    )  # fmt: skip


def _stakes(space: FeatureSpace, states, slates_a, slates_b) -> np.ndarray:
    """1.0 for a pair involving a minor or an item of sensitivity ≥ SENSITIVE_LEVEL."""
    sensitivity = space.catalog.item_sensitivity
    both = np.concatenate([slates_a, slates_b], axis=1)
    most = np.where(both >= 0, sensitivity[np.maximum(both, 0)], 0).max(axis=1)
    minor = np.array([state["audience"] == "minor" for state in states])
    return ((most >= SENSITIVE_LEVEL) | minor).astype(float)


# --- candidates -------------------------------------------------------------------------------


def candidate_pool(space: FeatureSpace, rng: np.random.Generator) -> Pool:
    """PAIRS_PER_CONTEXT pairs of distinct candidate slates for each sampled context."""
    contexts = list(
        UserContext.objects.order_by("?").values(
            "id", "segment", "audience", "situation", "history"
        )[:CONTEXTS_PER_REFRESH]
    )
    demonstrated = list(
        DemonstrationStep.objects.order_by("-id").values_list("chosen", flat=True)[:500]
    )
    from_policy = _policy_slates(space, contexts, rng)
    pool = Pool([], [], [], [])
    for row, context in enumerate(contexts):
        slates = _candidate_slates(space, context, demonstrated, rng) + from_policy[row]
        slates = [list(s) for s in {tuple(s) for s in slates}]
        if len(slates) < 2:
            continue
        for _ in range(PAIRS_PER_CONTEXT):
            a, b = rng.choice(len(slates), size=2, replace=False)
            pool.context_ids.append(context["id"])
            pool.states.append(context)
            pool.slates_a.append(slates[a])
            pool.slates_b.append(slates[b])
    return pool


POLICY_SAMPLES = 2  # slates drawn from the promoted policy per context, besides its greedy one


def _policy_slates(space: FeatureSpace, contexts: list[dict], rng) -> list[list[list[int]]]:
    """Per context, the promoted policy's greedy slate and POLICY_SAMPLES drawn from it
    (item pks): the comparisons that decide what the policy will do next. None when no
    policy is promoted or it no longer fits the catalog."""
    from training.policy_evaluation import Evaluated
    from training.policy_training import SLATE_SIZE as POLICY_SLATE
    from training.policy_training import loaded_policy
    from training.registry import promoted_version

    version = promoted_version(ModelKind.POLICY)
    if version is None or space.policy is None or not contexts:
        return [[] for _ in contexts]
    try:
        policy = loaded_policy(version)
    except (ValueError, OSError) as error:
        log.warning("the promoted policy proposes nothing: %s", error)
        return [[] for _ in contexts]
    evaluated = Evaluated(policy=policy, space=space, k=POLICY_SLATE)
    greedy = evaluated.greedy(evaluated.inputs(contexts))
    drawn = evaluated.sampler(int(rng.integers(2**31)))(contexts, POLICY_SAMPLES)
    slates = np.concatenate([greedy[:, None, :], drawn], axis=1)
    return [[[int(space.item_pks[p]) for p in slate if p >= 0] for slate in row] for row in slates]


def _candidate_slates(space, context, demonstrated, rng) -> list[list[int]]:
    pk_of = space.item_pks
    seeds = [
        space.position_of_external_id[entry["item"]]
        for entry in context["history"][-20:]
        if entry.get("event") in ("click", "like")
        and entry.get("item") in space.position_of_external_id
    ] or list(rng.choice(len(pk_of), size=min(3, len(pk_of)), replace=False))
    slates = [_neighbourhood(space, int(seed), rng, pk_of) for seed in seeds[-4:]]
    for chosen in (demonstrated[i] for i in rng.permutation(len(demonstrated))[:4]):
        slates.append(_perturbed(space, chosen, rng, pk_of))
    unique = {tuple(s) for s in slates if len(s) >= 2}
    return [list(s) for s in unique]


def _neighbourhood(space, seed: int, rng, pk_of) -> list[int]:
    """The seed item and SLATE_SIZE − 1 drawn from its nearest items (cosine)."""
    unit = space.catalog.unit_vectors()
    nearest = np.argsort(-(unit @ unit[seed]))[1 : NEIGHBOURS + 1]
    size = min(SLATE_SIZE - 1, len(nearest))
    picks = rng.choice(nearest, size=size, replace=False)
    return [int(pk_of[seed]), *(int(pk_of[p]) for p in picks)]


def _perturbed(space, chosen: list[int], rng, pk_of) -> list[int]:
    """An expert's slate with one item swapped for a neighbour of it."""
    known = [pk for pk in chosen if pk in space.position_of_pk]
    if not known:
        return []
    slot = int(rng.integers(len(known)))
    neighbours = _neighbourhood(space, space.position_of_pk[known[slot]], rng, pk_of)[1:]
    swapped = [pk for pk in neighbours if pk not in known]
    if swapped:
        known[slot] = swapped[0]
    return known
