"""Agreement figures against references: Krippendorff's worked example, the krippendorff
package (an independent implementation), and Cohen's kappa by hand."""

import math
import random

import krippendorff
import numpy as np
import pytest

from annotation import agreement

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the example with
# missing values: four observers, twelve units; nominal alpha is 0.743.
K2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def tally(units: list[list]) -> dict:
    """The incremental path: each unit's values arrive one at a time."""
    coincidences: dict = {}
    for values in units:
        seen: list = []
        for value in values:
            change = dict(agreement.unit_coincidences([*seen, value]))
            agreement.add(change, agreement.unit_coincidences(seen), sign=-1)
            agreement.add(coincidences, change)
            seen.append(value)
    return coincidences


def by_unit(rows: list[list]) -> list[list[str]]:
    return [[str(r[u]) for r in rows if r[u] is not None] for u in range(len(rows[0]))]


def test_alpha_matches_krippendorffs_worked_example():
    alpha = agreement.alpha_nominal(tally(by_unit(K2011)))

    assert alpha == pytest.approx(0.743, abs=5e-4)


def test_alpha_matches_an_independent_implementation_on_random_labels():
    rng = random.Random(7)
    categories = ["a", "b", "tie", "cannot_tell"]
    for _ in range(20):
        units = [
            [rng.choice(categories) for _ in range(rng.randint(1, 5))]
            for _ in range(rng.randint(5, 60))
        ]
        reviewers = max(len(u) for u in units)
        matrix = np.full((reviewers, len(units)), np.nan)
        for column, values in enumerate(units):
            for row, value in enumerate(values):
                matrix[row, column] = categories.index(value)
        expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
        found = agreement.alpha_nominal(tally(units))
        if math.isnan(expected):
            assert found is None
        else:
            assert found == pytest.approx(expected, abs=1e-9)


def test_the_order_labels_arrive_in_does_not_change_alpha():
    units = [["a", "b", "a"], ["tie", "tie"], ["b", "b", "cannot_tell", "b"]]
    reordered = [list(reversed(u)) for u in units]

    assert agreement.alpha_nominal(tally(units)) == pytest.approx(
        agreement.alpha_nominal(tally(reordered))
    )


def test_cohens_kappa_by_hand():
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15.
    # p_o = 35/50 = 0.7; p_e = 0.5·0.6 + 0.5·0.4 = 0.5; κ = 0.2/0.5 = 0.4.
    confusion = {("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15}

    assert agreement.cohens_kappa(confusion) == pytest.approx(0.4)


def test_the_ceiling_brackets_what_agreement_allows():
    assert agreement.ceiling(1.0) == (1.0, 1.0)
    low, high = agreement.ceiling(0.82)
    assert low == 0.82
    assert high == pytest.approx((1 + math.sqrt(0.64)) / 2)  # 0.9
    assert agreement.ceiling(0.4) is None


def test_majority_and_agreeing_pairs():
    assert agreement.majority(["a", "a", "b"]) == ("a", pytest.approx(2 / 3))
    assert agreement.majority(["a", "b"]) == (None, 0.5)
    assert agreement.agreeing_pairs(["a", "a", "b"]) == (1, 3)
