"""Training and evaluating the reward model on pairwise judgments.

Method: maximum likelihood of the Davidson (1970) model with ties (losses.py), weighted per
judgment (channel × reviewer reliability), for every member of a bootstrap ensemble at once
(reward_model.py). Each member is fit on its own bootstrap resample, written as multinomial
counts that weight a shared mini-batch, with AdamW (Loshchilov & Hutter 2019, "Decoupled
weight decay regularization") on inputs standardized once. Training stops early on each
member's out-of-bag loss (Breiman 1996, "Out-of-bag estimation"): the pairs its resample
left out are its validation set, and each member keeps the weights of its best epoch. An
epoch makes progress when some member's out-of-bag loss falls more than
``min_improvement`` below its best; after an epoch without progress the learning rate is
multiplied by ``plateau_lr_factor`` (reduce-on-plateau), and ``patience`` epochs without
progress end the training.

Evaluation reports accuracy on non-tie labels, the log loss of every label (ties included)
and the expected calibration error (Naeini, Cooper & Hauskrecht 2015; Guo et al. 2017, "On
calibration of modern neural networks") of the side the model names, with a reliability
table.

Demonstrations become pairs too: a curator's chosen slate is preferred to the same slate
with one item swapped for a candidate the curator rejected, on "overall" and on the
criterion the rejection reason names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from training.ml.losses import NO_LABEL, OUTCOME_A, OUTCOME_B, davidson_log_likelihood
from training.ml.reward_model import RewardModel, RewardModelConfig

Logger = Callable[[int, float, float], None]  # (epoch, mean training loss, seconds so far)
VALIDATION_PAIRS = 8192  # out-of-bag losses are measured on this many pairs at most
MIN_BATCH = 32
ECE_BINS = 15
MIX_LR = 10.0  # learning-rate multiplier of the overall mix weights


@dataclass(frozen=True, eq=False)
class PreferenceData:
    """n comparisons: slate A against slate B in the same context, judged per criterion."""

    features_a: Tensor  # float32[n, D], feature row of slate A in its context
    features_b: Tensor  # float32[n, D], feature row of slate B in the same context
    outcomes: Tensor  # int8[n, C]: 0 A, 1 B, 2 tie, -1 no label for that criterion
    weights: Tensor  # float32[n]: channel weight × reviewer reliability
    criteria: tuple[str, ...]  # the criterion of each column of outcomes

    def __post_init__(self) -> None:
        n, dim = self.features_a.shape
        if self.features_b.shape != (n, dim):
            raise ValueError(f"features_b: expected shape {(n, dim)}, got {self.features_b.shape}")
        if self.outcomes.shape != (n, len(self.criteria)):
            raise ValueError(f"outcomes: expected shape {(n, len(self.criteria))}")
        if self.outcomes.numel() and (self.outcomes.min() < NO_LABEL or self.outcomes.max() > 2):
            raise ValueError("outcomes: codes must be -1, 0, 1 or 2")
        if self.weights.shape != (n,) or (self.weights < 0).any():
            raise ValueError("weights: expected n non-negative weights")

    def __len__(self) -> int:
        return len(self.weights)

    def take(self, rows) -> PreferenceData:
        rows = torch.as_tensor(rows, dtype=torch.long)
        return PreferenceData(
            self.features_a[rows],
            self.features_b[rows],
            self.outcomes[rows],
            self.weights[rows],
            self.criteria,
        )

    def outcomes_for(self, criteria: Sequence[str]) -> Tensor:
        """int64[n, len(criteria)]: the outcome columns in the order of ``criteria``."""
        missing = [name for name in criteria if name not in self.criteria]
        if missing:
            raise ValueError(f"outcomes: no column for criteria {missing}")
        return self.outcomes[:, [self.criteria.index(name) for name in criteria]].long()


@dataclass
class TrainResult:
    model: RewardModel
    epochs: int  # epochs run
    steps: int  # optimisation steps taken
    seconds: float  # wall time of the training
    train_loss: float  # mean training loss of the last epoch (negative log-likelihood)
    member_epochs: list[int]  # the epoch whose weights each member kept
    member_validation_loss: list[float]  # each member's best out-of-bag loss
    history: list[dict] = field(default_factory=list)  # {"epoch", "loss", "seconds"} per epoch


def no_logging(epoch: int, loss: float, seconds: float) -> None:
    """A logger that does nothing (tests)."""


def train_reward_model(
    config: RewardModelConfig, data: PreferenceData, *, logger: Logger = no_logging
) -> TrainResult:
    """Fit a fresh ensemble to ``data``; ``logger`` is called after every epoch."""
    if len(data) == 0:
        raise ValueError("data: no comparisons to train on")
    started = time.perf_counter()

    # --- seeding: initialization, bootstrap and batch order all follow config.seed
    generator = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = RewardModel(config, data.features_a.shape[1])

    # --- data: standardized inputs, one bootstrap resample and out-of-bag pairs per member
    both = torch.cat([data.features_a.float(), data.features_b.float()])
    model.set_normalization(both.mean(dim=0), both.std(dim=0))
    del both
    with torch.no_grad():  # rows (A, B) of pair i at 2i, 2i + 1, standardized once
        rows_ab = model.standardize(
            torch.stack([data.features_a.float(), data.features_b.float()], dim=1)
        )
    outcomes, weights = data.outcomes_for(config.criteria), data.weights.float()
    counts = bootstrap_counts(len(data), config.members, config.bootstrap, generator)
    validation = torch.randperm(len(data), generator=generator)[:VALIDATION_PAIRS]
    out_of_bag = (
        counts[:, validation] == 0 if config.bootstrap else torch.ones_like(counts[:, validation])
    )
    validation_weight = out_of_bag * weights[validation]

    # --- optimisation: epochs until no member's out-of-bag loss improves for `patience`
    optimizer = adamw(model, config)
    batch_size = int(np.clip(len(data) // config.min_steps_per_epoch, MIN_BATCH, config.batch_size))
    best = BestMembers(model)
    history, steps, epoch, epoch_loss = [], 0, 0, float("nan")
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses = []
        for rows in torch.randperm(len(data), generator=generator).split(batch_size):
            loss = -_pair_log_likelihood(
                model, rows_ab[rows], outcomes[rows], counts[:, rows] * weights[rows]
            ).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item() / config.members)
        steps, epoch_loss = steps + len(losses), float(np.mean(losses))

        model.eval()
        with torch.no_grad():
            validation_loss = -_pair_log_likelihood(
                model, rows_ab[validation], outcomes[validation], validation_weight
            )
        best.update(model, validation_loss, epoch, config.min_improvement)
        seconds = time.perf_counter() - started
        history.append({"epoch": epoch, "loss": epoch_loss, "seconds": seconds})
        logger(epoch, epoch_loss, seconds)
        if epoch - best.last_improvement >= config.patience:
            break
        if best.last_improvement < epoch:  # no progress: smaller steps (reduce on plateau)
            for group in optimizer.param_groups:
                group["lr"] *= config.plateau_lr_factor

    best.restore(model)
    model.eval()
    return TrainResult(
        model=model,
        epochs=epoch,
        steps=steps,
        seconds=time.perf_counter() - started,
        train_loss=epoch_loss,
        member_epochs=best.epochs.tolist(),
        member_validation_loss=best.losses.tolist(),
        history=history,
    )


def adamw(model: RewardModel, config: RewardModelConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on the weight matrices only; the few overall mix weights learn
    MIX_LR times faster (they move whole heads)."""
    return torch.optim.AdamW(
        [
            {"params": list(model.weights), "weight_decay": config.weight_decay},
            {"params": [*model.biases, model.log_nu], "weight_decay": 0.0},
            {"params": [model.mix], "weight_decay": 0.0, "lr": config.lr * MIX_LR},
        ],
        lr=config.lr,
    )


def bootstrap_counts(n: int, members: int, bootstrap: bool, generator: torch.Generator) -> Tensor:
    """float[members, n]: how often each pair is drawn in each member's resample of size n
    (multinomial; all ones without bootstrap)."""
    if not bootstrap:
        return torch.ones(members, n)
    draws = torch.randint(0, n, (members, n), generator=generator)
    counts = torch.zeros(members, n)
    return counts.scatter_add_(1, draws, torch.ones(members, n))


def member_log_likelihood(
    model: RewardModel, x_a: Tensor, x_b: Tensor, outcomes: Tensor, weight: Tensor
) -> Tensor:
    """float[members]: each member's weighted mean log-likelihood; ``weight`` float[M, b]."""
    pairs = model.standardize(torch.stack([x_a, x_b], dim=1))
    return _pair_log_likelihood(model, pairs, outcomes, weight)


def _pair_log_likelihood(model: RewardModel, pairs: Tensor, outcomes: Tensor, weight: Tensor):
    """``member_log_likelihood`` of standardized pairs float[b, 2, D] (A, B)."""
    b = len(pairs)
    u = model.utilities_of_standardized(pairs.view(2 * b, -1)).view(len(weight), b, 2, -1)
    return davidson_log_likelihood(
        u[:, :, 0], u[:, :, 1], outcomes, model.log_nu[:, None, :], weight[:, :, None], dim=(1, 2)
    )


class BestMembers:
    """Each member's parameters at its lowest validation loss so far."""

    def __init__(self, model: RewardModel):
        self.saved = [p.detach().clone() for p in model.parameters()]
        self.losses = torch.full((model.config.members,), float("inf"))
        self.epochs = torch.zeros(model.config.members, dtype=torch.long)
        self.last_improvement = 0

    def update(
        self, model: RewardModel, losses: Tensor, epoch: int, min_improvement: float = 0.0
    ) -> None:
        """Keep every member that improved; an epoch counts as progress (``last_improvement``)
        when some member improved by more than ``min_improvement``."""
        if (losses < self.losses - min_improvement).any():
            self.last_improvement = epoch
        better = losses < self.losses
        if not better.any():
            return
        for saved, parameter in zip(self.saved, model.parameters(), strict=True):
            saved[better] = parameter.detach()[better]
        self.losses = torch.where(better, losses, self.losses)
        self.epochs[better] = epoch

    def restore(self, model: RewardModel) -> None:
        with torch.no_grad():
            for saved, parameter in zip(self.saved, model.parameters(), strict=True):
                parameter.copy_(saved)


# --- evaluation -------------------------------------------------------------------------------


def predict_probabilities(
    model: RewardModel, x_a: Tensor, x_b: Tensor, chunk: int = 16384
) -> np.ndarray:
    """float[n, C, 3]: the ensemble's P(A), P(B), P(tie)."""
    model.eval()
    with torch.no_grad():
        parts = [
            model.probabilities(x_a[i : i + chunk], x_b[i : i + chunk])
            for i in range(0, len(x_a), chunk)
        ]
    return torch.cat(parts).double().numpy() if parts else np.zeros((0, len(model.criteria), 3))


def evaluate(model: RewardModel, data: PreferenceData, *, bins: int = ECE_BINS) -> dict:
    """``evaluation_report`` of the ensemble's probabilities on ``data``."""
    probabilities = predict_probabilities(model, data.features_a.float(), data.features_b.float())
    return evaluation_report(
        probabilities, data.outcomes_for(model.criteria).numpy(), model.criteria, bins=bins
    )


def evaluation_report(
    probabilities: np.ndarray,
    outcomes: np.ndarray,
    criteria: Sequence[str],
    *,
    bins: int = ECE_BINS,
) -> dict:
    """Accuracy on non-tie labels (the model names the likelier of A and B), log loss of every
    label (ties included) and ECE of the named side, pooled over criteria and per criterion
    (``probabilities`` float[n, C, 3], ``outcomes`` int[n, C] with -1 = no label).

    ECE = Σ_b (n_b / N) |mean confidence_b − observed frequency_b| over ``bins`` equal-width
    bins of [0.5, 1], where confidence = max(P(A), P(B)) / (P(A) + P(B)) is the predicted
    probability that the named side is chosen given that the judgment is not a tie, and the
    observed frequency is the share of those labels that chose it. ``reliability`` lists every
    bin (low, high, mean_predicted, observed, count) for a reliability diagram.
    """
    report = {"labels": int((outcomes >= 0).sum()), **_scores(probabilities, outcomes, bins)}
    report["criteria"] = {
        name: _scores(probabilities[:, [c]], outcomes[:, [c]], bins, table=False)
        for c, name in enumerate(criteria)
    }
    return report


def _scores(probabilities: np.ndarray, outcomes: np.ndarray, bins: int, table: bool = True) -> dict:
    labeled = outcomes >= 0
    decided = (outcomes == OUTCOME_A) | (outcomes == OUTCOME_B)
    p_a, p_b = probabilities[..., 0], probabilities[..., 1]
    names_a = p_a >= p_b
    correct = np.where(names_a, outcomes == OUTCOME_A, outcomes == OUTCOME_B)[decided]
    confidence = (np.maximum(p_a, p_b) / (p_a + p_b))[decided]
    picked = np.take_along_axis(probabilities, np.clip(outcomes, 0, 2)[..., None], axis=-1)[..., 0]
    scores = {
        "accuracy": float(correct.mean()) if correct.size else float("nan"),
        "log_loss": float(-np.log(np.clip(picked[labeled], 1e-12, 1)).mean())
        if labeled.any()
        else float("nan"),
        "non_tie_labels": int(decided.sum()),
    }
    reliability = reliability_table(confidence, correct, bins)
    total = max(sum(row["count"] for row in reliability), 1)
    scores["ece"] = float(
        sum(
            row["count"] / total * abs(row["mean_predicted"] - row["observed"])
            for row in reliability
            if row["count"]
        )
    )
    if table:
        scores["reliability"] = reliability
    return scores


def reliability_table(
    confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> list[dict]:
    """Per equal-width bin of [0.5, 1]: its edges, the mean predicted probability, the observed
    frequency and the count (empty bins have NaN means and count 0)."""
    edges = np.linspace(0.5, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "mean_predicted": float(confidence[inside].mean()) if count else float("nan"),
                "observed": float(correct[inside].mean()) if count else float("nan"),
                "count": count,
            }
        )
    return rows


# --- demonstrations ---------------------------------------------------------------------------

REASON_CRITERION = {"unsafe": "safety", "irrelevant": "relevance", "repetitive": "diversity"}
OVERALL = "overall"


@dataclass(frozen=True)
class Rejection:
    """A candidate the curator turned down while building a demonstration slate."""

    item: int  # catalog position of the rejected candidate
    reason: str  # "unsafe", "irrelevant", "repetitive" or any other reason
    position: int | None = None  # the slot it was turned down for; None: the last slot


def demonstration_pairs(
    chosen: Sequence[int], rejections: Sequence[Rejection], criteria: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Preference pairs from one demonstration step: for each rejection, A = the chosen slate
    and B = the chosen slate with the rejected item in its slot. A is preferred (outcome 0) on
    "overall" and on the criterion the reason names (unsafe → safety, irrelevant →
    relevance, repetitive → diversity; other reasons: overall only); the other criteria get
    no label (-1). Rejected items already in the chosen slate are skipped.

    Returns slates_a int[r, k], slates_b int[r, k] and outcomes int8[r, len(criteria)].
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    slates_b, labels = [], []
    for rejection in rejections:
        if rejection.item in chosen:
            continue
        slot = len(chosen) - 1 if rejection.position is None else rejection.position
        if not 0 <= slot < len(chosen):
            raise ValueError(f"position: slot {slot} is outside a slate of {len(chosen)} items")
        swapped = chosen.copy()
        swapped[slot] = rejection.item
        preferred_on = {OVERALL, REASON_CRITERION.get(rejection.reason, OVERALL)}
        slates_b.append(swapped)
        labels.append([OUTCOME_A if name in preferred_on else NO_LABEL for name in criteria])
    r = len(slates_b)
    return (
        np.tile(chosen, (r, 1)),
        np.stack(slates_b) if r else np.empty((0, len(chosen)), dtype=np.int64),
        np.asarray(labels, dtype=np.int8).reshape(r, len(criteria)),
    )
