"""Demonstration trajectories: the builder's draft (saved as the expert works), the user's
state advanced step by step with the simulator's fatigue transition, and submission.

A draft's ``data``:
    {"steps": [{"state": {...}, "shown": [pk, …], "chosen": [pk, …],
                "rejected": [{"item": pk, "reason": "unsafe"}, …], "rationale": "…"}, …],
     "expected_outcome": "…", "tags": ["…"], "rationale": "…"}
The last step is the one being built. A state is
    {"history": [{"item": external id, "event": "click" | "view" | …}, …],
     "situation": {…the context's situation features…},
     "topic_fatigue": {topic slug: value, …}}
"""

import uuid
from collections import defaultdict
from datetime import datetime

import numpy as np
from django.core.exceptions import ValidationError
from django.db import transaction

from annotation.models import (
    Assignment,
    Channel,
    Demonstration,
    DemonstrationDraft,
    DemonstrationStep,
    QueueTask,
    RejectReason,
    TaskKind,
)
from annotation.services import LabelRefused, channel_for, label_slot_claim
from catalog.models import Item, ItemTopic, Topic, UserContext
from governance.policy_engine import catalog_index, compile_version, engine_context
from governance.selectors import guideline_in_force, policy_version_in_force
from training.ml.features import exposure_weights
from training.ml.simulator import SimConfig, fatigue_after, fatigue_summary

MAX_SLATE = 20
MAX_STEPS = 20
MAX_SHOWN = 300
FATIGUE_DECAY = SimConfig.fatigue_decay
SECONDARY_TOPIC_WEIGHT = 0.5  # as the simulator weighs an item's secondary topics


class DraftConflict(ValidationError):
    """The draft changed elsewhere (another tab) since this copy was loaded."""


def _topic_mixtures(item_pks: list[int]) -> dict[int, dict[str, float]]:
    """Each item's topic mixture (primary topic 1, others 0.5, normalized), by topic slug."""
    topics = defaultdict(list)
    for item_id, slug in (
        ItemTopic.objects.filter(item_id__in=item_pks)
        .order_by("pk")
        .values_list("item_id", "topic__slug")
    ):
        topics[item_id].append(slug)
    mixtures = {}
    for item_id, slugs in topics.items():
        weights = [1.0] + [SECONDARY_TOPIC_WEIGHT] * (len(slugs) - 1)
        total = sum(weights)
        mixtures[item_id] = {slug: w / total for slug, w in zip(slugs, weights, strict=True)}
    return mixtures


def _advance_fatigue(fatigue: dict[str, float], slate_pks: list[int]) -> dict[str, float]:
    """The simulator's transition f' = δ f + Σ_j w_j z_j, over topic slugs."""
    mixtures = _topic_mixtures(slate_pks)
    slugs = sorted(set(fatigue) | {s for m in mixtures.values() for s in m})
    vector = np.array([fatigue.get(s, 0.0) for s in slugs])
    rows = np.array([[mixtures.get(pk, {}).get(s, 0.0) for s in slugs] for pk in slate_pks])
    after = fatigue_after(vector, rows.reshape(len(slate_pks), len(slugs)), FATIGUE_DECAY)
    return {s: round(float(v), 4) for s, v in zip(slugs, after, strict=True) if v >= 1e-4}


def initial_state(context: UserContext) -> dict:
    """The context as the builder's first state: its fatigue replayed from its history, read
    as slates of five with the newest entry last, as the models read it
    (``features.exposure_weights``)."""
    external_ids = [entry["item"] for entry in context.history]
    pk_of = dict(Item.objects.filter(external_id__in=external_ids).values_list("external_id", "pk"))
    pks = [pk_of[e] for e in external_ids if e in pk_of]
    mixtures = _topic_mixtures(pks)
    totals: dict[str, float] = defaultdict(float)
    for pk, weight in zip(pks, exposure_weights(len(pks)), strict=True):
        for slug, share in mixtures.get(pk, {}).items():
            totals[slug] += weight * share
    fatigue = {slug: round(float(v), 4) for slug, v in sorted(totals.items()) if v >= 1e-4}
    return {
        "history": list(context.history),
        "situation": dict(context.situation),
        "topic_fatigue": fatigue,
    }


def next_state(state: dict, chosen: list[int]) -> dict:
    """The user's state after being shown ``chosen``: history grows, fatigue changes."""
    external = dict(Item.objects.filter(pk__in=chosen).values_list("pk", "external_id"))
    fatigue = _advance_fatigue(state["topic_fatigue"], chosen)
    # Averaged over every topic of the catalog, as the simulator averages its vector.
    vector = np.zeros(max(Topic.objects.count(), len(fatigue), 1))
    vector[: len(fatigue)] = list(fatigue.values())
    situation = {**state["situation"], "fatigue": fatigue_summary(vector)}
    return {
        "history": state["history"] + [{"item": external[pk], "event": "view"} for pk in chosen],
        "situation": situation,
        "topic_fatigue": fatigue,
    }


def empty_step(state: dict) -> dict:
    return {"state": state, "shown": [], "chosen": [], "rejected": [], "rationale": ""}


@transaction.atomic
def draft_open(
    *, reviewer, context: UserContext, task: QueueTask | None = None
) -> DemonstrationDraft:
    """The reviewer's draft for this task (or context), created on first use."""
    lookup = {"task": task} if task is not None else {"task__isnull": True, "context": context}
    draft = (
        DemonstrationDraft.objects.select_for_update().filter(reviewer=reviewer, **lookup).first()
    )
    if draft is None:
        draft = DemonstrationDraft.objects.create(
            reviewer=reviewer, task=task, context=context,
            data={"steps": [empty_step(initial_state(context))], "expected_outcome": "",
                  "tags": [], "rationale": ""},
        )  # fmt: skip
    return draft


@transaction.atomic
def draft_save(
    *, reviewer, draft: DemonstrationDraft, data: dict, revision: int
) -> DemonstrationDraft:
    """Save the builder's state. ``revision`` is the one the page loaded: if the draft
    moved on since (another tab saved), refuse rather than overwrite that work."""
    locked = DemonstrationDraft.objects.select_for_update().get(pk=draft.pk, reviewer=reviewer)
    if locked.revision != revision:
        raise DraftConflict(
            "this draft was changed in another window: reload to continue from the newer copy"
        )
    locked.data = _clean_draft(data, locked.data)
    locked.revision += 1
    locked.save(update_fields=["data", "revision", "updated_at"])
    return locked


def _clean_draft(data: dict, current: dict) -> dict:
    """Keep what the page may change; states always come from the server."""
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise ValidationError({"data": "a draft is an object with a list of steps"})
    steps = data["steps"][:MAX_STEPS]
    states = [step["state"] for step in current["steps"]]
    if len(steps) != len(states):
        raise ValidationError({"steps": "steps are added with “next step”, not by the page"})
    cleaned = []
    for step, state in zip(steps, states, strict=True):
        cleaned.append(
            {
                "state": state,
                "shown": _pks(step.get("shown"))[:MAX_SHOWN],
                "chosen": _pks(step.get("chosen"))[:MAX_SLATE],
                "rejected": [
                    {"item": int(r["item"]), "reason": str(r.get("reason", ""))}
                    for r in step.get("rejected", []) if isinstance(r, dict) and "item" in r
                ],
                "rationale": str(step.get("rationale", ""))[:5000],
            }
        )  # fmt: skip
    return {
        "steps": cleaned,
        "expected_outcome": str(data.get("expected_outcome", ""))[:5000],
        "tags": [str(t)[:40] for t in data.get("tags", [])][:20],
        "rationale": str(data.get("rationale", ""))[:10000],
    }


def _pks(values) -> list[int]:
    try:
        return [int(v) for v in values or []]
    except (TypeError, ValueError):
        raise ValidationError({"steps": "items are given by their ids"}) from None


@transaction.atomic
def draft_next_step(*, reviewer, draft: DemonstrationDraft, revision: int) -> DemonstrationDraft:
    """Close the current step (it needs a slate) and open the next from the state its
    slate leads to."""
    locked = DemonstrationDraft.objects.select_for_update().get(pk=draft.pk, reviewer=reviewer)
    if locked.revision != revision:
        raise DraftConflict("this draft was changed in another window: reload first")
    steps = locked.data["steps"]
    current = steps[-1]
    if not current["chosen"]:
        raise ValidationError({"chosen": "choose at least one item before the next step"})
    if len(steps) >= MAX_STEPS:
        raise ValidationError({"steps": f"a demonstration has at most {MAX_STEPS} steps"})
    _check_step(len(steps), current, locked.context)
    steps.append(empty_step(next_state(current["state"], current["chosen"])))
    locked.revision += 1
    locked.save(update_fields=["data", "revision", "updated_at"])
    return locked


def _check_step(number: int, step: dict, context: UserContext) -> None:
    """A step's slate: real, distinct items that break no hard rule; reasons known."""
    chosen = step["chosen"]
    if len(set(chosen)) != len(chosen):
        raise ValidationError({"chosen": f"step {number}: the slate shows an item twice"})
    known = set(
        Item.objects.filter(pk__in=chosen + [r["item"] for r in step["rejected"]]).values_list(
            "pk", flat=True
        )
    )
    missing = [pk for pk in chosen if pk not in known]
    if missing:
        raise ValidationError({"chosen": f"step {number}: unknown items {missing}"})
    for rejection in step["rejected"]:
        if rejection["reason"] not in RejectReason.values:
            reasons = ", ".join(RejectReason.values)
            raise ValidationError({"rejected": f"step {number}: reason must be one of {reasons}"})
        if rejection["item"] in chosen:
            raise ValidationError(
                {"rejected": f"step {number}: an item cannot be chosen and rejected"}
            )
    broken = _hard_violations(context, chosen)
    if broken:
        raise ValidationError({"chosen": f"step {number}: {broken[0]}"})


def _shown(step: dict) -> list[int]:
    """Every item the expert saw at the step: the list, the slate and the rejected."""
    return sorted(set(step["shown"]) | set(step["chosen"]) | {r["item"] for r in step["rejected"]})


def _hard_violations(context: UserContext, chosen: list[int]) -> list[str]:
    version = policy_version_in_force()
    if version is None or not chosen:
        return []
    index = catalog_index()
    engine = compile_version(version)
    return [
        v.message
        for v in engine.violations(engine_context(context, index=index), index.positions(chosen))
    ]


@transaction.atomic
def demonstration_submit(
    *,
    reviewer,
    draft: DemonstrationDraft,
    client_token: uuid.UUID,
    now: datetime,
    time_spent_ms: int = 0,
) -> Demonstration:
    """Store the trajectory once (a retried submission returns it) and drop the draft."""
    stored = Demonstration.objects.filter(client_token=client_token).first()
    if stored is not None:
        if stored.reviewer_id != reviewer.pk:
            raise LabelRefused("this submission belongs to someone else")
        return stored
    draft = DemonstrationDraft.objects.select_for_update().get(pk=draft.pk, reviewer=reviewer)
    steps = [s for s in draft.data["steps"] if s["chosen"]]
    if not steps:
        raise ValidationError({"steps": "a demonstration needs at least one step with a slate"})
    for number, step in enumerate(steps, start=1):
        _check_step(number, step, draft.context)
    task = draft.task
    assignment = None
    if task is not None:
        lease = (
            Assignment.objects.filter(task=task, reviewer=reviewer).order_by("-leased_at").first()
        )
        if lease is None:
            raise LabelRefused("this task was never leased to you")
        assignment = label_slot_claim(lease, reviewer, now)
    demonstration = Demonstration.objects.create(
        task=task,
        assignment=assignment,
        reviewer=reviewer,
        context=draft.context,
        channel=channel_for(task) if task else Channel.CURATION,
        guideline_version=guideline_in_force("demonstrate"),
        policy_version=policy_version_in_force(),
        rationale=draft.data.get("rationale", "").strip(),
        expected_outcome=draft.data.get("expected_outcome", "").strip(),
        tags=draft.data.get("tags", []),
        time_spent_ms=time_spent_ms,
        client_token=client_token,
    )
    DemonstrationStep.objects.bulk_create(
        DemonstrationStep(
            demonstration=demonstration, index=number, state=step["state"],
            shown=_shown(step),
            chosen=step["chosen"], rejected=step["rejected"], rationale=step["rationale"].strip(),
        )
        for number, step in enumerate(steps)
    )  # fmt: skip
    draft.delete()
    return demonstration


@transaction.atomic
def demonstration_submit_steps(
    *,
    reviewer,
    steps: list[dict],
    client_token: uuid.UUID,
    now: datetime,
    assignment: Assignment | None = None,
    context: UserContext | None = None,
    expected_outcome: str = "",
    tags: list[str] = (),
    rationale: str = "",
    time_spent_ms: int = 0,
) -> Demonstration:
    """Store a whole trajectory sent at once (the API's way; the builder's goes through a
    draft). Either ``assignment`` (the reviewer's lease of a demonstrate task) or
    ``context`` (a demonstration started from the catalog). ``steps`` are in the draft's
    shape without states: {"chosen": [pk, …], "rejected": [{"item": pk, "reason": …}],
    "rationale": …, "shown": [pk, …] (optional)}. Each state is computed here, as the
    builder would. Stored once: a retried submission returns the first."""
    if (assignment is None) == (context is None):
        raise ValueError("give either an assignment or a context")
    stored = Demonstration.objects.filter(client_token=client_token).first()
    if stored is not None:
        if stored.reviewer_id != reviewer.pk:
            raise LabelRefused("this submission belongs to someone else")
        return stored
    task = _demonstrate_task(assignment) if assignment is not None else None
    context = task.context if task is not None else context
    trajectory = _trajectory(context, steps)
    if assignment is not None:
        assignment = label_slot_claim(assignment, reviewer, now)
        # The builder's draft of this task (if the reviewer opened one) is moot now.
        DemonstrationDraft.objects.filter(reviewer=reviewer, task=task).delete()
    demonstration = Demonstration.objects.create(
        task=task,
        assignment=assignment,
        reviewer=reviewer,
        context=context,
        channel=channel_for(task) if task else Channel.CURATION,
        guideline_version=guideline_in_force(TaskKind.DEMONSTRATE),
        policy_version=policy_version_in_force(),
        rationale=rationale.strip(),
        expected_outcome=expected_outcome.strip(),
        tags=list(tags),
        time_spent_ms=time_spent_ms,
        client_token=client_token,
    )
    DemonstrationStep.objects.bulk_create(
        DemonstrationStep(
            demonstration=demonstration, index=index, state=step["state"], shown=_shown(step),
            chosen=step["chosen"], rejected=step["rejected"], rationale=step["rationale"],
        )
        for index, step in enumerate(trajectory)
    )  # fmt: skip
    return demonstration


def _demonstrate_task(assignment: Assignment) -> QueueTask:
    task = QueueTask.objects.select_related("context").get(pk=assignment.task_id)
    if task.kind != TaskKind.DEMONSTRATE:
        raise ValidationError(
            {"assignment": f"this is a lease of a {task.kind} task, not of a demonstrate task"}
        )
    return task


def _trajectory(context: UserContext, steps: list[dict]) -> list[dict]:
    """The steps, checked as the builder checks them, each with the state it starts from:
    the context's own, then the state the previous step's slate led to."""
    if not steps:
        raise ValidationError({"steps": "a demonstration needs at least one step with a slate"})
    if len(steps) > MAX_STEPS:
        raise ValidationError({"steps": f"a demonstration has at most {MAX_STEPS} steps"})
    trajectory = []
    state = initial_state(context)
    for number, given in enumerate(steps, start=1):
        step = _step_of(number, given)
        _check_step(number, step, context)
        trajectory.append({**step, "state": state})
        if number < len(steps):  # the last slate leads nowhere that is stored
            state = next_state(state, step["chosen"])
    return trajectory


def _step_of(number: int, given: dict) -> dict:
    """A submitted step in the draft's shape, within the builder's limits."""
    chosen = list(given.get("chosen") or [])
    if not chosen:
        raise ValidationError({"chosen": f"step {number}: choose at least one item"})
    if len(chosen) > MAX_SLATE:
        raise ValidationError({"chosen": f"step {number}: a slate has at most {MAX_SLATE} items"})
    shown = list(given.get("shown") or [])
    if len(shown) > MAX_SHOWN:
        raise ValidationError({"shown": f"step {number}: at most {MAX_SHOWN} items shown"})
    return {
        "shown": shown,
        "chosen": chosen,
        "rejected": [
            {"item": r["item"], "reason": r.get("reason", "")} for r in given.get("rejected") or []
        ],
        "rationale": str(given.get("rationale", "")).strip(),
    }
