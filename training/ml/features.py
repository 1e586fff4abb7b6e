"""Features of a (context, slate) pair for the reward model: a versioned schema and the
functions that turn plain arrays into a float32 matrix, one row per (context, slate).

Method: a hand-built slate representation in the spirit of learning-to-rank feature sets
(LETOR, Qin et al. 2010): per-item features summed with the DCG position discount
w_j = 1 / log2(j + 2), j = 0, 1, … (Järvelin & Kekäläinen 2002; the simulator's examination
weights), slate aggregates such as intra-list diversity (Ziegler et al. 2005, "Improving
recommendation lists through topic diversification"), the constraint engine's soft-rule
terms, and explicit context × slate interactions (the user's topic click rates and segment
against the slate's topics), so that the utilities the experts judge by are close to linear
in the features and a small network learns them from few labels.

Inputs are plain arrays, so a Django adapter can build them from database rows:

    catalog   CatalogView: item_features float32[N, d], item_topics int[N, m] (topic indices,
              -1 padded, column 0 the primary topic), item_source int[N] (< n_sources),
              item_sensitivity int[N] (0..3), item_rating int[N] (0 all, 1 teen, 2 adult, as
              governance.engine.core.RATINGS), n_topics, n_sources
    contexts  Contexts: segment int[B] (< n_segments), minor bool[B], situation float32[B, 6]
              (SITUATION_FIELDS in order: fatigue, traffic, hour / 23, weekday / 6,
              new_feature_exposure, policy_change_period), and three summaries of the
              context's history that ``history_summaries`` computes from its entries:
              history_topics, topic_click_rate, recent_exposure (float32[B, T] each)
    slates    int[B, k] catalog positions, best first, -1 padding after the items
    penalties float32[B, P], optional: CompiledPolicy.penalty_terms per slate, columns in the
              order of FeatureSchema.penalty_names (``penalty_matrix`` builds it)

Per item i: its vector x_i, its topic mixture z_i (multi-hot with the primary topic counted
twice, normalized to sum 1), source, sensitivity and audience rating. For a slate of k_s
valid items, with T topics, S sources, G segments, item vectors of length d and P penalty
terms (the simulator's world: T = 25, S = 12, G = 5, d = 16, P = 0, so D = 333):

    block                size   value
    segment              G      one-hot of the context's segment
    minor                1      1 for a minor
    situation            6      the situation features, as given
    history_topics       T      as given: normalized topic counts of recent clicks
    topic_click_rate     T      as given: smoothed click-through rate per topic
    recent_exposure      T      as given: examination-weighted topics of recent slates
    item_vector          d      Σ_j w_j x_{i_j}
    item_topics          T      Σ_j w_j z_{i_j}
    item_source          S      Σ_j w_j onehot(source_{i_j})
    item_sensitivity     4      Σ_j w_j onehot(sensitivity_{i_j})
    item_rating          3      Σ_j w_j onehot(rating_{i_j})
    minor_adult_items    1      minor · Σ_j w_j [rating_{i_j} = adult]
    topic_histogram      T      share of the slate's items having topic t (any column)
    distinct_sources     1      distinct sources / k_s
    distinct_topics      1      distinct primary topics / k_s
    intra_list_distance  1      mean over item pairs of 1 − cos(x_i, x_l) (0 when k_s < 2)
    sensitivity_max      1      max_j sensitivity / 3
    sensitivity_mean     1      mean_j sensitivity / 3
    history_overlap      1      Σ_j w_j z_{i_j} · history_topics
    click_rate_affinity  T      (Σ_j w_j z_{i_j}) ⊙ (topic_click_rate − r0)
    click_rate_overlap   1      the sum of click_rate_affinity
    segment_topics       G·T    onehot(segment) ⊗ Σ_j w_j z_{i_j}
    exposure_overlap     1      Σ_j w_j z_{i_j} · recent_exposure
    fatigued_exposure    1      exposure_overlap · situation fatigue
    slate_fill           1      k_s / max_slate_size
    penalties            P      the soft-rule terms, as given

Sums run over the valid positions j = 0..k_s − 1 and are not normalized (a shorter slate
has less to show, as in the simulator's utilities). ``FeatureSchema.check`` refuses inputs
whose shapes, dtypes or vocabularies do not fit the schema, naming the field; the schema is
saved with every checkpoint, so a model is never fed features it was not trained on.

Versions. ``FeatureSchema.version`` (SCHEMA_VERSION) names the layout above and is part of
the schema a checkpoint is checked against; it changes whenever a block is added, removed,
reordered or changes meaning. "reward-features/1" lacked topic_click_rate, recent_exposure,
click_rate_affinity, click_rate_overlap, segment_topics, exposure_overlap and
fatigued_exposure; "reward-features/2" weighed every history entry 0.93 × the next one
(``recent_exposure``), whatever its place in its slate. Their checkpoints are refused.
"reward-features/3" is the table above.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

SCHEMA_VERSION = "reward-features/3"  # the layout of the module docstring
SITUATION_FIELDS = (
    "fatigue",
    "traffic",
    "hour",  # hour / 23
    "weekday",  # weekday / 6
    "new_feature_exposure",
    "policy_change_period",
)
SENSITIVITY_LEVELS = 4  # 0 none … 3 severe (governance.engine.core.SENSITIVITY_LEVELS)
N_RATINGS = 3  # all, teen, adult (governance.engine.core.RATINGS)
ADULT_RATING = 2
HISTORY_WINDOW = 200  # the most recent history entries a context's summaries read
CLICK_RATE_PRIOR = 0.25  # r0: a topic's click rate before any evidence
CLICK_RATE_STRENGTH = 2.0  # α: pseudo-impressions of r0 in the smoothed click rate
# History entries are replayed as slates of EXPOSURE_SLATE items, the newest last (as the
# simulator records them and the demonstration builder replays them: entries carry no rank).
EXPOSURE_SLATE = 5
EXPOSURE_DECAY = 0.7  # δ: weight of a slate relative to the next, more recent one
CONTEXT_ARRAYS = ("history_topics", "topic_click_rate", "recent_exposure")  # float32[B, T]


def position_weights(k: int) -> np.ndarray:
    """w_j = 1 / log2(j + 2) for positions j = 0..k−1 (the DCG discount)."""
    return 1.0 / np.log2(np.arange(k) + 2.0)


# --- the schema -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSchema:
    """What a feature row means: vocabulary sizes and dimensions, saved with each model."""

    n_topics: int  # T, topic vocabulary size
    n_sources: int  # S, source vocabulary size
    n_segments: int  # G, segment vocabulary size
    item_dim: int  # d, length of an item's feature vector
    max_slate_size: int  # k, columns of the slate matrix
    penalty_names: tuple[str, ...] = ()  # soft-rule ids, in the column order of penalties
    version: str = SCHEMA_VERSION  # changes whenever a block changes meaning or order

    def blocks(self) -> list[tuple[str, int]]:
        """(name, size) of every block, in feature order (the module docstring's table)."""
        t, g = self.n_topics, self.n_segments
        return [
            ("segment", g),
            ("minor", 1),
            ("situation", len(SITUATION_FIELDS)),
            ("history_topics", t),
            ("topic_click_rate", t),
            ("recent_exposure", t),
            ("item_vector", self.item_dim),
            ("item_topics", t),
            ("item_source", self.n_sources),
            ("item_sensitivity", SENSITIVITY_LEVELS),
            ("item_rating", N_RATINGS),
            ("minor_adult_items", 1),
            ("topic_histogram", t),
            ("distinct_sources", 1),
            ("distinct_topics", 1),
            ("intra_list_distance", 1),
            ("sensitivity_max", 1),
            ("sensitivity_mean", 1),
            ("history_overlap", 1),
            ("click_rate_affinity", t),
            ("click_rate_overlap", 1),
            ("segment_topics", g * t),
            ("exposure_overlap", 1),
            ("fatigued_exposure", 1),
            ("slate_fill", 1),
            ("penalties", len(self.penalty_names)),
        ]

    @property
    def dim(self) -> int:
        return sum(size for _, size in self.blocks())

    def block_slices(self) -> dict[str, slice]:
        slices, start = {}, 0
        for name, size in self.blocks():
            slices[name] = slice(start, start + size)
            start += size
        return slices

    def to_dict(self) -> dict:
        return {**asdict(self), "penalty_names": list(self.penalty_names)}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSchema:
        return cls(**{**data, "penalty_names": tuple(data.get("penalty_names", ()))})

    def check(
        self,
        catalog: CatalogView,
        contexts: Contexts,
        slates: np.ndarray,
        penalties: np.ndarray | None = None,
    ) -> None:
        """Raise ValueError naming the first field whose shape, dtype or values do not fit."""
        _check_catalog(self, catalog)
        _check_contexts(self, contexts)
        _check_slates(self, slates, len(contexts.segment), catalog.n_items)
        n_penalties = len(self.penalty_names)
        if penalties is None:
            if n_penalties:
                raise ValueError(f"penalties: the schema expects {n_penalties} columns")
            return
        _check_array("penalties", penalties, "f", (len(slates), n_penalties))


def _check_array(name: str, array, kinds: str, shape: tuple[int, ...]) -> None:
    """``array`` must be an ndarray of a dtype kind in ``kinds`` and exactly ``shape``."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name}: expected a NumPy array, got {type(array).__name__}")
    if array.dtype.kind not in kinds:
        raise ValueError(f"{name}: expected dtype kind {kinds!r}, got {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{name}: values must be finite")


def _check_range(name: str, array: np.ndarray, low: int, high: int) -> None:
    if array.size and (array.min() < low or array.max() > high):
        raise ValueError(f"{name}: values outside {low}..{high}")


def _check_catalog(schema: FeatureSchema, catalog: CatalogView) -> None:
    for name in ("n_topics", "n_sources"):
        if getattr(catalog, name) != getattr(schema, name):
            raise ValueError(
                f"{name}: the catalog has {getattr(catalog, name)}, "
                f"the schema {getattr(schema, name)}"
            )
    n = len(catalog.item_source) if isinstance(catalog.item_source, np.ndarray) else -1
    _check_array("item_source", catalog.item_source, "iu", (n,))
    _check_range("item_source", catalog.item_source, 0, schema.n_sources - 1)
    _check_array("item_features", catalog.item_features, "f", (n, schema.item_dim))
    topics = catalog.item_topics
    columns = topics.shape[1] if isinstance(topics, np.ndarray) and topics.ndim == 2 else 0
    _check_array("item_topics", topics, "iu", (n, max(columns, 1)))
    _check_range("item_topics", topics, -1, schema.n_topics - 1)
    if n and not (topics[:, 0] >= 0).all():
        raise ValueError("item_topics: column 0 (the primary topic) must be set")
    _check_array("item_sensitivity", catalog.item_sensitivity, "iu", (n,))
    _check_range("item_sensitivity", catalog.item_sensitivity, 0, SENSITIVITY_LEVELS - 1)
    _check_array("item_rating", catalog.item_rating, "iu", (n,))
    _check_range("item_rating", catalog.item_rating, 0, N_RATINGS - 1)


def _check_contexts(schema: FeatureSchema, contexts: Contexts) -> None:
    segment = contexts.segment
    b = len(segment) if isinstance(segment, np.ndarray) else -1
    _check_array("segment", segment, "iu", (b,))
    _check_range("segment", segment, 0, schema.n_segments - 1)
    _check_array("minor", contexts.minor, "b", (b,))
    _check_array("situation", contexts.situation, "f", (b, len(SITUATION_FIELDS)))
    for name in CONTEXT_ARRAYS:
        _check_array(name, getattr(contexts, name), "f", (b, schema.n_topics))


def _check_slates(schema: FeatureSchema, slates, b: int, n_items: int) -> None:
    _check_array("slates", slates, "iu", (b, schema.max_slate_size))
    if slates.size and (slates.min() < -1 or slates.max() >= n_items):
        raise ValueError(f"slates: positions outside -1..{n_items - 1}")
    valid = slates >= 0
    if np.any(valid[:, 1:] & ~valid[:, :-1]):
        raise ValueError("slates: -1 padding must come after a slate's items")
    if b and not valid[:, 0].all():
        raise ValueError("slates: every slate needs at least one item")
    ordered = np.sort(slates, axis=1)
    if np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)):
        raise ValueError("slates: a slate shows an item twice")


# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CatalogView:
    """The catalog as the features need it; items are positions 0..N−1."""

    item_features: np.ndarray  # float32[N, d]
    item_topics: np.ndarray  # int[N, m], topic indices, -1 padded, column 0 primary
    item_source: np.ndarray  # int[N]
    item_sensitivity: np.ndarray  # int[N], 0..3
    item_rating: np.ndarray  # int[N], 0 all, 1 teen, 2 adult
    n_topics: int  # T
    n_sources: int  # S
    _tables: dict = field(default_factory=dict, repr=False)  # derived per-item tables, cached

    @property
    def n_items(self) -> int:
        return len(self.item_source)

    def _cached(self, name: str, build) -> np.ndarray:
        if name not in self._tables:
            self._tables[name] = build()
        return self._tables[name]

    def topic_mixture(self) -> np.ndarray:
        """float32[N, T]: multi-hot with the primary topic counted twice, rows summing to 1."""

        def build() -> np.ndarray:
            weights = np.zeros((self.n_items, self.n_topics), dtype=np.float32)
            for column in range(self.item_topics.shape[1]):
                present = np.flatnonzero(self.item_topics[:, column] >= 0)
                weights[present, self.item_topics[present, column]] += 2.0 if column == 0 else 1.0
            return weights / weights.sum(axis=1, keepdims=True)

        return self._cached("mixture", build)

    def topic_multi_hot(self) -> np.ndarray:
        """float32[N, T]: 1 for every topic an item has."""
        return self._cached("multi_hot", lambda: (self.topic_mixture() > 0).astype(np.float32))

    def item_table(self) -> np.ndarray:
        """float32[N, d + T + S + 4 + 3]: vector, topic mixture and one-hots, side by side."""

        def build() -> np.ndarray:
            n = self.n_items
            return np.concatenate(
                [
                    self.item_features.astype(np.float32),
                    self.topic_mixture(),
                    _one_hot(self.item_source, self.n_sources),
                    _one_hot(self.item_sensitivity, SENSITIVITY_LEVELS),
                    _one_hot(self.item_rating, N_RATINGS),
                ],
                axis=1,
            ).reshape(n, -1)

        return self._cached("items", build)

    def unit_vectors(self) -> np.ndarray:
        """float32[N, d]: item vectors scaled to unit length (for cosine distances)."""

        def build() -> np.ndarray:
            norms = np.linalg.norm(self.item_features, axis=1, keepdims=True)
            return (self.item_features / np.maximum(norms, 1e-12)).astype(np.float32)

        return self._cached("unit", build)


@dataclass(frozen=True, eq=False)
class Contexts:
    """B contexts: who the slate is for, in which situation, and what they did recently."""

    segment: np.ndarray  # int[B], index into the segment vocabulary
    minor: np.ndarray  # bool[B]
    situation: np.ndarray  # float32[B, 6], SITUATION_FIELDS order
    history_topics: np.ndarray  # float32[B, T], normalized topic counts of recent clicks
    topic_click_rate: np.ndarray  # float32[B, T], smoothed click-through rate per topic
    recent_exposure: np.ndarray  # float32[B, T], recency-weighted topics of recent entries

    def take(self, rows: np.ndarray) -> Contexts:
        return Contexts(
            self.segment[rows],
            self.minor[rows],
            self.situation[rows],
            *(getattr(self, name)[rows] for name in CONTEXT_ARRAYS),
        )


def history_summaries(
    items: np.ndarray, clicked: np.ndarray, topic_mixture: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A context's history_topics, topic_click_rate and recent_exposure (float[T] each) from
    its last HISTORY_WINDOW history entries, oldest first: ``items`` int[h] catalog
    positions, ``clicked`` bool[h] (click or like), ``topic_mixture`` float[N, T] (e.g.
    CatalogView.topic_mixture()). With z_e the topic mixture of entry e:

        history_topics_t   = c_t / Σ_t c_t  (0 without clicks),   c_t = Σ_{clicked e} z_{e,t}
        topic_click_rate_t = (c_t + α r0) / (s_t + α),            s_t = Σ_e z_{e,t}
        recent_exposure_t  = Σ_e δ^{a_e} w_{j_e} z_{e,t}

    with α = CLICK_RATE_STRENGTH, r0 = CLICK_RATE_PRIOR and δ = EXPOSURE_DECAY. For the
    exposure the entries are read as slates of K = EXPOSURE_SLATE, the newest entry the last
    position of the newest slate: entry e, d_e entries before the newest, has slate age
    a_e = ⌊d_e / K⌋ and position j_e = K − 1 − (d_e mod K), weighed by its examination
    weight w_j = 1 / log2(j + 2). This is the simulator's fatigue f' = δ f + Σ_j w_j z_{i_j}
    replayed over the history: users tire of what they examined, the top of a slate most,
    and recover slate by slate (bench/policy_ceiling.py measures what it is worth)."""
    items, clicked = items[-HISTORY_WINDOW:], clicked[-HISTORY_WINDOW:]
    mixtures = topic_mixture[items].reshape(len(items), topic_mixture.shape[1])
    clicks = mixtures[clicked].sum(axis=0)
    topics = clicks / clicks.sum() if clicks.sum() > 0 else clicks
    rate = (clicks + CLICK_RATE_STRENGTH * CLICK_RATE_PRIOR) / (
        mixtures.sum(axis=0) + CLICK_RATE_STRENGTH
    )
    return topics, rate, exposure_weights(len(items)) @ mixtures


def exposure_weights(h: int) -> np.ndarray:
    """float[h]: δ^{a_e} w_{j_e} for h history entries, oldest first (``history_summaries``)."""
    before_newest = np.arange(h)[::-1]
    age, slot = np.divmod(before_newest, EXPOSURE_SLATE)
    return EXPOSURE_DECAY**age * position_weights(EXPOSURE_SLATE)[EXPOSURE_SLATE - 1 - slot]


def _one_hot(values: np.ndarray, size: int) -> np.ndarray:
    table = np.zeros((len(values), size), dtype=np.float32)
    table[np.arange(len(values)), values] = 1.0
    return table


# --- features ---------------------------------------------------------------------------------


def slate_features(
    schema: FeatureSchema,
    catalog: CatalogView,
    contexts: Contexts,
    slates: np.ndarray,
    penalties: np.ndarray | None = None,
    *,
    chunk: int = 8192,
) -> torch.Tensor:
    """float32[B, schema.dim]: one feature row per (context, slate), blocks as documented."""
    schema.check(catalog, contexts, slates, penalties)
    rows = np.zeros((len(slates), schema.dim), dtype=np.float32)
    for start in range(0, len(slates), chunk):
        part = slice(start, start + chunk)
        blocks = _blocks(schema, catalog, contexts.take(np.arange(len(slates))[part]), slates[part])
        if penalties is not None:
            blocks["penalties"] = penalties[part]
        for name, where in schema.block_slices().items():
            if where.stop > where.start:
                rows[part, where] = blocks[name].reshape(len(slates[part]), -1)
    return torch.from_numpy(rows)


def _blocks(schema, catalog: CatalogView, contexts: Contexts, slates) -> dict[str, np.ndarray]:
    """Every block but the penalties, by name, for one chunk of rows."""
    b, k = slates.shape
    valid = slates >= 0
    items = np.where(valid, slates, 0)
    weights = (position_weights(k)[None, :] * valid).astype(np.float32)  # float32[b, k]
    n_valid = valid.sum(axis=1).astype(np.float32)
    minor = contexts.minor.astype(np.float32)
    segment = _one_hot(contexts.segment, schema.n_segments)
    sensitivity = np.where(valid, catalog.item_sensitivity[items], 0).astype(np.float32)
    adult = ((catalog.item_rating[items] == ADULT_RATING) * weights).sum(axis=1)

    per_item = np.einsum("bk,bkf->bf", weights, catalog.item_table()[items])
    sizes = [schema.item_dim, schema.n_topics, schema.n_sources, SENSITIVITY_LEVELS, N_RATINGS]
    vector, topics, source, sensitivities, rating = np.split(per_item, np.cumsum(sizes)[:-1], 1)
    affinity = topics * (contexts.topic_click_rate - CLICK_RATE_PRIOR)
    exposure = (topics * contexts.recent_exposure).sum(axis=1)
    return {
        "segment": segment,
        "minor": minor,
        "situation": contexts.situation,
        "history_topics": contexts.history_topics,
        "topic_click_rate": contexts.topic_click_rate,
        "recent_exposure": contexts.recent_exposure,
        "item_vector": vector,
        "item_topics": topics,
        "item_source": source,
        "item_sensitivity": sensitivities,
        "item_rating": rating,
        "minor_adult_items": minor * adult,
        "topic_histogram": (catalog.topic_multi_hot()[items] * valid[..., None]).sum(axis=1)
        / n_valid[:, None],
        "distinct_sources": _distinct(catalog.item_source[items], valid) / n_valid,
        "distinct_topics": _distinct(catalog.item_topics[items, 0], valid) / n_valid,
        "intra_list_distance": _intra_list_distance(catalog.unit_vectors()[items], valid),
        "sensitivity_max": sensitivity.max(axis=1) / (SENSITIVITY_LEVELS - 1),
        "sensitivity_mean": sensitivity.sum(axis=1) / n_valid / (SENSITIVITY_LEVELS - 1),
        "history_overlap": (topics * contexts.history_topics).sum(axis=1),
        "click_rate_affinity": affinity,
        "click_rate_overlap": affinity.sum(axis=1),
        "segment_topics": segment[:, :, None] * topics[:, None, :],
        "exposure_overlap": exposure,
        "fatigued_exposure": exposure * contexts.situation[:, 0],
        "slate_fill": n_valid / schema.max_slate_size,
    }


def _distinct(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Number of distinct values among the valid entries of each row (int[b, k] → float[b])."""
    same = values[:, :, None] == values[:, None, :]
    earlier = np.tril(np.ones(values.shape[1], dtype=bool), k=-1)  # l < j
    repeated = (same & earlier & valid[:, None, :]).any(axis=2)
    return (valid & ~repeated).sum(axis=1).astype(np.float32)


def _intra_list_distance(unit: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean of 1 − cos over the pairs of valid items (0 for slates of fewer than 2)."""
    cosine = np.einsum("bkd,bld->bkl", unit, unit)
    pair = valid[:, :, None] & valid[:, None, :] & ~np.eye(valid.shape[1], dtype=bool)
    n_pairs = pair.sum(axis=(1, 2))
    total = ((1.0 - cosine) * pair).sum(axis=(1, 2))
    return np.where(n_pairs > 0, total / np.maximum(n_pairs, 1), 0.0).astype(np.float32)


def pair_features(
    schema: FeatureSchema,
    catalog: CatalogView,
    contexts: Contexts,
    slates_a: np.ndarray,
    slates_b: np.ndarray,
    penalties_a: np.ndarray | None = None,
    penalties_b: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The feature rows of slates A and of slates B shown in the same contexts."""
    return (
        slate_features(schema, catalog, contexts, slates_a, penalties_a),
        slate_features(schema, catalog, contexts, slates_b, penalties_b),
    )


def penalty_matrix(policy, engine_contexts: Sequence, slates: np.ndarray) -> np.ndarray:
    """float32[B, P]: the soft-rule terms of each slate (-1 padding dropped) in its
    EngineContext, from a governance.engine.core.CompiledPolicy; columns in the policy's
    order, the keys of ``policy.penalty_terms`` (use them as FeatureSchema.penalty_names)."""
    rows = [
        list(policy.penalty_terms(context, slate[slate >= 0]).values())
        for context, slate in zip(engine_contexts, slates, strict=True)
    ]
    return np.asarray(rows, dtype=np.float32).reshape(len(slates), -1)


# --- the simulator adapter (tests and benchmarks) ---------------------------------------------


def catalog_from_simulator(sim) -> CatalogView:
    """The simulator's world as a CatalogView (topics: the primary, then the secondaries)."""
    world = sim.world
    mixture = world.item_topics
    order = np.argsort(-mixture, axis=1, kind="stable")[:, :3]
    topics = np.where(np.take_along_axis(mixture, order, axis=1) > 0, order, -1)
    return CatalogView(
        item_features=world.item_features.astype(np.float32),
        item_topics=topics.astype(np.int64),
        item_source=world.item_source.astype(np.int64),
        item_sensitivity=world.item_sensitivity.astype(np.int64),
        item_rating=world.item_rating.astype(np.int64),
        n_topics=len(world.topics),
        n_sources=len(world.sources),
    )


def schema_for_simulator(sim, penalty_names: Sequence[str] = ()) -> FeatureSchema:
    world = sim.world
    return FeatureSchema(
        n_topics=len(world.topics),
        n_sources=len(world.sources),
        n_segments=len(world.segment_names),
        item_dim=world.item_features.shape[1],
        max_slate_size=sim.config.slate_size,
        penalty_names=tuple(penalty_names),
    )


def contexts_from_simulator(sim, states: Sequence, catalog: CatalogView | None = None) -> Contexts:
    """Contexts of simulator UserStates (their history: entries of earlier impressions and of
    the current session; a "click" counts as clicked)."""
    world = sim.world
    mixture = (catalog or catalog_from_simulator(sim)).topic_mixture()
    users = np.array([state.user for state in states], dtype=np.int64)
    situation = np.zeros((len(states), len(SITUATION_FIELDS)), dtype=np.float32)
    summaries = np.zeros((len(CONTEXT_ARRAYS), len(states), len(world.topics)), dtype=np.float32)
    for row, state in enumerate(states):
        situation[row] = [
            state.situation()["fatigue"],
            state.traffic,
            state.hour / 23,
            state.weekday / 6,
            float(state.new_feature_exposure),
            float(state.policy_change_period),
        ]
        recent = state.history[-HISTORY_WINDOW:]
        items = np.array([item for item, _ in recent], dtype=np.int64)
        clicked = np.array([event == "click" for _, event in recent], dtype=bool)
        summaries[:, row] = history_summaries(items, clicked, mixture)
    return Contexts(
        segment=world.user_segment[users].astype(np.int64),
        minor=world.user_minor[users].astype(bool),
        situation=situation,
        history_topics=summaries[0],
        topic_click_rate=summaries[1],
        recent_exposure=summaries[2],
    )


def from_simulator(sim, states: Sequence, slates: np.ndarray) -> torch.Tensor:
    """Feature rows for simulator states and their slates (int[B, k], -1 padded)."""
    catalog = catalog_from_simulator(sim)
    contexts = contexts_from_simulator(sim, states, catalog)
    return slate_features(schema_for_simulator(sim), catalog, contexts, slates)
