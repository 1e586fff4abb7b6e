"""Tests of off-policy evaluation (training/ml/ope.py): hand-computed values of every
estimator, the identities that relate them, unbiasedness and interval coverage on a
synthetic bandit whose true value is known, input validation, and the effective sample size.

Run with ``pytest -p no:django``: nothing here touches the database.
"""

from __future__ import annotations

import numpy as np
import pytest

from training.ml.ope import (
    Estimate,
    bootstrap_interval,
    dm,
    dr,
    effective_sample_size,
    evaluate,
    importance_weights,
    ips,
    sndr,
    snips,
)

# Three logged rows, used by the hand-computed tests.
REWARD = np.array([1.0, 0.0, 2.0])
PSCORE = np.array([0.5, 0.25, 0.5])
TARGET = np.array([0.25, 0.5, 0.75])
# w = target / pscore = [0.5, 2.0, 1.5], Σw = 4
Q_LOGGED = np.array([0.5, 0.5, 1.0])
Q_TARGET = np.array([0.4, 0.6, 1.1])


# --- hand-computed values ---------------------------------------------------------------------


def test_importance_weights_are_target_over_logging():
    assert importance_weights(PSCORE, TARGET) == pytest.approx([0.5, 2.0, 1.5])


def test_ips_by_hand():
    # w r = [0.5·1, 2·0, 1.5·2] = [0.5, 0, 3] → mean = 3.5 / 3
    assert ips(REWARD, PSCORE, TARGET) == pytest.approx(3.5 / 3)


def test_snips_by_hand():
    # Σ w r = 3.5, Σ w = 0.5 + 2 + 1.5 = 4 → 3.5 / 4
    assert snips(REWARD, PSCORE, TARGET) == pytest.approx(0.875)


def test_dm_by_hand():
    # mean(q_target) = (0.4 + 0.6 + 1.1) / 3 = 2.1 / 3
    assert dm(Q_TARGET) == pytest.approx(0.7)


def test_dr_by_hand():
    # r − q_logged = [0.5, −0.5, 1.0]; w (r − q_logged) = [0.25, −1.0, 1.5], sum 0.75
    # mean(q_target + w (r − q_logged)) = (2.1 + 0.75) / 3 = 0.95
    assert dr(REWARD, PSCORE, TARGET, Q_LOGGED, Q_TARGET) == pytest.approx(0.95)


def test_sndr_by_hand():
    # mean(q_target) + Σ w (r − q_logged) / Σ w = 0.7 + 0.75 / 4 = 0.8875
    assert sndr(REWARD, PSCORE, TARGET, Q_LOGGED, Q_TARGET) == pytest.approx(0.8875)


def test_effective_sample_size_by_hand():
    # (Σw)² / Σw² = 4² / (0.25 + 4 + 2.25) = 16 / 6.5
    assert effective_sample_size([0.5, 2.0, 1.5]) == pytest.approx(16 / 6.5)


def test_estimators_reduce_over_the_last_axis():
    # Two copies of the rows as a batch: one value per copy, equal to the 1-D value.
    batch = [np.stack([a, a]) for a in (REWARD, PSCORE, TARGET, Q_LOGGED, Q_TARGET)]
    assert dr(*batch) == pytest.approx([0.95, 0.95])
    assert snips(*batch[:3]) == pytest.approx([0.875, 0.875])


# --- identities between estimators ------------------------------------------------------------


def test_snips_equals_ips_when_weights_average_to_one():
    reward = np.array([3.0, -1.0, 0.5, 2.0])
    pscore = np.array([0.4, 0.2, 0.5, 0.25])
    target = np.array([0.2, 0.3, 0.5, 0.25])  # w = [0.5, 1.5, 1, 1], mean 1
    assert snips(reward, pscore, target) == pytest.approx(ips(reward, pscore, target))


def test_snips_equals_ips_on_policy():
    # On-policy every weight is 1: both are the plain mean of the rewards, 1.
    assert snips(REWARD, PSCORE, PSCORE) == pytest.approx(1.0)
    assert ips(REWARD, PSCORE, PSCORE) == pytest.approx(1.0)


def test_dr_equals_direct_method_when_the_model_fits_every_logged_reward():
    # q_logged = r zeroes every residual, leaving mean(q_target).
    assert dr(REWARD, PSCORE, TARGET, REWARD, Q_TARGET) == pytest.approx(dm(Q_TARGET))
    assert sndr(REWARD, PSCORE, TARGET, REWARD, Q_TARGET) == pytest.approx(dm(Q_TARGET))


def test_dr_equals_ips_and_sndr_equals_snips_when_the_model_is_zero():
    zero = np.zeros_like(REWARD)
    assert dr(REWARD, PSCORE, TARGET, zero, zero) == pytest.approx(ips(REWARD, PSCORE, TARGET))
    assert sndr(REWARD, PSCORE, TARGET, zero, zero) == pytest.approx(snips(REWARD, PSCORE, TARGET))


# --- a synthetic bandit with a known value ----------------------------------------------------

LOGGING = np.array([0.5, 0.3, 0.2])  # π_0(a) for three actions, no context
TARGET_POLICY = np.array([0.1, 0.3, 0.6])  # π(a)
MEAN_REWARD = np.array([0.2, 0.5, 0.8])  # Bernoulli reward means
TRUE_VALUE = 0.1 * 0.2 + 0.3 * 0.5 + 0.6 * 0.8  # = 0.65


def _logged_bandit(rng: np.random.Generator, repetitions: int, rows: int):
    """reward, pscore, target_pscore as (repetitions, rows) arrays logged under π_0."""
    actions = rng.choice(3, size=(repetitions, rows), p=LOGGING)
    reward = (rng.random((repetitions, rows)) < MEAN_REWARD[actions]).astype(float)
    return reward, LOGGING[actions], TARGET_POLICY[actions]


def test_ips_is_unbiased_on_a_synthetic_bandit():
    reward, pscore, target = _logged_bandit(np.random.default_rng(0), repetitions=2000, rows=200)
    estimates = ips(reward, pscore, target)  # one per repetition
    standard_error = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - TRUE_VALUE) < 4 * standard_error


def test_ips_bootstrap_interval_covers_the_true_value_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    reward, pscore, target = _logged_bandit(rng, repetitions=200, rows=400)
    covered = [
        low <= TRUE_VALUE <= high
        for low, high in (
            bootstrap_interval(ips, r, p, t, n_boot=400, rng=rng)
            for r, p, t in zip(reward, pscore, target, strict=True)
        )
    ]
    # 200 repetitions: the binomial standard deviation of a 95% rate is 1.5 points.
    assert 0.90 <= np.mean(covered) <= 0.99


# --- bootstrap intervals and evaluate ---------------------------------------------------------


def test_bootstrap_interval_of_a_mean_matches_the_normal_interval():
    sample = np.random.default_rng(2).normal(3.0, 2.0, size=2000)
    low, high = bootstrap_interval(lambda x: np.mean(x, axis=-1), sample, n_boot=2000, rng=3)
    half_width = 1.96 * sample.std() / np.sqrt(len(sample))
    assert low == pytest.approx(sample.mean() - half_width, abs=0.02)
    assert high == pytest.approx(sample.mean() + half_width, abs=0.02)


def test_bootstrap_interval_is_deterministic_by_seed():
    first = bootstrap_interval(ips, REWARD, PSCORE, TARGET, n_boot=50, rng=7)
    assert bootstrap_interval(ips, REWARD, PSCORE, TARGET, n_boot=50, rng=7) == first


def test_evaluate_returns_every_estimator_with_an_interval_around_it():
    rng = np.random.default_rng(4)
    reward, pscore, target = (a[0] for a in _logged_bandit(rng, repetitions=1, rows=500))
    q_logged = np.full_like(reward, 0.5)
    q_target = np.full_like(reward, 0.6)
    results = evaluate(reward, pscore, target, q_logged, q_target, n_boot=200, rng=5)
    assert set(results) == {"ips", "snips", "dr", "sndr"}
    assert results["dr"].value == pytest.approx(dr(reward, pscore, target, q_logged, q_target))
    for estimate in results.values():
        assert isinstance(estimate, Estimate)
        assert estimate.low <= estimate.value <= estimate.high
        assert estimate.ess == pytest.approx(effective_sample_size(target / pscore))


def test_evaluate_without_a_reward_model_gives_ips_and_snips_only():
    results = evaluate(REWARD, PSCORE, TARGET, n_boot=20, rng=0)
    assert set(results) == {"ips", "snips"}


def test_ess_of_uniform_weights_is_the_number_of_rows():
    assert effective_sample_size(np.full(7, 0.3)) == pytest.approx(7)
    results = evaluate(REWARD, PSCORE, PSCORE, n_boot=20, rng=0)  # on-policy: w = 1
    assert results["ips"].ess == pytest.approx(3)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ((REWARD, PSCORE[:2], TARGET), "pscore has shape"),
        ((REWARD, PSCORE, TARGET[:2]), "target_pscore has shape"),
        ((REWARD, [0.5, 0.0, 0.5], TARGET), r"pscore .* must lie in \(0, 1\].* row 1"),
        ((REWARD, [0.5, 1.5, 0.5], TARGET), r"pscore .* must lie in \(0, 1\]"),
        ((REWARD, PSCORE, [0.25, -0.1, 0.75]), r"target_pscore .* must lie in \[0, 1\].* row 1"),
        ((REWARD, PSCORE, [0.25, 0.5, 1.2]), r"target_pscore .* must lie in \[0, 1\].* row 2"),
        (([1.0, np.nan, 2.0], PSCORE, TARGET), "reward contains NaN or infinity at row 1"),
        ((REWARD, [0.5, 0.25, np.inf], TARGET), "pscore contains NaN or infinity at row 2"),
        (([], [], []), "reward must be a non-empty array"),
    ],
)
def test_invalid_inputs_are_rejected_naming_the_argument(arguments, named):
    with pytest.raises(ValueError, match=named):
        ips(*arguments)


def test_dr_rejects_a_reward_model_of_the_wrong_shape_or_with_nan():
    with pytest.raises(ValueError, match="q_logged has shape"):
        dr(REWARD, PSCORE, TARGET, Q_LOGGED[:2], Q_TARGET)
    with pytest.raises(ValueError, match="q_target contains NaN"):
        sndr(REWARD, PSCORE, TARGET, Q_LOGGED, [0.4, np.nan, 1.1])


def test_self_normalized_estimators_reject_a_policy_that_never_takes_a_logged_action():
    with pytest.raises(ValueError, match="target_pscore is zero on every logged row"):
        snips(REWARD, PSCORE, np.zeros(3))


def test_evaluate_needs_both_reward_model_arrays_or_neither():
    with pytest.raises(ValueError, match="q_logged and q_target"):
        evaluate(REWARD, PSCORE, TARGET, q_logged=Q_LOGGED, n_boot=10, rng=0)


def test_bootstrap_rejects_bad_settings():
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_interval(ips, REWARD, PSCORE, TARGET, alpha=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_interval(ips, REWARD, PSCORE, TARGET, n_boot=0)
    with pytest.raises(ValueError, match="array 1 must be 1-D"):
        bootstrap_interval(ips, REWARD, PSCORE[:2], TARGET)
