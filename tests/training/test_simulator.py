"""Tests of the pure-NumPy user simulator (training/ml/simulator.py).

Every test checks a property the module docstring documents: determinism by seed, the
logging policy's exact propensities, the statistics of the generated world, the step
transition, and the agreement of the closed forms (expected_reward, greedy_slate,
respond_batch, slate_utilities) with the sampled model. Worlds are small so the module
runs in a few seconds; every random draw is seeded.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import fields, replace

import numpy as np
import pytest

from training.ml.simulator import (
    AUDIENCE_RATINGS,
    EVENT_HARMFUL,
    EVENT_LEFT,
    LEFT_ANYWAY,
    LEFT_DRIVEN_AWAY,
    SEGMENTS,
    SENSITIVE_TOPICS,
    TOPICS,
    LoggingPolicy,
    SimConfig,
    Simulator,
    UserState,
    World,
    fatigue_after,
    position_weights,
    sigmoid,
)

SMALL = SimConfig(n_items=200, n_users=50)
ADULT_RATING = AUDIENCE_RATINGS.index("adult")


# --- helpers ---------------------------------------------------------------------------


def assert_same_state(a: UserState, b: UserState) -> None:
    for f in fields(UserState):
        left, right = getattr(a, f.name), getattr(b, f.name)
        if isinstance(left, np.ndarray):
            assert np.array_equal(left, right), f.name
        else:
            assert left == right, f.name


def hand_weights(k: int) -> list[float]:
    """w_j = 1 / log2(j + 1) for positions j = 1..k."""
    return [1.0 / math.log2(j + 1) for j in range(1, k + 1)]


def hand_harm(world: World, config: SimConfig, user: int, item: int) -> float:
    """h_i = max(0, σ_i − τ_u) + minor_adult_harm · [minor ∧ rating_i = adult]."""
    harm = max(0, int(world.item_sensitivity[item]) - int(world.user_tolerance[user]))
    if world.user_minor[user] and world.item_rating[item] == ADULT_RATING:
        harm += config.minor_adult_harm
    return float(harm)


def hand_logit(world: World, config: SimConfig, state: UserState, item: int) -> float:
    """ℓ_i = c_0 + c_rel (z_i · p_u) + c_q q_i − c_f (z_i · f) + c_night [night]."""
    z = world.item_topics[item]
    logit = (
        config.c0
        + config.c_rel * float(z @ world.user_preferences[state.user])
        + config.c_quality * float(world.item_quality[item])
        - config.c_fatigue * float(z @ state.fatigue)
    )
    if state.hour < 6:
        logit += config.c_night
    return logit


def random_fatigue(sim: Simulator, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=len(sim.world.topics))


def minor_and_adult(sim: Simulator) -> tuple[int, int]:
    minors = np.flatnonzero(sim.world.user_minor)
    adults = np.flatnonzero(~sim.world.user_minor)
    assert len(minors) > 0
    assert len(adults) > 0
    return int(minors[0]), int(adults[0])


def mixed_slate(sim: Simulator, user: int) -> list[int]:
    """Two harmless and two harmful items for ``user``, interleaved."""
    harm = sim.harm(user)
    harmless, harmful = np.flatnonzero(harm == 0), np.flatnonzero(harm > 0)
    assert len(harmless) >= 2
    assert len(harmful) >= 2
    return [int(harmless[0]), int(harmful[0]), int(harmless[1]), int(harmful[1])]


def one_user_per_segment(world: World) -> list[int]:
    return [int(np.flatnonzero(world.user_segment == g)[0]) for g in np.unique(world.user_segment)]


# --- 1. determinism by seed ---------------------------------------------------------------


def test_same_seed_gives_the_same_world_and_the_same_trajectories():
    a, b = Simulator(SMALL, seed=11), Simulator(SMALL, seed=11)
    for f in fields(World):
        left, right = getattr(a.world, f.name), getattr(b.world, f.name)
        if isinstance(left, np.ndarray):
            assert left.dtype == right.dtype, f.name
            assert np.array_equal(left, right), f.name
        else:
            assert left == right, f.name

    for user in range(0, SMALL.n_users, 7):
        state_a, state_b = a.initial_state(user), b.initial_state(user)
        assert_same_state(state_a, state_b)
        rng_a, rng_b = np.random.default_rng([user, 5]), np.random.default_rng([user, 5])
        while not state_a.left:
            slate = a.greedy_slate(state_a)
            assert np.array_equal(slate, b.greedy_slate(state_b))
            step_a, step_b = a.step(state_a, slate, rng_a), b.step(state_b, slate, rng_b)
            assert step_a.reward == step_b.reward
            assert step_a.clicks == step_b.clicks
            assert step_a.events == step_b.events
            assert_same_state(step_a.state, step_b.state)
            state_a, state_b = step_a.state, step_b.state


def test_same_seed_gives_the_same_logged_slates():
    a, b = Simulator(SMALL, seed=4), Simulator(SMALL, seed=4)
    users = np.arange(SMALL.n_users)
    slates_a, props_a = LoggingPolicy(a).sample(users, 5, np.random.default_rng(9))
    slates_b, props_b = LoggingPolicy(b).sample(users, 5, np.random.default_rng(9))
    assert np.array_equal(slates_a, slates_b)
    assert np.array_equal(props_a, props_b)


def test_a_different_seed_gives_a_different_world():
    a, b = Simulator(SMALL, seed=1), Simulator(SMALL, seed=2)
    assert not np.array_equal(a.world.item_topics, b.world.item_topics)
    assert not np.array_equal(a.world.item_features, b.world.item_features)
    assert not np.array_equal(a.world.item_popularity, b.world.item_popularity)
    assert not np.array_equal(a.world.user_preferences, b.world.user_preferences)
    assert a.world.item_titles != b.world.item_titles


# --- 2. the logging policy -------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3])
def test_logging_propensities_of_all_ordered_slates_sum_to_one(k):
    sim = Simulator(SimConfig(n_items=6, n_users=50), seed=0)
    policy = LoggingPolicy(sim)
    slates = np.array(list(itertools.permutations(range(6), k)))
    users = one_user_per_segment(sim.world)
    assert len({int(sim.world.user_segment[u]) for u in users}) >= 3
    for user in users:
        propensities = policy.propensities(np.full(len(slates), user), slates)
        assert abs(propensities.sum() - 1.0) < 1e-9
        assert np.all(propensities > 0)
        assert np.all(propensities <= 1)


def test_logging_propensities_sum_to_one_at_another_temperature_and_epsilon():
    config = SimConfig(n_items=6, n_users=50, logging_temperature=0.5, logging_epsilon=0.3)
    sim = Simulator(config, seed=5)
    policy = LoggingPolicy(sim)
    slates = np.array(list(itertools.permutations(range(6), 3)))
    for user in one_user_per_segment(sim.world):
        propensities = policy.propensities(np.full(len(slates), user), slates)
        assert abs(propensities.sum() - 1.0) < 1e-9


def test_logging_propensities_are_at_least_the_uniform_share():
    sim = Simulator(SimConfig(n_items=6, n_users=50), seed=0)
    policy = LoggingPolicy(sim)
    slates = np.array(list(itertools.permutations(range(6), 2)))
    propensities = policy.propensities(np.zeros(len(slates), dtype=int), slates)
    assert np.all(propensities >= sim.config.logging_epsilon / len(slates) - 1e-15)


def test_logging_scores_combine_popularity_and_segment_relevance():
    sim = Simulator(SMALL, seed=3)
    world, config = sim.world, sim.config
    policy = LoggingPolicy(sim)
    for g in range(len(world.segment_names)):
        members = world.user_segment == g
        if members.any():
            assert np.allclose(
                world.segment_preferences[g], world.user_preferences[members].mean(0)
            )
    for user in one_user_per_segment(world):
        segment_mean = world.segment_preferences[world.user_segment[user]]
        expected = np.log(world.item_popularity) + config.logging_relevance * (
            world.item_topics @ segment_mean
        )
        assert np.allclose(policy.scores(user), expected, rtol=0, atol=1e-12)


def test_logging_sample_returns_distinct_items_and_their_own_propensities():
    sim = Simulator(SMALL, seed=6)
    policy = LoggingPolicy(sim)
    users = np.tile(np.arange(SMALL.n_users), 20)
    for k in (1, 3, 5):
        slates, propensities = policy.sample(users, k, np.random.default_rng(k))
        assert slates.shape == (len(users), k)
        assert np.all((slates >= 0) & (slates < SMALL.n_items))
        assert all(len(set(row.tolist())) == k for row in slates)
        assert np.allclose(propensities, policy.propensities(users, slates), rtol=1e-12, atol=0)
        assert np.all((propensities > 0) & (propensities <= 1))


@pytest.mark.parametrize("k", [2, 3])
def test_logging_sample_frequencies_match_the_propensities(k):
    n_items, draws = 6, 100_000
    sim = Simulator(SimConfig(n_items=n_items, n_users=50), seed=0)
    policy = LoggingPolicy(sim)
    user = int(np.flatnonzero(sim.world.user_minor)[0])
    all_slates = np.array(list(itertools.permutations(range(n_items), k)))
    expected = policy.propensities(np.full(len(all_slates), user), all_slates)

    slates, _ = policy.sample(np.full(draws, user), k, np.random.default_rng(2024))
    place = n_items ** np.arange(k - 1, -1, -1)
    index_of_code = {int(code): i for i, code in enumerate(all_slates @ place)}
    counts = np.zeros(len(all_slates))
    codes, code_counts = np.unique(slates @ place, return_counts=True)
    for code, count in zip(codes, code_counts, strict=True):
        counts[index_of_code[int(code)]] = count  # a KeyError means a repeated item

    # Each slate's count is Binomial(draws, p): a 5-standard-error band per slate fails by
    # chance with probability < 120 × 6e-7 under a correct sampler.
    frequencies = counts / draws
    standard_errors = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(frequencies - expected) <= 5 * standard_errors)
    # Pearson's chi-square over all ordered slates: mean df, sd sqrt(2 df); 6 sd is generous.
    chi_square = float((((counts - draws * expected) ** 2) / (draws * expected)).sum())
    df = len(all_slates) - 1
    assert chi_square < df + 6 * math.sqrt(2 * df)


# --- 3. statistics of the generated world --------------------------------------------------


@pytest.fixture(scope="module")
def big_world() -> World:
    return Simulator(SimConfig(n_items=2000, n_users=4000), seed=0).world


def test_the_share_of_minors_is_the_teen_segment_share(big_world):
    teen_share = SEGMENTS["teen"][2] / sum(share for _, _, share in SEGMENTS.values())
    n = big_world.n_users
    tolerance = 4 * math.sqrt(teen_share * (1 - teen_share) / n)  # ≈ 0.023 for n = 4000
    assert abs(big_world.user_minor.mean() - teen_share) < tolerance
    teen = big_world.segment_names.index("teen")
    assert np.array_equal(big_world.user_minor, big_world.user_segment == teen)


def test_segment_shares_follow_the_segment_table(big_world):
    total = sum(share for _, _, share in SEGMENTS.values())
    n = big_world.n_users
    for g, name in enumerate(big_world.segment_names):
        share = SEGMENTS[name][2] / total
        assert abs((big_world.user_segment == g).mean() - share) < 4 * math.sqrt(
            share * (1 - share) / n
        )


def test_sensitive_primary_topics_make_items_sensitive(big_world):
    sensitive_primary = big_world.topic_sensitive[big_world.item_primary_topic]
    assert sensitive_primary.any()
    assert (~sensitive_primary).any()
    assert np.all(big_world.item_sensitivity[sensitive_primary] >= 1)
    assert np.all(big_world.item_sensitivity[~sensitive_primary] <= 2)
    assert set(np.unique(big_world.item_sensitivity).tolist()) <= {0, 1, 2, 3}
    assert {big_world.topics[t] for t in np.flatnonzero(big_world.topic_sensitive)} == set(
        SENSITIVE_TOPICS
    )


def test_audience_ratings_follow_sensitivity(big_world):
    sensitivity, rating = big_world.item_sensitivity, big_world.item_rating
    assert np.any(sensitivity == 3)
    assert np.all(rating[sensitivity == 3] == ADULT_RATING)
    assert set(rating[sensitivity == 2].tolist()) <= {1, 2}
    assert set(rating[sensitivity <= 1].tolist()) <= {0, 1}
    assert set(np.unique(rating).tolist()) <= set(range(len(AUDIENCE_RATINGS)))


def test_minors_tolerate_at_most_one_and_adults_between_one_and_three(big_world):
    minor = big_world.user_minor
    assert set(big_world.user_tolerance[minor].tolist()) <= {0, 1}
    assert set(big_world.user_tolerance[~minor].tolist()) <= {1, 2, 3}
    assert set(big_world.user_tolerance[minor].tolist()) == {0, 1}
    assert set(big_world.user_tolerance[~minor].tolist()) == {1, 2, 3}


def test_item_topic_mixtures_are_distributions_led_by_the_primary_topic(big_world):
    z = big_world.item_topics
    assert z.shape == (big_world.n_items, len(TOPICS))
    assert np.all(z >= 0)
    assert np.allclose(z.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    rows = np.arange(big_world.n_items)
    primary_weight = z[rows, big_world.item_primary_topic]
    assert np.all(primary_weight >= 0.5 - 1e-12)
    others = z.copy()
    others[rows, big_world.item_primary_topic] = 0
    assert np.all(others.max(axis=1) < primary_weight)
    assert np.all((z > 0).sum(axis=1) <= 3)  # a primary and up to two secondary topics
    assert big_world.item_topic_names(0)[0] == TOPICS[big_world.item_primary_topic[0]]


def test_item_features_are_float32_with_the_configured_dimension():
    config = SimConfig(n_items=200, n_users=50, feature_dim=7)
    world = Simulator(config, seed=0).world
    assert world.item_features.shape == (200, 7)
    assert world.item_features.dtype == np.float32
    assert np.all(np.isfinite(world.item_features))


def test_quality_popularity_and_preferences_are_in_their_documented_ranges(big_world):
    assert np.all((big_world.item_quality >= 0) & (big_world.item_quality <= 1))
    assert np.all(big_world.item_popularity > 0)
    assert np.all((big_world.user_preferences >= 0) & (big_world.user_preferences <= 1))
    assert len(set(big_world.item_ids)) == big_world.n_items
    assert len(set(big_world.user_ids)) == big_world.n_users


# --- 4. the step transition ----------------------------------------------------------------


def test_click_logits_follow_the_documented_equation():
    sim = Simulator(SMALL, seed=8)
    rng = np.random.default_rng(0)
    for user, hour in [(0, 3), (1, 12), (2, 5), (3, 6)]:
        state = UserState(user=user, fatigue=random_fatigue(sim, rng), hour=hour)
        expected = [hand_logit(sim.world, sim.config, state, i) for i in range(SMALL.n_items)]
        assert np.allclose(sim.click_logits(state), expected, rtol=0, atol=1e-12)


def test_harm_follows_the_documented_equation():
    sim = Simulator(SMALL, seed=8)
    for user in range(SMALL.n_users):
        expected = [hand_harm(sim.world, sim.config, user, i) for i in range(SMALL.n_items)]
        assert np.array_equal(sim.harm(user), expected)
    minor, _ = minor_and_adult(sim)
    adults_only = np.flatnonzero(sim.world.item_rating == ADULT_RATING)
    assert np.all(sim.harm(minor)[adults_only] >= sim.config.minor_adult_harm)


def test_fatigue_decays_and_grows_by_the_position_weighted_topics_of_the_slate():
    sim = Simulator(SMALL, seed=2)
    rng = np.random.default_rng(1)
    state = UserState(user=4, fatigue=random_fatigue(sim, rng))
    slate = [5, 17, 42, 99, 150]
    result = sim.step(state, slate, np.random.default_rng(3))

    expected = [sim.config.fatigue_decay * f for f in state.fatigue.tolist()]
    for w, item in zip(hand_weights(len(slate)), slate, strict=True):
        for t in range(len(TOPICS)):
            expected[t] += w * sim.world.item_topics[item, t]
    assert np.allclose(result.state.fatigue, expected, rtol=0, atol=1e-12)

    unseen = sim.world.item_topics[slate].sum(axis=0) == 0
    assert unseen.any()
    assert np.array_equal(
        result.state.fatigue[unseen], sim.config.fatigue_decay * state.fatigue[unseen]
    )
    assert state.fatigue is not result.state.fatigue  # the old state is untouched


def test_history_grows_by_the_slate_with_clicks_and_views_matching_the_clicks():
    sim = Simulator(SMALL, seed=2)
    rng = np.random.default_rng(4)
    kinds_seen = set()
    for user in range(10):
        state = sim.initial_state(user, rng)
        while not state.left:
            slate = sim.greedy_slate(state)
            result = sim.step(state, slate, rng)
            shown = tuple(
                (int(item), "click" if j in result.clicks else "view")
                for j, item in enumerate(slate)
            )
            assert result.state.history == state.history + shown
            assert result.state.t == state.t + 1
            assert result.clicks == tuple(sorted(set(result.clicks)))
            assert all(0 <= j < len(slate) for j in result.clicks)
            kinds_seen.update(kind for _, kind in shown)
            state = result.state
    assert kinds_seen == {"click", "view"}


def test_harmful_items_shown_produce_exactly_one_event_each():
    sim = Simulator(SMALL, seed=2)
    for user in minor_and_adult(sim):
        slate = mixed_slate(sim, user)
        harmful = [i for i in slate if hand_harm(sim.world, sim.config, user, i) > 0]
        assert len(harmful) == 2
        for seed in range(20):
            state = UserState(user=user, fatigue=np.zeros(len(TOPICS)))
            result = sim.step(state, slate, np.random.default_rng(seed))
            harm_events = [item for name, item in result.events if name == EVENT_HARMFUL]
            assert harm_events == harmful

        harmless = [int(i) for i in np.flatnonzero(sim.harm(user) == 0)[:4]]
        result = sim.step(UserState(user=user, fatigue=np.zeros(len(TOPICS))), harmless)
        assert not [e for e in result.events if e[0] == EVENT_HARMFUL]


def test_reward_is_clicks_minus_position_weighted_harm():
    sim = Simulator(SMALL, seed=2)
    rng = np.random.default_rng(5)
    minor, adult = minor_and_adult(sim)
    saw_harm = False
    for user in (minor, adult):
        for _ in range(50):
            state = UserState(
                user=user, fatigue=random_fatigue(sim, rng), hour=int(rng.integers(24))
            )
            slate = rng.choice(SMALL.n_items, size=5, replace=False)
            result = sim.step(state, slate, rng)
            harm = sum(
                w * hand_harm(sim.world, sim.config, user, int(i))
                for w, i in zip(hand_weights(5), slate, strict=True)
            )
            saw_harm |= harm > 0
            expected = len(result.clicks) - sim.config.harm_weight * harm
            assert abs(result.reward - expected) < 1e-12
    assert saw_harm


def test_the_discounted_return_accumulates_gamma_weighted_rewards():
    sim = Simulator(SMALL, seed=2)
    rng = np.random.default_rng(6)
    state = sim.initial_state(7, rng)
    expected = 0.0
    while not state.left:
        result = sim.step(state, sim.greedy_slate(state), rng)
        expected += sim.config.gamma**state.t * result.reward
        state = result.state
    assert abs(state.discounted_return - expected) < 1e-12


def test_user_left_event_is_emitted_exactly_when_the_user_leaves_before_the_horizon():
    config = SimConfig(n_items=200, n_users=50, l0=-1.0)
    sim = Simulator(config, seed=2)
    rng = np.random.default_rng(7)
    early_leaves = 0
    for user in range(config.n_users):
        state = sim.initial_state(user, rng)
        while not state.left:
            result = sim.step(state, rng.choice(config.n_items, size=5, replace=False), rng)
            left_event = any(name == EVENT_LEFT for name, _ in result.events)
            if left_event:
                assert result.state.left
                assert result.events[-1][0] == EVENT_LEFT
            if result.state.left and result.state.t < config.horizon:
                assert left_event
            early_leaves += left_event
            state = result.state
    assert early_leaves > 0


def test_a_departure_is_driven_away_exactly_as_often_as_harm_adds_to_leaving():
    # One slate shown again and again from one state: given the clicks, P(leave) and the
    # probability of leaving anyway (same clicks and fatigue, no harm) are known, so the
    # number of departures driven away must match its expectation.
    config = SimConfig(n_items=200, n_users=50, l0=-2.0, l_harm=1.5)
    sim = Simulator(config, seed=3)
    rng = np.random.default_rng(11)
    user = next(u for u in range(config.n_users) if sim.harm(u).max() > 0)
    state = sim.initial_state(user, rng)
    harmful = np.flatnonzero(sim.harm(user) > 0)
    slate = np.concatenate([harmful[:2], np.setdiff1d(np.arange(200), harmful)[:3]])
    harm = sim.harm(state.user)[slate].sum()
    fatigue = fatigue_after(state.fatigue, sim.world.item_topics[slate], config.fatigue_decay)
    expected_left = expected_driven = 0.0
    left = driven = 0
    for _ in range(20_000):
        result = sim.step(state, slate, rng)
        clicks = len(result.clicks)
        base = config.l0 + config.l_fatigue * fatigue.mean() - config.l_click * clicks
        p_leave = sigmoid(base + config.l_harm * harm)
        expected_left += p_leave
        expected_driven += p_leave - sigmoid(base)
        causes = [detail for name, detail in result.events if name == EVENT_LEFT]
        left += len(causes)
        driven += causes == [LEFT_DRIVEN_AWAY]
        assert causes in ([], [LEFT_DRIVEN_AWAY], [LEFT_ANYWAY])
    assert harm > 0
    assert abs(left - expected_left) < 4 * np.sqrt(expected_left)
    assert abs(driven - expected_driven) < 4 * np.sqrt(expected_driven)


def test_without_harm_in_the_leave_model_nobody_is_driven_away():
    config = SimConfig(n_items=200, n_users=50, l0=-1.0, l_harm=0.0)
    sim = Simulator(config, seed=4)
    rng = np.random.default_rng(12)
    causes = []
    for user in range(config.n_users):
        state = sim.initial_state(user, rng)
        while not state.left:
            result = sim.step(state, rng.choice(config.n_items, size=5, replace=False), rng)
            causes += [detail for name, detail in result.events if name == EVENT_LEFT]
            state = result.state
    assert causes
    assert set(causes) == {LEFT_ANYWAY}


def test_mean_fatigue_after_a_slate_does_not_depend_on_which_items_it_shows():
    sim = Simulator(SimConfig(n_items=200, n_users=10), seed=6)
    rng = np.random.default_rng(13)
    fatigue = rng.uniform(0, 1, len(sim.world.topics))
    means = {
        round(fatigue_after(fatigue, sim.world.item_topics[slate], 0.7).mean(), 12)
        for slate in (rng.choice(200, 5, replace=False) for _ in range(50))
    }
    assert len(means) == 1


def test_segment_tastes_give_every_user_their_segments_mean_preferences():
    world = Simulator(SimConfig(n_items=200, n_users=80, tastes="segment"), seed=5).world
    means = world.segment_preferences[world.user_segment]
    np.testing.assert_array_equal(world.user_preferences, means)
    individual = Simulator(SimConfig(n_items=200, n_users=80), seed=5).world
    assert not np.array_equal(individual.user_preferences, individual.segment_preferences[
        individual.user_segment])  # fmt: skip
    with pytest.raises(ValueError, match="tastes"):
        SimConfig(tastes="personal")


def test_stepping_a_session_that_has_ended_raises():
    sim = Simulator(SMALL, seed=0)
    state = replace(sim.initial_state(0), left=True)
    with pytest.raises(ValueError, match="left"):
        sim.step(state, [0, 1, 2])


def test_a_slate_that_repeats_an_item_raises():
    sim = Simulator(SMALL, seed=0)
    state = sim.initial_state(0)
    with pytest.raises(ValueError, match="twice"):
        sim.step(state, [3, 7, 3])


def test_the_session_ends_at_the_horizon():
    config = SimConfig(n_items=200, n_users=50, horizon=4, l0=-60.0)  # nobody leaves early
    sim = Simulator(config, seed=0)
    rng = np.random.default_rng(8)
    state = sim.initial_state(3, rng)
    for t in range(config.horizon):
        assert not state.left
        result = sim.step(state, sim.greedy_slate(state), rng)
        assert all(name != EVENT_LEFT for name, _ in result.events)
        state = result.state
        assert state.t == t + 1
    assert state.left
    with pytest.raises(ValueError, match="left"):
        sim.step(state, sim.greedy_slate(state), rng)


def test_the_leave_probability_follows_the_documented_logit():
    # A strong fatigue weight, so that using f rather than f' would be detected.
    config = SimConfig(n_items=200, n_users=50, l0=-4.0, l_fatigue=8.0)
    sim = Simulator(config, seed=2)
    minor, _ = minor_and_adult(sim)
    harm = sim.harm(minor)
    slate = [
        int(np.flatnonzero(harm > 0)[0]),
        int(np.argmax(sim.world.user_preferences[minor] @ sim.world.item_topics.T)),
    ]
    state = UserState(user=minor, fatigue=random_fatigue(sim, np.random.default_rng(0)), hour=14)

    w = hand_weights(2)
    p_click = [w[j] * sigmoid(hand_logit(sim.world, config, state, i)) for j, i in enumerate(slate)]
    fatigue = config.fatigue_decay * state.fatigue + sum(
        wj * sim.world.item_topics[i] for wj, i in zip(w, slate, strict=True)
    )
    total_harm = sum(hand_harm(sim.world, config, minor, i) for i in slate)
    expected = 0.0
    for pattern in itertools.product([0, 1], repeat=2):
        probability = math.prod(p if c else 1 - p for p, c in zip(p_click, pattern, strict=True))
        logit = (
            config.l0
            + config.l_harm * total_harm
            + config.l_fatigue * float(fatigue.mean())
            - config.l_click * sum(pattern)
        )
        expected += probability * float(sigmoid(logit))

    draws = 10_000
    rng = np.random.default_rng(9)
    left = np.array([sim.step(state, slate, rng).state.left for _ in range(draws)])
    standard_error = math.sqrt(expected * (1 - expected) / draws)
    assert 0.05 < expected < 0.95
    assert abs(left.mean() - expected) < 4 * standard_error


# --- 5. expected reward ----------------------------------------------------------------


def test_expected_reward_is_the_mean_of_sampled_rewards():
    sim = Simulator(SMALL, seed=2)
    minor, _ = minor_and_adult(sim)
    slate = mixed_slate(sim, minor) + [int(sim.greedy_slate(sim.initial_state(minor))[0])]
    assert len(set(slate)) == 5
    state = UserState(user=minor, fatigue=random_fatigue(sim, np.random.default_rng(1)), hour=3)

    w = hand_weights(len(slate))
    by_hand = sum(
        wj
        * (
            sigmoid(hand_logit(sim.world, sim.config, state, i))
            - sim.config.harm_weight * hand_harm(sim.world, sim.config, minor, i)
        )
        for wj, i in zip(w, slate, strict=True)
    )
    expected = sim.expected_reward(state, slate)
    assert abs(expected - by_hand) < 1e-12

    draws = 10_000
    rng = np.random.default_rng(10)
    rewards = np.array([sim.step(state, slate, rng).reward for _ in range(draws)])
    standard_error = rewards.std(ddof=1) / math.sqrt(draws)
    assert standard_error > 0
    assert abs(rewards.mean() - expected) < 4 * standard_error


# --- 6. the greedy slate ---------------------------------------------------------------


def tiny_states(sim: Simulator) -> list[UserState]:
    rng = np.random.default_rng(12)
    states = []
    for user in range(sim.config.n_users):
        fatigue = np.zeros(len(TOPICS)) if user % 2 else random_fatigue(sim, rng)
        states.append(UserState(user=user, fatigue=fatigue, hour=int(rng.integers(24))))
    return states


@pytest.mark.parametrize("k", [2, 3])
def test_greedy_slate_is_the_one_step_optimum_over_all_ordered_slates(k):
    sim = Simulator(SimConfig(n_items=8, n_users=30), seed=3)
    slates = list(itertools.permutations(range(8), k))
    saw_harm = False
    for state in tiny_states(sim):
        greedy = sim.greedy_slate(state, k=k)
        assert len(greedy) == k
        assert len(set(greedy.tolist())) == k
        values = sim.item_values(state)[greedy]
        assert np.all(np.diff(values) <= 0)  # best first
        best = max(sim.expected_reward(state, s) for s in slates)
        assert sim.expected_reward(state, greedy) >= best - 1e-12
        saw_harm |= bool((sim.harm(state.user) > 0).any())
    assert saw_harm


def test_greedy_slate_lists_the_highest_value_items_best_first():
    sim = Simulator(SMALL, seed=2)
    rng = np.random.default_rng(17)
    for user in range(0, SMALL.n_users, 5):
        state = UserState(user=user, fatigue=random_fatigue(sim, rng), hour=int(rng.integers(24)))
        values = sim.item_values(state)
        for k in (3, 5, 10):
            greedy = sim.greedy_slate(state, k=k)
            assert np.all(np.diff(values[greedy]) <= 0)
            assert np.allclose(values[greedy], np.sort(values)[::-1][:k], rtol=0, atol=0)


@pytest.mark.parametrize("k", [2, 3])
def test_greedy_slate_with_a_mask_returns_only_allowed_items_and_is_optimal_among_them(k):
    sim = Simulator(SimConfig(n_items=8, n_users=30), seed=3)
    rng = np.random.default_rng(13)
    for state in tiny_states(sim):
        allowed = rng.random(8) < 0.5
        allowed[rng.choice(8, size=k, replace=False)] = True  # at least k allowed items
        greedy = sim.greedy_slate(state, k=k, allowed=allowed)
        assert len(greedy) == k
        assert len(set(greedy.tolist())) == k
        assert allowed[greedy].all()
        permitted = np.flatnonzero(allowed).tolist()
        best = max(sim.expected_reward(state, s) for s in itertools.permutations(permitted, k))
        assert sim.expected_reward(state, greedy) >= best - 1e-12


def test_greedy_slate_shrinks_to_the_allowed_items_when_fewer_than_k_are_allowed():
    sim = Simulator(SimConfig(n_items=8, n_users=30), seed=3)
    state = UserState(user=0, fatigue=np.zeros(len(TOPICS)))
    allowed = np.zeros(8, dtype=bool)
    allowed[5] = True
    assert sim.greedy_slate(state, k=3, allowed=allowed).tolist() == [5]


def test_greedy_slate_can_exclude_harmful_items_with_a_mask():
    sim = Simulator(SMALL, seed=2)
    minor, _ = minor_and_adult(sim)
    state = UserState(user=minor, fatigue=np.zeros(len(TOPICS)))
    safe = sim.harm(minor) == 0
    greedy = sim.greedy_slate(state, allowed=safe)
    assert len(greedy) == SMALL.slate_size
    assert sim.slate_utilities(state, greedy)["safety"] == 0


# --- 7. respond_batch ----------------------------------------------------------------------


def test_respond_batch_matches_the_single_state_model_in_expectation():
    sim = Simulator(SMALL, seed=2)
    rng = np.random.default_rng(14)
    minor, adult = minor_and_adult(sim)
    cases = [
        (minor, random_fatigue(sim, rng), 2, mixed_slate(sim, minor) + [0]),
        (adult, np.zeros(len(TOPICS)), 14, sim.greedy_slate(sim.initial_state(adult)).tolist()),
        (adult, random_fatigue(sim, rng), 23, mixed_slate(sim, adult) + [1]),
    ]
    draws = 20_000
    users = np.repeat([u for u, _, _, _ in cases], draws)
    fatigue = np.repeat(np.stack([f for _, f, _, _ in cases]), draws, axis=0)
    hours = np.repeat([h for _, _, h, _ in cases], draws)
    slates = np.repeat(np.array([s for _, _, _, s in cases]), draws, axis=0)

    clicks, rewards = sim.respond_batch(users, fatigue, hours, slates, np.random.default_rng(15))
    assert clicks.shape == slates.shape
    assert clicks.dtype == bool
    assert rewards.shape == (len(users),)

    for c, (user, f, hour, slate) in enumerate(cases):
        rows = slice(c * draws, (c + 1) * draws)
        state = UserState(user=user, fatigue=f, hour=hour)
        rate = position_weights(len(slate)) * sigmoid(sim.click_logits(state)[slate])
        standard_errors = np.sqrt(rate * (1 - rate) / draws)
        assert np.all(np.abs(clicks[rows].mean(axis=0) - rate) < 4.5 * standard_errors)

        expected = sim.expected_reward(state, slate)
        assert (
            abs(
                expected
                - rate.sum()
                + sim.config.harm_weight * (position_weights(len(slate)) @ sim.harm(user)[slate])
            )
            < 1e-12
        )
        standard_error = rewards[rows].std(ddof=1) / math.sqrt(draws)
        assert abs(rewards[rows].mean() - expected) < 4.5 * standard_error


def test_respond_batch_rewards_are_clicks_minus_position_weighted_harm():
    sim = Simulator(SMALL, seed=2)
    policy = LoggingPolicy(sim)
    rng = np.random.default_rng(16)
    users = np.tile(np.arange(SMALL.n_users), 4)
    slates, _ = policy.sample(users, 5, rng)
    fatigue = rng.uniform(0, 1, size=(len(users), len(TOPICS)))
    hours = rng.integers(0, 24, size=len(users))
    clicks, rewards = sim.respond_batch(users, fatigue, hours, slates, rng)
    w = hand_weights(5)
    for row in range(len(users)):
        harm = sum(
            wj * hand_harm(sim.world, sim.config, int(users[row]), int(i))
            for wj, i in zip(w, slates[row], strict=True)
        )
        assert abs(rewards[row] - (clicks[row].sum() - sim.config.harm_weight * harm)) < 1e-12


# --- 8. slate utilities ------------------------------------------------------------------


def test_slate_utilities_report_the_four_criteria():
    sim = Simulator(SMALL, seed=2)
    minor, adult = minor_and_adult(sim)
    for user in (minor, adult):
        state = UserState(user=user, fatigue=random_fatigue(sim, np.random.default_rng(user)))
        slate = mixed_slate(sim, user)
        utilities = sim.slate_utilities(state, slate)
        assert set(utilities) == {"relevance", "safety", "diversity", "overall"}

        w = hand_weights(len(slate))
        relevance = sum(
            wj * sigmoid(hand_logit(sim.world, sim.config, state, i))
            for wj, i in zip(w, slate, strict=True)
        )
        diversity = len({int(sim.world.item_primary_topic[i]) for i in slate}) / len(slate)
        assert abs(utilities["relevance"] - relevance) < 1e-12
        assert utilities["diversity"] == diversity
        assert (
            abs(
                utilities["overall"]
                - (relevance + sim.config.harm_weight * utilities["safety"] + 0.5 * diversity)
            )
            < 1e-12
        )
        # relevance and safety are exactly the two terms of the expected reward
        assert (
            abs(
                utilities["relevance"]
                + sim.config.harm_weight * utilities["safety"]
                - sim.expected_reward(state, slate)
            )
            < 1e-12
        )


def test_safety_is_zero_for_harmless_slates_and_negative_otherwise():
    sim = Simulator(SMALL, seed=2)
    for user in minor_and_adult(sim):
        state = UserState(user=user, fatigue=np.zeros(len(TOPICS)))
        harm = sim.harm(user)
        harmless = np.flatnonzero(harm == 0)[:5]
        assert sim.slate_utilities(state, harmless)["safety"] == 0
        for slate in (mixed_slate(sim, user), np.flatnonzero(harm > 0)[:1]):
            safety = sim.slate_utilities(state, slate)["safety"]
            by_hand = -sum(
                wj * hand_harm(sim.world, sim.config, user, int(i))
                for wj, i in zip(hand_weights(len(slate)), slate, strict=True)
            )
            assert safety < 0
            assert abs(safety - by_hand) < 1e-12


def test_diversity_is_one_for_distinct_primary_topics_and_one_over_k_for_a_single_topic():
    sim = Simulator(SMALL, seed=2)
    state = UserState(user=0, fatigue=np.zeros(len(TOPICS)))
    primary = sim.world.item_primary_topic
    distinct = [int(np.flatnonzero(primary == t)[0]) for t in np.unique(primary)[:4]]
    assert sim.slate_utilities(state, distinct)["diversity"] == 1.0
    topic = np.bincount(primary).argmax()
    same = np.flatnonzero(primary == topic)[:4]
    assert len(same) == 4
    assert sim.slate_utilities(state, same)["diversity"] == 0.25
