"""Pool-based acquisition (training/ml/active.py): batches are valid, the random share is
kept, and disagreement points at what the ensemble has not seen."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.ml.active import AcquisitionConfig, acquire, disagreement, select_batch
from training.ml.reward_model import RewardModelConfig
from training.ml.train_reward import PreferenceData, train_reward_model


def test_a_batch_is_distinct_drawn_from_the_candidates_and_keeps_its_random_share():
    rng = np.random.default_rng(0)
    scores = rng.random(100)
    candidates = np.arange(0, 100, 2)
    config = AcquisitionConfig(random_share=0.3, power=float("inf"))
    batch = select_batch(scores, candidates, 20, config, rng)
    assert len(batch) == len(set(batch.tolist())) == 20
    assert set(batch.tolist()) <= set(candidates.tolist())
    chosen = batch[6:]  # the first 30 % are uniform draws, the rest the top scores left
    left = np.setdiff1d(candidates, batch[:6])
    assert set(chosen.tolist()) == set(left[np.argsort(-scores[left])[:14]].tolist())


def test_a_batch_never_exceeds_the_pool():
    batch = select_batch(
        np.ones(5), np.arange(5), 10, AcquisitionConfig(), np.random.default_rng(1)
    )
    assert sorted(batch.tolist()) == [0, 1, 2, 3, 4]


def test_the_acquisition_config_is_checked():
    with pytest.raises(ValueError, match="score"):
        AcquisitionConfig(score="entropy")
    with pytest.raises(ValueError, match="random_share"):
        AcquisitionConfig(random_share=1.5)


TOP_K = AcquisitionConfig(random_share=0.0, power=float("inf"))


def test_disagreement_sends_the_unseen_pairs_to_the_experts():
    generator = torch.Generator().manual_seed(0)
    x_a, x_b = torch.randn(600, 4, generator=generator), torch.randn(600, 4, generator=generator)
    outcomes = torch.where(x_a[:, :1] - x_b[:, :1] > 0, 0, 1).to(torch.int8)
    config = RewardModelConfig(
        criteria=("overall",),
        veto_criterion=None,
        hidden_sizes=(16,),
        members=4,
        epochs=20,
        weight_decay=0.01,
    )
    model = train_reward_model(
        config, PreferenceData(x_a, x_b, outcomes, torch.ones(600), ("overall",))
    ).model
    near_a, near_b = (
        torch.randn(200, 4, generator=generator),
        torch.randn(200, 4, generator=generator),
    )
    shift = torch.tensor([0.0, 8.0, 8.0, 8.0])  # features the labels never depended on
    far_a = torch.randn(200, 4, generator=generator) + shift
    far_b = torch.randn(200, 4, generator=generator) + shift
    pool_a, pool_b = torch.cat([near_a, far_a]), torch.cat([near_b, far_b])
    for score in ("bald", "std"):
        values = disagreement(model, pool_a, pool_b, score)
        assert values.shape == (400,)
        assert (values >= 0).all()
        assert values[200:].mean() > values[:200].mean()
    for config, share in [(AcquisitionConfig(random_share=0.0), 0.6), (TOP_K, 0.7)]:
        batch = acquire(model, pool_a, pool_b, np.arange(400), 50, config, np.random.default_rng(2))
        assert (batch >= 200).mean() > share  # half the pool is unseen
