"""Shepherd's constraint engine: the content policy every slate must obey.

Serving, training, evaluation and the labeling pages all ask this one engine which items are
allowed, which hard rules a slate breaks, what its soft penalty is, and how to repair a
ranking into an allowed slate. It is pure NumPy and never imports Django (directly or
indirectly), so `training/ml` can import it; a Django-side compiler turns a stored policy
version into the objects below.

Items are catalog positions 0..n-1 of a `CatalogArrays`. A slate S is a sequence of distinct
positions, best first. An item *has* topic t when t is any of its topics; its *primary*
topic is column 0. `audience` None in a rule means every audience.

Hard rules, never to be broken. The first four are item-level (they make `allowed_mask`):

* ``forbidden_topics`` ForbiddenTopics(topics, audiences): an item having any of ``topics``
  is forbidden for ``audiences``.
* ``max_sensitivity`` MaxSensitivity(audience, level): forbidden when sensitivity > level.
* ``max_audience_rating`` MaxAudienceRating(audience, rating): forbidden when the item's
  rating index > rating (RATINGS: all < teen < adult).
* ``blocked_items`` BlockedItems(item_keys): these primary keys are forbidden for everyone
  (keys absent from the catalog are ignored: the item may have been deleted).
* ``min_distinct_sources`` MinDistinctSources(count), slate-level:
  distinct_sources(S) >= min(count, |S|).
* ``max_items_per_topic`` MaxItemsPerTopic(count), slate-level: for every topic t,
  |{i in S : i has t}| <= count.

Soft rules, each with a weight w > 0; `penalty` is the sum of the terms `penalty_terms` lists:

* ``sensitive_topic_penalty`` SensitiveTopicPenalty(w, topics):
  w * |{i in S : i has a topic in T}|, T = ``topics``, or every topic flagged sensitive.
* ``recent_topic_repeat`` RecentTopicRepeat(w, window):
  w * |{i in S : primary(i) in R}|, R = the last ``window`` entries of context.recent_topics.
* ``low_source_diversity`` LowSourceDiversity(w, target):
  w * max(0, min(target, |S|) - distinct_sources(S)).

Repair (`CompiledPolicy.repair`) is greedy. Walk the ranking best first (first occurrence of a
position only) and keep an item when it is allowed and adding it keeps the slate-level rules
satisfiable: no topic goes over C, the strictest MaxItemsPerTopic count, and the sources still
needed, max(0, min(c, k) - distinct), do not exceed the slots left, c being the largest
MinDistinctSources count. Stop at k items. If the ranking runs out first the slate is shorter
(complete=False, with a reason), and while distinct < min(c, |S|) the worst-ranked item that
shares its source with a better-ranked one is dropped. Item-level rules are read from
per-audience tables built at compile time, gathered over growing chunks of the ranking (32,
128, 512, ... positions), so a ranking of 10^6 items costs only the prefix repair reads.

The greedy returns k items whenever some k items of the ranking break no hard rule, provided
there is no MaxItemsPerTopic, or there is no MinDistinctSources and every item has at most one
topic. Otherwise it can miss a feasible slate (see `CompiledPolicy.repair`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

AUDIENCES = ("adult", "minor")
RATINGS = ("all", "teen", "adult")
SENSITIVITY_LEVELS = 4  # 0 none … 3 severe

_FIRST_CHUNK = 32  # repair reads the ranking in chunks of 32, 128, 512, … positions
_CHUNK_GROWTH = 4


# --- the catalog and the context ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CatalogArrays:
    """The catalog as arrays; items are addressed by position 0..n-1.

    Construct with `CatalogArrays.build`, which converts array-likes and copies them read-only;
    direct construction validates too (exact dtypes). Every problem raises ValueError naming
    the field. Each item lists a topic at most once, padding (-1) comes after its topics.
    """

    item_keys: np.ndarray  # int64[n], database primary keys (messages, BlockedItems); unique
    topics: np.ndarray  # int16[n, m], m >= 1, topic indices padded with -1; column 0 primary
    source: np.ndarray  # int32[n], source index >= 0
    sensitivity: np.ndarray  # int8[n], 0..3
    rating: np.ndarray  # int8[n], index into RATINGS
    topic_names: tuple[str, ...]  # topic slug by index
    topic_sensitive: np.ndarray  # bool[n_topics]

    def __post_init__(self) -> None:
        _validate_catalog(self)

    @classmethod
    def build(
        cls,
        *,
        item_keys,
        topics,
        source,
        sensitivity,
        rating,
        topic_names: Sequence[str],
        topic_sensitive,
    ) -> CatalogArrays:
        """A catalog from array-likes of any integer dtype whose values fit the field's dtype."""
        return cls(
            item_keys=_frozen_array("item_keys", item_keys, np.int64),
            topics=_frozen_array("topics", topics, np.int16),
            source=_frozen_array("source", source, np.int32),
            sensitivity=_frozen_array("sensitivity", sensitivity, np.int8),
            rating=_frozen_array("rating", rating, np.int8),
            topic_names=tuple(topic_names),
            topic_sensitive=_frozen_array("topic_sensitive", topic_sensitive, np.bool_),
        )

    @property
    def n_items(self) -> int:
        return len(self.item_keys)

    @property
    def n_topics(self) -> int:
        return len(self.topic_names)


def _frozen_array(name: str, values, dtype: type) -> np.ndarray:
    """A read-only copy of ``values`` as ``dtype``; ValueError when a value would not fit."""
    array = np.asarray(values)
    if array.size and array.dtype.kind not in "biu":
        raise ValueError(f"{name}: expected integers, got dtype {array.dtype}")
    if array.size and dtype is np.bool_:
        if not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name}: expected booleans")
    elif array.size:
        limits = np.iinfo(dtype)
        if array.min() < limits.min or array.max() > limits.max:
            raise ValueError(f"{name}: values outside the range of {np.dtype(dtype).name}")
    array = array.astype(dtype, copy=True)
    array.flags.writeable = False
    return array


_CATALOG_FIELDS = {  # field: (dtype, ndim, smallest value, largest value or None)
    "item_keys": (np.int64, 1, None, None),
    "topics": (np.int16, 2, -1, None),
    "source": (np.int32, 1, 0, None),
    "sensitivity": (np.int8, 1, 0, SENSITIVITY_LEVELS - 1),
    "rating": (np.int8, 1, 0, len(RATINGS) - 1),
    "topic_sensitive": (np.bool_, 1, None, None),
}


def _validate_catalog(catalog: CatalogArrays) -> None:
    for name, (dtype, ndim, low, high) in _CATALOG_FIELDS.items():
        _check_array(name, getattr(catalog, name), dtype, ndim, low, high)
    n = len(catalog.item_keys)
    for name in ("topics", "source", "sensitivity", "rating"):
        if len(getattr(catalog, name)) != n:
            raise ValueError(f"{name}: {len(getattr(catalog, name))} rows for {n} item_keys")
    if not all(isinstance(name, str) for name in catalog.topic_names):
        raise ValueError("topic_names: expected strings")
    if len(catalog.topic_sensitive) != len(catalog.topic_names):
        raise ValueError("topic_sensitive: one flag per entry of topic_names expected")
    if len(np.unique(catalog.item_keys)) != n:
        raise ValueError("item_keys: duplicate primary keys")
    _check_topic_rows(catalog.topics, len(catalog.topic_names))


def _check_array(name: str, array, dtype: type, ndim: int, low, high) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != ndim:
        found = f"{array.dtype}, {array.ndim}-D" if isinstance(array, np.ndarray) else "no array"
        raise ValueError(f"{name}: expected a {ndim}-D {np.dtype(dtype).name} array, got {found}")
    if array.size and low is not None and array.min() < low:
        raise ValueError(f"{name}: values below {low}")
    if array.size and high is not None and array.max() > high:
        raise ValueError(f"{name}: values above {high}")


def _check_topic_rows(topics: np.ndarray, n_topics: int) -> None:
    if topics.shape[1] < 1:
        raise ValueError("topics: at least one column expected")
    if topics.size and topics.max() >= n_topics:
        raise ValueError(f"topics: index {topics.max()} but only {n_topics} topic_names")
    present = topics >= 0
    if np.any(present[:, 1:] & ~present[:, :-1]):
        raise ValueError("topics: -1 padding must come after an item's topics")
    ordered = np.sort(topics, axis=1)
    if np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)):
        raise ValueError("topics: an item lists the same topic twice")


@dataclass(frozen=True, eq=False)
class EngineContext:
    """Who the slate is for: the audience and the user's recent topics (most recent LAST)."""

    audience: str  # one of AUDIENCES
    recent_topics: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if self.audience not in AUDIENCES:
            raise ValueError(f"audience {self.audience!r} is not one of {AUDIENCES}")
        recent = np.asarray(self.recent_topics)
        if recent.size and (recent.ndim != 1 or recent.dtype.kind not in "iu"):
            raise ValueError("recent_topics: expected a 1-D array of topic indices")
        object.__setattr__(self, "recent_topics", recent.astype(np.int64).reshape(-1))


# --- rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForbiddenTopics:
    """Hard, item-level: an item having any of ``topics`` is forbidden for ``audiences``."""

    kind: ClassVar[str] = "forbidden_topics"
    rule_id: str
    topics: tuple[int, ...]
    audiences: tuple[str, ...] | None = None  # None = every audience


@dataclass(frozen=True)
class MaxSensitivity:
    """Hard, item-level: sensitivity > ``level`` is forbidden for ``audience`` (None = all)."""

    kind: ClassVar[str] = "max_sensitivity"
    rule_id: str
    audience: str | None
    level: int


@dataclass(frozen=True)
class MaxAudienceRating:
    """Hard, item-level: a rating index > ``rating`` is forbidden for ``audience``."""

    kind: ClassVar[str] = "max_audience_rating"
    rule_id: str
    audience: str | None
    rating: int


@dataclass(frozen=True)
class BlockedItems:
    """Hard, item-level: the items with these primary keys are forbidden for everyone."""

    kind: ClassVar[str] = "blocked_items"
    rule_id: str
    item_keys: tuple[int, ...]


@dataclass(frozen=True)
class MinDistinctSources:
    """Hard, slate-level: distinct_sources(S) >= min(count, |S|)."""

    kind: ClassVar[str] = "min_distinct_sources"
    rule_id: str
    count: int


@dataclass(frozen=True)
class MaxItemsPerTopic:
    """Hard, slate-level: for every topic t, |{i in S : i has t}| <= count."""

    kind: ClassVar[str] = "max_items_per_topic"
    rule_id: str
    count: int


@dataclass(frozen=True)
class SensitiveTopicPenalty:
    """Soft: weight * |{i in S : i has a topic in T}|, T = topics or every sensitive topic."""

    kind: ClassVar[str] = "sensitive_topic_penalty"
    rule_id: str
    weight: float
    topics: tuple[int, ...] | None = None


@dataclass(frozen=True)
class RecentTopicRepeat:
    """Soft: weight * |{i in S : primary(i) among the last ``window`` recent topics}|."""

    kind: ClassVar[str] = "recent_topic_repeat"
    rule_id: str
    weight: float
    window: int


@dataclass(frozen=True)
class LowSourceDiversity:
    """Soft: weight * max(0, min(target, |S|) - distinct_sources(S))."""

    kind: ClassVar[str] = "low_source_diversity"
    rule_id: str
    weight: float
    target: int


HardRule = (
    ForbiddenTopics
    | MaxSensitivity
    | MaxAudienceRating
    | BlockedItems
    | MinDistinctSources
    | MaxItemsPerTopic
)
SoftRule = SensitiveTopicPenalty | RecentTopicRepeat | LowSourceDiversity
RULE_TYPES: dict[str, type] = {  # kind name -> rule class, for the policy compiler
    rule_type.kind: rule_type
    for rule_type in (*HardRule.__args__, *SoftRule.__args__)  # type: ignore[attr-defined]
}


@dataclass(frozen=True)
class Violation:
    """A hard rule a slate breaks.

    ``items`` are catalog positions, in slate order: for item-level rules the forbidden
    items; for max_items_per_topic every item having an over-limit topic; for
    min_distinct_sources the items repeating a source used by a better-ranked item.
    ``message`` names the kind, the rule_id and the items by primary key.
    """

    rule_id: str
    kind: str
    items: tuple[int, ...]
    message: str


@dataclass(frozen=True, eq=False)
class Repair:
    """The slate `CompiledPolicy.repair` chose."""

    slate: np.ndarray  # int64 item positions, best-ranked first
    complete: bool  # len(slate) == k
    reason: str | None  # why the ranking could not fill k slots; None when complete


# --- rule validation ---------------------------------------------------------------------


def _invalid(rule, problem: str) -> ValueError:
    return ValueError(f"{rule.kind} {rule.rule_id!r}: {problem}")


def _check_int(rule, name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise _invalid(rule, f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise _invalid(rule, f"{name} must be {bounds}, got {value}")
    return int(value)


def _check_audiences(rule, audiences) -> tuple[str, ...]:
    """The audiences a rule applies to; None means every audience."""
    if audiences is None:
        return AUDIENCES
    if isinstance(audiences, str) or not audiences:
        raise _invalid(rule, f"audiences must be a non-empty tuple or None, got {audiences!r}")
    for audience in audiences:
        if audience not in AUDIENCES:
            raise _invalid(rule, f"unknown audience {audience!r}, expected one of {AUDIENCES}")
    return tuple(audiences)


def _check_weight(rule) -> float:
    weight = rule.weight
    if isinstance(weight, bool) or not isinstance(weight, int | float | np.number):
        raise _invalid(rule, f"weight must be a number, got {weight!r}")
    if not math.isfinite(weight) or weight <= 0:
        raise _invalid(rule, f"weight must be finite and > 0, got {weight}")
    return float(weight)


def _topic_lookup(rule, topics, catalog: CatalogArrays) -> np.ndarray:
    """bool[n_topics + 1], True at ``topics``; the extra last slot (False) is what -1 reads."""
    if isinstance(topics, str) or not topics:
        raise _invalid(rule, f"topics must be a non-empty tuple, got {topics!r}")
    lookup = np.zeros(catalog.n_topics + 1, dtype=bool)
    for topic in topics:
        lookup[_check_int(rule, "topic", topic, 0, catalog.n_topics - 1)] = True
    return lookup


def _check_rule_ids(rules: Sequence) -> None:
    seen: set[str] = set()
    for rule in rules:
        if not isinstance(rule.rule_id, str) or not rule.rule_id:
            raise _invalid(rule, "rule_id must be a non-empty string")
        if rule.rule_id in seen:
            raise _invalid(rule, "duplicate rule_id")
        seen.add(rule.rule_id)


# --- compiled hard rules -----------------------------------------------------------------


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _key_list(catalog: CatalogArrays, items: np.ndarray) -> str:
    return ", ".join(str(key) for key in catalog.item_keys[items].tolist())


def _detailed(catalog: CatalogArrays, items: np.ndarray, details: Sequence[str]) -> str:
    """'item 12 (x)' or 'items 12 (x), 13 (y)'."""
    keys = catalog.item_keys[items].tolist()
    listed = ", ".join(f"{key} ({detail})" for key, detail in zip(keys, details, strict=True))
    return ("item " if len(keys) == 1 else "items ") + listed


class _ItemCheck:
    """An item-level hard rule compiled against a catalog: which items it forbids, for whom."""

    def __init__(self, rule, catalog: CatalogArrays, audiences: tuple[str, ...]) -> None:
        self.rule = rule
        self.catalog = catalog
        self.audiences = frozenset(audiences)

    def forbids(self, items: np.ndarray) -> np.ndarray:
        """bool per item of ``items``: whether the rule forbids it (for its audiences)."""
        raise NotImplementedError

    def describe(self, items: np.ndarray, audience: str) -> str:
        """What is wrong with the (non-empty) forbidden ``items``."""
        raise NotImplementedError

    def violation(self, audience: str, items: np.ndarray) -> Violation | None:
        if audience not in self.audiences:
            return None
        offending = items[self.forbids(items)]
        if not offending.size:
            return None
        message = f"{self.rule.kind} {self.rule.rule_id!r}: {self.describe(offending, audience)}"
        return Violation(self.rule.rule_id, self.rule.kind, tuple(offending.tolist()), message)


class _ForbiddenTopicsCheck(_ItemCheck):
    def __init__(self, rule: ForbiddenTopics, catalog: CatalogArrays) -> None:
        super().__init__(rule, catalog, _check_audiences(rule, rule.audiences))
        self.lookup = _topic_lookup(rule, rule.topics, catalog)

    def forbids(self, items: np.ndarray) -> np.ndarray:
        return self.lookup[self.catalog.topics[items]].any(axis=1)

    def describe(self, items: np.ndarray, audience: str) -> str:
        names = self.catalog.topic_names
        rows = self.catalog.topics[items].tolist()
        details = [", ".join(names[t] for t in row if t >= 0 and self.lookup[t]) for row in rows]
        verb = "has a topic" if len(items) == 1 else "have topics"
        return f"{_detailed(self.catalog, items, details)} {verb} forbidden for {audience}"


class _MaxSensitivityCheck(_ItemCheck):
    def __init__(self, rule: MaxSensitivity, catalog: CatalogArrays) -> None:
        audiences = _check_audiences(rule, None if rule.audience is None else (rule.audience,))
        super().__init__(rule, catalog, audiences)
        self.level = _check_int(rule, "level", rule.level, 0, SENSITIVITY_LEVELS - 1)

    def forbids(self, items: np.ndarray) -> np.ndarray:
        return self.catalog.sensitivity[items] > self.level

    def describe(self, items: np.ndarray, audience: str) -> str:
        levels = self.catalog.sensitivity[items].tolist()
        if len(items) == 1:
            key = self.catalog.item_keys[items[0]]
            return f"item {key} has sensitivity {levels[0]}, above {self.level} for {audience}"
        listed = _detailed(self.catalog, items, [str(level) for level in levels])
        return f"{listed} have sensitivity above {self.level} for {audience}"


class _MaxRatingCheck(_ItemCheck):
    def __init__(self, rule: MaxAudienceRating, catalog: CatalogArrays) -> None:
        audiences = _check_audiences(rule, None if rule.audience is None else (rule.audience,))
        super().__init__(rule, catalog, audiences)
        self.rating = _check_int(rule, "rating", rule.rating, 0, len(RATINGS) - 1)

    def forbids(self, items: np.ndarray) -> np.ndarray:
        return self.catalog.rating[items] > self.rating

    def describe(self, items: np.ndarray, audience: str) -> str:
        ratings = [RATINGS[r] for r in self.catalog.rating[items].tolist()]
        limit = RATINGS[self.rating]
        if len(items) == 1:
            key = self.catalog.item_keys[items[0]]
            return f"item {key} is rated {ratings[0]}, above {limit} for {audience}"
        return f"{_detailed(self.catalog, items, ratings)} are rated above {limit} for {audience}"


class _BlockedItemsCheck(_ItemCheck):
    def __init__(self, rule: BlockedItems, catalog: CatalogArrays) -> None:
        super().__init__(rule, catalog, AUDIENCES)
        keys = [_check_int(rule, "item key", key, -(2**63), 2**63 - 1) for key in rule.item_keys]
        self.blocked = np.isin(catalog.item_keys, np.asarray(keys, dtype=np.int64))

    def forbids(self, items: np.ndarray) -> np.ndarray:
        return self.blocked[items]

    def describe(self, items: np.ndarray, audience: str) -> str:
        if len(items) == 1:
            return f"item {self.catalog.item_keys[items[0]]} is blocked"
        return f"items {_key_list(self.catalog, items)} are blocked"


class _MinSourcesCheck:
    """distinct_sources(S) >= min(count, |S|)."""

    def __init__(self, rule: MinDistinctSources, catalog: CatalogArrays) -> None:
        self.rule = rule
        self.catalog = catalog
        self.count = _check_int(rule, "count", rule.count, 1)

    def violation(self, audience: str, items: np.ndarray) -> Violation | None:
        sources = self.catalog.source[items]
        _, first = np.unique(sources, return_index=True)
        needed = min(self.count, len(items))
        if len(first) >= needed:
            return None
        repeats = np.ones(len(items), dtype=bool)
        repeats[first] = False
        offending = items[repeats]
        message = (
            f"{self.rule.kind} {self.rule.rule_id!r}: the slate has {len(first)} distinct "
            f"sources, needs at least {needed}; items {_key_list(self.catalog, offending)} "
            "repeat a better-ranked item's source"
        )
        return Violation(self.rule.rule_id, self.rule.kind, tuple(offending.tolist()), message)


class _TopicCapCheck:
    """For every topic t, |{i in S : i has t}| <= count."""

    def __init__(self, rule: MaxItemsPerTopic, catalog: CatalogArrays) -> None:
        self.rule = rule
        self.catalog = catalog
        self.count = _check_int(rule, "count", rule.count, 1)

    def violation(self, audience: str, items: np.ndarray) -> Violation | None:
        rows = self.catalog.topics[items]
        counts = np.bincount(rows[rows >= 0], minlength=self.catalog.n_topics)
        over = np.flatnonzero(counts > self.count)
        if not over.size:
            return None
        offending = items[np.isin(rows, over).any(axis=1)]
        per_topic = [
            f"{self.catalog.topic_names[t]} is in {counts[t]} "
            f"({_key_list(self.catalog, items[(rows == t).any(axis=1)])})"
            for t in over.tolist()
        ]
        message = (
            f"{self.rule.kind} {self.rule.rule_id!r}: at most "
            f"{_plural(self.count, 'item')} per topic, but {'; '.join(per_topic)}"
        )
        return Violation(self.rule.rule_id, self.rule.kind, tuple(offending.tolist()), message)


def _compile_hard(rule, catalog: CatalogArrays):
    match rule:
        case ForbiddenTopics():
            return _ForbiddenTopicsCheck(rule, catalog)
        case MaxSensitivity():
            return _MaxSensitivityCheck(rule, catalog)
        case MaxAudienceRating():
            return _MaxRatingCheck(rule, catalog)
        case BlockedItems():
            return _BlockedItemsCheck(rule, catalog)
        case MinDistinctSources():
            return _MinSourcesCheck(rule, catalog)
        case MaxItemsPerTopic():
            return _TopicCapCheck(rule, catalog)
    raise TypeError(f"not a hard rule: {rule!r}")


# --- compiled soft rules -----------------------------------------------------------------


class _SensitiveTopicTerm:
    """weight * |{i in S : i has a topic in T}|."""

    def __init__(self, rule: SensitiveTopicPenalty, catalog: CatalogArrays) -> None:
        self.rule = rule
        self.catalog = catalog
        self.weight = _check_weight(rule)
        if rule.topics is None:
            self.lookup = np.append(catalog.topic_sensitive, False)
        else:
            self.lookup = _topic_lookup(rule, rule.topics, catalog)

    def value(self, context: EngineContext, items: np.ndarray) -> float:
        return self.weight * int(self.lookup[self.catalog.topics[items]].any(axis=1).sum())


class _RecentRepeatTerm:
    """weight * |{i in S : primary(i) among the last ``window`` entries of recent_topics}|."""

    def __init__(self, rule: RecentTopicRepeat, catalog: CatalogArrays) -> None:
        self.rule = rule
        self.catalog = catalog
        self.weight = _check_weight(rule)
        self.window = _check_int(rule, "window", rule.window, 1)

    def value(self, context: EngineContext, items: np.ndarray) -> float:
        recent = context.recent_topics[-self.window :]
        if recent.size and (recent.min() < 0 or recent.max() >= self.catalog.n_topics):
            raise ValueError(f"recent_topics: indices must be 0..{self.catalog.n_topics - 1}")
        lookup = np.zeros(self.catalog.n_topics + 1, dtype=bool)  # last slot: primary -1
        lookup[recent] = True
        return self.weight * int(lookup[self.catalog.topics[items, 0]].sum())


class _LowDiversityTerm:
    """weight * max(0, min(target, |S|) - distinct_sources(S))."""

    def __init__(self, rule: LowSourceDiversity, catalog: CatalogArrays) -> None:
        self.rule = rule
        self.catalog = catalog
        self.weight = _check_weight(rule)
        self.target = _check_int(rule, "target", rule.target, 1)

    def value(self, context: EngineContext, items: np.ndarray) -> float:
        distinct = len(np.unique(self.catalog.source[items]))
        return self.weight * max(0, min(self.target, len(items)) - distinct)


def _compile_soft(rule, catalog: CatalogArrays):
    match rule:
        case SensitiveTopicPenalty():
            return _SensitiveTopicTerm(rule, catalog)
        case RecentTopicRepeat():
            return _RecentRepeatTerm(rule, catalog)
        case LowSourceDiversity():
            return _LowDiversityTerm(rule, catalog)
    raise TypeError(f"not a soft rule: {rule!r}")


# --- repair ------------------------------------------------------------------------------


class _SlateBuilder:
    """The greedy of `CompiledPolicy.repair`, fed allowed items best first."""

    def __init__(self, k: int, topic_cap: int | None, min_sources: int) -> None:
        self.k = k
        self.topic_cap = topic_cap
        self.required_sources = min(min_sources, k)
        self.slate: list[int] = []
        self.sources: list[int] = []  # source of each slate item
        self.distinct_sources: set[int] = set()
        self.topic_counts: dict[int, int] = {}
        self.seen: set[int] = set()  # allowed items offered so far (duplicates ignored)
        self.skipped_for_topics = 0
        self.skipped_for_sources = 0

    @property
    def full(self) -> bool:
        return len(self.slate) == self.k

    def offer_all(self, items: np.ndarray, catalog: CatalogArrays) -> None:
        sources = catalog.source[items].tolist()
        # Topics only matter under a cap; without one, skip converting them.
        capped = self.topic_cap is not None
        rows = catalog.topics[items].tolist() if capped else [()] * len(sources)
        for item, source, row in zip(items.tolist(), sources, rows, strict=True):
            self.offer(item, source, row)
            if self.full:
                return

    def offer(self, item: int, source: int, topics: Sequence[int]) -> None:
        if item in self.seen:
            return
        self.seen.add(item)
        topics = [t for t in topics if t >= 0]
        if self.topic_cap is not None and any(
            self.topic_counts.get(t, 0) >= self.topic_cap for t in topics
        ):
            self.skipped_for_topics += 1
            return
        # Sources still needed after adding the item must fit in the slots then left.
        distinct = len(self.distinct_sources) + (source not in self.distinct_sources)
        if self.required_sources - distinct > self.k - len(self.slate) - 1:
            self.skipped_for_sources += 1
            return
        self.slate.append(item)
        self.sources.append(source)
        self.distinct_sources.add(source)
        for t in topics:
            self.topic_counts[t] = self.topic_counts.get(t, 0) + 1

    def drop_repeated_sources(self, min_sources: int) -> int:
        """Drop worst-ranked source repeats until distinct >= min(min_sources, |S|)."""
        dropped = 0
        while len(self.distinct_sources) < min(min_sources, len(self.slate)):
            index = _last_repeat(self.sources)
            del self.slate[index], self.sources[index]
            dropped += 1
        return dropped

    def shortfall(self, dropped: int) -> str:
        """Why the slate has fewer than k items."""
        parts = []
        if len(self.seen) < self.k:
            parts.append(
                f"only {_plural(len(self.seen), 'allowed item')} left after the hard rules"
            )
        if self.skipped_for_topics:
            parts.append(
                f"{_plural(self.skipped_for_topics, 'allowed item')} skipped to keep at most "
                f"{_plural(self.topic_cap, 'item')} per topic"
            )
        if self.skipped_for_sources or dropped:
            parts.append(
                f"not enough distinct sources ({len(self.distinct_sources)} of "
                f"{self.required_sources}): {_plural(self.skipped_for_sources, 'item')} "
                f"skipped, {dropped} dropped"
            )
        return f"filled {len(self.slate)} of {self.k}: " + "; ".join(parts)


def _last_repeat(sources: list[int]) -> int:
    """Index of the last entry whose value also occurs earlier."""
    for index in range(len(sources) - 1, 0, -1):
        if sources[index] in sources[:index]:
            return index
    raise AssertionError("no repeated source although distinct < len")


def _chunks(ranked: np.ndarray) -> Iterator[np.ndarray]:
    """Consecutive slices of ``ranked`` of 32, 128, 512, … positions."""
    start, size = 0, _FIRST_CHUNK
    while start < len(ranked):
        yield ranked[start : start + size]
        start += size
        size *= _CHUNK_GROWTH


# --- the compiled policy -----------------------------------------------------------------


class CompiledPolicy:
    """A content policy compiled against one catalog.

    Item-level hard rules depend only on the audience and the catalog, so compilation builds
    one bool[n] allowed table per audience; masks and repair then only gather from it.
    Invalid rule parameters raise ValueError naming the kind and rule_id; a soft rule among
    the hard ones (or the reverse) raises TypeError.
    """

    def __init__(
        self, catalog: CatalogArrays, hard: Sequence[HardRule], soft: Sequence[SoftRule]
    ) -> None:
        self.catalog = catalog
        self.hard = tuple(hard)
        self.soft = tuple(soft)
        self._hard_checks = [_compile_hard(rule, catalog) for rule in self.hard]
        self._soft_terms = [_compile_soft(rule, catalog) for rule in self.soft]
        _check_rule_ids([*self.hard, *self.soft])
        item_checks = [check for check in self._hard_checks if isinstance(check, _ItemCheck)]
        self._allowed = {
            audience: _allowed_table(catalog, item_checks, audience) for audience in AUDIENCES
        }
        caps = [check.count for check in self._hard_checks if isinstance(check, _TopicCapCheck)]
        self._topic_cap = min(caps, default=None)
        minimums = [c.count for c in self._hard_checks if isinstance(c, _MinSourcesCheck)]
        self._min_sources = max(minimums, default=0)

    def allowed_mask(self, context: EngineContext, items: np.ndarray | None = None) -> np.ndarray:
        """bool per position of ``items`` (None = the whole catalog): no item-level rule
        forbids it for the context's audience."""
        table = self._allowed[context.audience]
        if items is None:
            return table.copy()
        return table[self._positions(items, "items")]

    def violations(self, context: EngineContext, slate) -> list[Violation]:
        """Every hard rule the slate breaks, in policy order (one Violation per rule)."""
        items = self._slate(slate)
        found = (check.violation(context.audience, items) for check in self._hard_checks)
        return [violation for violation in found if violation is not None]

    def penalty(self, context: EngineContext, slate) -> float:
        """The sum of the soft rules' terms."""
        return math.fsum(self.penalty_terms(context, slate).values())

    def penalty_terms(self, context: EngineContext, slate) -> dict[str, float]:
        """Each soft rule's term, by rule_id (features for the reward model)."""
        items = self._slate(slate)
        return {term.rule.rule_id: float(term.value(context, items)) for term in self._soft_terms}

    def repair(self, context: EngineContext, ranked_items, k: int) -> Repair:
        """The best-ranked slate of at most k items of ``ranked_items`` breaking no hard rule.

        The greedy of the module docstring. It can miss a feasible k-slate when a topic cap
        is present together with multi-topic items or a minimum of sources, e.g. cap 1, k 2,
        ranking x{A, B}, y{A}, z{B}: it keeps x and then neither y nor z, yet {y, z} is fine.
        Positions are validated as they are read; the ranking beyond is not looked at.
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        ranked = _integer_vector(ranked_items, "ranked_items")
        table = self._allowed[context.audience]
        builder = _SlateBuilder(int(k), self._topic_cap, self._min_sources)
        for chunk in _chunks(ranked):
            self._check_in_catalog(chunk, "ranked_items")
            builder.offer_all(chunk[table[chunk]], self.catalog)
            if builder.full:
                return Repair(np.array(builder.slate, dtype=np.int64), True, None)
        dropped = builder.drop_repeated_sources(self._min_sources)
        return Repair(np.array(builder.slate, dtype=np.int64), False, builder.shortfall(dropped))

    # --- argument checks

    def _positions(self, items, name: str) -> np.ndarray:
        positions = _integer_vector(items, name)
        self._check_in_catalog(positions, name)
        return positions

    def _slate(self, slate) -> np.ndarray:
        items = self._positions(slate, "slate")
        if len(np.unique(items)) != len(items):
            raise ValueError("slate: an item appears more than once")
        return items

    def _check_in_catalog(self, positions: np.ndarray, name: str) -> None:
        if positions.size and (positions.min() < 0 or positions.max() >= self.catalog.n_items):
            raise ValueError(f"{name}: positions must be 0..{self.catalog.n_items - 1}")


def _allowed_table(catalog: CatalogArrays, checks: Sequence[_ItemCheck], audience: str):
    """Read-only bool[n]: no item-level check applying to ``audience`` forbids the item."""
    everything = np.arange(catalog.n_items)
    allowed = np.ones(catalog.n_items, dtype=bool)
    for check in checks:
        if audience in check.audiences:
            allowed &= ~check.forbids(everything)
    allowed.flags.writeable = False
    return allowed


def _integer_vector(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if not array.size:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected a 1-D sequence of item positions")
    return array
