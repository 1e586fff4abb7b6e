"""Off-policy evaluation of a policy on the LoggedInteraction store.

A logged row is one slate a live policy showed in a context, the user's reward, and the
logging policy's probability of that exact slate (its propensity). The action is the
whole slate, so the importance weight of row i is

    w_i = π(s_i | x_i) / π_0(s_i | x_i),

π(s | x) the evaluated policy's probability of building slate s position by position
(``training/ml/policy.py``: the product of its per-position choice probabilities). Slate
weights are heavy-tailed when the two policies differ much; the report carries the
weights' effective sample size, and the intervals widen accordingly.

DR and SNDR need q̂(x, s), the expected reward of a slate in a context, in the logged
reward's units. The reward model scores preferences, not rewards, so q̂ is a direct model
fitted here: ridge regression of the logged reward on the slate's feature row
(``training.datasets.FeatureSpace.features``), cross-fitted over FOLDS folds so no row's q̂
comes from a model that saw it. Each row is weighted (1 + w_i / w̄) / 2: the regression
fits the even mixture of the logging and the evaluated policy's distributions. Pure
importance weighting (Farajtabar et al. 2018) is what bench/ope.py measures best for
single items, but slate weights are so concentrated (an effective sample size of a few
rows in 20,000 is usual) that it would fit q̂ on a handful of rows; the mixture keeps the
fit on all of them while leaning towards where the evaluated policy acts.
q_target(x_i) = mean of q̂(x_i, s) over TARGET_SAMPLES slates drawn from the evaluated
policy.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from catalog.models import LoggedInteraction
from training.datasets import FeatureSpace, context_states
from training.ml import ope

FOLDS = 2
RIDGE = 1.0
TARGET_SAMPLES = 8
DEFAULT_LIMIT = 20_000
MIN_ROWS = 50  # fewer rows than this give no estimate worth a gate's trust


@dataclass(frozen=True)
class LoggedSlice:
    """Logged rows as arrays (newest first), with the slice's description."""

    states: list[dict]
    slates: np.ndarray  # int64[B, K] catalog positions, -1 padded
    reward: np.ndarray  # float64[B]
    pscore: np.ndarray  # float64[B]
    segments: np.ndarray  # str[B]
    description: dict

    def __len__(self) -> int:
        return len(self.reward)


class SliceError(ValueError):
    """The chosen slice cannot be evaluated (empty, or too small)."""


def logged_slice(
    space: FeatureSpace,
    *,
    logging_policy: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    segment: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> LoggedSlice:
    """The newest ``limit`` logged rows matching the filters, as arrays. Rows whose slate
    holds an item that left the catalog are dropped (their propensity no longer matches a
    slate the evaluated policy could build); the description counts them."""
    if limit < 1:
        raise SliceError(f"limit: must be at least 1, not {limit}")
    rows = LoggedInteraction.objects.order_by("-logged_at", "-pk")
    if logging_policy:
        rows = rows.filter(logging_policy=logging_policy)
    if since:
        rows = rows.filter(logged_at__gte=since)
    if until:
        rows = rows.filter(logged_at__lt=until)
    if segment:
        rows = rows.filter(context__segment=segment)
    rows = list(rows.values("context_id", "slate", "reward", "propensity")[:limit])
    contexts = context_states({row["context_id"] for row in rows})
    kept = [
        row
        for row in rows
        if row["context_id"] in contexts
        and row["slate"]
        and all(pk in space.position_of_pk for pk in row["slate"])
    ]
    description = {
        "logging_policy": logging_policy, "segment": segment, "limit": limit,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "rows": len(kept), "dropped_unknown_items": len(rows) - len(kept),
    }  # fmt: skip
    states = [contexts[row["context_id"]] for row in kept]
    return LoggedSlice(
        states=states,
        slates=space.slates([row["slate"] for row in kept]),
        reward=np.array([row["reward"] for row in kept], dtype=np.float64),
        pscore=np.array([row["propensity"] for row in kept], dtype=np.float64),
        segments=np.array([state["segment"] for state in states], dtype=object),
        description=description,
    )


# --- the direct model ------------------------------------------------------------------------


def _ridge(features: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted ridge regression with an unpenalized intercept; returns [coef…, intercept]."""
    design = np.hstack([features, np.ones((len(features), 1))])
    scaled = design * weights[:, None]
    penalty = RIDGE * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(design.T @ scaled + penalty, scaled.T @ target)


def _predict(coef: np.ndarray, features: np.ndarray) -> np.ndarray:
    return features @ coef[:-1] + coef[-1]


def direct_estimates(
    space: FeatureSpace,
    data: LoggedSlice,
    weights: np.ndarray,
    target_slates: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(q_logged[B], q_target[B]) from the cross-fitted, importance-weighted ridge model;
    ``target_slates`` is int64[B, M, K], M slates drawn from the evaluated policy per row."""
    n, samples = len(data), target_slates.shape[1]
    logged_rows = space.features(data.states, data.slates).numpy().astype(np.float64)
    repeated_states = [state for state in data.states for _ in range(samples)]
    target_rows = space.features(
        repeated_states, space.widened(target_slates.reshape(n * samples, -1))
    )
    target_rows = target_rows.numpy().astype(np.float64).reshape(n, samples, -1)
    fold = np.arange(n) % FOLDS
    q_logged, q_target = np.empty(n), np.empty(n)
    mixture = (1.0 + weights / weights.mean()) / 2.0  # mean 1: the ridge keeps its scale
    for part in range(FOLDS):
        held, fit = fold == part, fold != part
        if not fit.any():  # a single row: fit on it (nothing else to learn from)
            fit = held
        coef = _ridge(logged_rows[fit], data.reward[fit], mixture[fit])
        q_logged[held] = _predict(coef, logged_rows[held])
        q_target[held] = _predict(coef, target_rows[held]).mean(axis=1)
    return q_logged, q_target


# --- the report -----------------------------------------------------------------------------


def ope_report(
    space: FeatureSpace,
    data: LoggedSlice,
    *,
    target_pscore: np.ndarray,
    target_slates: Callable[[list[dict], int], np.ndarray],
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Every estimator with its 95% interval, the effective sample size, and the logged
    mean for scale. ``target_slates(states, m)`` draws m slates per state from the
    evaluated policy (int64[B, m, K])."""
    if len(data) < MIN_ROWS:
        raise SliceError(f"{len(data)} logged rows in the slice: at least {MIN_ROWS} needed")
    weights = target_pscore / data.pscore
    if not np.any(weights > 0):
        raise SliceError(
            "the evaluated policy gives probability 0 to every logged slate: the logs say "
            "nothing about it (try a slice logged by a policy closer to it)"
        )
    q_logged, q_target = direct_estimates(
        space, data, weights, target_slates(data.states, TARGET_SAMPLES)
    )
    estimates = ope.evaluate(
        data.reward, data.pscore, target_pscore, q_logged, q_target, n_boot=n_boot, rng=seed
    )
    report = {
        name: {"estimate": e.value, "low": e.low, "high": e.high} for name, e in estimates.items()
    }
    report["dm"] = {"estimate": float(np.mean(q_target))}
    report["ess"] = next(iter(estimates.values())).ess
    report["rows"] = len(data)
    report["logged_mean_reward"] = float(data.reward.mean())
    report["max_weight"] = float(weights.max())
    report["slice"] = data.description
    return report
