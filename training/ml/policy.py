"""The recommender policy: per-item scores for a context, and slates built item by item under
the content policy's hard rules, with an exact propensity for every slate.

The scorer
----------
``ItemScorer`` is a two-layer network over explicit context × item features. With x the
context and i an item, its hidden layer is

    h(x, i) = silu(A a_i + Σ_k κ_ik M_k(x) + C c_x + b),      out(x, i) = W h(x, i) + b_out

where a_i = [item vector, topic mixture z_i, one-hots of source, sensitivity and rating]
(``CatalogView.item_table``), c_x = [segment one-hot, minor, situation], κ_i = [z_i,
sensitivity one-hot, rating one-hot] are the item's *keys*, and M(x) is a context-dependent
matrix: a per-segment and a minor table for every key (segment × topic priors, who is harmed
by what) plus, on the topic keys, shared directions for the context's topic arrays (click
rate − r0, history topics, recent exposure and exposure × fatigue). The first layer is thus
exactly a linear layer over the explicit interaction features [a_i, c_x, z_i ⊙ (click rate −
r0), z_i · history, …, κ_i ⊗ (segment, minor)] (factorization-machine style, Rendle 2010),
computed in factored form: scoring the whole catalog for B contexts costs O(B · N · (K + H) ·
H), not O(B · N · D · H). Sharing the history directions across topics is what lets a few
hundred demonstrations teach "recommend what this user clicks" for every topic.

The slate
---------
A slate is built position by position (the Plackett–Luce model, Plackett 1975, Luce 1959).
At position j the logit of a still-feasible item i is

    ℓ_j(i) = ℓ(x, i) − δ · #{items in the slate with i's primary topic}
             − ρ · (p_i(x) + Δ_j^src(i))

ℓ(x, i) the policy's item logit, δ ≥ 0 the diversity weight (repeating a topic within a
slate costs δ per earlier item of that topic; behaviour cloning learns δ), p_i the
soft rules' item-level terms and Δ_j^src the exact marginal of the low-source-diversity
term (their sum over the slate equals ``CompiledPolicy.penalty``), ρ their weight in logit
units. Feasible means: allowed by the per-item mask (``CompiledPolicy.allowed_mask`` or any
bool[N] the caller passes), not yet in the slate, and keeping every prefix of the slate
valid: no topic over the strictest MaxItemsPerTopic cap C, and, for the largest
MinDistinctSources count c, distinct_sources ≥ min(c, length) after every item (the first
min(c, k) items come from distinct sources). A prefix-valid slate breaks no hard rule at any
length, so when nothing is feasible the slate simply stops short and is still valid. (This
is slightly stricter than ``CompiledPolicy.repair``, which may keep two items of one source
early and rely on later slots; the policy never needs the slots after the one it fills.)

The stochastic policy picks i with probability softmax(ℓ_j / τ) over the feasible items, so
a slate's propensity is the exact product of its per-position probabilities;
``build_slates(..., forced=slates)`` computes the propensity of any given slate with the
same code. Greedy picks the argmax (ties: lowest index). An optional ``support`` (the
exploration stage's candidates) restricts the choice to support ∩ feasible; at a position
where that is empty, the greedy feasible item is taken with probability 1, so the
propensities stay exact and the slate stays full whenever the rules allow.

The deployed policy (``RecommenderPolicy``) combines the cloned policy's logits s_BC, a
critic's value q̂ = P̂(click | examined) − (1 + ν) ĝ (expected reward per unit of
examination, harm costs ĝ weighted up by the harm aversion ν; see policy_training.py) and
the soft rules' Lagrange multiplier λ:

    ℓ(x, i) = s_BC(x, i) + q̂(x, i) / β,    ρ = λ / β,

the maximizer of E_π[q̂ − λ · penalty] − β KL(π ‖ π_BC) at every position (policy_training.py).
Checkpoints are written atomically and identified by their sha256, like reward models'.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from governance.engine.core import (
    CompiledPolicy,
    EngineContext,
    LowSourceDiversity,
    MaxItemsPerTopic,
    MinDistinctSources,
    RecentTopicRepeat,
    SensitiveTopicPenalty,
)
from training.ml.artifacts import CheckpointError, read_verified, write_atomically
from training.ml.features import (
    CLICK_RATE_PRIOR,
    N_RATINGS,
    SENSITIVITY_LEVELS,
    SITUATION_FIELDS,
    CatalogView,
    Contexts,
    FeatureSchema,
)

CHECKPOINT_FORMAT = "shepherd-policy/1"
N_HISTORY_DIRECTIONS = 4  # click rate − r0, history topics, recent exposure, exposure × fatigue
# The topic arrays are scaled to about unit range before they meet the learned directions: a
# click rate's useful range (0.1–0.5) and a history share (0–0.4) are small, and a direction
# that must grow to ~15 learns slowly under weight decay.
TOPIC_ARRAY_SCALE = (4.0, 4.0, 1.0, 1.0)


# --- inputs as tensors ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ItemTensors:
    """The catalog as the scorer and the slate builder need it (built once per catalog)."""

    table: Tensor  # float32[N, F]: vector, topic mixture, source, sensitivity, rating one-hots
    keys: Tensor  # float32[N, T + 4 + 3]: topic mixture, sensitivity and rating one-hots
    topics: np.ndarray  # int64[N, m], -1 padded, column 0 the primary topic
    source: np.ndarray  # int64[N]
    n_topics: int

    @classmethod
    def from_catalog(cls, catalog: CatalogView) -> ItemTensors:
        table = catalog.item_table()
        t, s = catalog.n_topics, catalog.n_sources
        d = catalog.item_features.shape[1]
        keys = np.concatenate([table[:, d : d + t], table[:, d + t + s :]], axis=1)
        return cls(
            table=torch.from_numpy(np.ascontiguousarray(table, dtype=np.float32)),
            keys=torch.from_numpy(np.ascontiguousarray(keys, dtype=np.float32)),
            topics=np.asarray(catalog.item_topics, dtype=np.int64),
            source=np.asarray(catalog.item_source, dtype=np.int64),
            n_topics=t,
        )

    @property
    def n_items(self) -> int:
        return len(self.source)

    @property
    def primary(self) -> np.ndarray:
        return self.topics[:, 0]


@dataclass(frozen=True, eq=False)
class ContextTensors:
    """B contexts as tensors: the context vector c_x and the topic arrays."""

    vector: Tensor  # float32[B, G + 1 + 6]: segment one-hot, minor, situation
    segment: Tensor  # float32[B, G] one-hot
    minor: Tensor  # float32[B]
    topic_arrays: Tensor  # float32[B, T, 4]: click rate − r0, history, exposure, × fatigue

    @classmethod
    def from_contexts(cls, contexts: Contexts, n_segments: int) -> ContextTensors:
        b = len(contexts.segment)
        segment = np.zeros((b, n_segments), dtype=np.float32)
        segment[np.arange(b), contexts.segment] = 1.0
        minor = contexts.minor.astype(np.float32)
        situation = contexts.situation.astype(np.float32)
        fatigue = situation[:, SITUATION_FIELDS.index("fatigue")]
        arrays = np.stack(
            [
                contexts.topic_click_rate - CLICK_RATE_PRIOR,
                contexts.history_topics,
                contexts.recent_exposure,
                contexts.recent_exposure * fatigue[:, None],
            ],
            axis=-1,
        ) * np.asarray(TOPIC_ARRAY_SCALE)
        arrays = arrays.astype(np.float32)
        vector = np.concatenate([segment, minor[:, None], situation], axis=1)
        return cls(
            vector=torch.from_numpy(vector),
            segment=torch.from_numpy(segment),
            minor=torch.from_numpy(minor),
            topic_arrays=torch.from_numpy(arrays),
        )

    def __len__(self) -> int:
        return len(self.minor)

    def take(self, rows) -> ContextTensors:
        rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        return ContextTensors(
            self.vector[rows], self.segment[rows], self.minor[rows], self.topic_arrays[rows]
        )


# --- the scorer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScorerShape:
    """The input vocabulary of a scorer (what a checkpoint must match)."""

    n_topics: int
    n_sources: int
    n_segments: int
    item_dim: int

    @classmethod
    def from_schema(cls, schema: FeatureSchema) -> ScorerShape:
        return cls(schema.n_topics, schema.n_sources, schema.n_segments, schema.item_dim)

    @property
    def item_width(self) -> int:
        return self.item_dim + self.n_topics + self.n_sources + SENSITIVITY_LEVELS + N_RATINGS

    @property
    def key_width(self) -> int:
        return self.n_topics + SENSITIVITY_LEVELS + N_RATINGS

    @property
    def context_width(self) -> int:
        return self.n_segments + 1 + len(SITUATION_FIELDS)


class ItemScorer(nn.Module):
    """out(x, i) ∈ R^heads for every (context, item): the module docstring's network."""

    def __init__(self, shape: ScorerShape, hidden: int = 64, heads: int = 1):
        super().__init__()
        self.shape, self.hidden, self.heads = shape, hidden, heads
        k = shape.key_width
        self.item_layer = nn.Linear(shape.item_width, hidden)
        self.context_layer = nn.Linear(shape.context_width, hidden, bias=False)
        scale = 1.0 / math.sqrt(k)
        self.key_by_segment = nn.Parameter(torch.randn(shape.n_segments, k, hidden) * scale)
        self.key_by_minor = nn.Parameter(torch.randn(k, hidden) * scale)
        self.history_directions = nn.Parameter(torch.randn(N_HISTORY_DIRECTIONS, hidden) * 0.5)
        self.output = nn.Linear(hidden, heads)

    def forward(
        self, contexts: ContextTensors, items: ItemTensors, candidates: Tensor | None = None
    ) -> Tensor:
        """float[B, N, heads] for the whole catalog, or float[B, C, heads] for ``candidates``
        int[B, C] (catalog positions; pad with any valid position and ignore the result)."""
        t = self.shape.n_topics
        interaction = torch.einsum("bg,gkh->bkh", contexts.segment, self.key_by_segment)
        interaction = interaction + contexts.minor[:, None, None] * self.key_by_minor
        topic_rows = interaction[:, :t] + contexts.topic_arrays @ self.history_directions
        interaction = torch.cat([topic_rows, interaction[:, t:]], dim=1)  # [B, K, H]
        item_term = self.item_layer(items.table)  # [N, H]
        if candidates is None:
            mixed = torch.einsum("nk,bkh->bnh", items.keys, interaction) + item_term
        else:
            mixed = torch.bmm(items.keys[candidates], interaction) + item_term[candidates]
        hidden = nnf.silu(mixed + self.context_layer(contexts.vector)[:, None, :])
        return self.output(hidden)


class ClonedPolicy(nn.Module):
    """The behaviour-cloned policy: an item scorer (one head, the logit s_BC) and the learned
    diversity weight δ = softplus(raw) of the slate builder."""

    def __init__(self, shape: ScorerShape, hidden: int = 64):
        super().__init__()
        self.scorer = ItemScorer(shape, hidden, heads=1)
        self.raw_diversity = nn.Parameter(torch.tensor(-1.0))

    @property
    def diversity(self) -> Tensor:
        return nnf.softplus(self.raw_diversity)

    def forward(
        self, contexts: ContextTensors, items: ItemTensors, candidates: Tensor | None = None
    ) -> Tensor:
        return self.scorer(contexts, items, candidates)[..., 0]


class ValueCritic(nn.Module):
    """q̂(x, i) = P̂(click | examined) − ĝ(x, i): an item's expected one-step reward per unit of
    examination (heads: click logit; harm cost ĝ = softplus ≥ 0, in reward units)."""

    def __init__(self, shape: ScorerShape, hidden: int = 64):
        super().__init__()
        self.scorer = ItemScorer(shape, hidden, heads=2)

    def heads(
        self, contexts: ContextTensors, items: ItemTensors, candidates: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(click logits, harm costs), each float[B, N or C]."""
        out = self.scorer(contexts, items, candidates)
        return out[..., 0], nnf.softplus(out[..., 1])

    def forward(
        self, contexts: ContextTensors, items: ItemTensors, candidates: Tensor | None = None
    ) -> Tensor:
        click, harm = self.heads(contexts, items, candidates)
        return torch.sigmoid(click) - harm


# --- slate rules ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SlateRules:
    """What the slate builder must know beyond the per-item mask: the slate-level hard rules
    and the soft rules, read from a CompiledPolicy (or none, for an unconstrained catalog)."""

    topics: np.ndarray  # int64[N, m], -1 padded, column 0 primary
    source: np.ndarray  # int64[N]
    n_topics: int
    topic_cap: int | None = None  # strictest MaxItemsPerTopic
    min_sources: int = 0  # largest MinDistinctSources
    item_terms: tuple = ()  # soft rules with an item-level term
    source_terms: tuple[tuple[float, int], ...] = ()  # LowSourceDiversity (weight, target)
    topic_sensitive: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @classmethod
    def unconstrained(cls, items: ItemTensors) -> SlateRules:
        return cls(items.topics, items.source, items.n_topics)

    @classmethod
    def from_compiled(cls, compiled: CompiledPolicy) -> SlateRules:
        catalog = compiled.catalog
        caps = [rule.count for rule in compiled.hard if isinstance(rule, MaxItemsPerTopic)]
        minima = [rule.count for rule in compiled.hard if isinstance(rule, MinDistinctSources)]
        item_terms = tuple(
            rule
            for rule in compiled.soft
            if isinstance(rule, SensitiveTopicPenalty | RecentTopicRepeat)
        )
        source_terms = tuple(
            (float(rule.weight), int(rule.target))
            for rule in compiled.soft
            if isinstance(rule, LowSourceDiversity)
        )
        return cls(
            topics=catalog.topics.astype(np.int64),
            source=catalog.source.astype(np.int64),
            n_topics=catalog.n_topics,
            topic_cap=min(caps, default=None),
            min_sources=max(minima, default=0),
            item_terms=item_terms,
            source_terms=source_terms,
            topic_sensitive=np.asarray(catalog.topic_sensitive, dtype=bool),
        )

    @property
    def n_items(self) -> int:
        return len(self.source)

    def item_penalties(self, contexts: Sequence[EngineContext]) -> np.ndarray:
        """float64[B, N]: the item-level soft terms each item would add to a slate."""
        penalties = np.zeros((len(contexts), self.n_items))
        padded = np.where(self.topics >= 0, self.topics, self.n_topics)
        for rule in self.item_terms:
            if isinstance(rule, SensitiveTopicPenalty):
                lookup = np.zeros(self.n_topics + 1, dtype=bool)
                if rule.topics is None:
                    lookup[: self.n_topics] = self.topic_sensitive
                else:
                    lookup[list(rule.topics)] = True
                penalties += rule.weight * lookup[padded].any(axis=1)[None, :]
            else:  # RecentTopicRepeat: the primary topic is among the last `window` topics
                for row, context in enumerate(contexts):
                    recent = np.zeros(self.n_topics + 1, dtype=bool)
                    recent[context.recent_topics[-rule.window :]] = True
                    penalties[row] += rule.weight * recent[padded[:, 0]]
        return penalties

    @property
    def has_penalties(self) -> bool:
        return bool(self.item_terms or self.source_terms)


# --- building slates --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SlateBatch:
    """B slates with their exact probabilities under the policy that built them."""

    items: np.ndarray  # int64[B, k], -1 after the last item when the rules stopped it short
    propensity: np.ndarray  # float64[B]: product of the per-position probabilities
    position_probabilities: np.ndarray  # float64[B, k] (1 after the slate's end)

    def __len__(self) -> int:
        return len(self.propensity)


def build_slates(
    logits: np.ndarray,
    allowed: np.ndarray,
    k: int,
    rules: SlateRules,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    diversity: float = 0.0,
    item_penalties: np.ndarray | None = None,
    penalty_scale: float = 0.0,
    support: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    forced: np.ndarray | None = None,
) -> SlateBatch:
    """Slates of k items for B contexts, built position by position (module docstring).

    ``logits`` float[B, N] item logits; ``allowed`` bool[B, N] the per-item hard-rule mask;
    ``support`` bool[B, N] optionally restricts the choices further (outside it only the
    greedy feasible item, when support ∩ feasible is empty). ``greedy`` takes the argmax at
    every position (propensity 1); otherwise items are drawn with ``rng``. With ``forced``
    int[B, k] (-1 padded) nothing is drawn: the result holds the probability that the
    policy (stochastic, or greedy: 1 or 0) builds exactly those slates.
    """
    logits = np.asarray(logits, dtype=np.float64)
    b, n = logits.shape
    if allowed.shape != (b, n):
        raise ValueError(f"allowed: expected shape {(b, n)}, got {allowed.shape}")
    if support is not None and support.shape != (b, n):
        raise ValueError(f"support: expected shape {(b, n)}, got {support.shape}")
    if forced is not None:
        forced = np.asarray(forced, dtype=np.int64)
        if forced.shape != (b, k):
            raise ValueError(f"forced: expected shape {(b, k)}, got {forced.shape}")
    if not greedy and forced is None and rng is None:
        raise ValueError("rng: a stochastic slate needs a random generator")
    builder = _Builder(rules, b, k)
    base = logits.copy()
    if item_penalties is not None and penalty_scale:
        base -= penalty_scale * item_penalties
    open_rows = np.ones(b, dtype=bool)
    items = np.full((b, k), -1, dtype=np.int64)
    probabilities = np.ones((b, k))
    for position in range(k):
        feasible = allowed & builder.feasible(position)
        scores = base - diversity * builder.topic_repeats()
        if penalty_scale:
            scores = scores - penalty_scale * builder.source_cost()
        has_choice = feasible.any(axis=1) & open_rows
        best = np.argmax(np.where(feasible, scores, -np.inf), axis=1)
        choice = feasible
        if support is not None:
            choice = feasible & support
            # Where the support leaves nothing, the greedy feasible item (probability 1).
            choice = np.where(choice.any(axis=1)[:, None], choice, feasible & _one_hot(best, n))
        scaled = np.where(choice, scores / temperature, -np.inf)
        if forced is not None:
            picks = forced[:, position]
            stops = picks < 0
            probabilities[open_rows & stops & has_choice] = 0.0  # the policy would go on
            picks = np.where(stops, 0, picks)
            take = open_rows & ~stops & has_choice
            probabilities[open_rows & ~stops & ~has_choice, position] = 0.0
        else:
            picks = np.argmax(scaled, axis=1) if greedy else _draw(scaled, rng)
            take = has_choice
        rows = np.flatnonzero(take)
        if forced is not None and greedy:
            probabilities[rows, position] = picks[rows] == np.argmax(scaled[rows], axis=1)
        elif not greedy:
            probabilities[rows, position] = _choice_probability(scaled[rows], picks[rows])
        items[rows, position] = picks[rows]
        builder.add(rows, picks[rows])
        open_rows = take
    return SlateBatch(items, probabilities.prod(axis=1), probabilities)


def _one_hot(index: np.ndarray, n: int) -> np.ndarray:
    table = np.zeros((len(index), n), dtype=bool)
    table[np.arange(len(index)), index] = True
    return table


def _draw(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row from softmax(scores) by the Gumbel-max trick (rows that are all −inf
    give some index; the caller ignores them)."""
    gumbel = rng.gumbel(size=scores.shape)
    return np.argmax(np.where(np.isfinite(scores), scores + gumbel, -np.inf), axis=1)


def _choice_probability(scores: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """softmax(scores)[pick] per row, in log space (scores −inf where not a choice)."""
    if not len(picks):
        return np.zeros(0)
    top = scores.max(axis=1, keepdims=True)
    log_total = np.log(np.exp(scores - top).sum(axis=1)) + top[:, 0]
    picked = scores[np.arange(len(picks)), picks]
    return np.exp(picked - log_total)


class _Builder:
    """The state of B partial slates: topic counts, distinct sources, and what they imply."""

    def __init__(self, rules: SlateRules, b: int, k: int):
        self.rules, self.k = rules, k
        self.padded_topics = np.where(rules.topics >= 0, rules.topics, rules.n_topics)
        self.topic_counts = np.zeros((b, rules.n_topics + 1), dtype=np.int64)  # last: padding
        self.primary_counts = np.zeros((b, rules.n_topics), dtype=np.int64)
        self.source_used = np.zeros((b, int(rules.source.max(initial=0)) + 1), dtype=bool)
        self.length = np.zeros(b, dtype=np.int64)
        self.chosen = np.zeros((b, rules.n_items), dtype=bool)

    def feasible(self, position: int) -> np.ndarray:
        """bool[B, N]: not chosen yet and keeping the slate prefix-valid (module docstring)."""
        ok = ~self.chosen
        rules = self.rules
        if rules.topic_cap is not None:
            counts = self.topic_counts.copy()
            counts[:, -1] = 0
            ok &= (counts[:, self.padded_topics] < rules.topic_cap).all(axis=2)
        if rules.min_sources and position < rules.min_sources:
            # Prefix-valid: distinct_sources ≥ min(c, length) after every item, i.e. each of
            # the first c items brings a new source.
            ok &= ~self.source_used[:, rules.source]
        return ok

    def topic_repeats(self) -> np.ndarray:
        """int[B, N]: earlier slate items sharing each item's primary topic."""
        return self.primary_counts[:, self.rules.topics[:, 0]]

    def source_cost(self) -> np.ndarray:
        """float[B, N]: what adding each item adds to the low-source-diversity terms."""
        cost = np.zeros(self.chosen.shape)
        if not self.rules.source_terms:
            return cost
        distinct = self.source_used.sum(axis=1)
        repeat = self.source_used[:, self.rules.source]
        length = self.length
        for weight, target in self.rules.source_terms:
            before = np.maximum(0, np.minimum(target, length) - distinct)
            if_new = np.maximum(0, np.minimum(target, length + 1) - distinct - 1)
            if_repeat = np.maximum(0, np.minimum(target, length + 1) - distinct)
            cost += weight * np.where(
                repeat, (if_repeat - before)[:, None], (if_new - before)[:, None]
            )
        return cost

    def add(self, rows: np.ndarray, picks: np.ndarray) -> None:
        self.chosen[rows, picks] = True
        np.add.at(self.topic_counts, (rows[:, None], self.padded_topics[picks]), 1)
        self.primary_counts[rows, self.rules.topics[picks, 0]] += 1
        self.source_used[rows, self.rules.source[picks]] = True
        self.length[rows] += 1


# --- the deployed policy ----------------------------------------------------------------------


@dataclass
class RecommenderPolicy:
    """s_BC + q̂ / β with the soft rules weighted λ / β (module docstring).

    ``cloned`` None means no demonstrations (s_BC = 0, δ = ``diversity``); ``critic`` None
    means no reward signal yet (the cloned policy alone)."""

    shape: ScorerShape
    cloned: ClonedPolicy | None = None
    critic: ValueCritic | None = None
    kl_coefficient: float = 0.1  # β
    multiplier: float = 0.0  # λ, learned by dual ascent
    temperature: float = 1.0  # τ of the stochastic policy
    diversity: float = 0.0  # δ when there is no cloned policy
    harm_aversion: float = 0.0  # ν: q̂ = P̂(click) − (1 + ν) ĝ (policy_training.py)
    step: int = 0  # training steps so far (saved with the checkpoint)

    @property
    def diversity_weight(self) -> float:
        return float(self.cloned.diversity.detach()) if self.cloned is not None else self.diversity

    @property
    def penalty_scale(self) -> float:
        """ρ = λ / β: the soft penalty's weight in logit units."""
        return self.multiplier / self.kl_coefficient if self.critic is not None else 0.0

    @torch.no_grad()
    def cloned_logits(self, contexts: ContextTensors, items: ItemTensors) -> np.ndarray:
        if self.cloned is None:
            return np.zeros((len(contexts), items.n_items))
        return self.cloned(contexts, items).double().numpy()

    @torch.no_grad()
    def value_parts(self, contexts: ContextTensors, items: ItemTensors):
        """(P̂(click | examined), ĝ harm cost), each float64[B, N] (zeros without a critic)."""
        if self.critic is None:
            zeros = np.zeros((len(contexts), items.n_items))
            return zeros, zeros
        click, harm = self.critic.heads(contexts, items)
        return torch.sigmoid(click).double().numpy(), harm.double().numpy()

    def values(self, contexts: ContextTensors, items: ItemTensors) -> np.ndarray:
        """float64[B, N]: q̂ = P̂(click) − (1 + ν) ĝ."""
        click, harm = self.value_parts(contexts, items)
        return click - (1.0 + self.harm_aversion) * harm

    def logits(self, contexts: ContextTensors, items: ItemTensors) -> np.ndarray:
        """float64[B, N]: ℓ(x, i) = s_BC(x, i) + q̂(x, i) / β."""
        logits = self.cloned_logits(contexts, items)
        if self.critic is not None:
            logits = logits + self.values(contexts, items) / self.kl_coefficient
        return logits

    def slates(
        self,
        contexts: ContextTensors,
        items: ItemTensors,
        allowed: np.ndarray,
        k: int,
        rules: SlateRules,
        *,
        greedy: bool = False,
        item_penalties: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
        logits: np.ndarray | None = None,
        support: np.ndarray | None = None,
        forced: np.ndarray | None = None,
    ) -> SlateBatch:
        """Slates for B contexts under the hard rules (``allowed`` and ``rules``); the soft
        terms are ``rules.item_penalties(engine_contexts)``, passed as ``item_penalties``."""
        return build_slates(
            self.logits(contexts, items) if logits is None else logits,
            allowed,
            k,
            rules,
            greedy=greedy,
            temperature=self.temperature,
            diversity=self.diversity_weight,
            item_penalties=item_penalties,
            penalty_scale=self.penalty_scale,
            support=support,
            rng=rng,
            forced=forced,
        )


# --- checkpoints ------------------------------------------------------------------------------


def save_policy(
    path: str | Path, policy: RecommenderPolicy, schema: FeatureSchema, hidden: int | None = None
) -> str:
    """Write the policy atomically; return the sha256 (hex) of the file written. Each
    network's width is read from the network (``hidden`` is accepted for old callers and
    not needed)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "feature_schema": schema.to_dict(),
        "hidden": {
            "cloned": policy.cloned.scorer.hidden if policy.cloned is not None else None,
            "critic": policy.critic.scorer.hidden if policy.critic is not None else None,
        },
        "cloned": _state(policy.cloned),
        "critic": _state(policy.critic),
        "kl_coefficient": float(policy.kl_coefficient),
        "multiplier": float(policy.multiplier),
        "temperature": float(policy.temperature),
        "diversity": float(policy.diversity),
        "harm_aversion": float(policy.harm_aversion),
        "step": int(policy.step),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_atomically(Path(path), buffer.getvalue())


def load_policy(path: str | Path, *, sha256: str, schema: FeatureSchema) -> RecommenderPolicy:
    """The policy saved at ``path``; CheckpointError if the file's sha256 is not ``sha256``,
    its format is unknown or its feature schema's vocabulary differs from ``schema``."""
    payload = read_verified(path, sha256=sha256, checkpoint_format=CHECKPOINT_FORMAT)
    shape = ScorerShape.from_schema(schema)
    saved = ScorerShape.from_schema(FeatureSchema.from_dict(payload["feature_schema"]))
    if saved != shape:
        raise CheckpointError(f"feature schema differs: checkpoint {saved}, expected {shape}")
    hidden = payload["hidden"]
    if not isinstance(hidden, dict):  # checkpoints that saved one width for both networks
        hidden = {"cloned": hidden, "critic": hidden}
    return RecommenderPolicy(
        shape=shape,
        cloned=_module(ClonedPolicy(shape, hidden["cloned"] or 1), payload["cloned"]),
        critic=_module(ValueCritic(shape, hidden["critic"] or 1), payload["critic"]),
        kl_coefficient=payload["kl_coefficient"],
        multiplier=payload["multiplier"],
        temperature=payload["temperature"],
        diversity=payload["diversity"],
        harm_aversion=payload.get("harm_aversion", 0.0),
        step=payload["step"],
    )


def _state(module: nn.Module | None) -> dict | None:
    if module is None:
        return None
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def _module(module: nn.Module, state: dict | None) -> nn.Module | None:
    if state is None:
        return None
    module.load_state_dict(state)
    return module.eval()
