"""Training and evaluation around the model (training/ml/train_reward.py): metrics computed by
hand, the logger, input checks, and demonstrations turned into pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.ml.reward_model import RewardModelConfig
from training.ml.train_reward import (
    PreferenceData,
    Rejection,
    demonstration_pairs,
    evaluation_report,
    reliability_table,
    train_reward_model,
)

CRITERIA = ("safety", "relevance", "diversity", "overall")


def test_evaluation_metrics_match_the_hand_computation():
    # Rows: confidence 0.6 (A named; 0.48 / 0.80), twice; 0.9 (0.72 / 0.80), twice; a tie;
    # a missing label.
    probabilities = np.array(
        [
            [[0.48, 0.32, 0.2]],
            [[0.48, 0.32, 0.2]],
            [[0.08, 0.72, 0.2]],
            [[0.72, 0.08, 0.2]],
            [[0.40, 0.40, 0.2]],
            [[0.40, 0.40, 0.2]],
        ]
    )
    outcomes = np.array([[0], [1], [1], [0], [2], [-1]])
    report = evaluation_report(probabilities, outcomes, ["overall"])
    assert report["labels"] == 5
    assert report["non_tie_labels"] == 4
    assert report["accuracy"] == pytest.approx(3 / 4)
    expected_log_loss = -(math.log(0.48) + math.log(0.32) + 2 * math.log(0.72) + math.log(0.2)) / 5
    assert report["log_loss"] == pytest.approx(expected_log_loss)
    # Bin [0.6, 0.633): predicted 0.6, observed 1/2. Bin [0.9, 0.933): predicted 0.9, observed 1.
    assert report["ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.1)
    assert report["criteria"]["overall"]["accuracy"] == pytest.approx(3 / 4)
    table = report["reliability"]
    assert len(table) == 15
    assert table[0]["low"] == 0.5
    assert table[-1]["high"] == 1.0
    filled = [row for row in table if row["count"]]
    assert [(row["count"], row["observed"]) for row in filled] == [(2, 0.5), (2, 1.0)]
    assert [row["mean_predicted"] for row in filled] == pytest.approx([0.6, 0.9])


def test_a_confidence_of_one_falls_in_the_last_bin():
    table = reliability_table(np.array([0.5, 1.0]), np.array([True, True]))
    assert table[0]["count"] == 1
    assert table[-1]["count"] == 1


def small_data(n: int = 200, criteria=CRITERIA) -> PreferenceData:
    generator = torch.Generator().manual_seed(0)
    x_a, x_b = torch.randn(n, 5, generator=generator), torch.randn(n, 5, generator=generator)
    outcomes = torch.where(x_a[:, :1] > x_b[:, :1], 0, 1).repeat(1, len(criteria))
    return PreferenceData(x_a, x_b, outcomes.to(torch.int8), torch.ones(n), tuple(criteria))


def test_the_logger_hears_every_epoch():
    calls = []
    config = RewardModelConfig(
        criteria=CRITERIA, hidden_sizes=(8,), members=2, epochs=4, patience=10
    )
    result = train_reward_model(config, small_data(), logger=lambda *args: calls.append(args))
    assert [epoch for epoch, _, _ in calls] == [1, 2, 3, 4]
    assert all(math.isfinite(loss) for _, loss, _ in calls)
    seconds = [s for _, _, s in calls]
    assert seconds == sorted(seconds)
    assert result.epochs == 4
    assert len(result.history) == 4
    assert all(1 <= epoch <= 4 for epoch in result.member_epochs)


def test_data_columns_are_matched_by_criterion_name():
    data = small_data(criteria=("overall", "safety"))
    assert data.outcomes_for(["safety", "overall"]).shape == (200, 2)
    with pytest.raises(ValueError, match="no column for criteria"):
        data.outcomes_for(["relevance"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features_b": torch.zeros(200, 4)}, "features_b"),
        ({"outcomes": torch.zeros(200, 3, dtype=torch.int8)}, "outcomes"),
        ({"outcomes": torch.full((200, 4), 3, dtype=torch.int8)}, "outcomes"),
        ({"weights": -torch.ones(200)}, "weights"),
    ],
)
def test_inconsistent_data_is_refused(change, message):
    data = small_data()
    fields = {
        "features_a": data.features_a,
        "features_b": data.features_b,
        "outcomes": data.outcomes,
        "weights": data.weights,
        "criteria": data.criteria,
        **change,
    }
    with pytest.raises(ValueError, match=f"^{message}"):
        PreferenceData(**fields)


def test_a_demonstration_prefers_the_chosen_slate_on_overall_and_the_reason():
    slates_a, slates_b, outcomes = demonstration_pairs(
        [1, 2, 3],
        [
            Rejection(7, "unsafe", position=0),
            Rejection(8, "off-brand"),  # no criterion: overall only, last slot
            Rejection(2, "irrelevant"),  # already chosen: skipped
            Rejection(9, "repetitive", position=1),
        ],
        CRITERIA,
    )
    assert slates_a.tolist() == [[1, 2, 3]] * 3
    assert slates_b.tolist() == [[7, 2, 3], [1, 2, 8], [1, 9, 3]]
    # columns: safety, relevance, diversity, overall
    assert outcomes.tolist() == [[0, -1, -1, 0], [-1, -1, -1, 0], [-1, -1, 0, 0]]
    assert outcomes.dtype == np.int8


def test_a_demonstration_without_rejections_gives_no_pairs():
    slates_a, slates_b, outcomes = demonstration_pairs([4, 5], [], CRITERIA)
    assert slates_a.shape == slates_b.shape == (0, 2)
    assert outcomes.shape == (0, 4)


def test_a_rejection_for_a_slot_outside_the_slate_is_refused():
    with pytest.raises(ValueError, match="position"):
        demonstration_pairs([4, 5], [Rejection(6, "unsafe", position=2)], CRITERIA)
