"""Simulated experts (training/ml/experts.py): their utilities are the simulator's (with the
user's hidden traits, or what the context tells of them), their labels follow the Davidson
model, the Bayes-optimal accuracy is exact, and the default noise level is the documented
one."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch

from training.ml import experts as E
from training.ml.features import schema_for_simulator
from training.ml.losses import davidson_log_probabilities
from training.ml.simulator import LoggingPolicy, SimConfig, Simulator

SMALL = SimConfig(n_items=300, n_users=60)


@pytest.fixture(scope="module")
def small_pairs():
    sim = Simulator(SMALL, seed=1)
    return sim, E.sample_pairs(sim, 1200, np.random.default_rng(0))


def test_true_utilities_are_the_simulators_slate_utilities():
    sim = Simulator(SMALL, seed=1)
    pairs = E.sample_pairs(sim, 300, np.random.default_rng(0), E.ExpertConfig(knowledge="user"))
    for row in range(0, len(pairs), 29):
        state = pairs.states[pairs.context[row]]
        for slate, utilities in [
            (pairs.slates_a[row], pairs.utilities_a[row]),
            (pairs.slates_b[row], pairs.utilities_b[row]),
        ]:
            expected = sim.slate_utilities(state, slate)
            assert utilities.tolist() == pytest.approx([expected[c] for c in E.CRITERIA])


def test_context_utilities_are_those_of_a_user_with_the_expected_traits(small_pairs):
    """The experts judge by the simulator's utilities of a stand-in user whose preferences are
    the segment's mean and whose harm is the audience's mean harm: the context's utilities
    depend on nothing the context does not show."""
    sim, pairs = small_pairs
    world = sim.world
    for c in range(0, len(pairs.states), 37):
        state = pairs.states[c]
        rows = np.flatnonzero(pairs.context == c)
        judged = E.context_utilities(sim, state, pairs.slates_a[rows])
        assert np.allclose(judged, pairs.utilities_a[rows])
        peers = np.flatnonzero(world.user_minor == world.user_minor[state.user])
        mean_harm = np.mean([sim.harm(int(u)) for u in peers], axis=0)
        stand_in = Simulator(SMALL, seed=1)
        stand_in.world.user_preferences[state.user] = world.segment_preferences[
            world.user_segment[state.user]
        ]
        stand_in._sensitive_harm_cache[state.user] = mean_harm
        for slate, utilities in zip(pairs.slates_a[rows], judged, strict=True):
            expected = stand_in.slate_utilities(state, slate)
            assert utilities.tolist() == pytest.approx([expected[name] for name in E.CRITERIA])
    state, slates = pairs.states[0], pairs.slates_a[:5]
    peers = np.flatnonzero(world.user_segment == world.user_segment[state.user])
    other = replace(state, user=int(peers[peers != state.user][0]))  # same context, other user
    assert np.allclose(
        E.context_utilities(sim, state, slates), E.context_utilities(sim, other, slates)
    )
    assert not np.allclose(
        E.true_utilities(sim, state, slates), E.true_utilities(sim, other, slates)
    )


def test_probabilities_follow_davidson_and_labels_follow_the_probabilities():
    delta = np.linspace(-4, 4, 9)
    probabilities = E.davidson_probabilities(delta, 0.5)
    expected = davidson_log_probabilities(
        torch.tensor(delta), torch.zeros(9, dtype=torch.float64), torch.tensor(np.log(0.5))
    ).exp()
    assert np.allclose(probabilities, expected.numpy())
    rng = np.random.default_rng(1)
    draws = E.sample_outcomes(np.tile(probabilities[2], (40_000, 1)), rng)
    frequencies = np.bincount(draws, minlength=3) / len(draws)
    assert frequencies == pytest.approx(probabilities[2], abs=0.01)


def test_bayes_optimal_accuracy_is_exact_and_bounds_every_predictor(small_pairs):
    # One pair: P(A) = 0.5, P(B) = 0.3, P(tie) = 0.2. Naming A is right 0.5 / 0.8 of the time.
    assert E.bayes_optimal_accuracy(np.array([[0.5, 0.3, 0.2]])) == pytest.approx(0.625)
    sim, pairs = small_pairs
    true_side = pairs.utilities_a >= pairs.utilities_b
    bayes = E.bayes_optimal_accuracy(pairs.probabilities)
    assert E.expected_accuracy(pairs.probabilities, true_side) == pytest.approx(bayes)
    guesses = np.random.default_rng(2).random(pairs.outcomes.shape) < 0.5
    assert E.expected_accuracy(pairs.probabilities, guesses) < bayes
    hidden = E.score_pairs(sim, pairs, E.true_utilities) >= 0  # another predictor
    assert E.expected_accuracy(pairs.probabilities, hidden) <= bayes
    decided = pairs.outcomes < 2
    realized = (np.where(true_side, 0, 1) == pairs.outcomes)[decided].mean()
    assert realized == pytest.approx(bayes, abs=0.03)  # 1,200 pairs × 4 labels


def test_the_default_noise_is_moderate():
    """Bayes-optimal accuracy 0.86 per criterion where the utilities differ, 0.80 over all
    labels (module docstring)."""
    sim = Simulator(seed=0)
    pairs = E.sample_pairs(sim, 8000, np.random.default_rng(3))
    differ = np.abs(pairs.utilities_a - pairs.utilities_b) > 1e-12
    for c, name in enumerate(pairs.criteria):
        informative = E.bayes_optimal_accuracy(pairs.probabilities[differ[:, c], c])
        assert informative == pytest.approx(0.86, abs=0.015), name
    assert E.bayes_optimal_accuracy(pairs.probabilities) == pytest.approx(0.80, abs=0.015)


def test_the_expert_config_is_checked():
    with pytest.raises(ValueError, match="knowledge"):
        E.ExpertConfig(knowledge="everything")
    with pytest.raises(ValueError, match="temperatures"):
        E.ExpertConfig(criteria=("overall",))


def test_logged_slates_follow_the_logging_policy():
    sim = Simulator(SimConfig(n_items=6, n_users=50), seed=0)
    policy = LoggingPolicy(sim)
    slates = E.logged_slates(policy, np.zeros(60_000, dtype=int), 2, np.random.default_rng(4))
    ordered = np.array(list(itertools.permutations(range(6), 2)))
    propensities = policy.propensities(np.zeros(len(ordered), dtype=int), ordered)
    counts = np.array([np.sum((slates[:, 0] == a) & (slates[:, 1] == b)) for a, b in ordered])
    expected = propensities * len(slates)
    chi_square = ((counts - expected) ** 2 / expected).sum()
    assert chi_square < 60  # 29 degrees of freedom: p ≈ 0.0006 under the null


def test_pairs_are_reproducible_varied_and_shuffled(small_pairs):
    sim, pairs = small_pairs
    again = E.sample_pairs(sim, 1200, np.random.default_rng(0))
    assert np.array_equal(pairs.slates_a, again.slates_a)
    assert np.array_equal(pairs.outcomes, again.outcomes)
    assert set(np.unique(pairs.kinds)) == {0, 1, 2}
    for slates in (pairs.slates_a, pairs.slates_b):
        assert all(len(set(row)) == len(row) for row in slates.tolist())
    decided = pairs.outcomes[pairs.outcomes < 2]
    assert decided.mean() == pytest.approx(0.5, abs=0.05)  # no side is favoured


def test_contexts_are_live_sessions_of_returning_users(small_pairs):
    sim, pairs = small_pairs
    assert not any(state.left for state in pairs.states)
    lengths = [len(state.history) for state in pairs.states]
    assert max(lengths) > 5 * sim.config.slate_size
    assert any(state.t > 0 for state in pairs.states)


def test_contexts_of_users_without_earlier_impressions_are_new_sessions():
    sim = Simulator(SMALL, seed=1)
    config = E.ExpertConfig(earlier_impressions=0, session_steps=0)
    states = E.sample_contexts(sim, 3, np.random.default_rng(0), config)
    assert [(len(s.history), s.t, s.left) for s in states] == [(0, 0, False)] * 3


def test_the_featurizer_gives_one_row_per_slate(small_pairs):
    sim, pairs = small_pairs
    x_a, x_b = E.Featurizer(sim)(pairs.take(np.arange(50)))
    assert x_a.shape == x_b.shape == (50, schema_for_simulator(sim).dim)
    assert torch.isfinite(x_a).all()
