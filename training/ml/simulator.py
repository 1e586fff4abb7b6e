"""A simulator of users (and the catalog they browse), so that every learning claim in
Shepherd can be measured against a known optimum. Plain NumPy, no Django; deterministic
by seed.

The world
---------
T topics (a few of them sensitive), S sources, N items, U users.

Item i has a topic mixture z_i ∈ Δ^T (a primary topic and up to two secondary ones), a
source s_i, a sensitivity σ_i ∈ {0, 1, 2, 3} (high mostly on sensitive topics), an audience
rating (all, teen, adult), a quality q_i ∈ [0, 1], a popularity π_i (log-normal) and a
feature vector

    x_i = z_i E + q_i u + ε_i,      E ∈ R^{T×d} topic embeddings, u a quality direction,
                                    ε_i ~ N(0, feature_noise² I).

User u has topic preferences p_u ∈ [0, 1]^T (high on a few favourite topics drawn from
its segment's focus; with ``tastes="segment"`` every user has their segment's mean instead,
so that what a context shows, the segment, determines them), an audience (adult or minor:
the "teen" segment) and a harm tolerance τ_u (adults 1–3, minors 0–1).

The state of a user's session is s = (fatigue f ∈ R^T_{≥0}, step t, history, hour, …).

One step: the recommender shows a slate (i_1, …, i_k)
------------------------------------------------------
    examination     e_j ~ Bernoulli(w_j),            w_j = 1 / log2(j + 1)
    click logit     ℓ_i = c_0 + c_rel (z_i · p_u) + c_q q_i − c_f (z_i · f) + c_night [night]
    click           c_j ~ e_j · Bernoulli(sigmoid(ℓ_{i_j}))
    harm            h_i = max(0, σ_i − τ_u) + minor_adult_harm · [minor ∧ rating_i = adult]
    reward          r = Σ_j c_j − λ_harm Σ_j w_j h_{i_j}
    leaving         P(leave) = sigmoid(l_0 + l_harm Σ_j h_{i_j} + l_fatigue mean(f')
                                       − l_click Σ_j c_j)
    fatigue         f' = δ f + Σ_j w_j z_{i_j}   (grows when a topic repeats, decays otherwise)

Events name the bad experiences: ``harmful_item_shown`` for every shown item with h_i > 0,
and ``user_left`` when the user leaves (the session ends), with its cause. One uniform draw
ρ decides leaving (ρ < P(leave)); the departure was ``driven_away`` when the user would
have stayed had the slate not harmed them, ρ ≥ sigmoid(l_0 + l_fatigue mean(f')
− l_click Σ_j c_j) (the same clicks and fatigue, no harm), and ``anyway`` otherwise. Mean
fatigue is the same after every slate of k items (each topic mixture sums to 1, so
mean(f') = δ mean(f) + Σ_j w_j / T): it measures how long the session has run, not what it
showed. Users end sessions at that rate whatever they are shown; no recommender can
prevent it, and it is not counted against one. Long-term
satisfaction is the discounted return G = Σ_t γ^t r_t over a session of at most ``horizon`` steps.

The expected immediate reward is additive over positions,

    E[r | s, slate] = Σ_j w_j (sigmoid(ℓ_{i_j}) − λ_harm h_{i_j}),

so with weights w_j decreasing, the slate of the k items with the highest
v_i = sigmoid(ℓ_i) − λ_harm h_i (in that order) is exactly optimal for one step under any
per-item mask: ``greedy_slate`` is that known optimum.

Criterion utilities (what simulated experts judge by): relevance = Σ_j w_j sigmoid(ℓ_{i_j}),
safety = −Σ_j w_j h_{i_j}, diversity = distinct primary topics / k; overall combines them
(``slate_utilities``).

The logging policy
------------------
A mixture of a Plackett–Luce policy on scores b_i = (log π_i + η z_i · p̄_segment) / temperature
(p̄: the user's segment's mean preferences, all a logging policy could know) and a uniform
policy over ordered slates, with probability ε. Slates are drawn by the Gumbel-top-k trick;
the propensity of an ordered slate is

    P(slate) = (1 − ε) Π_j exp(b_{i_j}) / Σ_{l ∉ {i_1..i_{j−1}}} exp(b_l)  +  ε (N − k)! / N!
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

TOPICS = (
    "cooking", "travel", "fitness", "music", "movies", "gaming", "technology", "science",
    "finance", "fashion", "parenting", "pets", "gardening", "sports", "history", "art",
    "comedy", "books", "cars", "diy", "news",
    # sensitive
    "gambling", "graphic-violence", "alcohol", "extreme-dieting",
)  # fmt: skip
SENSITIVE_TOPICS = frozenset({"gambling", "graphic-violence", "alcohol", "extreme-dieting"})

SOURCES = (
    "daily-kitchen", "wanderlust-weekly", "pulse-fitness", "soundwave", "reel-review",
    "pixel-post", "circuit-times", "lab-notes", "ledger", "runway-report", "open-field",
    "night-desk",
)  # fmt: skip

# Segment -> (focus topics, audience, share of users).
SEGMENTS: dict[str, tuple[tuple[str, ...], str, float]] = {
    "casual": (("cooking", "travel", "movies", "comedy", "pets", "music"), "adult", 0.30),
    "enthusiast": (("gaming", "technology", "cars", "sports", "gambling", "diy"), "adult", 0.22),
    "news": (("news", "finance", "science", "history", "graphic-violence"), "adult", 0.18),
    "lifestyle": (("fitness", "fashion", "extreme-dieting", "alcohol", "cooking"), "adult", 0.15),
    "teen": (("gaming", "music", "comedy", "sports", "fashion", "art"), "minor", 0.15),
}  # fmt: skip

AUDIENCE_RATINGS = ("all", "teen", "adult")
EVENT_HARMFUL = "harmful_item_shown"
EVENT_LEFT = "user_left"
LEFT_DRIVEN_AWAY = "driven_away"  # the cause of a departure (module docstring)
LEFT_ANYWAY = "anyway"
TASTES = ("individual", "segment")

_ADJECTIVES = (
    "Essential", "Quick", "Hidden", "Complete", "Modern", "Classic", "Weekend", "Daily",
    "Ultimate", "Simple", "Curious", "Honest", "Bold", "Quiet", "Practical", "Surprising",
)  # fmt: skip
_NOUNS = ("guide", "stories", "digest", "notes", "picks", "questions", "lessons", "ideas")


@dataclass(frozen=True)
class SimConfig:
    n_items: int = 2000  # catalog size
    n_users: int = 500  # simulated users
    feature_dim: int = 16  # length of each item's feature vector
    feature_noise: float = 0.1  # std of the noise in item features
    slate_size: int = 5  # items per slate
    horizon: int = 20  # steps per session at most
    gamma: float = 0.9  # discount of the long-term return
    c0: float = -2.0  # click logit intercept
    c_rel: float = 4.0  # weight of topical relevance (z·p) in the click logit
    c_quality: float = 1.0  # weight of item quality
    c_fatigue: float = 1.5  # weight of topic fatigue (z·f)
    c_night: float = -0.3  # night hours (0–5) lower click rates
    harm_weight: float = 2.0  # λ_harm: reward lost per unit of harm (position-weighted)
    minor_adult_harm: float = 2.0  # extra harm of an adults-only item shown to a minor
    l0: float = -3.5  # leave logit intercept
    l_harm: float = 1.0  # leave logit per unit of harm shown
    l_fatigue: float = 1.0  # leave logit per unit of mean fatigue
    l_click: float = 0.5  # each click makes leaving less likely
    fatigue_decay: float = 0.7  # δ: fatigue kept from one step to the next
    logging_temperature: float = 1.0  # of the logging policy's Plackett–Luce scores
    logging_relevance: float = 2.0  # η: weight of segment relevance in logging scores
    logging_epsilon: float = 0.05  # share of uniformly random slates in the logging policy
    tastes: str = "individual"  # per-user favourites, or "segment": the segment's mean

    def __post_init__(self) -> None:
        if self.tastes not in TASTES:
            raise ValueError(f"tastes: expected one of {TASTES}, got {self.tastes!r}")


@dataclass(frozen=True)
class World:
    """Everything fixed by the seed: the catalog and the users' hidden traits."""

    topics: tuple[str, ...]
    topic_sensitive: np.ndarray  # bool[T]
    sources: tuple[str, ...]
    item_ids: tuple[str, ...]
    item_titles: tuple[str, ...]
    item_topics: np.ndarray  # float[N, T], rows sum to 1 (z_i)
    item_primary_topic: np.ndarray  # int[N]
    item_source: np.ndarray  # int[N]
    item_sensitivity: np.ndarray  # int[N] in 0..3
    item_rating: np.ndarray  # int[N] index into AUDIENCE_RATINGS
    item_quality: np.ndarray  # float[N]
    item_popularity: np.ndarray  # float[N], π_i > 0
    item_features: np.ndarray  # float32[N, d]
    user_ids: tuple[str, ...]
    user_segment: np.ndarray  # int[U] index into segment_names
    user_minor: np.ndarray  # bool[U]
    user_preferences: np.ndarray  # float[U, T] (p_u)
    user_tolerance: np.ndarray  # int[U] (τ_u)
    segment_names: tuple[str, ...]
    segment_preferences: np.ndarray  # float[G, T]: mean p_u per segment

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def item_topic_names(self, item: int) -> list[str]:
        order = np.argsort(-self.item_topics[item])
        return [self.topics[t] for t in order if self.item_topics[item, t] > 0]


@dataclass(frozen=True)
class UserState:
    """One user's session. Immutable: ``step`` returns the next state."""

    user: int
    fatigue: np.ndarray  # float[T]
    t: int = 0
    hour: int = 12
    weekday: int = 0
    traffic: float = 0.5
    new_feature_exposure: bool = False
    policy_change_period: bool = False
    history: tuple[tuple[int, str], ...] = ()  # (item, "click" | "view"), oldest first
    left: bool = False
    discounted_return: float = 0.0

    def situation(self) -> dict:
        """The situation features as the catalog stores them (catalog.importing.schema)."""
        return {
            "fatigue": fatigue_summary(self.fatigue),
            "traffic": round(self.traffic, 4),
            "hour": self.hour,
            "weekday": self.weekday,
            "new_feature_exposure": self.new_feature_exposure,
            "policy_change_period": self.policy_change_period,
        }


@dataclass(frozen=True)
class StepResult:
    state: UserState
    reward: float
    clicks: tuple[int, ...]  # positions clicked
    events: tuple[tuple[str, int | None], ...] = field(default_factory=tuple)


def fatigue_after(fatigue: np.ndarray, slate_topics: np.ndarray, decay: float) -> np.ndarray:
    """f' = δ f + Σ_j w_j z_{i_j}: the fatigue transition, for a slate whose items' topic
    mixtures are the rows of ``slate_topics`` (best position first). Shared with the
    demonstration builder, which advances real contexts the same way."""
    return decay * fatigue + position_weights(len(slate_topics)) @ slate_topics


def fatigue_summary(fatigue: np.ndarray) -> float:
    """The situation's single fatigue figure in [0, 1): 1 − exp(−4 · mean(f))."""
    return round(float(1.0 - math.exp(-4.0 * float(np.mean(fatigue)))), 4)


def sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-x))


def position_weights(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


class Simulator:
    def __init__(self, config: SimConfig | None = None, seed: int = 0):
        self.config = config or SimConfig()
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.world = build_world(self.config, np.random.default_rng([seed, 1]))
        self._sensitive_harm_cache: dict[int, np.ndarray] = {}

    # --- per-user quantities, vectorized over the catalog ---------------------------

    def click_logits(self, state: UserState) -> np.ndarray:
        """ℓ_i for every item (float[N])."""
        w, c = self.world, self.config
        relevance = w.item_topics @ w.user_preferences[state.user]
        fatigue = w.item_topics @ state.fatigue
        night = c.c_night if state.hour < 6 else 0.0
        return (
            c.c0
            + c.c_rel * relevance
            + c.c_quality * w.item_quality
            - c.c_fatigue * fatigue
            + night
        )

    def harm(self, user: int) -> np.ndarray:
        """h_i for every item (float[N]); depends only on the user's traits."""
        cached = self._sensitive_harm_cache.get(user)
        if cached is None:
            w = self.world
            cached = np.maximum(0, w.item_sensitivity - w.user_tolerance[user]).astype(float)
            if w.user_minor[user]:
                cached += self.config.minor_adult_harm * (
                    w.item_rating == AUDIENCE_RATINGS.index("adult")
                )
            self._sensitive_harm_cache[user] = cached
        return cached

    def item_values(self, state: UserState) -> np.ndarray:
        """v_i = sigmoid(ℓ_i) − λ_harm h_i: an item's expected one-step worth per unit of
        position weight."""
        return sigmoid(self.click_logits(state)) - self.config.harm_weight * self.harm(state.user)

    def expected_reward(self, state: UserState, slate: np.ndarray | list[int]) -> float:
        slate = np.asarray(slate)
        return float(position_weights(len(slate)) @ self.item_values(state)[slate])

    def greedy_slate(
        self, state: UserState, k: int | None = None, allowed: np.ndarray | None = None
    ) -> np.ndarray:
        """The exact one-step optimum: the k allowed items of highest v_i, best first."""
        k = self.config.slate_size if k is None else k
        values = self.item_values(state)
        if allowed is not None:
            values = np.where(allowed, values, -np.inf)
            k = min(k, int(allowed.sum()))
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        top = np.argpartition(-values, k - 1)[:k]
        return top[np.argsort(-values[top], kind="stable")]

    def slate_utilities(self, state: UserState, slate: np.ndarray | list[int]) -> dict[str, float]:
        """The per-criterion utilities simulated experts judge slates by."""
        slate = np.asarray(slate)
        weights = position_weights(len(slate))
        relevance = float(weights @ sigmoid(self.click_logits(state)[slate]))
        safety = -float(weights @ self.harm(state.user)[slate])
        diversity = len(set(self.world.item_primary_topic[slate].tolist())) / len(slate)
        overall = relevance + self.config.harm_weight * safety + 0.5 * diversity
        return {
            "relevance": relevance,
            "safety": safety,
            "diversity": diversity,
            "overall": overall,
        }

    def respond_batch(
        self,
        users: np.ndarray,
        fatigue: np.ndarray,
        hours: np.ndarray,
        slates: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sampled clicks (bool[B, k]) and rewards (float[B]) for B independent one-step
        impressions: the same model as ``step``, vectorized, without advancing sessions
        (how logged interactions are generated: one draw per logged impression)."""
        c, w = self.config, self.world
        z = w.item_topics[slates]  # (B, k, T)
        relevance = np.einsum("bkt,bt->bk", z, w.user_preferences[users])
        tired = np.einsum("bkt,bt->bk", z, fatigue)
        night = np.where(np.asarray(hours) < 6, c.c_night, 0.0)[:, None]
        logits = (
            c.c0
            + c.c_rel * relevance
            + c.c_quality * w.item_quality[slates]
            - c.c_fatigue * tired
            + night
        )
        weights = position_weights(slates.shape[1])
        examined = rng.random(slates.shape) < weights
        clicks = examined & (rng.random(slates.shape) < sigmoid(logits))
        per_row = [self.harm(int(u))[s] for u, s in zip(users, slates, strict=True)]
        harm = np.asarray(per_row, dtype=float).reshape(slates.shape)  # B may be 0
        rewards = clicks.sum(axis=1) - c.harm_weight * (harm @ weights)
        return clicks, rewards

    # --- sessions ---------------------------------------------------------------

    def initial_state(self, user: int, rng: np.random.Generator | None = None) -> UserState:
        rng = rng or self.rng
        return UserState(
            user=user,
            fatigue=np.zeros(len(self.world.topics)),
            hour=int(rng.integers(0, 24)),
            weekday=int(rng.integers(0, 7)),
            traffic=float(rng.uniform(0.1, 1.0)),
            new_feature_exposure=bool(rng.random() < 0.1),
            policy_change_period=bool(rng.random() < 0.05),
        )

    def step(
        self,
        state: UserState,
        slate: np.ndarray | list[int],
        rng: np.random.Generator | None = None,
    ) -> StepResult:
        """Show ``slate`` (item indices, best position first) and sample the response."""
        if state.left:
            raise ValueError("the user has left; start a new session")
        rng = rng or self.rng
        c, w = self.config, self.world
        slate = np.asarray(slate, dtype=np.int64)
        if len(set(slate.tolist())) != len(slate):
            raise ValueError("a slate cannot show an item twice")
        weights = position_weights(len(slate))
        examined = rng.random(len(slate)) < weights
        clicked = examined & (rng.random(len(slate)) < sigmoid(self.click_logits(state)[slate]))
        harm = self.harm(state.user)[slate]
        reward = float(clicked.sum() - c.harm_weight * (weights @ harm))
        fatigue = fatigue_after(state.fatigue, w.item_topics[slate], c.fatigue_decay)
        leave_logit = (
            c.l0 + c.l_harm * harm.sum() + c.l_fatigue * fatigue.mean() - c.l_click * clicked.sum()
        )
        draw = rng.random()
        left = bool(draw < sigmoid(leave_logit))
        events = [(EVENT_HARMFUL, int(i)) for i, h in zip(slate, harm, strict=True) if h > 0]
        if left:
            unharmed_logit = leave_logit - c.l_harm * harm.sum()
            anyway = draw < sigmoid(unharmed_logit)
            events.append((EVENT_LEFT, LEFT_ANYWAY if anyway else LEFT_DRIVEN_AWAY))
        shown = tuple(
            (int(i), "click" if hit else "view") for i, hit in zip(slate, clicked, strict=True)
        )
        next_state = replace(
            state,
            fatigue=fatigue,
            t=state.t + 1,
            hour=(state.hour + 1) % 24 if rng.random() < 0.2 else state.hour,
            history=state.history + shown,
            left=left or state.t + 1 >= c.horizon,
            discounted_return=state.discounted_return + c.gamma**state.t * reward,
        )
        return StepResult(
            state=next_state,
            reward=reward,
            clicks=tuple(int(j) for j in np.flatnonzero(clicked)),
            events=tuple(events),
        )


class LoggingPolicy:
    """The ε-mixture of a Plackett–Luce policy on popularity and segment relevance with a
    uniform policy (see the module docstring). Its propensities are exact."""

    def __init__(self, simulator: Simulator, name: str = "popularity-softmax"):
        self.sim = simulator
        self.name = name
        c, w = simulator.config, simulator.world
        self.epsilon = c.logging_epsilon
        base = np.log(w.item_popularity)[None, :] + c.logging_relevance * (
            w.segment_preferences @ w.item_topics.T
        )
        self.segment_scores = base / c.logging_temperature  # float[G, N]

    def scores(self, user: int) -> np.ndarray:
        return self.segment_scores[self.sim.world.user_segment[user]]

    def sample(
        self, users: np.ndarray, k: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Slates (int[B, k]) for a batch of users and each slate's propensity (float[B])."""
        users = np.asarray(users)
        n = self.sim.world.n_items
        scores = self.segment_scores[self.sim.world.user_segment[users]]
        gumbel = scores + rng.gumbel(size=scores.shape)
        top = np.argpartition(-gumbel, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(gumbel, top, axis=1), axis=1)
        slates = np.take_along_axis(top, order, axis=1)
        uniform = rng.random(len(users)) < self.epsilon
        if uniform.any():
            slates[uniform] = np.stack(
                [rng.choice(n, size=k, replace=False) for _ in range(uniform.sum())]
            )
        return slates, self.propensities(users, slates)

    def propensities(self, users: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """P(slate | user) under the mixture, for each row of ``slates``."""
        users, slates = np.asarray(users), np.asarray(slates)
        n, k = self.sim.world.n_items, slates.shape[1]
        scores = self.segment_scores[self.sim.world.user_segment[users]]
        shift = scores.max(axis=1, keepdims=True)
        weights = np.exp(scores - shift)
        chosen = np.take_along_axis(weights, slates, axis=1)
        remaining = weights.sum(axis=1, keepdims=True) - np.concatenate(
            [np.zeros((len(users), 1)), np.cumsum(chosen, axis=1)[:, :-1]], axis=1
        )
        plackett_luce = np.prod(chosen / remaining, axis=1)
        uniform = math.exp(math.lgamma(n - k + 1) - math.lgamma(n + 1))
        return (1 - self.epsilon) * plackett_luce + self.epsilon * uniform


def build_world(config: SimConfig, rng: np.random.Generator) -> World:
    n_topics, d = len(TOPICS), config.feature_dim
    topic_sensitive = np.array([t in SENSITIVE_TOPICS for t in TOPICS])

    # Sources: each focuses on a few topics and has a base quality.
    source_focus = rng.dirichlet(np.full(n_topics, 0.3), size=len(SOURCES))
    source_quality = rng.uniform(0.3, 1.0, size=len(SOURCES))
    source_share = rng.dirichlet(np.full(len(SOURCES), 3.0))

    n = config.n_items
    item_source = rng.choice(len(SOURCES), size=n, p=source_share)
    primary = np.empty(n, dtype=np.int64)
    for source in range(len(SOURCES)):
        of_source = item_source == source
        primary[of_source] = rng.choice(n_topics, size=int(of_source.sum()), p=source_focus[source])
    mixture = np.zeros((n, n_topics))
    mixture[np.arange(n), primary] = 1.0
    for _ in range(2):  # up to two secondary topics at half weight
        extra = rng.integers(0, n_topics, size=n)
        has_extra = (rng.random(n) < 0.35) & (extra != primary)
        mixture[np.flatnonzero(has_extra), extra[has_extra]] = 0.5
    mixture /= mixture.sum(axis=1, keepdims=True)

    sensitive_primary = topic_sensitive[primary]
    sensitivity = np.where(
        sensitive_primary,
        rng.choice([1, 2, 3], size=n, p=[0.3, 0.4, 0.3]),
        rng.choice([0, 1, 2], size=n, p=[0.85, 0.12, 0.03]),
    )
    rating = np.select(
        [sensitivity >= 3, sensitivity == 2],
        [2, rng.choice([1, 2], size=n, p=[0.6, 0.4])],
        default=rng.choice([0, 1], size=n, p=[0.9, 0.1]),
    )
    quality = np.clip(source_quality[item_source] + rng.normal(0, 0.15, size=n), 0.0, 1.0)
    popularity = np.exp(rng.normal(0.0, 1.0, size=n) + 0.5 * quality)

    topic_embedding = rng.normal(0, 1 / math.sqrt(d), size=(n_topics, d))
    quality_direction = rng.normal(0, 1 / math.sqrt(d), size=d)
    features = (
        mixture @ topic_embedding
        + np.outer(quality, quality_direction)
        + rng.normal(0, config.feature_noise, size=(n, d))
    ).astype(np.float32)

    titles = tuple(
        f"{_ADJECTIVES[rng.integers(len(_ADJECTIVES))]} {TOPICS[t].replace('-', ' ')} "
        f"{_NOUNS[rng.integers(len(_NOUNS))]} #{i + 1}"
        for i, t in enumerate(primary)
    )

    segment_names = tuple(SEGMENTS)
    shares = np.array([SEGMENTS[g][2] for g in segment_names])
    user_segment = rng.choice(len(segment_names), size=config.n_users, p=shares / shares.sum())
    user_minor = np.array([SEGMENTS[segment_names[g]][1] == "minor" for g in user_segment])
    preferences = np.full((config.n_users, n_topics), 0.05) + rng.uniform(
        0, 0.1, (config.n_users, n_topics)
    )
    for u, g in enumerate(user_segment):
        focus = [TOPICS.index(t) for t in SEGMENTS[segment_names[g]][0]]
        favourites = rng.choice(focus, size=min(3, len(focus)), replace=False)
        preferences[u, favourites] = rng.uniform(0.6, 1.0, size=len(favourites))
    tolerance = np.where(
        user_minor,
        rng.choice([0, 1], size=config.n_users, p=[0.6, 0.4]),
        rng.choice([1, 2, 3], size=config.n_users, p=[0.35, 0.45, 0.2]),
    )
    segment_preferences = np.stack(
        [
            preferences[user_segment == g].mean(axis=0)
            if (user_segment == g).any()
            else preferences.mean(axis=0)
            for g in range(len(segment_names))
        ]
    )
    if config.tastes == "segment":
        preferences = segment_preferences[user_segment]
    return World(
        topics=TOPICS,
        topic_sensitive=topic_sensitive,
        sources=SOURCES,
        item_ids=tuple(f"item-{i + 1:07d}" for i in range(n)),
        item_titles=titles,
        item_topics=mixture,
        item_primary_topic=primary,
        item_source=item_source,
        item_sensitivity=sensitivity.astype(np.int64),
        item_rating=rating.astype(np.int64),
        item_quality=quality,
        item_popularity=popularity,
        item_features=features,
        user_ids=tuple(f"u-{u + 1:06d}" for u in range(config.n_users)),
        user_segment=user_segment,
        user_minor=user_minor,
        user_preferences=preferences,
        user_tolerance=tolerance.astype(np.int64),
        segment_names=segment_names,
        segment_preferences=segment_preferences,
    )
