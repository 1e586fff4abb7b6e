"""Features of a (context, slate) pair for the reward model: a versioned schema and the
functions that turn plain arrays into a float32 matrix, one row per (context, slate).

Method: a hand-built slate representation in the spirit of learning-to-rank feature sets
(LETOR, Qin et al. 2010): per-item features summed with the DCG position discount
w_j = 1 / log2(j + 2) for positions j = 0, 1, … (Järvelin & Kekäläinen 2002, the same
weights as the simulator's examination model), plus slate-level aggregates such as
intra-list diversity (Ziegler et al. 2005, "Improving recommendation lists through topic
diversification") and the constraint engine's soft-rule terms.

Inputs are plain arrays, so a Django adapter can build them from database rows:

    catalog   CatalogView: item_features float32[N, d], item_topics int[N, m] (topic indices,
              -1 padded, column 0 the primary topic), item_source int[N] (< n_sources),
              item_sensitivity int[N] (0..3), item_rating int[N] (0 all, 1 teen, 2 adult:
              governance.engine.core.RATINGS), n_topics, n_sources
    contexts  Contexts: segment int[B] (< n_segments), minor bool[B], situation float32[B, 6]
              (SITUATION_FIELDS, in that order: fatigue, traffic, hour / 23, weekday / 6,
              new_feature_exposure, policy_change_period), history_topics float32[B, T]
              (topic counts of the user's recent clicks, normalized to sum 1; zeros if none)
    slates    int[B, k] catalog positions, best first, -1 padding after the items
    penalties float32[B, P] optional: CompiledPolicy.penalty_terms, columns in the order of
              FeatureSchema.penalty_names

Per item i: its vector x_i (d), its topic mixture z_i (T: multi-hot with the primary topic
counted twice, normalized to sum 1), source one-hot (S), sensitivity one-hot (4), audience
rating one-hot (3). For a slate of k_s valid items (T topics, S sources, G segments, P
penalty terms; with the simulator's world T = 25, S = 12, G = 5, d = 16, P = 0: D = 135):

    block               size  value
    segment             G     one-hot of the context's segment
    minor               1     1 for a minor
    situation           6     the six situation features, as given
    history_topics      T     as given
    item_vector         d     Σ_j w_j x_{i_j}
    item_topics         T     Σ_j w_j z_{i_j}
    item_source         S     Σ_j w_j onehot(source_{i_j})
    item_sensitivity    4     Σ_j w_j onehot(sensitivity_{i_j})
    item_rating         3     Σ_j w_j onehot(rating_{i_j})
    minor_adult_items   1     minor · Σ_j w_j [rating_{i_j} = adult]
    topic_histogram     T     share of the slate's items having topic t (any column)
    distinct_sources    1     distinct sources / k_s
    distinct_topics     1     distinct primary topics / k_s
    intra_list_distance 1     mean over item pairs of 1 − cos(x_i, x_l) (0 when k_s < 2)
    sensitivity_max     1     max_j sensitivity / 3
    sensitivity_mean    1     mean_j sensitivity / 3
    history_overlap     1     Σ_j w_j z_{i_j} · history_topics
    slate_fill          1     k_s / max_slate_size
    penalties           P     the soft-rule terms, as given

Sums run over the valid positions j = 0..k_s − 1 (not normalized: a shorter slate has less
to show, as in the simulator's utilities). ``FeatureSchema.check`` refuses inputs whose
shapes, dtypes or vocabularies do not match the schema, naming the field; the schema is
saved with every checkpoint, so a model is never fed features it was not trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

SCHEMA_VERSION = "reward-features/1"
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
HISTORY_WINDOW = 200  # recent history entries the simulator adapter counts


def position_weights(k: int) -> np.ndarray:
    """w_j = 1 / log2(j + 2) for positions j = 0..k−1 (the DCG discount)."""
    return 1.0 / np.log2(np.arange(k) + 2.0)


# --- the schema ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSchema:
    """What a feature row means: vocabulary sizes and dimensions, saved with each model."""

    n_topics: int  # T, topic vocabulary size
    n_sources: int  # S, source vocabulary size
    n_segments: int  # G, segment vocabulary size
    item_dim: int  # d, length of an item's feature vector
    max_slate_size: int  # k, columns of the slate matrix
    penalty_names: tuple[str, ...] = ()  # soft-rule ids, in the column order of penalties
    version: str = SCHEMA_VERSION  # bumped whenever a block changes meaning or order

    def blocks(self) -> list[tuple[str, int]]:
        """(name, size) of every block, in feature order."""
        t = self.n_topics
        return [
            ("segment", self.n_segments),
            ("minor", 1),
            ("situation", len(SITUATION_FIELDS)),
            ("history_topics", t),
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
        b = len(contexts.segment)
        _check_array("slates", slates, "iu", (b, self.max_slate_size))
        if slates.size and (slates.min() < -1 or slates.max() >= catalog.n_items):
            raise ValueError(f"slates: positions outside -1..{catalog.n_items - 1}")
        valid = slates >= 0
        if np.any(valid[:, 1:] & ~valid[:, :-1]):
            raise ValueError("slates: -1 padding must come after a slate's items")
        if not valid[:, 0].all():
            raise ValueError("slates: every slate needs at least one item")
        ordered = np.sort(slates, axis=1)
        if np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)):
            raise ValueError("slates: a slate shows an item twice")
        n_penalties = len(self.penalty_names)
        if penalties is None:
            if n_penalties:
                raise ValueError(f"penalties: the schema expects {n_penalties} columns")
            return
        _check_array("penalties", penalties, "f", (b, n_penalties))


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
    if catalog.n_topics != schema.n_topics:
        raise ValueError(f"n_topics: catalog has {catalog.n_topics}, schema {schema.n_topics}")
    if catalog.n_sources != schema.n_sources:
        raise ValueError(f"n_sources: catalog has {catalog.n_sources}, schema {schema.n_sources}")
    n = catalog.n_items
    _check_array("item_features", catalog.item_features, "f", (n, schema.item_dim))
    topics = catalog.item_topics
    _check_array("item_topics", topics, "iu", (n, topics.shape[1] if topics.ndim == 2 else -1))
    _check_range("item_topics", topics, -1, schema.n_topics - 1)
    if n and not (topics[:, 0] >= 0).all():
        raise ValueError("item_topics: column 0 (the primary topic) must be set")
    _check_array("item_source", catalog.item_source, "iu", (n,))
    _check_range("item_source", catalog.item_source, 0, schema.n_sources - 1)
    _check_array("item_sensitivity", catalog.item_sensitivity, "iu", (n,))
    _check_range("item_sensitivity", catalog.item_sensitivity, 0, SENSITIVITY_LEVELS - 1)
    _check_array("item_rating", catalog.item_rating, "iu", (n,))
    _check_range("item_rating", catalog.item_rating, 0, N_RATINGS - 1)


def _check_contexts(schema: FeatureSchema, contexts: Contexts) -> None:
    segment = contexts.segment
    if not isinstance(segment, np.ndarray) or segment.ndim != 1:
        raise ValueError("segment: expected a 1-D NumPy array")
    b = len(segment)
    _check_array("segment", segment, "iu", (b,))
    _check_range("segment", segment, 0, schema.n_segments - 1)
    _check_array("minor", contexts.minor, "b", (b,))
    _check_array("situation", contexts.situation, "f", (b, len(SITUATION_FIELDS)))
    _check_array("history_topics", contexts.history_topics, "f", (b, schema.n_topics))


# --- inputs ----------------------------------------------------------------------------------


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
    _tables: dict = field(default_factory=dict, repr=False)  # per-item tables, built once

    @property
    def n_items(self) -> int:
        return len(self.item_source)

    def item_table(self) -> np.ndarray:
        """float32[N, d + T + S + 4 + 3]: the per-item blocks, ready to be position-summed."""
        if "items" not in self._tables:
            n = self.n_items
            self._tables["items"] = np.concatenate(
                [
                    self.item_features.astype(np.float32),
                    self.topic_mixture(),
                    _one_hot(self.item_source, self.n_sources, n),
                    _one_hot(self.item_sensitivity, SENSITIVITY_LEVELS, n),
                    _one_hot(self.item_rating, N_RATINGS, n),
                ],
                axis=1,
            )
        return self._tables["items"]

    def topic_mixture(self) -> np.ndarray:
        """float32[N, T]: multi-hot with the primary topic counted twice, rows summing to 1."""
        if "mixture" not in self._tables:
            weights = np.zeros((self.n_items, self.n_topics), dtype=np.float32)
            for column in range(self.item_topics.shape[1]):
                present = np.flatnonzero(self.item_topics[:, column] >= 0)
                weights[present, self.item_topics[present, column]] += 2.0 if column == 0 else 1.0
            self._tables["mixture"] = weights / weights.sum(axis=1, keepdims=True)
        return self._tables["mixture"]

    def topic_multi_hot(self) -> np.ndarray:
        """float32[N, T]: 1 for every topic an item has."""
        if "multi_hot" not in self._tables:
            self._tables["multi_hot"] = (self.topic_mixture() > 0).astype(np.float32)
        return self._tables["multi_hot"]

    def unit_vectors(self) -> np.ndarray:
        """float32[N, d]: item vectors scaled to unit length (for cosine distances)."""
        if "unit" not in self._tables:
            norms = np.linalg.norm(self.item_features, axis=1, keepdims=True)
            self._tables["unit"] = (self.item_features / np.maximum(norms, 1e-12)).astype(
                np.float32
            )
        return self._tables["unit"]


@dataclass(frozen=True, eq=False)
class Contexts:
    """B contexts: who the slate is for and in which situation."""

    segment: np.ndarray  # int[B], index into the segment vocabulary
    minor: np.ndarray  # bool[B]
    situation: np.ndarray  # float32[B, 6], SITUATION_FIELDS order
    history_topics: np.ndarray  # float32[B, T], normalized topic counts of recent clicks

    def take(self, rows: np.ndarray) -> Contexts:
        return Contexts(
            self.segment[rows], self.minor[rows], self.situation[rows], self.history_topics[rows]
        )


def _one_hot(values: np.ndarray, size: int, n: int) -> np.ndarray:
    table = np.zeros((n, size), dtype=np.float32)
    table[np.arange(n), values] = 1.0
    return table


# --- features --------------------------------------------------------------------------------


def slate_features(
    schema: FeatureSchema,
    catalog: CatalogView,
    contexts: Contexts,
    slates: np.ndarray,
    penalties: np.ndarray | None = None,
    *,
    chunk: int = 20_000,
) -> torch.Tensor:
    """float32[B, schema.dim]: one feature row per (context, slate), blocks as documented."""
    schema.check(catalog, contexts, slates, penalties)
    rows = [
        _feature_rows(schema, catalog, contexts, slates, penalties, slice(start, start + chunk))
        for start in range(0, len(slates), chunk)
    ]
    if not rows:
        return torch.zeros((0, schema.dim))
    return torch.from_numpy(np.concatenate(rows))


def _feature_rows(schema, catalog, contexts, slates, penalties, rows: slice) -> np.ndarray:
    slates = slates[rows]
    b, k = slates.shape
    valid = slates >= 0
    items = np.where(valid, slates, 0)
    weights = (position_weights(k)[None, :] * valid).astype(np.float32)  # float32[b, k]
    n_valid = valid.sum(axis=1).astype(np.float32)

    minor = contexts.minor[rows].astype(np.float32)
    history = contexts.history_topics[rows].astype(np.float32)
    per_item = np.einsum("bk,bkf->bf", weights, catalog.item_table()[items])
    adult = (catalog.item_rating[items] == ADULT_RATING) * weights
    mixture = catalog.topic_mixture()[items]  # float32[b, k, T]
    sensitivity = np.where(valid, catalog.item_sensitivity[items], 0).astype(np.float32)

    blocks = [
        _one_hot(contexts.segment[rows], schema.n_segments, b),
        minor[:, None],
        contexts.situation[rows].astype(np.float32),
        history,
        per_item,
        (minor * adult.sum(axis=1))[:, None],
        (catalog.topic_multi_hot()[items] * valid[..., None]).sum(axis=1) / n_valid[:, None],
        (_distinct(catalog.item_source[items], valid) / n_valid)[:, None],
        (_distinct(catalog.item_topics[items, 0], valid) / n_valid)[:, None],
        _intra_list_distance(catalog.unit_vectors()[items], valid)[:, None],
        sensitivity.max(axis=1, keepdims=True) / (SENSITIVITY_LEVELS - 1),
        (sensitivity.sum(axis=1) / n_valid / (SENSITIVITY_LEVELS - 1))[:, None],
        np.einsum("bk,bkt,bt->b", weights, mixture, history)[:, None],
        (n_valid / schema.max_slate_size)[:, None],
    ]
    if penalties is not None:
        blocks.append(penalties[rows].astype(np.float32))
    return np.concatenate(blocks, axis=1, dtype=np.float32)


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
    """float32[B, P]: ``policy.penalty_terms`` (a governance.engine.core.CompiledPolicy) of each
    slate in its EngineContext, columns in the policy's soft-rule order (pass
    ``tuple(policy.penalty_terms(...))`` keys as FeatureSchema.penalty_names)."""
    rows = [
        list(policy.penalty_terms(context, slate[slate >= 0]).values())
        for context, slate in zip(engine_contexts, slates, strict=True)
    ]
    return np.asarray(rows, dtype=np.float32).reshape(len(slates), -1)


# --- the simulator adapter (tests and benchmarks) --------------------------------------------


def catalog_from_simulator(sim) -> CatalogView:
    """The simulator's world as a CatalogView (topics: primary first, then the secondaries)."""
    world = sim.world
    mixture = world.item_topics
    order = np.argsort(-mixture, axis=1, kind="stable")[:, :3]
    topics = np.where(np.take_along_axis(mixture, order, axis=1) > 0, order, -1)
    topics[:, 0] = world.item_primary_topic
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


def contexts_from_simulator(sim, states: Sequence) -> Contexts:
    """Contexts of simulator UserStates: history_topics counts the last HISTORY_WINDOW history
    entries that were clicks."""
    world = sim.world
    users = np.array([state.user for state in states], dtype=np.int64)
    situation = np.array(
        [
            [
                state.situation()["fatigue"],
                state.traffic,
                state.hour / 23,
                state.weekday / 6,
                float(state.new_feature_exposure),
                float(state.policy_change_period),
            ]
            for state in states
        ],
        dtype=np.float32,
    ).reshape(len(states), len(SITUATION_FIELDS))
    history = np.zeros((len(states), len(world.topics)), dtype=np.float32)
    for row, state in enumerate(states):
        clicked = [item for item, kind in state.history[-HISTORY_WINDOW:] if kind == "click"]
        if clicked:
            counts = world.item_topics[clicked].sum(axis=0)
            history[row] = counts / counts.sum()
    return Contexts(
        segment=world.user_segment[users].astype(np.int64),
        minor=world.user_minor[users].astype(bool),
        situation=situation,
        history_topics=history,
    )


def from_simulator(sim, states: Sequence, slates: np.ndarray) -> torch.Tensor:
    """Feature rows for simulator states and their slates (int[B, k], -1 padded)."""
    schema = schema_for_simulator(sim)
    return slate_features(
        schema, catalog_from_simulator(sim), contexts_from_simulator(sim, states), slates
    )
