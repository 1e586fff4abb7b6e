"""What a policy version would do to the current catalog, before it is published: how
many items each hard rule removes per audience, and one context's slate before and after.

The "before" ranking is deliberately naive (more of the topics the user saw lately, the
way an unconstrained engagement ranker behaves), so the preview shows what the rules
change rather than what a learned policy would do."""

import random
from dataclasses import dataclass

import numpy as np

from catalog.models import Item, UserContext
from governance.engine import core
from governance.models import PolicyVersion
from governance.policy_engine import CatalogIndex, catalog_index, engine_context
from governance.rules import AUDIENCES, SPECS, to_engine_rules

EXAMPLE_SLATE_SIZE = 10


@dataclass(frozen=True)
class RuleEffect:
    rule_id: str
    label: str
    removed: dict[str, int]  # audience -> items this rule alone forbids


def hard_rule_effects(version: PolicyVersion) -> list[RuleEffect]:
    """Each hard item-level rule compiled alone, its mask counted per audience."""
    index = catalog_index()
    hard, _ = _engine_rules(version, index)
    nobody_seen = np.empty(0, dtype=np.int64)
    effects = []
    for rule, spec_rule in zip(hard, _hard_rules(version), strict=True):
        engine = core.CompiledPolicy(index.arrays, [rule], [])
        removed = {
            audience: int((~engine.allowed_mask(core.EngineContext(audience, nobody_seen))).sum())
            for audience in AUDIENCES
        }
        effects.append(RuleEffect(rule.rule_id, SPECS[spec_rule["kind"]].label, removed))
    return effects


def _hard_rules(version: PolicyVersion) -> list[dict]:
    return [rule for rule in version.rules if SPECS[rule["kind"]].hard]


def _engine_rules(version: PolicyVersion, index: CatalogIndex):
    blocked = [
        i for rule in version.rules if rule["kind"] == "blocked_items" for i in rule["items"]
    ]
    item_keys = dict(Item.objects.filter(external_id__in=blocked).values_list("external_id", "pk"))
    return to_engine_rules(version.rules, topic_index=index.topic_index, item_keys=item_keys)


def sample_context(*, seed: int) -> UserContext | None:
    """A context picked at random but reproducibly (the page's "another context")."""
    pks = list(UserContext.objects.order_by("pk").values_list("pk", flat=True)[:5000])
    if not pks:
        return None
    return UserContext.objects.get(pk=random.Random(seed).choice(pks))


@dataclass(frozen=True)
class ExampleSlates:
    context: UserContext
    before: list[Item]
    before_violations: list[core.Violation]
    after: list[Item]
    complete: bool
    reason: str | None
    penalty_before: float
    penalty_after: float


def example_slates(version: PolicyVersion, context: UserContext) -> ExampleSlates:
    index = catalog_index()
    hard, soft = _engine_rules(version, index)
    engine = core.CompiledPolicy(index.arrays, hard, soft)
    situation = engine_context(context, index=index)
    ranking = _naive_ranking(index.arrays, situation)
    before = ranking[:EXAMPLE_SLATE_SIZE]
    repair = engine.repair(situation, ranking, EXAMPLE_SLATE_SIZE)
    return ExampleSlates(
        context=context,
        before=_items(index, before),
        before_violations=engine.violations(situation, before),
        after=_items(index, repair.slate),
        complete=repair.complete,
        reason=repair.reason,
        penalty_before=engine.penalty(situation, before),
        penalty_after=engine.penalty(situation, repair.slate) if len(repair.slate) else 0.0,
    )


def _naive_ranking(arrays: core.CatalogArrays, situation: core.EngineContext) -> np.ndarray:
    """Items by how often their primary topic appears in recent history, then by key."""
    counts = np.bincount(situation.recent_topics, minlength=len(arrays.topic_names))
    primary = arrays.topics[:, 0]
    score = np.where(primary >= 0, counts[np.maximum(primary, 0)], 0)
    return np.lexsort((arrays.item_keys, -score)).astype(np.int64)


def _items(index: CatalogIndex, positions: np.ndarray) -> list[Item]:
    keys = [int(index.arrays.item_keys[p]) for p in positions]
    by_pk = Item.objects.select_related("source").prefetch_related("topics").in_bulk(keys)
    return [by_pk[key] for key in keys]
