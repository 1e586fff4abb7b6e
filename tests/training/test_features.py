"""The reward model's features (training/ml/features.py): block values computed by hand on a
tiny catalog, the schema's round trip, refusals that name the field, the constraint
engine's penalty terms, and the simulator adapter."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from governance.engine.core import (
    CatalogArrays,
    CompiledPolicy,
    EngineContext,
    LowSourceDiversity,
    SensitiveTopicPenalty,
)
from training.ml import features as F
from training.ml.simulator import SimConfig, Simulator

W1 = 1 / math.log2(3)  # the second position's weight; the first weighs 1


def tiny_catalog() -> F.CatalogView:
    return F.CatalogView(
        item_features=np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32),
        item_topics=np.array([[0, -1], [1, 2], [0, 1], [2, -1]]),
        item_source=np.array([0, 1, 0, 1]),
        item_sensitivity=np.array([0, 2, 3, 1]),
        item_rating=np.array([0, 2, 2, 0]),
        n_topics=3,
        n_sources=2,
    )


def tiny_schema(**changes) -> F.FeatureSchema:
    schema = F.FeatureSchema(n_topics=3, n_sources=2, n_segments=2, item_dim=2, max_slate_size=3)
    return replace(schema, **changes)


def tiny_contexts(b: int = 1) -> F.Contexts:
    return F.Contexts(
        segment=np.full(b, 1),
        minor=np.full(b, True),
        situation=np.tile(np.array([[0.5, 0.2, 0.3, 0.4, 0, 1]], dtype=np.float32), (b, 1)),
        history_topics=np.tile(np.array([[0.5, 0.5, 0]], dtype=np.float32), (b, 1)),
        topic_click_rate=np.tile(np.array([[0.25, 0.5, 0]], dtype=np.float32), (b, 1)),
        recent_exposure=np.tile(np.array([[1, 0, 2]], dtype=np.float32), (b, 1)),
    )


def blocks_of(schema: F.FeatureSchema, row) -> dict[str, list[float]]:
    return {name: row[where].tolist() for name, where in schema.block_slices().items()}


# --- values -----------------------------------------------------------------------------------


def test_every_block_of_a_short_slate_matches_the_hand_computation():
    # Slate (0, 1) padded to 3. Item 0: topic 0, source 0, sensitivity 0, rated for all.
    # Item 1: primary topic 1 (counted twice) and topic 2, so z = (0, 2/3, 1/3); source 1,
    # sensitivity 2, adult-rated. Position weights 1 and 1/log2(3) = 0.6309.
    schema = tiny_schema()
    row = F.slate_features(schema, tiny_catalog(), tiny_contexts(), np.array([[0, 1, -1]]))[0]
    topics = [1, W1 * 2 / 3, W1 / 3]
    expected = {
        "segment": [0, 1],
        "minor": [1],
        "situation": [0.5, 0.2, 0.3, 0.4, 0, 1],
        "history_topics": [0.5, 0.5, 0],
        "topic_click_rate": [0.25, 0.5, 0],
        "recent_exposure": [1, 0, 2],
        "item_vector": [1, W1],
        "item_topics": topics,
        "item_source": [1, W1],
        "item_sensitivity": [1, 0, W1, 0],
        "item_rating": [1, 0, W1],
        "minor_adult_items": [W1],
        "topic_histogram": [0.5, 0.5, 0.5],
        "distinct_sources": [1],
        "distinct_topics": [1],
        "intra_list_distance": [1],  # cos((1, 0), (0, 1)) = 0
        "sensitivity_max": [2 / 3],
        "sensitivity_mean": [1 / 3],
        "history_overlap": [0.5 * topics[0] + 0.5 * topics[1]],
        "click_rate_affinity": [0, 0.25 * topics[1], -0.25 * topics[2]],
        "click_rate_overlap": [0.25 * topics[1] - 0.25 * topics[2]],
        "segment_topics": [0, 0, 0, *topics],
        "exposure_overlap": [topics[0] + 2 * topics[2]],
        "fatigued_exposure": [0.5 * (topics[0] + 2 * topics[2])],
        "slate_fill": [2 / 3],
        "penalties": [],
    }
    actual = blocks_of(schema, row)
    assert list(actual) == list(expected)
    for name, values in expected.items():
        assert actual[name] == pytest.approx(values, abs=1e-6), name


def test_repeated_sources_and_topics_lower_the_diversity_blocks():
    schema = tiny_schema()
    row = F.slate_features(schema, tiny_catalog(), tiny_contexts(), np.array([[0, 2, -1]]))[0]
    blocks = blocks_of(schema, row)
    assert blocks["distinct_sources"] == pytest.approx([0.5])  # both from source 0
    assert blocks["distinct_topics"] == pytest.approx([0.5])  # both primarily topic 0
    # cos((1, 0), (1, 1)) = 1/√2
    assert blocks["intra_list_distance"] == pytest.approx([1 - 1 / math.sqrt(2)])


def test_history_summaries_match_the_documented_formulas():
    catalog = tiny_catalog()
    topics, rate, exposure = F.history_summaries(
        np.array([0, 1, 0]), np.array([True, False, True]), catalog.topic_mixture()
    )
    # Clicks c = (2, 0, 0); shown s = (2, 2/3, 1/3).
    assert topics.tolist() == pytest.approx([1, 0, 0])
    assert rate.tolist() == pytest.approx([2.5 / 4, 0.5 / (2 + 2 / 3), 0.5 / (2 + 1 / 3)])
    # One slate of five, the newest entry last: positions 2, 3, 4, w_j = 1 / log2(j + 2).
    w2, w3, w4 = (1 / math.log2(j + 2) for j in (2, 3, 4))
    assert exposure.tolist() == pytest.approx([w2 + w4, w3 * 2 / 3, w3 / 3])
    # A sixth entry back is the last position of the slate before, one decay older.
    six = F.history_summaries(np.zeros(6, dtype=int), np.zeros(6, bool), catalog.topic_mixture())
    w = [1 / math.log2(j + 2) for j in range(5)]
    assert six[2].tolist() == pytest.approx([sum(w) + F.EXPOSURE_DECAY * w[4], 0, 0])
    empty = F.history_summaries(np.zeros(0, dtype=int), np.zeros(0, bool), catalog.topic_mixture())
    assert empty[0].tolist() == [0, 0, 0]
    assert empty[1].tolist() == pytest.approx([F.CLICK_RATE_PRIOR] * 3)


def test_the_dimension_is_the_sum_of_the_blocks():
    schema = tiny_schema(penalty_names=("a", "b"))
    assert schema.dim == sum(size for _, size in schema.blocks())
    # context 2 + 1 + 6 + 3·3, item sums 2 + 3 + 2 + 4 + 3, aggregates 1 + 3 + 6·1,
    # interactions 3 + 1 + 2·3 + 1 + 1, fill 1, penalties 2
    assert schema.dim == 57
    sim_schema = F.schema_for_simulator(Simulator(SimConfig(n_items=50, n_users=10), seed=0))
    assert sim_schema.dim == 333  # the simulator's world (docstring)


# --- the schema -------------------------------------------------------------------------------


def test_the_schema_survives_a_round_trip_through_a_plain_dict():
    schema = tiny_schema(penalty_names=("sensitive", "repeat"))
    data = schema.to_dict()
    assert all(isinstance(value, str | int | list) for value in data.values())
    assert F.FeatureSchema.from_dict(data) == schema
    assert data["version"] == F.SCHEMA_VERSION


def _mutated(field: str):
    """Inputs with one field made wrong: (catalog, contexts, slates, penalties)."""
    catalog, contexts, slates = tiny_catalog(), tiny_contexts(2), np.array([[0, 1, -1], [2, 3, 0]])
    catalog_changes = {
        "item_features": np.zeros((4, 3), dtype=np.float32),
        "item_topics": np.array([[0, -1], [1, 3], [0, 1], [2, -1]]),
        "item_source": np.array([0, 1, 2, 1]),
        "item_sensitivity": np.array([0, 4, 3, 1]),
        "item_rating": np.array([0, 2, 2, 0.0]),
        "n_topics": 4,
    }
    context_changes = {
        "segment": np.array([1, 2]),
        "minor": np.array([1, 0]),
        "situation": np.zeros((2, 5), dtype=np.float32),
        "history_topics": np.zeros((2, 4), dtype=np.float32),
        "topic_click_rate": np.full((2, 3), np.nan, dtype=np.float32),
        "recent_exposure": np.zeros((3, 3), dtype=np.float32),
    }
    if field in catalog_changes:
        catalog = replace(catalog, **{field: catalog_changes[field]})
    elif field in context_changes:
        contexts = replace(contexts, **{field: context_changes[field]})
    return catalog, contexts, slates


@pytest.mark.parametrize(
    "field",
    [
        "item_features",
        "item_topics",
        "item_source",
        "item_sensitivity",
        "item_rating",
        "n_topics",
        "segment",
        "minor",
        "situation",
        "history_topics",
        "topic_click_rate",
        "recent_exposure",
    ],
)
def test_wrong_inputs_are_refused_naming_the_field(field):
    catalog, contexts, slates = _mutated(field)
    with pytest.raises(ValueError, match=f"^{field}: "):
        F.slate_features(tiny_schema(), catalog, contexts, slates)


@pytest.mark.parametrize(
    ("slates", "problem"),
    [
        (np.array([[0, 1], [2, 3]]), "expected shape"),
        (np.array([[0, 1, -1], [2, 4, 0]]), "outside"),
        (np.array([[0, -1, 1], [2, 3, 0]]), "padding"),
        (np.array([[0, 1, 0], [2, 3, 0]]), "twice"),
        (np.array([[-1, -1, -1], [2, 3, 0]]), "at least one item"),
        (np.array([[0.0, 1, 2], [2, 3, 0]]), "dtype"),
    ],
)
def test_bad_slates_are_refused(slates, problem):
    with pytest.raises(ValueError, match=f"^slates: .*{problem}"):
        F.slate_features(tiny_schema(), tiny_catalog(), tiny_contexts(2), slates)


def test_penalties_must_match_the_schema():
    slates = np.array([[0, 1, -1]])
    with pytest.raises(ValueError, match="^penalties: the schema expects 2 columns"):
        F.slate_features(
            tiny_schema(penalty_names=("a", "b")), tiny_catalog(), tiny_contexts(), slates
        )
    with pytest.raises(ValueError, match="^penalties: expected shape"):
        F.slate_features(
            tiny_schema(penalty_names=("a", "b")),
            tiny_catalog(),
            tiny_contexts(),
            slates,
            np.zeros((1, 3), dtype=np.float32),
        )


# --- the constraint engine's soft rules -------------------------------------------------------


def test_penalty_terms_come_from_the_compiled_policy_in_schema_order():
    catalog = tiny_catalog()
    engine_catalog = CatalogArrays.build(
        item_keys=[10, 11, 12, 13],
        topics=catalog.item_topics,
        source=catalog.item_source,
        sensitivity=catalog.item_sensitivity,
        rating=catalog.item_rating,
        topic_names=["a", "b", "c"],
        topic_sensitive=[False, False, True],
    )
    policy = CompiledPolicy(
        engine_catalog,
        hard=[],
        soft=[SensitiveTopicPenalty("sensitive", 1.0), LowSourceDiversity("sources", 0.5, 2)],
    )
    slates = np.array([[0, 1, -1], [0, 2, -1]])
    adult = EngineContext("adult")
    penalties = F.penalty_matrix(policy, [adult, adult], slates)
    # (0, 1): item 1 has sensitive topic c, two sources. (0, 2): no sensitive topic, one source.
    assert penalties.tolist() == [[1.0, 0.0], [0.0, 0.5]]
    names = tuple(policy.penalty_terms(adult, [0]))
    schema = tiny_schema(penalty_names=names)
    rows = F.slate_features(schema, catalog, tiny_contexts(2), slates, penalties)
    assert rows[:, schema.block_slices()["penalties"]].tolist() == [[1.0, 0.0], [0.0, 0.5]]


# --- the simulator adapter --------------------------------------------------------------------


def test_simulator_features_have_the_schema_shape_and_read_the_world():
    sim = Simulator(SimConfig(n_items=60, n_users=12), seed=3)
    rng = np.random.default_rng(0)
    states = [sim.initial_state(user, rng) for user in range(6)]
    state = sim.step(states[0], [1, 2, 3, 4, 5], rng).state
    states[0] = state
    slates = np.stack([rng.choice(60, size=5, replace=False) for _ in states])
    slates[1, 3:] = -1  # a shorter slate
    rows = F.from_simulator(sim, states, slates)
    schema = F.schema_for_simulator(sim)
    assert rows.shape == (6, schema.dim)
    assert rows.dtype == torch.float32
    blocks = blocks_of(schema, rows[2])
    weights = F.position_weights(5)
    expected_vector = weights @ sim.world.item_features[slates[2]]
    assert blocks["item_vector"] == pytest.approx(expected_vector.tolist(), abs=1e-5)
    assert blocks["item_topics"] == pytest.approx(
        (weights @ sim.world.item_topics[slates[2]]).tolist(), abs=1e-5
    )
    assert blocks_of(schema, rows[1])["slate_fill"] == pytest.approx([3 / 5])
    user = states[3].user
    assert blocks_of(schema, rows[3])["minor"] == [float(sim.world.user_minor[user])]
    clicked = [item for item, event in state.history if event == "click"]
    history = blocks_of(schema, rows[0])["history_topics"]
    assert sum(history) == pytest.approx(1.0 if clicked else 0.0, abs=1e-5)


def test_recent_exposure_replays_the_simulators_fatigue():
    sim = Simulator(SimConfig(n_items=60, n_users=5), seed=3)
    state = sim.initial_state(0, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for step in range(4):
        state = sim.step(state, np.arange(5) + 7 * step, rng).state
    contexts = F.contexts_from_simulator(sim, [state])
    assert state.fatigue.sum() > 0
    assert contexts.recent_exposure[0] == pytest.approx(state.fatigue, abs=1e-5)
