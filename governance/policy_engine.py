"""The Django side of the constraint engine: the catalog as arrays, a policy version
compiled against them, and a user context as the engine sees it.

The pure core (``governance.engine.core``) knows nothing of Django; everything here is
cached per process and keyed by the catalog's generation, which every change to items or
topics bumps, so a stale array is never used.
"""

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from django.conf import settings

from catalog.models import Item, ItemTopic, Source, Topic, UserContext
from catalog.selectors import catalog_generation
from governance.engine import core
from governance.models import ContentPolicy, PolicyVersion, VersionStatus
from governance.rules import RATINGS, to_engine_rules

MAX_TOPICS_PER_ITEM = 8


@dataclass(frozen=True)
class CatalogIndex:
    """The engine's arrays plus the maps between them and the database."""

    generation: int
    arrays: core.CatalogArrays
    position_of_pk: dict[int, int]
    topic_index: dict[str, int]
    primary_topic_of_external_id: dict[str, int]

    def positions(self, pks) -> np.ndarray:
        return np.array([self.position_of_pk[pk] for pk in pks], dtype=np.int64)


def catalog_index() -> CatalogIndex:
    return _catalog_index(catalog_generation())


@lru_cache(maxsize=2)
def _catalog_index(generation: int) -> CatalogIndex:
    topic_slugs = list(Topic.objects.order_by("pk").values_list("pk", "slug", "sensitive"))
    topic_position = {pk: i for i, (pk, _, _) in enumerate(topic_slugs)}
    source_position = {
        pk: i for i, pk in enumerate(Source.objects.order_by("pk").values_list("pk", flat=True))
    }
    rows = list(
        Item.objects.order_by("pk").values_list(
            "pk", "external_id", "source_id", "sensitivity", "audience_rating"
        )
    )
    n = len(rows)
    position_of_pk = {row[0]: i for i, row in enumerate(rows)}
    topics = np.full((n, MAX_TOPICS_PER_ITEM), -1, dtype=np.int16)
    filled = np.zeros(n, dtype=np.int64)
    # Links in id order: an item's first topic (its primary one) comes first.
    for item_pk, topic_pk in ItemTopic.objects.order_by("pk").values_list("item_id", "topic_id"):
        row = position_of_pk[item_pk]
        if filled[row] < MAX_TOPICS_PER_ITEM:
            topics[row, filled[row]] = topic_position[topic_pk]
            filled[row] += 1
    width = max(1, int(filled.max()) if n else 1)
    arrays = core.CatalogArrays.build(
        item_keys=np.array([r[0] for r in rows], dtype=np.int64),
        topics=np.ascontiguousarray(topics[:, :width]),
        source=np.array([source_position[r[2]] for r in rows], dtype=np.int32),
        sensitivity=np.array([r[3] for r in rows], dtype=np.int8),
        rating=np.array([RATINGS.index(r[4]) for r in rows], dtype=np.int8),
        topic_names=tuple(slug for _, slug, _ in topic_slugs),
        topic_sensitive=np.array([s for _, _, s in topic_slugs], dtype=bool),
    )
    primary = {r[1]: int(topics[i, 0]) for i, r in enumerate(rows) if topics[i, 0] >= 0}
    return CatalogIndex(
        generation=generation,
        arrays=arrays,
        position_of_pk=position_of_pk,
        topic_index={slug: i for i, (_, slug, _) in enumerate(topic_slugs)},
        primary_topic_of_external_id=primary,
    )


def compile_version(version: PolicyVersion) -> core.CompiledPolicy:
    """The engine for a version's rules over the current catalog (validated rules only:
    published versions always are; drafts are checked by the caller)."""
    return _compile(version.pk, catalog_generation(), _rules_key(version.rules))


def _rules_key(rules) -> str:
    return json.dumps(rules, sort_keys=True)


@lru_cache(maxsize=16)
def _compile(version_pk: int, generation: int, rules_json: str) -> core.CompiledPolicy:
    rules = json.loads(rules_json)
    index = _catalog_index(generation)
    blocked = [item for rule in rules if rule["kind"] == "blocked_items" for item in rule["items"]]
    item_keys = dict(Item.objects.filter(external_id__in=blocked).values_list("external_id", "pk"))
    hard, soft = to_engine_rules(rules, topic_index=index.topic_index, item_keys=item_keys)
    return core.CompiledPolicy(index.arrays, hard, soft)


def engine_context(
    context: UserContext, *, index: CatalogIndex | None = None
) -> core.EngineContext:
    """Audience and the primary topics of the user's history, oldest first."""
    index = index or catalog_index()
    recent = [
        index.primary_topic_of_external_id[entry["item"]]
        for entry in context.history
        if entry["item"] in index.primary_topic_of_external_id
    ]
    return core.EngineContext(
        audience=context.audience, recent_topics=np.array(recent, dtype=np.int64)
    )


def active_version(policy_slug: str | None = None) -> PolicyVersion | None:
    """The published version of the policy in force (settings.SHEPHERD_CONTENT_POLICY)."""
    slug = policy_slug or settings.SHEPHERD_CONTENT_POLICY
    return (
        PolicyVersion.objects.select_related("policy")
        .filter(policy__slug=slug, status=VersionStatus.PUBLISHED)
        .first()
    )


def policy_in_force() -> ContentPolicy | None:
    return ContentPolicy.objects.filter(slug=settings.SHEPHERD_CONTENT_POLICY).first()
