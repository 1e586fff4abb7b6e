"""Simulated experts: pairs of slates judged per criterion by a known noisy model, so that a
reward model's accuracy can be compared with the best accuracy any model could reach.

Method: labels are drawn from the Davidson (1970) extension of the Bradley–Terry model to
ties ("On extending the Bradley-Terry model to accommodate ties in paired comparison
experiments", JASA 65), applied to known per-criterion utilities u_c of the simulator
(relevance, safety, diversity, overall; see "What the experts know") divided by a
per-criterion temperature τ_c:

    Δ = (u_c(A) − u_c(B)) / τ_c
    P(A) = e^{Δ/2} / Z,   P(B) = e^{−Δ/2} / Z,   P(tie) = ν / Z,   Z = e^{Δ/2} + e^{−Δ/2} + ν

(the same as e^{u_a} / (e^{u_a} + e^{u_b} + ν e^{(u_a+u_b)/2}) after dividing by
e^{(u_a+u_b)/2}). One comparison is judged on every criterion, independently.

What the experts know. A reviewer judges a slate for the context the labeling page shows:
the user's segment and audience, the situation and the history, not the simulator's hidden
traits of that one user (its preferences p_u and harm tolerance τ_u). With the default
``knowledge="context"`` the experts therefore judge by ``context_utilities``: the
simulator's utilities (``Simulator.slate_utilities``) with p_u replaced by the mean
preferences of the user's segment and the harm averaged over the tolerances of the users of
the same audience, the session state (per-topic fatigue, hour) exact. These utilities are a
function of the context and the slates, so the labels' law given what a reward model is
shown is known exactly, and so is the best accuracy any model can reach. (With
``knowledge="user"`` the experts judge by the user's true utilities, ``true_utilities``;
the figure below is then only an upper bound, as no predictor sees the hidden traits.)

Bayes-optimal accuracy. Accuracy is measured on the non-tie labels: a predictor names A or
B, and is right when the expert chose that side. Whatever a predictor knows, on a pair its
expected number of correct answers is P(side it names) ≤ max(P(A), P(B)); the predictor that
knows the experts' utilities names the side of higher utility and reaches the bound. Over a
set of pairs i and criteria c we define

    bayes_optimal_accuracy = Σ_{i,c} max(P_ic(A), P_ic(B)) / Σ_{i,c} (P_ic(A) + P_ic(B)),

the expected number of correct answers over the expected number of non-tie labels: the
value the realized accuracy of the optimal predictor converges to as the set grows (exact
from the probabilities, no sampling). ``expected_accuracy`` gives the same figure for any
predictor, so a model can be compared with the optimum without label noise too.

Noise level ("moderate", the default). The temperatures make every criterion equally noisy
where there is something to judge: on the pairs whose utilities differ on a criterion, the
Bayes-optimal accuracy is 0.86 for each criterion. Pairs of equal utility (about a quarter
on safety, where both slates are often harmless, and half on diversity, a count of topics)
are coin flips for every predictor, so over all labels the Bayes-optimal accuracy is 0.80
(``test_experts.py`` checks both on the default mix).

Contexts are returning users: a history of earlier logged impressions with their clicks,
then the current session after a few logging-policy steps (fatigue, hour). For each
context, pairs of three kinds are drawn: two logging-policy slates; two perturbations of
the greedy (one-step optimal) slate, each with one or two positions replaced by random
items; a uniformly random slate against a logging-policy slate. Sides are shuffled.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
import torch

from training.ml import features as F
from training.ml.simulator import (
    AUDIENCE_RATINGS,
    LoggingPolicy,
    Simulator,
    UserState,
    position_weights,
    sigmoid,
)

CRITERIA = ("relevance", "safety", "diversity", "overall")
KNOWLEDGE = ("context", "user")
ADULT_RATING = AUDIENCE_RATINGS.index("adult")


@dataclass(frozen=True)
class ExpertConfig:
    criteria: tuple[str, ...] = CRITERIA  # judged criteria: keys of Simulator.slate_utilities
    temperatures: tuple[float, ...] = (0.078, 0.217, 0.116, 0.239)  # τ_c per criterion
    nu: float = 0.5  # Davidson tie parameter ν (P(tie) = 0.2 between equal slates)
    knowledge: str = "context"  # judge by context_utilities, or "user": true_utilities
    earlier_impressions: int = 40  # a context's history holds 0..this many earlier impressions
    session_steps: int = 10  # and the current session, after 0..session_steps logged steps
    pairs_per_context: int = 4  # pairs drawn per context
    mix: tuple[float, float, float] = (0.4, 0.3, 0.3)  # logged, greedy-perturbed, random

    def __post_init__(self) -> None:
        unknown = set(self.criteria) - set(CRITERIA)
        if unknown:
            raise ValueError(f"criteria: unknown {sorted(unknown)}; known: {CRITERIA}")
        if len(self.temperatures) != len(self.criteria):
            raise ValueError("temperatures: one per criterion expected")
        if self.knowledge not in KNOWLEDGE:
            raise ValueError(f"knowledge: expected one of {KNOWLEDGE}, got {self.knowledge!r}")

    def utilities(self):
        """The function (sim, state, slates) → float[b, 4] the experts judge by."""
        return context_utilities if self.knowledge == "context" else true_utilities


@dataclass(frozen=True, eq=False)
class PairSet:
    """n judged pairs. Row i compares slates_a[i] with slates_b[i] in states[context[i]]."""

    criteria: tuple[str, ...]
    states: tuple[UserState, ...]  # the contexts
    context: np.ndarray  # int[n], index into states
    slates_a: np.ndarray  # int[n, k]
    slates_b: np.ndarray  # int[n, k]
    utilities_a: np.ndarray  # float[n, C], the utilities the experts judged A by
    utilities_b: np.ndarray  # float[n, C]
    probabilities: np.ndarray  # float[n, C, 3], true P(A), P(B), P(tie)
    outcomes: np.ndarray  # int8[n, C], 0 A, 1 B, 2 tie
    kinds: np.ndarray  # int[n]: 0 logged, 1 greedy-perturbed, 2 random against logged

    def __len__(self) -> int:
        return len(self.context)

    def take(self, rows) -> PairSet:
        rows = np.asarray(rows)
        return PairSet(
            self.criteria,
            self.states,
            self.context[rows],
            self.slates_a[rows],
            self.slates_b[rows],
            self.utilities_a[rows],
            self.utilities_b[rows],
            self.probabilities[rows],
            self.outcomes[rows],
            self.kinds[rows],
        )


# --- the noise model --------------------------------------------------------------------------


def davidson_probabilities(delta: np.ndarray, nu: float) -> np.ndarray:
    """float[..., 3]: P(A), P(B), P(tie) for utility differences Δ = u_a − u_b (Davidson)."""
    logits = np.stack(
        [delta / 2, -delta / 2, np.full_like(delta, np.log(nu), dtype=float)], axis=-1
    )
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=-1, keepdims=True)


def sample_outcomes(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """int8[...]: one categorical draw per row of ``probabilities`` (float[..., 3])."""
    cumulative = probabilities.cumsum(axis=-1)
    draws = rng.random(probabilities.shape[:-1])[..., None]
    return np.minimum((draws > cumulative).sum(axis=-1), 2).astype(np.int8)


def bayes_optimal_accuracy(probabilities: np.ndarray) -> float:
    """Σ max(P(A), P(B)) / Σ (P(A) + P(B)) over all pairs and criteria (module docstring)."""
    p_a, p_b = probabilities[..., 0], probabilities[..., 1]
    return float(np.maximum(p_a, p_b).sum() / (p_a + p_b).sum())


def expected_accuracy(probabilities: np.ndarray, names_a: np.ndarray) -> float:
    """A predictor's expected accuracy on non-tie labels under the true model: Σ P(named side)
    / Σ (P(A) + P(B)); ``names_a`` bool[n, C] is True where it names A."""
    p_a, p_b = probabilities[..., 0], probabilities[..., 1]
    return float(np.where(names_a, p_a, p_b).sum() / (p_a + p_b).sum())


# --- utilities --------------------------------------------------------------------------------


def true_utilities(sim: Simulator, state: UserState, slates: np.ndarray) -> np.ndarray:
    """float[b, 4] (relevance, safety, diversity, overall) of full slates int[b, k] in one
    state, with the user's hidden traits: ``Simulator.slate_utilities`` vectorized over
    slates (tests hold them equal)."""
    logits = sim.click_logits(state)
    return _utilities(sim, slates, sigmoid(logits), sim.harm(state.user))


def context_utilities(sim: Simulator, state: UserState, slates: np.ndarray) -> np.ndarray:
    """float[b, 4] like ``true_utilities``, with the user's preferences replaced by their
    segment's mean and the harm averaged over the tolerances of users of the same audience
    (module docstring, "What the experts know"): ``true_utilities`` of a user whose traits
    are those expected of anyone the context could describe."""
    world, config = sim.world, sim.config
    segment_preferences = world.segment_preferences[world.user_segment[state.user]]
    logits = (
        config.c0
        + config.c_rel * (world.item_topics @ segment_preferences)
        + config.c_quality * world.item_quality
        - config.c_fatigue * (world.item_topics @ state.fatigue)
        + (config.c_night if state.hour < 6 else 0.0)
    )
    return _utilities(sim, slates, sigmoid(logits), audience_harm(sim, state.user))


def audience_harm(sim: Simulator, user: int) -> np.ndarray:
    """float[N]: every item's harm averaged over the tolerances of the users of ``user``'s
    audience (adults or minors), cached on the simulator."""
    cache = sim.__dict__.setdefault("_audience_harm_cache", {})
    minor = bool(sim.world.user_minor[user])
    if minor not in cache:
        world = sim.world
        peers = world.user_tolerance[world.user_minor == minor]
        harm = np.maximum(0, world.item_sensitivity[None, :] - peers[:, None]).mean(axis=0)
        if minor:
            harm = harm + sim.config.minor_adult_harm * (world.item_rating == ADULT_RATING)
        cache[minor] = harm
    return cache[minor]


def _utilities(sim: Simulator, slates: np.ndarray, click: np.ndarray, harm: np.ndarray):
    """float[b, 4] of slates int[b, k] from per-item click probabilities and harms."""
    weights = position_weights(slates.shape[1])
    relevance = click[slates] @ weights
    safety = -(harm[slates] @ weights)
    primary = np.sort(sim.world.item_primary_topic[slates], axis=1)
    diversity = (1 + (primary[:, 1:] != primary[:, :-1]).sum(axis=1)) / slates.shape[1]
    overall = relevance + sim.config.harm_weight * safety + 0.5 * diversity
    return np.stack([relevance, safety, diversity, overall], axis=1)


def score_pairs(sim: Simulator, pairs: PairSet, utilities=context_utilities) -> np.ndarray:
    """float[n, C]: u(A) − u(B) for every pair under ``utilities(sim, state, slates)``."""
    columns = [CRITERIA.index(name) for name in pairs.criteria]
    delta = np.empty((len(pairs), len(columns)))
    for c in np.unique(pairs.context):
        rows = np.flatnonzero(pairs.context == c)
        state = pairs.states[c]
        delta[rows] = (
            utilities(sim, state, pairs.slates_a[rows])
            - utilities(sim, state, pairs.slates_b[rows])
        )[:, columns]
    return delta


# --- contexts and slates ----------------------------------------------------------------------


def sample_contexts(
    sim: Simulator, n: int, rng: np.random.Generator, config: ExpertConfig
) -> list[UserState]:
    """n contexts of returning users: a random user whose history holds 0..earlier_impressions
    earlier logged impressions (the logging policy's slate and the user's simulated clicks,
    ``Simulator.respond_batch``, as in the interaction log), followed by the current session
    after 0..session_steps steps of the logging policy (``Simulator.step``: fatigue, hour,
    history). A step after which the user left is not taken: contexts are live sessions."""
    k = sim.config.slate_size
    policy = LoggingPolicy(sim)
    users = rng.integers(0, sim.world.n_users, size=n)
    earlier = _earlier_histories(sim, policy, users, config.earlier_impressions, rng)
    states = [
        replace(sim.initial_state(int(user), rng), history=history)
        for user, history in zip(users, earlier, strict=True)
    ]
    steps = rng.integers(0, config.session_steps + 1, size=n)
    for t in range(config.session_steps):
        running = np.flatnonzero(steps > t)
        if len(running) == 0:
            break
        slates = logged_slates(policy, users[running], k, rng)
        for row, slate in zip(running, slates, strict=True):
            result = sim.step(states[row], slate, rng)
            if result.state.left:
                steps[row] = t  # the session ends here; keep the last live state
            else:
                states[row] = result.state
    return states


def _earlier_histories(sim, policy, users, most: int, rng) -> list[tuple]:
    """Per user, 0..most earlier logged impressions as history entries (item, click|view)."""
    counts = rng.integers(0, most + 1, size=len(users))
    rows = np.repeat(np.arange(len(users)), counts)
    slates = logged_slates(policy, users[rows], sim.config.slate_size, rng)
    fresh = np.zeros((len(rows), len(sim.world.topics)))
    hours = rng.integers(0, 24, size=len(rows))
    clicks, _ = sim.respond_batch(users[rows], fresh, hours, slates, rng)
    entries = [
        tuple(
            (int(item), "click" if hit else "view") for item, hit in zip(slate, hits, strict=True)
        )
        for slate, hits in zip(slates, clicks, strict=True)
    ]
    starts = np.concatenate([[0], np.cumsum(counts)])
    return [
        tuple(itertools.chain.from_iterable(entries[starts[i] : starts[i + 1]]))
        for i in range(len(users))
    ]


def random_slates(n_items: int, b: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """int[b, k]: uniformly random slates of distinct items."""
    slates = rng.integers(0, n_items, size=(b, k))
    for position in range(1, k):
        clash = (slates[:, :position] == slates[:, position : position + 1]).any(axis=1)
        while clash.any():
            slates[clash, position] = rng.integers(0, n_items, size=int(clash.sum()))
            clash = (slates[:, :position] == slates[:, position : position + 1]).any(axis=1)
    return slates


def perturbed_slates(slates: np.ndarray, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """``slates`` with one or two random positions each replaced by an item not shown."""
    slates = slates.copy()
    b, k = slates.shape
    n_swaps = rng.integers(1, 3, size=b)
    positions = rng.random((b, k)).argsort(axis=1)
    for swap in range(2):
        rows = np.flatnonzero(n_swaps > swap)
        items = rng.integers(0, n_items, size=len(rows))
        clash = (slates[rows] == items[:, None]).any(axis=1)
        while clash.any():
            items[clash] = rng.integers(0, n_items, size=int(clash.sum()))
            clash = (slates[rows] == items[:, None]).any(axis=1)
        slates[rows, positions[rows, swap]] = items
    return slates


def logged_slates(
    policy: LoggingPolicy, users: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """int[b, k]: slates drawn from the logging policy, like ``LoggingPolicy.sample`` but in
    O(k log N) per slate: the Plackett–Luce part picks position by position from
    softmax(scores), redrawing an item already picked (sequential sampling without
    replacement, the same law as the Gumbel top-k); with probability ε a uniformly random
    slate. Pairs need no propensities."""
    scores = policy.segment_scores
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    cumulative = np.cumsum(weights, axis=1)
    cumulative /= cumulative[:, -1:]
    segments = policy.sim.world.user_segment[users]
    slates = np.empty((len(users), k), dtype=np.int64)
    for segment in np.unique(segments):
        rows = np.flatnonzero(segments == segment)
        slates[rows] = _sequential_draws(cumulative[segment], len(rows), k, rng)
    uniform = np.flatnonzero(rng.random(len(users)) < policy.epsilon)
    slates[uniform] = random_slates(policy.sim.world.n_items, len(uniform), k, rng)
    return slates


def _sequential_draws(cumulative: np.ndarray, b: int, k: int, rng) -> np.ndarray:
    """int[b, k]: k distinct items per row, each drawn ∝ the weights whose normalized
    cumulative sum is ``cumulative``, redrawing repeats."""
    n = len(cumulative)
    slates = np.empty((b, k), dtype=np.int64)
    for position in range(k):
        draw = np.minimum(np.searchsorted(cumulative, rng.random(b), side="right"), n - 1)
        slates[:, position] = draw
        clash = (slates[:, :position] == draw[:, None]).any(axis=1)
        while clash.any():
            redraw = rng.random(int(clash.sum()))
            slates[clash, position] = np.minimum(
                np.searchsorted(cumulative, redraw, side="right"), n - 1
            )
            clash = (slates[:, :position] == slates[:, position : position + 1]).any(axis=1)
    return slates


def _slate_pairs(sim, states, context, kinds, rng) -> tuple[np.ndarray, np.ndarray]:
    """Slates A and B for every pair, by kind: 0 two logging-policy slates; 1 two
    perturbations of the one-step optimum; 2 a uniformly random slate and a logged one."""
    k, n_items = sim.config.slate_size, sim.world.n_items
    policy = LoggingPolicy(sim)
    users = np.array([states[c].user for c in context], dtype=np.int64)
    slates_a = logged_slates(policy, users, k, rng)
    slates_b = logged_slates(policy, users, k, rng)
    greedy_rows = np.flatnonzero(kinds == 1)
    greedy = {c: sim.greedy_slate(states[c]) for c in np.unique(context[greedy_rows])}
    optimum = np.stack([greedy[c] for c in context[greedy_rows]]).reshape(-1, k)
    slates_a[greedy_rows] = perturbed_slates(optimum, n_items, rng)
    slates_b[greedy_rows] = perturbed_slates(optimum, n_items, rng)
    random_rows = np.flatnonzero(kinds == 2)
    slates_a[random_rows] = random_slates(n_items, len(random_rows), k, rng)
    return slates_a, slates_b


def sample_pairs(
    sim: Simulator, n: int, rng: np.random.Generator, config: ExpertConfig | None = None
) -> PairSet:
    """n pairs with their true probabilities and one sampled expert judgment each."""
    config = config or ExpertConfig()
    columns = [CRITERIA.index(name) for name in config.criteria]
    n_contexts = -(-n // config.pairs_per_context)
    states = sample_contexts(sim, n_contexts, rng, config)
    context = np.repeat(np.arange(n_contexts), config.pairs_per_context)[:n]
    kinds = rng.choice(3, size=n, p=np.asarray(config.mix) / sum(config.mix))
    slates_a, slates_b = _slate_pairs(sim, states, context, kinds, rng)
    swap = rng.random(n) < 0.5
    slates_a[swap], slates_b[swap] = slates_b[swap], slates_a[swap]

    utilities_a = np.empty((n, len(columns)))
    utilities_b = np.empty((n, len(columns)))
    starts = np.searchsorted(context, np.arange(n_contexts + 1))
    judge = config.utilities()
    for c in range(n_contexts):
        rows = slice(starts[c], starts[c + 1])
        utilities_a[rows] = judge(sim, states[c], slates_a[rows])[:, columns]
        utilities_b[rows] = judge(sim, states[c], slates_b[rows])[:, columns]
    delta = (utilities_a - utilities_b) / np.asarray(config.temperatures)
    probabilities = davidson_probabilities(delta, config.nu)
    return PairSet(
        criteria=tuple(config.criteria),
        states=tuple(states),
        context=context,
        slates_a=slates_a,
        slates_b=slates_b,
        utilities_a=utilities_a,
        utilities_b=utilities_b,
        probabilities=probabilities,
        outcomes=sample_outcomes(probabilities, rng),
        kinds=kinds,
    )


# --- features ---------------------------------------------------------------------------------


class Featurizer:
    """Feature rows for PairSets of one simulator (the catalog tables are built once)."""

    def __init__(self, sim: Simulator):
        self.sim = sim
        self.schema = F.schema_for_simulator(sim)
        self.catalog = F.catalog_from_simulator(sim)

    def __call__(self, pairs: PairSet) -> tuple[torch.Tensor, torch.Tensor]:
        contexts = F.contexts_from_simulator(self.sim, pairs.states, self.catalog)
        contexts = contexts.take(pairs.context)
        return F.pair_features(self.schema, self.catalog, contexts, pairs.slates_a, pairs.slates_b)
