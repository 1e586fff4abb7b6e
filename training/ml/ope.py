"""Off-policy evaluation: the value of a target policy estimated from data logged by another.

Methods and sources
-------------------
- IPS: inverse propensity scoring, the Horvitz–Thompson (1952) estimator.
- SNIPS: self-normalized IPS, Swaminathan & Joachims (2015), "The Self-Normalized Estimator
  for Counterfactual Learning".
- DM / DR: direct method and doubly robust, Dudík, Langford & Li (2011), "Doubly Robust
  Policy Evaluation and Learning".
- SNDR: self-normalized DR, Kallus & Uehara (2019), "Intrinsically Efficient, Stable, and
  Bounded Off-Policy Evaluation"; Su et al. (2020), "Doubly Robust Off-Policy Evaluation
  with Shrinkage".
- Intervals: the percentile bootstrap over logged rows (Efron & Tibshirani 1993, ch. 13).

Every array has one entry per logged row i, where action a_i was taken in context x_i:

    reward         r_i
    pscore         π_0(a_i | x_i)   the logging policy's probability of the logged action
    target_pscore  π(a_i | x_i)     the evaluated policy's probability of the same action
    q_logged       q̂(x_i, a_i)      a reward model's estimate for the logged action
    q_target       Σ_a π(a | x_i) q̂(x_i, a)   its expectation under the evaluated policy

and w_i = π(a_i | x_i) / π_0(a_i | x_i) is the importance weight. Estimators reduce over the
last axis, so a batch of bootstrap resamples (a 2-D array of rows) is evaluated in one call.
Plain NumPy, no Django.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Estimator = Callable[..., np.ndarray | float]

# Bootstrap resamples are drawn in blocks of at most this many indices (about 32 MB of int64).
_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Estimate:
    value: float  # the point estimate on all rows
    low: float  # lower end of the percentile bootstrap interval
    high: float  # upper end
    ess: float  # effective sample size of the importance weights, (Σw)² / Σw²


# --- validation -------------------------------------------------------------------------------


def _as_float_array(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim == 0 or array.shape[-1] == 0:
        raise ValueError(f"{name} must be a non-empty array with one entry per logged row")
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{name} contains NaN or infinity at {_first(bad)}")
    return array


def _first(mask: np.ndarray) -> str:
    """Where the first True entry of ``mask`` is, in words, for error messages."""
    index = np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape)
    return f"row {index[0]}" if mask.ndim == 1 else f"index {tuple(int(i) for i in index)}"


def _validated(**arrays) -> list[np.ndarray]:
    """The arrays as floats, after checking they share one shape, are finite, and that the
    propensities (when given) are probabilities: pscore in (0, 1], target_pscore in [0, 1]."""
    checked = {name: _as_float_array(name, values) for name, values in arrays.items()}
    (first_name, first), *rest = checked.items()
    for name, array in rest:
        if array.shape != first.shape:
            raise ValueError(
                f"{name} has shape {array.shape} but {first_name} has shape {first.shape}"
            )
    if "pscore" in checked:
        outside = (checked["pscore"] <= 0) | (checked["pscore"] > 1)
        if outside.any():
            raise ValueError(
                "pscore (the logging policy's probability of the logged action) must lie in "
                f"(0, 1]; it is {checked['pscore'][outside][0]} at {_first(outside)}"
            )
    if "target_pscore" in checked:
        outside = (checked["target_pscore"] < 0) | (checked["target_pscore"] > 1)
        if outside.any():
            raise ValueError(
                "target_pscore (the evaluated policy's probability of the logged action) must "
                f"lie in [0, 1]; it is {checked['target_pscore'][outside][0]} at {_first(outside)}"
            )
    return list(checked.values())


# --- estimators -------------------------------------------------------------------------------


def importance_weights(pscore, target_pscore) -> np.ndarray:
    """w_i = π(a_i | x_i) / π_0(a_i | x_i)."""
    pscore, target_pscore = _validated(pscore=pscore, target_pscore=target_pscore)
    return target_pscore / pscore


def effective_sample_size(weights) -> np.ndarray | float:
    """ESS = (Σ w)² / Σ w² (Kish 1965): n for equal weights, ~1 when one weight dominates."""
    weights = _as_float_array("weights", weights)
    if (weights < 0).any():
        raise ValueError(f"weights must be non-negative; negative at {_first(weights < 0)}")
    squares = np.sum(weights**2, axis=-1)
    if np.any(squares == 0):
        raise ValueError("weights are all zero: the effective sample size is undefined")
    return np.sum(weights, axis=-1) ** 2 / squares


def _sum_of_weights(weights: np.ndarray) -> np.ndarray:
    total = np.sum(weights, axis=-1)
    if np.any(total == 0):
        raise ValueError(
            "target_pscore is zero on every logged row: the evaluated policy never takes a "
            "logged action, so a self-normalized estimate is undefined"
        )
    return total


def ips(reward, pscore, target_pscore) -> np.ndarray | float:
    """Inverse propensity scoring (Horvitz & Thompson 1952): V = (1/n) Σ w_i r_i.

    Unbiased when π_0 > 0 wherever π > 0; its variance grows with E[w²], so a few large
    weights make it erratic.
    """
    reward, pscore, target_pscore = _validated(
        reward=reward, pscore=pscore, target_pscore=target_pscore
    )
    return np.mean(target_pscore / pscore * reward, axis=-1)


def snips(reward, pscore, target_pscore) -> np.ndarray | float:
    """Self-normalized IPS (Swaminathan & Joachims 2015): V = Σ w_i r_i / Σ w_i.

    Biased by O(1/n) but consistent, always within the range of the observed rewards, and
    usually of much lower variance than IPS (it is invariant to adding a constant to r).
    """
    reward, pscore, target_pscore = _validated(
        reward=reward, pscore=pscore, target_pscore=target_pscore
    )
    weights = target_pscore / pscore
    return np.sum(weights * reward, axis=-1) / _sum_of_weights(weights)


def dm(q_target) -> np.ndarray | float:
    """Direct method (Dudík, Langford & Li 2011): V = (1/n) Σ q̂_π(x_i), the reward model's
    value of the evaluated policy. Low variance, but biased as much as the model is wrong."""
    (q_target,) = _validated(q_target=q_target)
    return np.mean(q_target, axis=-1)


def dr(reward, pscore, target_pscore, q_logged, q_target) -> np.ndarray | float:
    """Doubly robust (Dudík, Langford & Li 2011): V = (1/n) Σ [q_target_i + w_i (r_i − q_logged_i)].

    Unbiased when either the propensities or the reward model are right; its variance is
    that of IPS on the residuals r − q̂, so a good model makes it much smaller.
    """
    reward, pscore, target_pscore, q_logged, q_target = _validated(
        reward=reward,
        pscore=pscore,
        target_pscore=target_pscore,
        q_logged=q_logged,
        q_target=q_target,
    )
    return np.mean(q_target + target_pscore / pscore * (reward - q_logged), axis=-1)


def sndr(reward, pscore, target_pscore, q_logged, q_target) -> np.ndarray | float:
    """Self-normalized DR (Kallus & Uehara 2019; Su et al. 2020):
    V = (1/n) Σ q_target_i + Σ w_i (r_i − q_logged_i) / Σ w_i.

    DR with the correction term self-normalized: O(1/n) bias, stable when a few weights are
    large, and never worse than DM by more than the range of the residuals.
    """
    reward, pscore, target_pscore, q_logged, q_target = _validated(
        reward=reward,
        pscore=pscore,
        target_pscore=target_pscore,
        q_logged=q_logged,
        q_target=q_target,
    )
    weights = target_pscore / pscore
    correction = np.sum(weights * (reward - q_logged), axis=-1) / _sum_of_weights(weights)
    return np.mean(q_target, axis=-1) + correction


# --- intervals --------------------------------------------------------------------------------


def bootstrap_interval(
    estimator: Estimator,
    *arrays,
    alpha: float = 0.05,
    n_boot: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap: the α/2 and 1 − α/2 quantiles of estimator(rows resampled with
    replacement) over ``n_boot`` resamples (Efron & Tibshirani 1993).

    ``arrays`` are the estimator's positional arguments, one entry per row each. Resamples
    are drawn in blocks of index rows, and the estimator evaluates a whole block at once
    (it reduces over the last axis), so there is no Python loop over rows or resamples.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1); it is {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1; it is {n_boot}")
    if not arrays:
        raise ValueError("bootstrap_interval needs at least one array to resample")
    columns = [np.asarray(array) for array in arrays]
    n = len(columns[0])
    for position, column in enumerate(columns):
        if column.ndim != 1 or len(column) != n or n == 0:
            raise ValueError(
                f"array {position} must be 1-D with the same non-zero length as array 0 ({n})"
            )
    rng = np.random.default_rng(rng)
    block = max(1, min(n_boot, _BLOCK_ELEMENTS // n))
    values = np.empty(n_boot)
    for start in range(0, n_boot, block):
        stop = min(start + block, n_boot)
        rows = rng.integers(0, n, size=(stop - start, n))
        values[start:stop] = estimator(*(column[rows] for column in columns))
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def evaluate(
    reward,
    pscore,
    target_pscore,
    q_logged=None,
    q_target=None,
    *,
    alpha: float = 0.05,
    n_boot: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> dict[str, Estimate]:
    """Every estimator with its (1 − α) percentile bootstrap interval and the weights' ESS:
    ``ips`` and ``snips`` always, ``dr`` and ``sndr`` when a reward model's ``q_logged`` and
    ``q_target`` are given. All estimators see the same resamples, so their intervals compare.
    """
    if (q_logged is None) != (q_target is None):
        raise ValueError("pass both q_logged and q_target (for DR and SNDR) or neither")
    logged = _validated(reward=reward, pscore=pscore, target_pscore=target_pscore)
    estimators: dict[str, tuple[Estimator, list[np.ndarray]]] = {
        "ips": (ips, logged),
        "snips": (snips, logged),
    }
    if q_logged is not None:
        model = _validated(reward=reward, q_logged=q_logged, q_target=q_target)[1:]
        estimators["dr"] = (dr, [*logged, *model])
        estimators["sndr"] = (sndr, [*logged, *model])
    weights = logged[2] / logged[1]
    _sum_of_weights(weights)  # a clear error when the evaluated policy never logs an action
    ess = float(effective_sample_size(weights))
    # One seed for all estimators: the same resampled rows for each.
    seed = int(np.random.default_rng(rng).integers(2**63))
    results = {}
    for name, (estimator, arrays) in estimators.items():
        low, high = bootstrap_interval(estimator, *arrays, alpha=alpha, n_boot=n_boot, rng=seed)
        results[name] = Estimate(float(estimator(*arrays)), low, high, ess)
    return results
