"""Tests of the constraint engine's pure core (governance/engine/core.py).

Hand-computed cases for every rule kind on a six-item catalog, then hypothesis properties on
random catalogs and policies: `violations` agrees with a naive checker written here with
plain loops, the mask agrees with `violations` on single items, and every repaired slate
breaks no hard rule, follows the ranking and is as long as a brute-force search says it can
be. Runs without Django: `pytest tests/governance/test_engine_core.py -p no:django`.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.engine.core import (
    AUDIENCES,
    BlockedItems,
    CatalogArrays,
    CompiledPolicy,
    EngineContext,
    ForbiddenTopics,
    LowSourceDiversity,
    MaxAudienceRating,
    MaxItemsPerTopic,
    MaxSensitivity,
    MinDistinctSources,
    RecentTopicRepeat,
    SensitiveTopicPenalty,
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROOT = Path(__file__).resolve().parents[2]
ITEM_LEVEL = (ForbiddenTopics, MaxSensitivity, MaxAudienceRating, BlockedItems)
HARD = (*ITEM_LEVEL, MinDistinctSources, MaxItemsPerTopic)
UNKNOWN_KEY = 999_999  # a blocked key that no catalog item has


# --- helpers ---------------------------------------------------------------------------


def make_catalog(rows, topic_names, sensitive_topics=(), first_key=101) -> CatalogArrays:
    """rows: (topics, source, sensitivity, rating) per item; keys first_key, first_key+1, …"""
    width = max([1, *(len(topics) for topics, *_ in rows)])
    return CatalogArrays.build(
        item_keys=[first_key + i for i in range(len(rows))],
        topics=[list(topics) + [-1] * (width - len(topics)) for topics, *_ in rows],
        source=[row[1] for row in rows],
        sensitivity=[row[2] for row in rows],
        rating=[row[3] for row in rows],
        topic_names=topic_names,
        topic_sensitive=[name in sensitive_topics for name in topic_names],
    )


COOKING, GAMBLING, NEWS, ALCOHOL = range(4)
HAND = make_catalog(
    [  # position: key, topics, source, sensitivity, rating
        ((COOKING,), 0, 0, 0),  # 0: 101
        ((GAMBLING, NEWS), 1, 2, 2),  # 1: 102, adult
        ((NEWS,), 1, 1, 1),  # 2: 103, teen
        ((ALCOHOL, COOKING), 2, 3, 2),  # 3: 104, adult
        ((COOKING, NEWS), 0, 0, 0),  # 4: 105
        ((NEWS,), 2, 0, 1),  # 5: 106, teen
    ],
    topic_names=("cooking", "gambling", "news", "alcohol"),
    sensitive_topics=("gambling", "alcohol"),
)
ADULT = EngineContext("adult")
MINOR = EngineContext("minor")


def hand_policy(*hard, soft=()) -> CompiledPolicy:
    return CompiledPolicy(HAND, hard, soft)


def only(violations):
    assert len(violations) == 1, violations
    return violations[0]


# --- hand-computed cases: item-level hard rules ------------------------------------------


def test_forbidden_topics_forbid_items_having_any_listed_topic_for_the_listed_audiences():
    policy = hand_policy(ForbiddenTopics("no-vice", (GAMBLING, ALCOHOL), ("minor",)))

    assert policy.allowed_mask(MINOR).tolist() == [True, False, True, False, True, True]
    assert policy.allowed_mask(ADULT).all()
    violation = only(policy.violations(MINOR, [0, 1, 3]))
    assert (violation.rule_id, violation.kind, violation.items) == (
        "no-vice",
        "forbidden_topics",
        (1, 3),
    )
    assert violation.message == (
        "forbidden_topics 'no-vice': items 102 (gambling), 104 (alcohol) have topics "
        "forbidden for minor"
    )
    assert policy.violations(ADULT, [0, 1, 3]) == []


def test_forbidden_topics_without_audiences_apply_to_everyone():
    policy = hand_policy(ForbiddenTopics("no-news", (NEWS,), None))

    for context in (ADULT, MINOR):
        assert policy.allowed_mask(context).tolist() == [True, False, False, True, False, False]
    assert only(policy.violations(ADULT, [4])).message == (
        "forbidden_topics 'no-news': item 105 (news) has a topic forbidden for adult"
    )


def test_max_sensitivity_forbids_items_above_the_level_for_its_audience():
    policy = hand_policy(MaxSensitivity("minor-sens", "minor", 1))

    assert policy.allowed_mask(MINOR).tolist() == [True, False, True, False, True, True]
    assert policy.allowed_mask(ADULT).all()
    assert only(policy.violations(MINOR, [3])).message == (
        "max_sensitivity 'minor-sens': item 104 has sensitivity 3, above 1 for minor"
    )
    assert only(policy.violations(MINOR, [0, 1, 3])).items == (1, 3)


def test_max_sensitivity_without_audience_applies_to_everyone():
    policy = hand_policy(MaxSensitivity("no-severe", None, 2))

    for context in (ADULT, MINOR):
        assert policy.allowed_mask(context).tolist() == [True, True, True, False, True, True]


def test_max_audience_rating_forbids_items_rated_above_the_limit():
    policy = hand_policy(MaxAudienceRating("minor-rating", "minor", 1))

    assert policy.allowed_mask(MINOR).tolist() == [True, False, True, False, True, True]
    assert policy.allowed_mask(ADULT).all()
    assert only(policy.violations(MINOR, [1])).message == (
        "max_audience_rating 'minor-rating': item 102 is rated adult, above teen for minor"
    )
    strict = hand_policy(MaxAudienceRating("all-only", None, 0))
    assert strict.allowed_mask(ADULT).tolist() == [True, False, False, False, True, False]


def test_blocked_items_are_forbidden_for_everyone_and_unknown_keys_are_ignored():
    policy = hand_policy(BlockedItems("takedown", (102, 106, UNKNOWN_KEY)))

    for context in (ADULT, MINOR):
        assert policy.allowed_mask(context).tolist() == [True, False, True, True, True, False]
    violation = only(policy.violations(ADULT, [5, 0, 1]))
    assert violation.items == (5, 1)
    assert violation.message == "blocked_items 'takedown': items 106, 102 are blocked"


def test_allowed_mask_of_some_items_is_the_whole_mask_gathered():
    policy = hand_policy(BlockedItems("takedown", (102,)), MaxSensitivity("sens", "minor", 0))

    items = np.array([5, 1, 0, 1])
    assert policy.allowed_mask(MINOR, items).tolist() == [True, False, True, False]
    assert policy.allowed_mask(MINOR, []).tolist() == []
    with pytest.raises(ValueError, match="items"):
        policy.allowed_mask(MINOR, [6])


# --- hand-computed cases: slate-level hard rules -----------------------------------------


def test_min_distinct_sources_needs_min_of_count_and_slate_length_sources():
    policy = hand_policy(MinDistinctSources("three-sources", 3))

    assert policy.violations(ADULT, [0, 1, 3]) == []  # sources 0, 1, 2
    assert policy.violations(ADULT, [0]) == []  # min(3, 1) = 1
    assert policy.violations(ADULT, []) == []
    short = only(policy.violations(ADULT, [0, 4]))  # sources 0, 0: 1 < min(3, 2)
    assert (short.kind, short.items) == ("min_distinct_sources", (4,))
    violation = only(policy.violations(ADULT, [0, 4, 1]))  # sources 0, 0, 1: 2 < 3
    assert violation.items == (4,)
    assert violation.message == (
        "min_distinct_sources 'three-sources': the slate has 2 distinct sources, needs at "
        "least 3; items 105 repeat a better-ranked item's source"
    )
    assert policy.allowed_mask(ADULT).all()


def test_max_items_per_topic_counts_every_topic_of_every_item():
    policy = hand_policy(MaxItemsPerTopic("two-per-topic", 2))

    assert policy.violations(ADULT, [1, 2, 0]) == []  # news twice
    news = only(policy.violations(ADULT, [1, 2, 5]))  # news three times
    assert (news.kind, news.items) == ("max_items_per_topic", (1, 2, 5))
    assert news.message == (
        "max_items_per_topic 'two-per-topic': at most 2 items per topic, "
        "but news is in 3 (102, 103, 106)"
    )
    cooking = only(policy.violations(ADULT, [0, 2, 3, 4]))  # cooking via secondary topics
    assert cooking.items == (0, 3, 4)
    assert policy.allowed_mask(ADULT).all()


def test_violations_list_each_broken_rule_once_in_policy_order():
    policy = hand_policy(
        MaxItemsPerTopic("cap", 1),
        BlockedItems("takedown", (101,)),
        MaxSensitivity("sens", "minor", 1),
        MinDistinctSources("sources", 2),
    )

    found = policy.violations(MINOR, [0, 4, 3])
    assert [v.rule_id for v in found] == ["cap", "takedown", "sens"]
    assert all(f"'{v.rule_id}'" in v.message for v in found)


def test_a_slate_repeating_an_item_is_rejected():
    policy = hand_policy(MaxSensitivity("sens", None, 3))

    with pytest.raises(ValueError, match="more than once"):
        policy.violations(ADULT, [0, 2, 0])
    with pytest.raises(ValueError, match="more than once"):
        policy.penalty(ADULT, [1, 1])


# --- hand-computed cases: soft rules -----------------------------------------------------


def test_sensitive_topic_penalty_counts_items_having_a_sensitive_topic():
    flagged = hand_policy(soft=[SensitiveTopicPenalty("sensitive", 2.0, None)])
    listed = hand_policy(soft=[SensitiveTopicPenalty("news", 0.25, (NEWS,))])

    assert flagged.penalty(ADULT, [0, 1, 3]) == 4.0  # 102 (gambling), 104 (alcohol)
    assert flagged.penalty(ADULT, [0, 2]) == 0.0
    assert listed.penalty(ADULT, [1, 2, 0, 4]) == 0.75  # 102, 103, 105


def test_recent_topic_repeat_counts_primary_topics_in_the_window():
    context = EngineContext("adult", np.array([ALCOHOL, NEWS, COOKING]))  # most recent last
    slate = [0, 1, 2, 3]  # primary topics cooking, gambling, news, alcohol

    def term(window):
        policy = hand_policy(soft=[RecentTopicRepeat("repeat", 0.5, window)])
        return policy.penalty_terms(context, slate)["repeat"]

    assert term(1) == 0.5  # {cooking}: item 101 (104 has cooking only as a secondary topic)
    assert term(2) == 1.0  # {news, cooking}: 101, 103
    assert term(10) == 1.5  # every recent topic: 101, 103, 104
    assert hand_policy(soft=[RecentTopicRepeat("r", 1.0, 3)]).penalty(ADULT, slate) == 0.0


def test_low_source_diversity_penalises_missing_sources_up_to_the_target():
    policy = hand_policy(soft=[LowSourceDiversity("diversity", 1.5, 3)])

    assert policy.penalty(ADULT, [0, 4]) == 1.5  # min(3, 2) - 1
    assert policy.penalty(ADULT, [0, 4, 1]) == 1.5  # 3 - 2
    assert policy.penalty(ADULT, [0, 1, 3]) == 0.0
    assert policy.penalty(ADULT, []) == 0.0


def test_penalty_is_the_sum_of_the_terms_listed_by_rule_id():
    policy = hand_policy(
        soft=[
            SensitiveTopicPenalty("sensitive", 2.0),
            RecentTopicRepeat("repeat", 0.5, 2),
            LowSourceDiversity("diversity", 1.0, 3),
        ]
    )
    context = EngineContext("minor", np.array([NEWS, COOKING]))

    terms = policy.penalty_terms(context, [0, 4, 1])
    assert terms == {"sensitive": 2.0, "repeat": 1.0, "diversity": 1.0}
    assert policy.penalty(context, [0, 4, 1]) == 4.0


# --- hand-computed cases: repair ---------------------------------------------------------


def test_repair_keeps_the_first_k_allowed_items_of_the_ranking():
    policy = hand_policy(MaxSensitivity("sens", "minor", 1), BlockedItems("takedown", (106,)))

    repair = policy.repair(MINOR, np.array([3, 5, 4, 1, 2, 0]), 2)
    assert repair.slate.tolist() == [4, 2]
    assert (repair.complete, repair.reason) == (True, None)
    assert repair.slate.dtype == np.int64


def test_repair_skips_an_item_that_would_put_a_topic_over_its_cap():
    policy = hand_policy(MaxItemsPerTopic("one-per-topic", 1))

    # 1 (gambling, news) is kept, so 2 and 5 (news) and 4 (cooking, news) are skipped.
    assert policy.repair(ADULT, [1, 2, 5, 4, 0], 2).slate.tolist() == [1, 0]


def test_repair_saves_the_last_slots_for_new_sources():
    policy = hand_policy(MinDistinctSources("three-sources", 3))

    # Keeping 4 after 0 (both source 0) would leave one slot for two new sources: 4 is
    # skipped, and so is 1 after 2 (both source 1), which would leave none for a third.
    repair = policy.repair(ADULT, [0, 4, 2, 1, 5], 3)
    assert repair.slate.tolist() == [0, 2, 5]
    assert repair.complete


def test_repair_says_how_many_allowed_items_were_left_when_the_ranking_runs_out():
    policy = hand_policy(MaxSensitivity("sens", "minor", 0))

    repair = policy.repair(MINOR, np.arange(6), 4)
    assert repair.slate.tolist() == [0, 4, 5]
    assert not repair.complete
    assert repair.reason == "filled 3 of 4: only 3 allowed items left after the hard rules"


def test_repair_drops_worst_ranked_source_repeats_when_the_ranking_runs_out():
    policy = hand_policy(MinDistinctSources("three-sources", 3))

    # Greedy keeps 0, 4, 1 (sources 0, 0, 1) hoping for more; the ranking ends, so 4 goes.
    repair = policy.repair(ADULT, [0, 4, 1], 5)
    assert repair.slate.tolist() == [0, 1]
    assert not repair.complete
    assert "not enough distinct sources" in repair.reason
    assert "1 dropped" in repair.reason
    assert policy.violations(ADULT, repair.slate) == []


def test_repair_keeps_only_the_first_occurrence_of_a_repeated_position():
    policy = hand_policy(MaxSensitivity("sens", None, 3))

    assert policy.repair(ADULT, [2, 2, 0, 2, 0, 1], 3).slate.tolist() == [2, 0, 1]


def test_repair_reads_past_the_first_chunks_when_their_items_are_forbidden():
    rows = [((0,), i % 3, 0, 0) for i in range(1000)]
    catalog = make_catalog(rows, ("topic",), first_key=1)
    blocked = BlockedItems("takedown", tuple(range(1, 991)))  # positions 0..989
    policy = CompiledPolicy(catalog, [blocked], [])

    repair = policy.repair(ADULT, np.arange(1000), 5)
    assert repair.slate.tolist() == [990, 991, 992, 993, 994]


def test_repair_of_an_empty_ranking_is_an_empty_incomplete_slate():
    repair = hand_policy().repair(ADULT, [], 3)

    assert repair.slate.tolist() == []
    assert not repair.complete
    assert "only 0 allowed items" in repair.reason


def test_repair_rejects_k_below_one_and_positions_outside_the_catalog():
    policy = hand_policy()

    with pytest.raises(ValueError, match="k must be"):
        policy.repair(ADULT, [0, 1], 0)
    with pytest.raises(ValueError, match="ranked_items"):
        policy.repair(ADULT, [0, 6], 2)
    with pytest.raises(ValueError, match="ranked_items"):
        policy.repair(ADULT, [-1, 0], 2)


# The greedy is not a search: in these two corner cases (found by searching tiny worlds, see
# the exhaustive test at the end) a feasible k-slate exists and repair misses it.


def test_repair_can_miss_a_feasible_slate_when_one_item_fills_two_topic_quotas():
    catalog = make_catalog(
        [((0, 1), 0, 0, 0), ((0,), 0, 0, 0), ((1,), 0, 0, 0)], topic_names=("a", "b")
    )
    policy = CompiledPolicy(catalog, [MaxItemsPerTopic("one-per-topic", 1)], [])

    assert policy.violations(ADULT, [1, 2]) == []  # feasible
    repair = policy.repair(ADULT, [0, 1, 2], 2)  # keeps 0 (a, b), which blocks both others
    assert repair.slate.tolist() == [0]
    assert not repair.complete


def test_repair_can_miss_a_feasible_slate_when_topic_caps_and_source_minimums_interact():
    catalog = make_catalog(
        [((0,), 0, 0, 0), ((0,), 1, 0, 0), ((1,), 0, 0, 0)], topic_names=("a", "b")
    )
    hard = [MaxItemsPerTopic("one-per-topic", 1), MinDistinctSources("two-sources", 2)]
    policy = CompiledPolicy(catalog, hard, [])

    assert policy.violations(ADULT, [1, 2]) == []  # feasible
    # Keeps 0 (a, source 0); then 1 repeats topic a and 2 repeats source 0.
    assert policy.repair(ADULT, [0, 1, 2], 2).slate.tolist() == [0]


# --- invalid rules and catalogs ----------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        ForbiddenTopics("bad-topic", (4,), None),
        ForbiddenTopics("no-topics", (), None),
        ForbiddenTopics("bad-audience", (0,), ("child",)),
        ForbiddenTopics("no-audiences", (0,), ()),
        MaxSensitivity("bad-level", "minor", 4),
        MaxSensitivity("negative-level", None, -1),
        MaxSensitivity("bad-audience", "kids", 1),
        MaxAudienceRating("bad-rating", "minor", 3),
        MinDistinctSources("zero-sources", 0),
        MaxItemsPerTopic("zero-per-topic", 0),
        BlockedItems("bad-key", ("101",)),
    ],
    ids=lambda rule: rule.rule_id,
)
def test_invalid_hard_rule_parameters_raise_naming_the_rule(rule):
    with pytest.raises(ValueError, match=f"'{rule.rule_id}'"):
        CompiledPolicy(HAND, [rule], [])


@pytest.mark.parametrize(
    "rule",
    [
        SensitiveTopicPenalty("zero-weight", 0.0),
        SensitiveTopicPenalty("nan-weight", float("nan")),
        SensitiveTopicPenalty("bad-topic", 1.0, (-1,)),
        RecentTopicRepeat("negative-weight", -1.0, 3),
        RecentTopicRepeat("zero-window", 1.0, 0),
        LowSourceDiversity("zero-target", 1.0, 0),
    ],
    ids=lambda rule: rule.rule_id,
)
def test_invalid_soft_rule_parameters_raise_naming_the_rule(rule):
    with pytest.raises(ValueError, match=f"'{rule.rule_id}'"):
        CompiledPolicy(HAND, [], [rule])


def test_a_duplicate_rule_id_is_rejected_even_across_hard_and_soft():
    with pytest.raises(ValueError, match="'twice'.*duplicate"):
        hand_policy(MaxSensitivity("twice", None, 1), soft=[LowSourceDiversity("twice", 1, 2)])


def test_a_rule_in_the_wrong_list_is_a_type_error():
    with pytest.raises(TypeError):
        hand_policy(LowSourceDiversity("soft", 1.0, 2))
    with pytest.raises(TypeError):
        hand_policy(soft=[MaxItemsPerTopic("hard", 2)])


def test_an_unknown_audience_or_out_of_range_recent_topic_is_rejected():
    with pytest.raises(ValueError, match="audience"):
        EngineContext("child")
    policy = hand_policy(soft=[RecentTopicRepeat("repeat", 1.0, 2)])
    with pytest.raises(ValueError, match="recent_topics"):
        policy.penalty(EngineContext("adult", np.array([7])), [0])


HAND_FIELDS = {
    "item_keys": HAND.item_keys,
    "topics": HAND.topics,
    "source": HAND.source,
    "sensitivity": HAND.sensitivity,
    "rating": HAND.rating,
    "topic_names": HAND.topic_names,
    "topic_sensitive": HAND.topic_sensitive,
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("item_keys", [101, 102, 103, 104, 105, 105]),  # duplicate key
        ("item_keys", [101, 102]),  # wrong length
        ("topics", [[0], [1], [2], [3], [0], [4]]),  # no such topic
        ("topics", [[0, -1], [-1, 1], [2, -1], [3, -1], [0, -1], [2, -1]]),  # padding first
        ("topics", [[0, 0], [1, 2], [2, -1], [3, -1], [0, -1], [2, -1]]),  # topic twice
        ("topics", [0, 1, 2, 3, 0, 2]),  # not 2-D
        ("source", [0, 1, 1, 2, 0, -2]),
        ("source", [0.0, 1.0, 1.0, 2.0, 0.0, 2.0]),
        ("sensitivity", [0, 0, 0, 4, 0, 0]),
        ("rating", [0, 0, 3, 0, 0, 0]),
        ("topic_sensitive", [True, False]),
    ],
)
def test_an_invalid_catalog_raises_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        CatalogArrays.build(**{**HAND_FIELDS, field: value})


def test_direct_construction_requires_the_exact_dtypes():
    fields = {**HAND_FIELDS, "sensitivity": HAND.sensitivity.astype(np.int64)}
    with pytest.raises(ValueError, match="sensitivity"):
        CatalogArrays(**fields)


def test_build_copies_the_arrays_read_only():
    keys = np.arange(101, 107)
    catalog = CatalogArrays.build(**{**HAND_FIELDS, "item_keys": keys})
    keys[0] = 5

    assert catalog.item_keys[0] == 101
    assert not catalog.item_keys.flags.writeable


def test_the_core_imports_without_django():
    code = (
        "import sys, governance.engine.core; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# --- a naive reference: plain Python loops over the rules' definitions -------------------


def naive_topics(catalog: CatalogArrays, item: int) -> list[int]:
    return [t for t in catalog.topics[item].tolist() if t >= 0]


def naive_forbids(catalog: CatalogArrays, rule, audience: str, item: int) -> bool:
    if isinstance(rule, ForbiddenTopics):
        applies = rule.audiences is None or audience in rule.audiences
        return applies and any(t in rule.topics for t in naive_topics(catalog, item))
    if isinstance(rule, BlockedItems):
        return int(catalog.item_keys[item]) in rule.item_keys
    if rule.audience not in (None, audience):
        return False
    if isinstance(rule, MaxSensitivity):
        return int(catalog.sensitivity[item]) > rule.level
    return int(catalog.rating[item]) > rule.rating  # MaxAudienceRating


def naive_source_repeats(catalog: CatalogArrays, rule, slate: list[int]) -> list[int] | None:
    sources = [int(catalog.source[i]) for i in slate]
    if len(set(sources)) >= min(rule.count, len(slate)):
        return None
    return [item for j, item in enumerate(slate) if sources[j] in sources[:j]]


def naive_over_cap(catalog: CatalogArrays, rule, slate: list[int]) -> list[int] | None:
    counts: dict[int, int] = {}
    for item in slate:
        for t in naive_topics(catalog, item):
            counts[t] = counts.get(t, 0) + 1
    over = {t for t, count in counts.items() if count > rule.count}
    if not over:
        return None
    return [item for item in slate if over & set(naive_topics(catalog, item))]


def naive_violations(catalog, hard, audience, slate) -> list[tuple[str, tuple[int, ...]]]:
    """(rule_id, offending items) of every broken hard rule, in policy order."""
    found = []
    for rule in hard:
        if isinstance(rule, MinDistinctSources):
            offending = naive_source_repeats(catalog, rule, slate)
        elif isinstance(rule, MaxItemsPerTopic):
            offending = naive_over_cap(catalog, rule, slate)
        else:
            offending = [i for i in slate if naive_forbids(catalog, rule, audience, i)] or None
        if offending is not None:
            found.append((rule.rule_id, tuple(offending)))
    return found


def naive_term(catalog: CatalogArrays, rule, context: EngineContext, slate: list[int]) -> float:
    if isinstance(rule, SensitiveTopicPenalty):
        flagged = [t for t in range(catalog.n_topics) if catalog.topic_sensitive[t]]
        topics = flagged if rule.topics is None else rule.topics
        hits = [i for i in slate if any(t in topics for t in naive_topics(catalog, i))]
        return rule.weight * len(hits)
    if isinstance(rule, RecentTopicRepeat):
        recent = context.recent_topics.tolist()[-rule.window :]
        return rule.weight * len([i for i in slate if int(catalog.topics[i, 0]) in recent])
    distinct = len({int(catalog.source[i]) for i in slate})  # LowSourceDiversity
    return rule.weight * max(0, min(rule.target, len(slate)) - distinct)


def first_occurrences(ranking: list[int]) -> list[int]:
    return list(dict.fromkeys(ranking))


# --- hypothesis strategies ---------------------------------------------------------------


@st.composite
def catalogs(draw, max_items=40, max_topics=3, n_topics_max=6, n_sources_max=6) -> CatalogArrays:
    """1..max_items items with up to max_topics topics each, any sensitivity and rating, random
    sensitive flags. Few topics or sources make the slate-level rules bind, so their numbers
    are drawn per catalog: 1..n_topics_max topics, 1..n_sources_max sources."""
    n_topics = draw(st.integers(1, n_topics_max))
    n_sources = draw(st.integers(1, n_sources_max))
    per_item = min(max_topics, n_topics)
    topic_lists = st.lists(st.integers(0, n_topics - 1), max_size=per_item, unique=True)
    sources = st.integers(0, n_sources - 1)
    row = st.tuples(topic_lists, sources, st.integers(0, 3), st.integers(0, 2))
    rows = draw(st.lists(row, min_size=1, max_size=max_items))
    names = tuple(f"t{t}" for t in range(n_topics))
    sensitive = draw(st.sets(st.sampled_from(names)))
    return make_catalog(rows, names, sensitive, first_key=draw(st.integers(1, 10**9)))


def rule_strategies(catalog: CatalogArrays):
    """One strategy per rule kind (hard, soft), with a placeholder rule_id."""
    topics = st.lists(st.integers(0, catalog.n_topics - 1), min_size=1, max_size=3, unique=True)
    audience = st.none() | st.sampled_from(AUDIENCES)
    audiences = st.none() | st.lists(st.sampled_from(AUDIENCES), min_size=1, unique=True)
    keys = st.lists(st.sampled_from([*catalog.item_keys.tolist(), UNKNOWN_KEY]), max_size=4)
    weight = st.floats(0.1, 5.0)
    hard = [
        st.builds(ForbiddenTopics, st.just(""), topics.map(tuple), audiences.map(_tuple_or_none)),
        st.builds(MaxSensitivity, st.just(""), audience, st.integers(0, 3)),
        st.builds(MaxAudienceRating, st.just(""), audience, st.integers(0, 2)),
        st.builds(BlockedItems, st.just(""), keys.map(tuple)),
        st.builds(MinDistinctSources, st.just(""), st.integers(1, 5)),
        st.builds(MaxItemsPerTopic, st.just(""), st.integers(1, 3)),
    ]
    soft = [
        st.builds(SensitiveTopicPenalty, st.just(""), weight, st.none() | topics.map(tuple)),
        st.builds(RecentTopicRepeat, st.just(""), weight, st.integers(1, 4)),
        st.builds(LowSourceDiversity, st.just(""), weight, st.integers(1, 5)),
    ]
    return hard, soft


def _tuple_or_none(values):
    return None if values is None else tuple(values)


@dataclass(frozen=True)
class World:
    catalog: CatalogArrays
    hard: tuple
    soft: tuple
    policy: CompiledPolicy
    context: EngineContext


@st.composite
def worlds(draw, kinds: tuple[type, ...] | None = None, **catalog_limits) -> World:
    """A catalog, a policy with 0..2 rules of each kind (of ``kinds``), and a context."""
    catalog = draw(catalogs(**catalog_limits))
    hard_kinds, soft_kinds = rule_strategies(catalog)
    rules = []
    for kind in [*hard_kinds, *soft_kinds]:
        rules += draw(st.lists(kind, max_size=2))
    if kinds is not None:
        rules = [rule for rule in rules if isinstance(rule, kinds)]
    rules = [replace(rule, rule_id=f"{rule.kind}-{i}") for i, rule in enumerate(rules)]
    hard = tuple(rule for rule in rules if isinstance(rule, HARD))
    soft = tuple(rule for rule in rules if not isinstance(rule, HARD))
    recent = draw(st.lists(st.integers(0, catalog.n_topics - 1), max_size=6))
    context = EngineContext(draw(st.sampled_from(AUDIENCES)), np.array(recent, dtype=np.int64))
    return World(catalog, hard, soft, CompiledPolicy(catalog, hard, soft), context)


def rankings(n_items: int):
    """Item positions with repeats and gaps, or a whole permutation."""
    positions = st.integers(0, n_items - 1)
    return st.lists(positions, max_size=2 * n_items) | st.permutations(range(n_items))


def greedy_is_complete(world: World) -> bool:
    """Whether repair must find a k-slate whenever one exists (see the core's docstring).

    Without a topic cap, new sources are always kept and repeats only when slots allow, so
    the ranking's sources all make it in; with a cap and single-topic items only, per-topic
    quotas form a partition matroid, on which greedy is optimal. The two corner cases above
    break this: an item filling two quotas, and a cap interacting with a source minimum.
    """
    if not any(isinstance(rule, MaxItemsPerTopic) for rule in world.hard):
        return True
    single_topic = bool((world.catalog.topics[:, 1:] < 0).all())
    has_min_sources = any(isinstance(rule, MinDistinctSources) for rule in world.hard)
    return single_topic and not has_min_sources


# --- properties --------------------------------------------------------------------------


@PROPERTY
@given(data=st.data())
def test_violations_match_the_naive_checker(data):
    world = data.draw(worlds())
    n = world.catalog.n_items
    slate = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=min(n, 8)))

    found = world.policy.violations(world.context, np.array(slate, dtype=np.int64))
    expected = naive_violations(world.catalog, world.hard, world.context.audience, slate)
    assert [(v.rule_id, v.items) for v in found] == expected
    assert all(f"'{v.rule_id}'" in v.message for v in found)
    assert (found == []) == (expected == [])


@PROPERTY
@given(data=st.data())
def test_penalty_terms_match_the_formulas(data):
    world = data.draw(worlds())
    n = world.catalog.n_items
    slate = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=min(n, 8)))

    terms = world.policy.penalty_terms(world.context, slate)
    expected = {r.rule_id: naive_term(world.catalog, r, world.context, slate) for r in world.soft}
    assert terms == pytest.approx(expected)
    assert world.policy.penalty(world.context, slate) == pytest.approx(sum(expected.values()))


@PROPERTY
@given(world=worlds())
def test_the_mask_agrees_with_violations_on_single_items(world):
    mask = world.policy.allowed_mask(world.context)

    assert mask.dtype == bool
    assert mask.shape == (world.catalog.n_items,)
    for item in range(world.catalog.n_items):
        assert mask[item] == (world.policy.violations(world.context, [item]) == [])


@PROPERTY
@given(data=st.data())
def test_every_repaired_slate_breaks_no_hard_rule_and_follows_the_ranking(data):
    world = data.draw(worlds())
    ranking = data.draw(rankings(world.catalog.n_items))
    k = data.draw(st.integers(1, 12))

    repair = world.policy.repair(world.context, np.array(ranking, dtype=np.int64), k)
    slate = repair.slate.tolist()
    assert world.policy.violations(world.context, repair.slate) == []
    assert len(set(slate)) == len(slate)
    mask = world.policy.allowed_mask(world.context)
    allowed_ranked = [item for item in first_occurrences(ranking) if mask[item]]
    assert is_subsequence(slate, allowed_ranked)
    assert repair.complete == (len(slate) == k)
    assert (repair.reason is None) == repair.complete
    assert len(slate) <= k


def is_subsequence(short: list[int], long: list[int]) -> bool:
    remaining = iter(long)
    return all(item in remaining for item in short)


@PROPERTY
@given(data=st.data())
def test_repair_fills_k_whenever_some_k_slate_is_feasible(data):
    # Restricted to the worlds where the greedy is complete (greedy_is_complete); outside
    # them it can miss, see the two corner-case tests above. Random worlds hit those corners
    # rarely (about 1 example in 500 without the filter), so the exhaustive test below checks
    # that the restriction is both needed and sufficient on every tiny world. Single-topic
    # catalogs are drawn too, so topic caps are covered; at most three topics and three
    # sources make the slate-level rules bind.
    max_topics = data.draw(st.sampled_from([1, 3]))
    limits = {"max_items": 8, "max_topics": max_topics, "n_topics_max": 3, "n_sources_max": 3}
    world = data.draw(worlds(**limits).filter(greedy_is_complete))
    ranking = data.draw(rankings(world.catalog.n_items))
    k = data.draw(st.integers(1, 3))

    repair = world.policy.repair(world.context, ranking, k)
    candidates = first_occurrences(ranking)
    feasible = any(
        naive_violations(world.catalog, world.hard, world.context.audience, list(slate)) == []
        for slate in itertools.combinations(candidates, k)
    )
    assert repair.complete == feasible


@PROPERTY
@given(data=st.data())
def test_with_only_item_rules_repair_takes_the_first_k_allowed_items(data):
    world = data.draw(worlds(kinds=ITEM_LEVEL))
    ranking = data.draw(rankings(world.catalog.n_items))
    k = data.draw(st.integers(1, 12))

    repair = world.policy.repair(world.context, ranking, k)
    mask = world.policy.allowed_mask(world.context)
    allowed_ranked = [item for item in first_occurrences(ranking) if mask[item]]
    assert repair.slate.tolist() == allowed_ranked[:k]


def test_repair_misses_a_feasible_slate_exactly_outside_the_complete_worlds():
    """Every world of 3 items, each with topics {}, {a}, {b} or {a, b} and source 0 or 1,
    under every combination of no/1/2 items per topic and no/2/3 distinct sources, ranked
    0, 1, 2 (the other rankings are other catalogs of the enumeration), for k = 1, 2, 3."""
    item_kinds = list(itertools.product([(), (0,), (1,), (0, 1)], [0, 1]))
    missed = []
    for items in itertools.product(item_kinds, repeat=3):
        catalog = make_catalog([(topics, source, 0, 0) for topics, source in items], ("a", "b"))
        for cap, minimum in itertools.product([None, 1, 2], [None, 2, 3]):
            hard = []
            if cap is not None:
                hard.append(MaxItemsPerTopic("cap", cap))
            if minimum is not None:
                hard.append(MinDistinctSources("sources", minimum))
            world = World(catalog, tuple(hard), (), CompiledPolicy(catalog, hard, []), ADULT)
            for k in (1, 2, 3):
                slates = itertools.combinations(range(3), k)
                feasible = any(
                    naive_violations(catalog, hard, "adult", list(s)) == [] for s in slates
                )
                if feasible and not world.policy.repair(ADULT, [0, 1, 2], k).complete:
                    missed.append(world)
    assert missed
    assert not any(greedy_is_complete(world) for world in missed)
