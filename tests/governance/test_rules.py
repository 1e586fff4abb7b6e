"""Validating a policy version's rules: every error names the rule, the field and why."""

import pytest

from governance.engine import core
from governance.rules import to_engine_rules, validate_rules

TOPICS = {"gambling", "cooking"}


def errors(rules) -> list[str]:
    return [str(e) for e in validate_rules(rules, topic_slugs=TOPICS, known_items=known)]


def known(ids: list[str]) -> set[str]:
    return {i for i in ids if i.startswith("item-")}


EVERY_KIND = [
    {"id": "a", "kind": "forbidden_topics", "topics": ["gambling"], "audiences": ["minor"]},
    {"id": "b", "kind": "max_sensitivity", "audience": "minor", "level": 1},
    {"id": "c", "kind": "max_audience_rating", "audience": None, "rating": "teen"},
    {"id": "d", "kind": "blocked_items", "items": ["item-1"]},
    {"id": "e", "kind": "min_distinct_sources", "count": 3},
    {"id": "f", "kind": "max_items_per_topic", "count": 2},
    {"id": "g", "kind": "sensitive_topic_penalty", "weight": 0.5, "topics": None},
    {"id": "h", "kind": "recent_topic_repeat", "weight": 0.2, "window": 10},
    {"id": "i", "kind": "low_source_diversity", "weight": 0.3, "target": 4},
]


def test_a_rule_of_every_kind_validates():
    assert errors(EVERY_KIND) == []


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"id": "x", "kind": "max_sensitivity", "level": 7},
            "rule 1 'x': level: must be from 0 to 3, got 7",
        ),
        (
            {"id": "x", "kind": "max_sensitivity", "level": "1"},
            "rule 1 'x': level: must be a whole number",
        ),
        ({"id": "x", "kind": "max_sensitivity"}, "rule 1 'x': level: is required"),
        (
            {"id": "x", "kind": "max_sensitivity", "level": 1, "audience": "kids"},
            "rule 1 'x': audience: must be one of adult, minor (or null for every audience), "
            "got 'kids'",
        ),
        (
            {"id": "x", "kind": "forbidden_topics", "topics": ["poker"]},
            "rule 1 'x': topics: unknown topics: poker",
        ),
        (
            {"id": "x", "kind": "forbidden_topics", "topics": []},
            "rule 1 'x': topics: must be a non-empty list of topics",
        ),
        (
            {"id": "x", "kind": "blocked_items", "items": ["nope"]},
            "rule 1 'x': items: unknown items: nope",
        ),
        (
            {"id": "x", "kind": "min_distinct_sources", "count": 0},
            "rule 1 'x': count: must be from 1 to 100, got 0",
        ),
        (
            {"id": "x", "kind": "recent_topic_repeat", "weight": 0, "window": 3},
            "rule 1 'x': weight: must be a number above 0",
        ),
        (
            {"id": "x", "kind": "recent_topic_repeat", "weight": 1, "window": 3, "colour": 1},
            "rule 1 'x': colour: is not a field of recent_topic_repeat",
        ),
        ({"id": "x", "kind": "teleport"}, "rule 1 'x': kind: must be one of forbidden_topics"),
        ({"kind": "max_sensitivity", "level": 1}, "rule 1: id: must be a non-empty string"),
        ("not an object", "rule 1: must be an object"),
    ],
)
def test_each_problem_is_named_by_rule_field_and_reason(rule, message):
    found = errors([rule])
    assert found, rule
    assert found[0].startswith(message)


def test_ids_must_be_unique_and_positions_count_from_one():
    found = errors([EVERY_KIND[1], {**EVERY_KIND[4], "id": "b"}])
    assert found == ["rule 2 'b': id: is used by an earlier rule"]


def test_rules_must_be_a_list():
    assert errors({"id": "x"}) == ["rule 0: the rules must be a JSON list of objects"]


def test_every_kind_translates_to_its_engine_rule():
    hard, soft = to_engine_rules(
        EVERY_KIND, topic_index={"gambling": 0, "cooking": 1}, item_keys={"item-1": 41}
    )

    assert [type(r) for r in hard] == [
        core.ForbiddenTopics, core.MaxSensitivity, core.MaxAudienceRating, core.BlockedItems,
        core.MinDistinctSources, core.MaxItemsPerTopic,
    ]  # fmt: skip
    assert [type(r) for r in soft] == [
        core.SensitiveTopicPenalty, core.RecentTopicRepeat, core.LowSourceDiversity,
    ]  # fmt: skip
    assert hard[0].topics == (0,)
    assert hard[0].audiences == ("minor",)
    assert hard[2].rating == 1
    assert hard[3].item_keys == (41,)
    assert soft[0].topics is None
