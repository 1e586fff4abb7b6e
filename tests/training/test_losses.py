"""The Davidson (1970) loss: values computed by hand, ties, weights, missing labels and
numerical stability (training/ml/losses.py)."""

from __future__ import annotations

import math

import pytest
import torch

from training.ml.losses import (
    NO_LABEL,
    OUTCOME_A,
    OUTCOME_B,
    OUTCOME_TIE,
    davidson_log_likelihood,
    davidson_log_probabilities,
)

# u_a = 1, u_b = 0, ν = 1:
#   Z = e^1 + e^0 + 1 · e^{(1 + 0)/2} = 2.718282 + 1 + 1.648721 = 5.367003,  log Z = 1.680270
#   log P(A) = 1 − 1.680270 = −0.680270,  log P(B) = −1.680270,  log P(tie) = 0.5 − 1.680270
LOG_P_A, LOG_P_B, LOG_P_TIE = -0.680270, -1.680270, -1.180270


def tensor(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_log_probabilities_match_the_hand_computed_values():
    log_p = davidson_log_probabilities(tensor(1.0), tensor(0.0), torch.tensor(0.0))
    assert log_p[0].tolist() == pytest.approx([LOG_P_A, LOG_P_B, LOG_P_TIE], abs=1e-6)


def test_equal_utilities_split_the_non_tie_mass_evenly():
    # u_a = u_b = 0, ν = 0.5: Z = 1 + 1 + 0.5 = 2.5, so P(A) = P(B) = 0.4 and P(tie) = 0.2.
    p = davidson_log_probabilities(tensor(0.0), tensor(0.0), tensor(math.log(0.5))).exp()
    assert p[0].tolist() == pytest.approx([0.4, 0.4, 0.2], abs=1e-12)


def test_each_outcome_scores_its_own_probability():
    u_a, u_b, log_nu = tensor(1.0, 1.0, 1.0), tensor(0.0, 0.0, 0.0), torch.tensor(0.0)
    for outcome, expected in [(OUTCOME_A, LOG_P_A), (OUTCOME_B, LOG_P_B), (OUTCOME_TIE, LOG_P_TIE)]:
        ll = davidson_log_likelihood(u_a, u_b, torch.full((3,), outcome), log_nu)
        assert ll.item() == pytest.approx(expected, abs=1e-6)


def test_weights_give_a_weighted_mean():
    # (1 · log P(A) + 3 · log P(tie)) / 4 = (−0.680270 − 3 · 1.180270) / 4 = −1.055270
    ll = davidson_log_likelihood(
        tensor(1.0, 1.0), tensor(0.0, 0.0), torch.tensor([0, 2]), torch.tensor(0.0), tensor(1, 3)
    )
    assert ll.item() == pytest.approx(-1.055270, abs=1e-6)


def test_missing_labels_are_skipped():
    with_missing = davidson_log_likelihood(
        tensor(1.0, 5.0), tensor(0.0, -5.0), torch.tensor([OUTCOME_A, NO_LABEL]), torch.tensor(0.0)
    )
    assert with_missing.item() == pytest.approx(LOG_P_A, abs=1e-6)
    nothing = davidson_log_likelihood(tensor(1.0), tensor(0.0), torch.tensor([NO_LABEL]), tensor(0))
    assert nothing.item() == 0.0


def test_probabilities_sum_to_one_and_swapping_sides_swaps_a_and_b():
    u_a, u_b = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    log_nu = torch.tensor(-0.3, dtype=torch.float64)
    p = davidson_log_probabilities(u_a, u_b, log_nu).exp()
    swapped = davidson_log_probabilities(u_b, u_a, log_nu).exp()
    assert torch.allclose(p.sum(dim=-1), torch.ones(50, dtype=torch.float64))
    assert torch.allclose(p[:, [1, 0, 2]], swapped)


def test_only_the_utility_difference_matters():
    base = davidson_log_probabilities(tensor(0.3), tensor(-0.2), torch.tensor(0.1))
    shifted = davidson_log_probabilities(tensor(100.3), tensor(99.8), torch.tensor(0.1))
    assert torch.allclose(base, shifted)


def test_huge_utilities_neither_overflow_nor_lose_the_gradient():
    u_a = torch.tensor([1000.0, -1000.0], requires_grad=True)
    u_b = torch.tensor([-1000.0, 1000.0])
    ll = davidson_log_likelihood(u_a, u_b, torch.tensor([OUTCOME_A, OUTCOME_A]), torch.tensor(0.0))
    assert torch.isfinite(ll)
    assert ll.item() == pytest.approx(-1000.0, rel=1e-3)  # (0 + (−2000)) / 2
    ll.backward()
    assert torch.isfinite(u_a.grad).all()
    assert u_a.grad[1] > 0  # the wrongly ranked pair pushes u_a up


def test_reduction_over_chosen_axes_keeps_the_others():
    u_a = torch.zeros(3, 4, 2)
    u_b = torch.zeros(3, 4, 2)
    outcome = torch.zeros(4, 2, dtype=torch.long)
    ll = davidson_log_likelihood(u_a, u_b, outcome, torch.tensor(0.0), dim=(1, 2))
    assert ll.shape == (3,)
    assert torch.allclose(ll, torch.full((3,), math.log(1 / 3)))
