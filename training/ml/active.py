"""Pool-based active learning for the reward model: which unlabeled pairs to send to experts.

Method: score every candidate pair by the ensemble's disagreement (reward_model.py), one of

    bald  BALD (Houlsby et al. 2011, "Bayesian active learning for classification and
          preference learning"): the mutual information between the 3-way judgment (A, B,
          tie) and the ensemble member, H(p̄) − mean_m H(p_m), summed over criteria; high
          where the members disagree, not where each is merely unsure (a near-tie every
          member calls 50/50 scores 0);
    std   the spread: the standard deviation of P(A≻B) across members, summed over criteria;
    epig  EPIG (Bickford Smith et al. 2023, "Prediction-oriented Bayesian active learning"):
          the mutual information between the candidate's judgment and the judgments of
          ``targets`` pairs drawn from the pool, i.e. how much labeling it would teach about
          the pairs the model will be used on;

then fill a batch. With ``power`` = ∞ the batch is the highest-scoring candidates; with a
finite β it is drawn by stochastic power acquisition (Kirsch et al. 2023, "Stochastic batch
acquisition: a simple baseline for deep active learning"): without replacement with
probability ∝ score^β (Gumbel top-k on β log score), which avoids filling a batch with
near-duplicates of the single most uncertain pair. A ``random_share`` of every batch is drawn
uniformly first (the first entries of the batch), so that the labeled set keeps covering the
whole pool and the ensemble's own blind spots get labels too; the labeling queue uses it as
its random audit. The benchmark (bench/reward_model.py) measures BALD top-k against random
labeling at equal budgets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from training.ml.reward_model import RewardModel

SCORES = ("bald", "std", "epig")


@dataclass(frozen=True)
class AcquisitionConfig:
    score: str = "bald"  # "bald", "std" (spread of P(A≻B)) or "epig" (module docstring)
    random_share: float = 0.25  # share of each batch drawn uniformly from the pool
    power: float = 2.0  # β: sampling ∝ score^β; float("inf") takes the top scores
    targets: int = 256  # EPIG only: pool pairs drawn as the target distribution

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"score: expected one of {SCORES}, got {self.score!r}")
        if not 0.0 <= self.random_share <= 1.0:
            raise ValueError("random_share: expected a share between 0 and 1")


def disagreement(
    model: RewardModel,
    x_a: Tensor,
    x_b: Tensor,
    score: str = "bald",
    chunk: int = 16384,
    *,
    targets: tuple[Tensor, Tensor] | None = None,
) -> np.ndarray:
    """float[n]: the ensemble's disagreement on each pair, summed over criteria ("epig" needs
    ``targets``, pairs drawn from the distribution the model will be used on)."""
    model.eval()
    if score == "epig":
        if targets is None:
            raise ValueError("targets: EPIG needs target pairs")
        return expected_predictive_information_gain(model, x_a, x_b, *targets)
    parts = []
    with torch.no_grad():
        for start in range(0, len(x_a), chunk):
            spread = model.spread(x_a[start : start + chunk], x_b[start : start + chunk])
            parts.append(spread[score].sum(dim=1))
    return torch.cat(parts).double().numpy() if parts else np.zeros(0)


def expected_predictive_information_gain(
    model: RewardModel, x_a: Tensor, x_b: Tensor, target_a: Tensor, target_b: Tensor, chunk=1024
) -> np.ndarray:
    """float[n]: EPIG of each candidate pair x, summed over criteria: the mean over target
    pairs x* of the mutual information between the judgments y of x and y* of x*, the
    ensemble members standing for the posterior:

        p(y, y*) = mean_m p_m(y | x) p_m(y* | x*),   I = Σ p(y, y*) log p(y, y*) / (p(y) p(y*))
    """
    with torch.no_grad():
        target = model.member_log_probabilities(target_a, target_b).exp()  # [M, T, C, 3]
        m, t, c, _ = target.shape
        target_mean = target.mean(dim=0)  # [T, C, 3]
        log_target_mean = target_mean.clamp(min=1e-12).log()
        parts = []
        for start in range(0, len(x_a), chunk):
            p = model.member_log_probabilities(
                x_a[start : start + chunk], x_b[start : start + chunk]
            ).exp()
            n = p.shape[1]
            log_p_mean = p.mean(dim=0).clamp(min=1e-12).log()  # [n, C, 3]
            information = torch.zeros(n, dtype=p.dtype)
            for criterion in range(c):  # joint[n·3, T·3] = Σ_m p_m(y) p_m(y*) / M, one product
                left = p[:, :, criterion].permute(1, 2, 0).reshape(n * 3, m)
                right = target[:, :, criterion].reshape(m, t * 3)
                joint = (left @ right / m).view(n, 3, t, 3)
                ratio = (
                    joint.clamp(min=1e-12).log()
                    - log_p_mean[:, criterion, :, None, None]
                    - log_target_mean[None, None, :, criterion, :]
                )
                information += (joint * ratio).sum(dim=(1, 3)).mean(dim=1)
            parts.append(information)
    return torch.cat(parts).double().numpy() if parts else np.zeros(0)


def select_batch(
    scores: np.ndarray,
    candidates: np.ndarray,
    size: int,
    config: AcquisitionConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """``size`` distinct entries of ``candidates`` (pool indices; ``scores`` float[pool size]):
    a random share drawn uniformly, the rest by stochastic power acquisition."""
    size = min(size, len(candidates))
    n_random = int(round(config.random_share * size))
    uniform = rng.choice(len(candidates), size=n_random, replace=False)
    rest = np.setdiff1d(np.arange(len(candidates)), uniform)
    keys = np.log(np.maximum(scores[candidates[rest]], 1e-30))
    if np.isfinite(config.power):
        keys = config.power * keys + rng.gumbel(size=len(rest))
    picked = rest[np.argsort(-keys, kind="stable")[: size - n_random]]
    return candidates[np.concatenate([uniform, picked])]


def acquire(
    model: RewardModel,
    pool_a: Tensor,
    pool_b: Tensor,
    candidates: np.ndarray,
    size: int,
    config: AcquisitionConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """The pool indices of the next ``size`` pairs to label, among ``candidates``."""
    scores = np.zeros(len(pool_a))
    targets = None
    if config.score == "epig":  # the pool is the distribution to predict well on
        drawn = torch.from_numpy(
            rng.choice(len(pool_a), size=min(config.targets, len(pool_a)), replace=False)
        )
        targets = (pool_a[drawn], pool_b[drawn])
    scores[candidates] = disagreement(
        model, pool_a[candidates], pool_b[candidates], config.score, targets=targets
    )
    return select_batch(scores, candidates, size, config, rng)
