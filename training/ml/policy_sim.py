"""The simulator as the policy sees it: a content policy for the simulated catalog, engine
contexts of simulator states, simulated demonstrations and simulated logged interactions.
Used by ``bench/policy.py`` and the policy tests; plain NumPy and torch, no Django.

The content policy (``sim_content_policy``)
-------------------------------------------
Hard: minors never see sensitive topics, items above sensitivity 1 or adults-only items;
nobody sees sensitivity 3; at least 3 distinct sources and at most 2 items per topic per
slate. Soft: 0.5 per item on a sensitive topic, 0.25 per item whose primary topic is among
the user's last 3, 0.5 per missing source below 4 distinct ones. What the hard rules leave
is still harmful to some users (sensitivity 2 harms adults of tolerance 1; sensitivity 1
harms minors of tolerance 0): that is what a learner has to learn.

Simulated demonstrations (``simulate_demonstrations``)
------------------------------------------------------
A demonstration starts from a returning user's context (``experts.sample_contexts``). At
each step the builder shows the expert candidates: the allowed items of highest true
one-step value v_i (a curator who knows the user finds them), two logging-policy slates
and random allowed items. The expert perceives v̂_i = v_i + N(0, σ_e²) (σ_e: the reviewer's
noise) and builds the slate greedily under the hard rules with a bonus for a new topic
(the experts' "overall" rewards diversity); it rejects, among the candidates left out,
every harmful one it notices ("unsafe", 90% noticed), up to 3 shown-by-the-logging-policy
items of low click probability ("irrelevant") and up to 2 of a topic the slate already has
twice ("repetitive"). The user then responds (``Simulator.step``) and the next step starts
from the new state. Reviewer reliability is 1 / (1 + (σ_e / 0.1)²): the weight the
annotation side's agreement scores would give (noisier reviewers count less).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from governance.engine.core import (
    CatalogArrays,
    CompiledPolicy,
    EngineContext,
    ForbiddenTopics,
    LowSourceDiversity,
    MaxAudienceRating,
    MaxItemsPerTopic,
    MaxSensitivity,
    MinDistinctSources,
    RecentTopicRepeat,
    SensitiveTopicPenalty,
)
from training.ml import features as F
from training.ml.experts import ExpertConfig, logged_slates, sample_contexts
from training.ml.policy import ContextTensors, ItemTensors, SlateRules, build_slates
from training.ml.policy_training import REJECT_REASONS, DemonstrationSteps, LoggedBatch
from training.ml.simulator import LoggingPolicy, Simulator, UserState, position_weights

RECENT_WINDOW = 3  # RecentTopicRepeat's window


def sim_content_policy(sim: Simulator) -> CompiledPolicy:
    """The bench's content policy (module docstring) compiled against the simulated catalog."""
    catalog = F.catalog_from_simulator(sim)
    world = sim.world
    arrays = CatalogArrays.build(
        item_keys=np.arange(world.n_items),
        topics=catalog.item_topics,
        source=catalog.item_source,
        sensitivity=catalog.item_sensitivity,
        rating=catalog.item_rating,
        topic_names=world.topics,
        topic_sensitive=world.topic_sensitive,
    )
    sensitive = tuple(int(t) for t in np.flatnonzero(world.topic_sensitive))
    hard = [
        ForbiddenTopics("minors-no-sensitive-topics", sensitive, ("minor",)),
        MaxSensitivity("minors-sensitivity", "minor", 1),
        MaxSensitivity("no-severe", None, 2),
        MaxAudienceRating("minors-rating", "minor", 1),
        MinDistinctSources("three-sources", 3),
        MaxItemsPerTopic("two-per-topic", 2),
    ]
    soft = [
        SensitiveTopicPenalty("sensitive-topics", 0.5),
        RecentTopicRepeat("recent-repeat", 0.25, RECENT_WINDOW),
        LowSourceDiversity("source-variety", 0.5, 4),
    ]
    return CompiledPolicy(arrays, hard, soft)


def engine_context(sim: Simulator, state: UserState) -> EngineContext:
    """The user's audience and the primary topics of its history, most recent last."""
    world = sim.world
    recent = [world.item_primary_topic[item] for item, _ in state.history[-20:]]
    audience = "minor" if world.user_minor[state.user] else "adult"
    return EngineContext(audience, np.asarray(recent, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class SimBatch:
    """B simulator states as every policy input: features, masks, soft terms."""

    states: tuple[UserState, ...]
    contexts: F.Contexts
    tensors: ContextTensors
    engine: tuple[EngineContext, ...]
    allowed: np.ndarray  # bool[B, N]
    penalties: np.ndarray  # float64[B, N]: the soft rules' item-level terms


class SimAdapter:
    """Builds ``SimBatch`` es for one simulator and content policy (tables built once)."""

    def __init__(self, sim: Simulator, compiled: CompiledPolicy):
        self.sim, self.compiled = sim, compiled
        self.catalog = F.catalog_from_simulator(sim)
        self.schema = F.schema_for_simulator(sim)
        self.items = ItemTensors.from_catalog(self.catalog)
        self.rules = SlateRules.from_compiled(compiled)
        self.n_segments = len(sim.world.segment_names)
        self._masks = {
            audience: compiled.allowed_mask(EngineContext(audience))
            for audience in ("adult", "minor")
        }

    def contexts(self, states: Sequence[UserState]) -> F.Contexts:
        """The states as the product's features see them (what a study may swap)."""
        return F.contexts_from_simulator(self.sim, states, self.catalog)

    def batch(self, states: Sequence[UserState]) -> SimBatch:
        contexts = self.contexts(states)
        engine = tuple(engine_context(self.sim, state) for state in states)
        allowed = np.stack([self._masks[context.audience] for context in engine])
        return SimBatch(
            states=tuple(states),
            contexts=contexts,
            tensors=ContextTensors.from_contexts(contexts, self.n_segments),
            engine=engine,
            allowed=allowed,
            penalties=self.rules.item_penalties(engine),
        )

    def oracle_slates(self, batch: SimBatch, k: int) -> np.ndarray:
        """The simulator's best slates under the hard rules: the true one-step values v_i
        through the same slate builder (greedy), int[B, k]."""
        values = np.stack([self.sim.item_values(state) for state in batch.states])
        return build_slates(values, batch.allowed, k, self.rules, greedy=True).items


# --- demonstrations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DemonstratorConfig:
    reviewer_noise: tuple[float, ...] = (0.02, 0.04, 0.06, 0.1, 0.2)  # σ_e of each reviewer
    steps: int = 3  # steps per demonstration (fewer when the user leaves)
    top_candidates: int = 15  # candidates of highest true value
    logged_candidate_slates: int = 2  # logging-policy slates among the candidates
    random_candidates: int = 10  # random allowed candidates
    new_topic_bonus: float = 0.1  # the expert's value of a new primary topic in the slate
    notice_unsafe: float = 0.9  # P(a harmful candidate left out is rejected as unsafe)
    irrelevant_below: float = 0.15  # click probability under which a logged item is irrelevant


def reviewer_reliability(noise: float) -> float:
    return 1.0 / (1.0 + (noise / 0.1) ** 2)


def simulate_demonstrations(
    sim: Simulator,
    adapter: SimAdapter,
    n: int,
    rng: np.random.Generator,
    config: DemonstratorConfig | None = None,
) -> tuple[DemonstrationSteps, list[UserState]]:
    """n demonstrations (module docstring) as training steps, and each step's state."""
    config = config or DemonstratorConfig()
    k, world = sim.config.slate_size, sim.world
    logging = LoggingPolicy(sim)
    starts = sample_contexts(sim, n, rng, ExpertConfig(session_steps=2))
    reviewers = rng.integers(0, len(config.reviewer_noise), size=n)
    rows: list[dict] = []
    states: list[UserState] = []
    for state, reviewer in zip(starts, reviewers, strict=True):
        noise = config.reviewer_noise[reviewer]
        for _ in range(config.steps):
            batch = adapter.batch([state])
            allowed = batch.allowed[0]
            values = sim.item_values(state)
            harm = sim.harm(state.user)
            candidates = _candidates(sim, logging, state, values, allowed, rng, config)
            support = np.zeros(world.n_items, dtype=bool)
            support[candidates] = True
            perceived = values + rng.normal(0, noise, size=values.shape)
            # Greedy on perceived value per unit of examination, a repeated topic costing the
            # bonus: logits in units of 0.01.
            slate = build_slates(
                perceived[None] / 0.01,
                allowed[None],
                k,
                adapter.rules,
                greedy=True,
                diversity=config.new_topic_bonus / 0.01,
                support=support[None],
            ).items[0]
            chosen = slate[slate >= 0]
            rejected, reasons = _rejections(
                sim, state, candidates, chosen, values, harm, logging, rng, config
            )
            rows.append(
                {
                    "context": batch.contexts,
                    "chosen": chosen,
                    "candidates": candidates,
                    "rejected": rejected,
                    "reasons": reasons,
                    "weight": reviewer_reliability(noise),
                }
            )
            states.append(state)
            result = sim.step(state, chosen, rng)
            if result.state.left:
                break
            state = result.state
    return _steps_from_rows(rows, k), states


def _candidates(sim, logging, state, values, allowed, rng, config) -> np.ndarray:
    k = sim.config.slate_size
    order = np.argsort(-np.where(allowed, values, -np.inf), kind="stable")
    top = order[: config.top_candidates]
    logged = logged_slates(logging, np.full(config.logged_candidate_slates, state.user), k, rng)
    allowed_items = np.flatnonzero(allowed)
    random = rng.choice(allowed_items, size=config.random_candidates, replace=False)
    pool = np.concatenate([top, logged.reshape(-1), random])
    pool = pool[allowed[pool]]
    _, first = np.unique(pool, return_index=True)
    return pool[np.sort(first)]


def _rejections(sim, state, candidates, chosen, values, harm, logging, rng, config):
    world = sim.world
    left_out = [int(i) for i in candidates if i not in set(chosen.tolist())]
    rejected, reasons = [], []
    for item in left_out:
        if harm[item] > 0 and rng.random() < config.notice_unsafe:
            rejected.append(item)
            reasons.append(REJECT_REASONS.index("unsafe"))
    click = values + sim.config.harm_weight * harm  # sigmoid(ℓ_i)
    irrelevant = [i for i in left_out if click[i] < config.irrelevant_below and i not in rejected]
    for item in irrelevant[:3]:
        rejected.append(item)
        reasons.append(REJECT_REASONS.index("irrelevant"))
    topics = world.item_primary_topic
    counts = np.bincount(topics[chosen], minlength=len(world.topics))
    repetitive = [i for i in left_out if counts[topics[i]] >= 2 and i not in rejected]
    for item in repetitive[:2]:
        rejected.append(item)
        reasons.append(REJECT_REASONS.index("repetitive"))
    return np.asarray(rejected, dtype=np.int64), np.asarray(reasons, dtype=np.int64)


def _padded(arrays: Sequence[np.ndarray], width: int | None = None) -> np.ndarray:
    width = max([len(a) for a in arrays] + [1]) if width is None else width
    table = np.full((len(arrays), width), -1, dtype=np.int64)
    for row, values in enumerate(arrays):
        table[row, : len(values)] = values
    return table


def _steps_from_rows(rows: list[dict], k: int) -> DemonstrationSteps:
    contexts = [row["context"] for row in rows]
    merged = F.Contexts(
        *(
            np.concatenate([getattr(c, name) for c in contexts])
            for name in ("segment", "minor", "situation", *F.CONTEXT_ARRAYS)
        )
    )
    return DemonstrationSteps(
        contexts=merged,
        chosen=_padded([row["chosen"] for row in rows], k),
        candidates=_padded([row["candidates"] for row in rows]),
        rejected=_padded([row["rejected"] for row in rows]),
        reasons=_padded([row["reasons"] for row in rows]),
        weights=np.asarray([row["weight"] for row in rows], dtype=np.float32),
    )


# --- logged interactions ----------------------------------------------------------------------


def simulate_logged(
    sim: Simulator,
    adapter: SimAdapter,
    n: int,
    rng: np.random.Generator,
    *,
    session_steps: int = 3,
) -> tuple[LoggedBatch, list[UserState], np.ndarray]:
    """n impressions of the logging policy in returning users' contexts, with the users'
    sampled clicks and rewards (one draw each) and the logging propensities. Each context
    is a live session after 0..``session_steps`` steps of the logging policy (3: sessions'
    first steps; the horizon − 1: every step a session can reach)."""
    if session_steps < 0:
        raise ValueError(f"session_steps: expected ≥ 0, got {session_steps}")
    k = sim.config.slate_size
    states = sample_contexts(sim, n, rng, ExpertConfig(session_steps=session_steps))
    logging = LoggingPolicy(sim)
    users = np.array([state.user for state in states])
    slates, propensity = logging.sample(users, k, rng)
    fatigue = np.stack([state.fatigue for state in states])
    hours = np.array([state.hour for state in states])
    clicks, rewards = sim.respond_batch(users, fatigue, hours, slates, rng)
    batch = adapter.batch(states)
    return (
        LoggedBatch(batch.contexts, slates.astype(np.int64), rewards, clicks),
        states,
        propensity,
    )


def expected_rewards(sim: Simulator, states: Sequence[UserState], slates: np.ndarray):
    """float[B]: E[r | s, slate] = Σ_j w_j v_{i_j} of each (-1 padded) slate."""
    out = np.zeros(len(states))
    for row, (state, slate) in enumerate(zip(states, slates, strict=True)):
        items = slate[slate >= 0]
        if len(items):
            out[row] = float(position_weights(len(items)) @ sim.item_values(state)[items])
    return out
