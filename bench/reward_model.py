"""How well the reward model learns simulated experts' judgments, and how many labels active
learning saves (no database, no Django).

    python bench/reward_model.py [--labels 20000] [--seeds 4] [--quick]

Data. Simulated experts (training/ml/experts.py) judge pairs of slates on relevance, safety,
diversity and overall by the simulator's utilities of the context they are shown (segment,
audience, session state; not the user's hidden traits), with Davidson (Bradley–Terry with
ties) noise at the default "moderate" level: Bayes-optimal accuracy 0.80 over all labels.
Because the labels' law given the context and the slates is known, so is the best accuracy
any model can reach. A pool of POOL pairs (seed 1) is the labeled data and the
active-learning pool; a held-out set of HELDOUT pairs (seed 2: other contexts, drawn
independently of the pool and never seen by training or acquisition) measures everything.
One label = one comparison judged on the four criteria.

Figures (all on the held-out set; accuracy is on non-tie labels, pooled over criteria):
- heldout_accuracy, ece: the reward model (default RewardModelConfig) trained on the first
  LABELS pairs of the pool; bayes_optimal_accuracy: the exact expected accuracy of the
  predictor that knows the experts' utilities (experts.bayes_optimal_accuracy);
  accuracy_ratio = heldout_accuracy / bayes_optimal_accuracy.
- learning curves at BUDGETS labels, for each of SEEDS seeds. Both strategies use the same
  model config, the same training (a fresh ensemble per budget, seeded alike) and the same
  budgets; they differ only in which pool pairs get labels. "random" labels the first n
  pairs of a seeded permutation of the pool. "active" starts from the same first
  BUDGETS[0] pairs, then acquires in rounds of at most ROUND_GROWTH × the labels it has
  (never past the next budget), retraining after each round: ACQUISITION, the BALD score of
  the ensemble (mutual information between the judgment and the member, summed over
  criteria; training/ml/active.py), taking the highest-scoring pairs not yet labeled.
  Accuracy and log loss are averaged over seeds at each budget; labels_to_95pct_* is where
  the averaged curve first reaches 0.95 × bayes_optimal_accuracy (interpolated linearly in
  log(labels) between budgets; null if never), label_savings = random / active, and
  active_logloss_vs_random = max over budgets of (active − random) mean log loss (≤ 0:
  active learning is never worse on held-out log loss).
- train_seconds_100k: wall time of one train_reward_model call on 100,000 pool pairs, to
  convergence (early stopping), after everything else has finished.

Everything runs on one intra-op thread (torch.set_num_threads(1)): on a small shared machine,
threads that wait for busy cores cost more than they bring for matrices this small.

Prints progress on stderr and one JSON line last: {"labels", "bayes_optimal_accuracy",
"heldout_accuracy", "accuracy_ratio", "ece", "labels_to_95pct_random",
"labels_to_95pct_active", "label_savings", "active_logloss_vs_random",
"train_seconds_100k"}.
"""

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import emit
from training.ml import experts
from training.ml.active import AcquisitionConfig, acquire
from training.ml.reward_model import RewardModelConfig
from training.ml.simulator import Simulator
from training.ml.train_reward import (
    PreferenceData,
    evaluate,
    predict_probabilities,
    train_reward_model,
)

POOL = 100_000
HELDOUT = 20_000
BUDGETS = (500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000)
TIMED_LABELS = 100_000
TARGET_SHARE = 0.95
ROUND_GROWTH = 0.5  # an active-learning round adds at most this share of the labels
ACQUISITION = AcquisitionConfig(score="bald", random_share=0.0, power=float("inf"))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def preference_data(pairs: experts.PairSet, featurize: experts.Featurizer) -> PreferenceData:
    x_a, x_b = featurize(pairs)
    return PreferenceData(
        features_a=x_a,
        features_b=x_b,
        outcomes=torch.from_numpy(pairs.outcomes),
        weights=torch.ones(len(pairs)),
        criteria=pairs.criteria,
    )


def fit(config: RewardModelConfig, data: PreferenceData, rows: np.ndarray):
    return train_reward_model(config, data.take(rows)).model


def learning_curves(config, pool, heldout, budgets, seed, acquisition) -> dict[str, list[dict]]:
    """Held-out accuracy and log loss at every budget, for random and active labeling."""
    rng = np.random.default_rng([seed, 7])
    order = rng.permutation(len(pool))
    seeded = replace(config, seed=seed)
    curves = {"random": [], "active": []}
    for n in budgets:
        report = evaluate(fit(seeded, pool, order[:n]), heldout)
        curves["random"].append({"labels": n, **_summary(report)})
        log(f"  seed {seed} random {n:>6}: accuracy {report['accuracy']:.4f}")

    labeled, model = order[: budgets[0]], None  # model: the fit on ``labeled``, if made
    for n in budgets:
        while len(labeled) < n:
            if model is None:
                model = fit(seeded, pool, labeled)
            size = min(n - len(labeled), max(int(len(labeled) * ROUND_GROWTH), 1))
            candidates = np.setdiff1d(np.arange(len(pool)), labeled)
            batch = acquire(
                model, pool.features_a, pool.features_b, candidates, size, acquisition, rng
            )
            labeled, model = np.concatenate([labeled, batch]), None
        model = fit(seeded, pool, labeled)  # training is deterministic: reused by the next round
        report = evaluate(model, heldout)
        curves["active"].append({"labels": n, **_summary(report)})
        log(f"  seed {seed} active {n:>6}: accuracy {report['accuracy']:.4f}")
    return curves


def _summary(report: dict) -> dict:
    return {"accuracy": report["accuracy"], "log_loss": report["log_loss"]}


def labels_to_reach(curve: list[dict], target: float) -> float | None:
    """Labels at which ``curve`` (mean accuracy by budget) first reaches ``target``,
    interpolated linearly in log(labels); None if it never does."""
    previous = None
    for point in curve:
        if point["accuracy"] >= target:
            if previous is None:
                return float(point["labels"])
            share = (target - previous["accuracy"]) / (point["accuracy"] - previous["accuracy"])
            low, high = math.log(previous["labels"]), math.log(point["labels"])
            return float(math.exp(low + share * (high - low)))
        previous = point
    return None


def mean_curve(runs: list[list[dict]]) -> list[dict]:
    return [
        {
            "labels": points[0]["labels"],
            "accuracy": float(np.mean([p["accuracy"] for p in points])),
            "log_loss": float(np.mean([p["log_loss"] for p in points])),
        }
        for points in zip(*runs, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=20_000, help="labels of the main model")
    parser.add_argument("--seeds", type=int, default=4, help="seeds of the learning curves")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pool_size, heldout_size, budgets, timed = POOL, HELDOUT, BUDGETS, TIMED_LABELS
    if args.quick:
        pool_size, heldout_size, budgets, timed = 12_000, 4_000, (500, 1000, 2000), 10_000
    labels = min(args.labels, pool_size)

    started = time.perf_counter()
    sim = Simulator(seed=0)
    featurize = experts.Featurizer(sim)
    pool_pairs = experts.sample_pairs(sim, pool_size, np.random.default_rng(1))
    heldout_pairs = experts.sample_pairs(sim, heldout_size, np.random.default_rng(2))
    pool, heldout = (
        preference_data(pool_pairs, featurize),
        preference_data(heldout_pairs, featurize),
    )
    bayes = experts.bayes_optimal_accuracy(heldout_pairs.probabilities)
    per_criterion = {
        name: round(experts.bayes_optimal_accuracy(heldout_pairs.probabilities[:, [c]]), 4)
        for c, name in enumerate(heldout_pairs.criteria)
    }
    log(
        f"data: {pool_size} pool and {heldout_size} held-out pairs, {pool.features_a.shape[1]}"
        f" features, {time.perf_counter() - started:.1f}s; Bayes-optimal accuracy {bayes:.4f}"
        f" {per_criterion}"
    )

    config = RewardModelConfig(criteria=experts.CRITERIA)
    main_model = fit(config, pool, np.arange(labels))
    report = evaluate(main_model, heldout)
    predicted = predict_probabilities(main_model, heldout.features_a, heldout.features_b)
    expected = experts.expected_accuracy(
        heldout_pairs.probabilities, predicted[..., 0] >= predicted[..., 1]
    )
    log(
        f"main model on {labels} labels: accuracy {report['accuracy']:.4f} (expected under the"
        f" experts' law, free of label noise: {expected:.4f}), ECE {report['ece']:.4f}"
    )
    for name, scores in report["criteria"].items():
        log(f"  {name}: accuracy {scores['accuracy']:.4f}, ECE {scores['ece']:.4f}")

    acquisition = ACQUISITION
    runs = [
        learning_curves(config, pool, heldout, budgets, seed, acquisition)
        for seed in range(args.seeds)
    ]
    random_curve = mean_curve([run["random"] for run in runs])
    active_curve = mean_curve([run["active"] for run in runs])
    for low, high in zip(random_curve, active_curve, strict=True):
        log(
            f"  {low['labels']:>6} labels: random {low['accuracy']:.4f} / {low['log_loss']:.4f}"
            f", active {high['accuracy']:.4f} / {high['log_loss']:.4f}"
        )
    target = TARGET_SHARE * bayes
    random_labels = labels_to_reach(random_curve, target)
    active_labels = labels_to_reach(active_curve, target)

    timed_rows = np.arange(min(timed, pool_size))
    clock = time.perf_counter()
    train_reward_model(config, pool.take(timed_rows))
    train_seconds = time.perf_counter() - clock
    total = time.perf_counter() - started
    log(f"training on {len(timed_rows)} labels: {train_seconds:.1f}s; bench total {total:.0f}s")

    emit(
        {
            "labels": labels,
            "bayes_optimal_accuracy": round(bayes, 4),
            "heldout_accuracy": round(report["accuracy"], 4),
            "accuracy_ratio": round(report["accuracy"] / bayes, 4),
            "ece": round(report["ece"], 4),
            "labels_to_95pct_random": None if random_labels is None else round(random_labels),
            "labels_to_95pct_active": None if active_labels is None else round(active_labels),
            "label_savings": (
                round(random_labels / active_labels, 2) if random_labels and active_labels else None
            ),
            "active_logloss_vs_random": round(
                max(
                    a["log_loss"] - r["log_loss"]
                    for a, r in zip(active_curve, random_curve, strict=True)
                ),
                4,
            ),
            "train_seconds_100k": round(train_seconds, 1),
        }
    )


if __name__ == "__main__":
    main()
