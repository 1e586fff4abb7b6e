"""The labeled store as training data: database rows turned into the plain arrays that
``training/ml`` works on.

A *feature space* is the catalog and the vocabularies (topics, sources, segments, the soft
rules of the content policy) that a model's feature rows are built over. A model records
its space's vocabulary with its feature schema, and ``FeatureSpace.check_model`` refuses a
model whose vocabulary differs from the current one: a feature column that changed meaning
must never be fed to a model trained on the old one.

Labels become preference pairs:
- a comparison: slate A against slate B in its context, one outcome per criterion
  (a 0, b 1, tie 2, cannot tell: no label), weighted by its channel and by its reviewer's
  reliability (``annotation.quality_selectors.reviewer_reliability``);
- a demonstration step: the chosen slate against the same slate with a rejected candidate
  in its place, in the state the expert saw (``train_reward.demonstration_pairs``).
Gold tasks are quality checks, not data: their answers are left out.

Held out from training, for the gate and the evaluation page:
- *audit*: half of the comparisons on random-audit tasks (chosen by the task's id, so the
  same tasks stay held out from run to run): an unbiased sample of the queue;
- *time*: the newest TIME_SPLIT_SHARE of the remaining comparisons.
"""

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
from django.db.models import F

from annotation.models import Channel, Comparison, DemonstrationStep, TaskKind, TaskReason
from annotation.quality_selectors import reviewer_reliability
from catalog.models import Source, UserContext
from catalog.selectors import item_feature_matrix
from governance.engine import core
from governance.policy_engine import catalog_index, compile_version
from governance.selectors import policy_version_in_force
from training.ml import features as ft
from training.ml.losses import NO_LABEL, OUTCOME_A, OUTCOME_B, OUTCOME_TIE
from training.ml.train_reward import PreferenceData, Rejection, demonstration_pairs

MAX_SLATE_SIZE = 10  # the widest slate a feature row holds (the builder's and queue's are 5)
CHANNEL_WEIGHTS = {Channel.CURATION: 1.0, Channel.SAFETY_REVIEW: 1.0, Channel.USER_STUDY: 0.5}
DEMONSTRATION_WEIGHT = 1.0
TIME_SPLIT_SHARE = 0.1
CLICK_EVENTS = frozenset({"click", "like"})
JUDGMENT_CODES = {"a": OUTCOME_A, "b": OUTCOME_B, "tie": OUTCOME_TIE, "cannot_tell": NO_LABEL}
SITUATION_SCALE = {"hour": 23.0, "weekday": 6.0}  # as features.SITUATION_FIELDS documents


@dataclass(frozen=True)
class Vocabulary:
    topics: tuple[str, ...]
    sources: tuple[str, ...]
    segments: tuple[str, ...]
    penalties: tuple[str, ...]

    def to_dict(self) -> dict:
        return {name: list(getattr(self, name)) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        return cls(**{name: tuple(data[name]) for name in cls.__dataclass_fields__})


class VocabularyChanged(ValueError):
    """A model's features were built over other topics, sources, segments or rules."""


@dataclass
class FeatureSpace:
    vocabulary: Vocabulary
    schema: ft.FeatureSchema
    catalog: ft.CatalogView
    position_of_pk: dict[int, int]
    item_pks: np.ndarray  # int64[N]: the pk of each catalog position
    position_of_external_id: dict[str, int]
    policy: core.CompiledPolicy | None
    topic_of_position: np.ndarray  # primary topic per catalog position (-1: none)

    def schema_record(self) -> dict:
        """What a model stores: the schema and the vocabulary it was built over."""
        return {**self.schema.to_dict(), "vocabulary": self.vocabulary.to_dict()}

    def check_model(self, record: dict) -> None:
        saved = Vocabulary.from_dict(record["vocabulary"])
        for name in Vocabulary.__dataclass_fields__:
            if getattr(saved, name) != getattr(self.vocabulary, name):
                raise VocabularyChanged(
                    f"feature_schema.vocabulary.{name}: the model was trained on "
                    f"{len(getattr(saved, name))} {name}, the catalog now has a different "
                    "list; retrain it"
                )

    # --- rows ----------------------------------------------------------------------------

    def slates(self, slates: list[list[int]]) -> np.ndarray:
        """int64[B, MAX_SLATE_SIZE] catalog positions, -1 padded; items that left the
        catalog are dropped."""
        table = np.full((len(slates), MAX_SLATE_SIZE), -1, dtype=np.int64)
        for row, slate in enumerate(slates):
            known = [self.position_of_pk[pk] for pk in slate if pk in self.position_of_pk]
            table[row, : len(known[:MAX_SLATE_SIZE])] = known[:MAX_SLATE_SIZE]
        return table

    def widened(self, positions: np.ndarray) -> np.ndarray:
        """Catalog positions int64[B, k] (k ≤ MAX_SLATE_SIZE) as feature rows take them:
        -1 padded to MAX_SLATE_SIZE."""
        table = np.full((len(positions), MAX_SLATE_SIZE), -1, dtype=np.int64)
        table[:, : positions.shape[1]] = positions[:, :MAX_SLATE_SIZE]
        return table

    def contexts(self, states: list[dict]) -> ft.Contexts:
        """Contexts from states shaped like a UserContext (segment, audience, situation,
        history of {"item": external id, "event": …})."""
        segment_index = {name: i for i, name in enumerate(self.vocabulary.segments)}
        n, topics = len(states), self.catalog.n_topics
        situation = np.zeros((n, len(ft.SITUATION_FIELDS)), dtype=np.float32)
        summaries = np.zeros((3, n, topics), dtype=np.float32)
        mixture = self.catalog.topic_mixture()
        for row, state in enumerate(states):
            values = state.get("situation") or {}
            situation[row] = [
                float(values.get(name, 0.0)) / SITUATION_SCALE.get(name, 1.0)
                for name in ft.SITUATION_FIELDS
            ]
            entries = [
                (self.position_of_external_id[entry["item"]], entry.get("event") in CLICK_EVENTS)
                for entry in (state.get("history") or [])[-ft.HISTORY_WINDOW :]
                if entry.get("item") in self.position_of_external_id
            ]
            items = np.array([item for item, _ in entries], dtype=np.int64)
            clicked = np.array([click for _, click in entries], dtype=bool)
            summaries[:, row] = ft.history_summaries(items, clicked, mixture)
        return ft.Contexts(
            segment=np.array([segment_index.get(s["segment"], 0) for s in states], np.int64),
            minor=np.array([s["audience"] == "minor" for s in states], dtype=bool),
            situation=situation,
            history_topics=summaries[0],
            topic_click_rate=summaries[1],
            recent_exposure=summaries[2],
        )

    def penalties(self, states: list[dict], slates: np.ndarray) -> np.ndarray | None:
        if not self.vocabulary.penalties:
            return None
        engine_contexts = [self.engine_context(state) for state in states]
        return ft.penalty_matrix(self.policy, engine_contexts, slates)

    def engine_context(self, state: dict) -> core.EngineContext:
        recent = [
            self.topic_of_position[self.position_of_external_id[entry["item"]]]
            for entry in state.get("history") or []
            if entry.get("item") in self.position_of_external_id
        ]
        recent = np.array([t for t in recent if t >= 0], dtype=np.int64)
        return core.EngineContext(audience=state["audience"], recent_topics=recent)

    def features(self, states: list[dict], slates: np.ndarray) -> torch.Tensor:
        """float32[B, D]: the feature row of each (state, slate)."""
        return ft.slate_features(
            self.schema, self.catalog, self.contexts(states), slates,
            self.penalties(states, slates),
        )  # fmt: skip


def feature_space() -> FeatureSpace:
    """The current catalog, vocabularies and content policy, as features see them."""
    index = catalog_index()
    arrays = index.arrays
    keys, matrix = item_feature_matrix()
    if not np.array_equal(keys, arrays.item_keys):
        raise RuntimeError("the catalog changed while its arrays were read: try again")
    version = policy_version_in_force()
    policy = compile_version(version) if version is not None else None
    penalties = (
        tuple(policy.penalty_terms(core.EngineContext("adult"), np.zeros(0, np.int64)))
        if policy is not None
        else ()
    )
    vocabulary = Vocabulary(
        topics=tuple(arrays.topic_names),
        sources=tuple(Source.objects.order_by("pk").values_list("slug", flat=True)),
        segments=tuple(
            sorted(UserContext.objects.order_by().values_list("segment", flat=True).distinct())
        ),
        penalties=penalties,
    )
    catalog = ft.CatalogView(
        item_features=matrix.astype(np.float32),
        item_topics=arrays.topics.astype(np.int64),
        item_source=arrays.source.astype(np.int64),
        item_sensitivity=arrays.sensitivity.astype(np.int64),
        item_rating=arrays.rating.astype(np.int64),
        n_topics=len(vocabulary.topics),
        n_sources=len(vocabulary.sources),
    )
    schema = ft.FeatureSchema(
        n_topics=len(vocabulary.topics), n_sources=len(vocabulary.sources),
        n_segments=max(1, len(vocabulary.segments)), item_dim=matrix.shape[1],
        max_slate_size=MAX_SLATE_SIZE, penalty_names=vocabulary.penalties,
    )  # fmt: skip
    external = dict(zip(*_external_ids(), strict=True))
    return FeatureSpace(
        vocabulary=vocabulary, schema=schema, catalog=catalog,
        position_of_pk=index.position_of_pk, item_pks=arrays.item_keys,
        position_of_external_id={ext: index.position_of_pk[pk] for ext, pk in external.items()},
        policy=policy, topic_of_position=arrays.topics[:, 0].astype(np.int64),
    )  # fmt: skip


def _external_ids() -> tuple[list[str], list[int]]:
    from catalog.models import Item

    rows = list(Item.objects.order_by("pk").values_list("external_id", "pk"))
    return [r[0] for r in rows], [r[1] for r in rows]


# --- the reward model's data ----------------------------------------------------------------


@dataclass
class Split:
    """Preference pairs with, per pair, where it came from (for breakdowns)."""

    data: PreferenceData
    channel: np.ndarray  # str[n]
    segment: np.ndarray  # str[n]


@dataclass
class RewardDataset:
    space: FeatureSpace
    criteria: tuple[str, ...]
    train: Split
    heldout_time: Split
    heldout_audit: Split
    dataset_hash: str
    label_counts: dict
    guideline_versions: list[int] = field(default_factory=list)


@dataclass
class _Pairs:
    """Pairs being collected: states, slates, outcomes and provenance, row by row."""

    states: list = field(default_factory=list)
    slates_a: list = field(default_factory=list)
    slates_b: list = field(default_factory=list)
    outcomes: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    channels: list = field(default_factory=list)

    def add(self, state, slate_a, slate_b, outcome, weight, channel) -> None:
        self.states.append(state)
        self.slates_a.append(slate_a)
        self.slates_b.append(slate_b)
        self.outcomes.append(outcome)
        self.weights.append(weight)
        self.channels.append(channel)

    def split(self, space: FeatureSpace, criteria) -> Split:
        n = len(self.states)
        slates_a = space.slates(self.slates_a) if n else np.zeros((0, MAX_SLATE_SIZE), np.int64)
        slates_b = space.slates(self.slates_b) if n else np.zeros((0, MAX_SLATE_SIZE), np.int64)
        dim = space.schema.dim
        features_a = space.features(self.states, slates_a) if n else torch.zeros(0, dim)
        features_b = space.features(self.states, slates_b) if n else torch.zeros(0, dim)
        outcomes = np.array(self.outcomes, dtype=np.int8).reshape(n, len(criteria))
        return Split(
            data=PreferenceData(
                features_a, features_b, torch.from_numpy(outcomes),
                torch.tensor(self.weights, dtype=torch.float32), tuple(criteria),
            ),
            channel=np.array(self.channels, dtype=object),
            segment=np.array([s["segment"] for s in self.states], dtype=object),
        )  # fmt: skip


def reward_dataset(criteria: tuple[str, ...]) -> RewardDataset:
    """Every usable label, as train and held-out pairs over the current feature space."""
    space = feature_space()
    comparisons = _comparison_rows()
    steps = demonstration_step_rows()
    reviewers = {row["reviewer_id"] for row in comparisons} | {s["reviewer_id"] for s in steps}
    reliability = reviewer_reliability(reviewers)
    states = context_states({row["context_id"] for row in comparisons})

    audit, time, train = _Pairs(), _Pairs(), _Pairs()
    by_age = sorted(
        (row for row in comparisons if not _held_for_audit(row)), key=lambda r: r["created_at"]
    )
    newest = {row["id"] for row in by_age[len(by_age) - int(len(by_age) * TIME_SPLIT_SHARE) :]}
    for row in comparisons:
        target = audit if _held_for_audit(row) else time if row["id"] in newest else train
        outcome = [JUDGMENT_CODES.get(row["judgments"].get(name), NO_LABEL) for name in criteria]
        weight = CHANNEL_WEIGHTS.get(row["channel"], 1.0) * reliability[row["reviewer_id"]]
        target.add(
            states[row["context_id"]], row["slate_a"], row["slate_b"], outcome, weight,
            row["channel"],
        )  # fmt: skip
    for step in steps:
        _add_step_pairs(train, space, step, criteria, reliability[step["reviewer_id"]])

    return RewardDataset(
        space=space,
        criteria=tuple(criteria),
        train=train.split(space, criteria),
        heldout_time=time.split(space, criteria),
        heldout_audit=audit.split(space, criteria),
        dataset_hash=_snapshot_hash(space, comparisons, steps),
        label_counts=_label_counts(comparisons, steps, criteria),
        guideline_versions=sorted(
            {r["guideline_version_id"] for r in [*comparisons, *steps]} - {None}
        ),
    )


def _comparison_rows() -> list[dict]:
    return list(
        Comparison.objects.exclude(task__kind=TaskKind.GOLD)
        .order_by("pk")
        .values(
            "id", "context_id", "slate_a", "slate_b", "judgments", "channel", "reviewer_id",
            "guideline_version_id", "created_at", "updated_at", "task_id",
            task_reason=F("task__reason"),
        )
    )  # fmt: skip


def demonstration_step_rows() -> list[dict]:
    """Every demonstration step with what training needs of its demonstration."""
    return list(
        DemonstrationStep.objects.order_by("demonstration_id", "index").values(
            "id", "demonstration_id", "state", "shown", "chosen", "rejected",
            demonstration_created_at=F("demonstration__created_at"),
            demonstration_updated_at=F("demonstration__updated_at"),
            reviewer_id=F("demonstration__reviewer_id"),
            channel=F("demonstration__channel"),
            guideline_version_id=F("demonstration__guideline_version_id"),
            segment=F("demonstration__context__segment"),
            audience=F("demonstration__context__audience"),
        )
    )  # fmt: skip


def context_states(context_ids: set[int]) -> dict[int, dict]:
    """UserContexts by id, as the states features are built from."""
    rows = UserContext.objects.filter(pk__in=context_ids).values(
        "id", "segment", "audience", "situation", "history"
    )
    return {row["id"]: row for row in rows}


def _held_for_audit(row: dict) -> bool:
    """Half the random-audit tasks, by a hash of the task id (stable across runs)."""
    if row["task_reason"] != TaskReason.AUDIT or row["task_id"] is None:
        return False
    return hashlib.sha256(f"audit-{row['task_id']}".encode()).digest()[0] < 128


def _add_step_pairs(pairs: _Pairs, space: FeatureSpace, step: dict, criteria, reliability):
    # Pairs are built on item pks (demonstration_pairs only swaps ids); FeatureSpace.slates
    # turns them into catalog positions. Items that left the catalog take no part.
    known = [pk for pk in step["chosen"] if pk in space.position_of_pk]
    if not known:
        return
    rejections = [
        Rejection(item=r["item"], reason=r.get("reason", ""))
        for r in step["rejected"] or []
        if r.get("item") in space.position_of_pk
    ]
    slates_a, slates_b, outcomes = demonstration_pairs(known, rejections, criteria)
    state = {**step["state"], "segment": step["segment"], "audience": step["audience"]}
    weight = DEMONSTRATION_WEIGHT * reliability
    for slate_a, slate_b, outcome in zip(slates_a, slates_b, outcomes, strict=True):
        pairs.add(state, slate_a.tolist(), slate_b.tolist(), outcome.tolist(), weight,
                  step["channel"])  # fmt: skip


def _snapshot_hash(space: FeatureSpace, comparisons, steps) -> str:
    """Which labels, in which versions, over which vocabulary: equal hashes, equal data."""
    digest = hashlib.sha256(repr(space.vocabulary.to_dict()).encode())
    for row in comparisons:
        digest.update(f"c{row['id']}@{row['updated_at'].isoformat()};".encode())
    for step in steps:
        digest.update(f"s{step['id']}@{step['demonstration_updated_at'].isoformat()};".encode())
    return digest.hexdigest()


def _label_counts(comparisons, steps, criteria) -> dict:
    by_channel: dict[str, int] = {}
    by_criterion = dict.fromkeys(criteria, 0)
    by_guideline: dict[str, int] = {}
    for row in comparisons:
        by_channel[row["channel"]] = by_channel.get(row["channel"], 0) + 1
        for name in criteria:
            by_criterion[name] += JUDGMENT_CODES.get(row["judgments"].get(name), NO_LABEL) >= 0
        key = str(row["guideline_version_id"] or "none")
        by_guideline[key] = by_guideline.get(key, 0) + 1
    return {
        "comparisons": len(comparisons),
        "demonstration_steps": len(steps),
        "by_channel": by_channel,
        "by_criterion": {name: int(count) for name, count in by_criterion.items()},
        "by_guideline_version": by_guideline,
    }
