"""One reward-model training run, end to end, as the Celery task runs it: claim the run,
snapshot the labels, train the ensemble with live progress, evaluate on the held-out
splits, write the artifact atomically, register the model (the gate decides whether it
is promoted). A failure at any point fails the run and leaves no model registered."""

import logging
import time
from dataclasses import replace

import numpy as np

from annotation.quality_selectors import all_criteria_agreement
from governance.models import Criterion
from governance.selectors import policy_version_in_force
from training import registry, runs
from training.datasets import RewardDataset, Split, reward_dataset
from training.execution import NotEnoughData, json_safe, progress, run_execute
from training.ml.reward_model import RewardModelConfig, save_checkpoint
from training.ml.train_reward import evaluation_report, predict_probabilities, train_reward_model
from training.models import TrainingRun

log = logging.getLogger(__name__)

MIN_TRAINING_PAIRS = 20  # fewer pairs than this teach nothing worth registering
LOSS_POINTS_KEPT = 200  # the run page's loss curve keeps at most this many epochs


def run_reward_training(run_id: int) -> str:
    """Train the reward model for a queued run; what happened, in a word."""
    return run_execute(run_id, _train)


def _train(run: TrainingRun, heartbeat: runs.Heartbeat, artifact) -> None:
    progress(run, stage="reading labels")
    criteria = tuple(Criterion.objects.filter(active=True).values_list("slug", flat=True))
    dataset = reward_dataset(criteria)
    runs.run_record_dataset(
        run, dataset_hash=dataset.dataset_hash, label_counts=dataset.label_counts
    )
    if len(dataset.train.data) < MIN_TRAINING_PAIRS:
        raise NotEnoughData(
            f"{len(dataset.train.data)} training pairs: at least {MIN_TRAINING_PAIRS} are needed"
        )
    config = _model_config(run, criteria)
    started = time.monotonic()
    losses: list[list[float]] = []

    def on_epoch(epoch: int, loss: float, seconds: float) -> None:
        if heartbeat.lost:
            raise registry.RunLost(f"run {run.pk} was taken from this worker")
        losses.append([epoch, round(loss, 5)])
        per_epoch = seconds / epoch
        progress(
            run, stage="training", epoch=epoch, epochs=config.epochs,
            losses=losses[-LOSS_POINTS_KEPT:],
            # an upper bound: early stopping usually ends the run sooner
            eta_seconds=round(per_epoch * (config.epochs - epoch)),
        )  # fmt: skip

    result = train_reward_model(config, dataset.train.data, logger=on_epoch)
    progress(run, stage="evaluating", epoch=result.epochs, epochs=config.epochs, losses=losses)
    metrics = _metrics(result.model, dataset, seconds=time.monotonic() - started)
    metrics["training"] = {
        "epochs": result.epochs, "steps": result.steps, "seconds": round(result.seconds, 2),
        "train_loss": result.train_loss, "member_epochs": result.member_epochs,
        "pairs": len(dataset.train.data),
    }  # fmt: skip
    progress(run, stage="saving", epoch=result.epochs, epochs=config.epochs, losses=losses)
    sha256 = save_checkpoint(artifact, result.model, dataset.space.schema, result.steps)
    registry.model_register(
        run=run, artifact=artifact, sha256=sha256,
        feature_schema=dataset.space.schema_record(), metrics=json_safe(metrics),
        guideline_versions=dataset.guideline_versions, policy_version=policy_version_in_force(),
    )  # fmt: skip


def _model_config(run: TrainingRun, criteria: tuple[str, ...]) -> RewardModelConfig:
    defaults = RewardModelConfig()
    veto = defaults.veto_criterion if defaults.veto_criterion in criteria else None
    overall = defaults.overall_criterion if defaults.overall_criterion in criteria else criteria[0]
    config = replace(
        defaults, criteria=criteria, veto_criterion=veto, overall_criterion=overall,
        members=run.config.get("ensemble_members", defaults.members),
        epochs=run.config.get("max_epochs", defaults.epochs), seed=run.pk,
    )  # fmt: skip
    run.config = {**run.config, "model": config.to_dict()}
    TrainingRun.objects.filter(pk=run.pk).update(config=run.config)
    return config


# --- evaluation ---------------------------------------------------------------------------------


def _metrics(model, dataset: RewardDataset, *, seconds: float) -> dict:
    """The held-out report: each split overall, per criterion, by channel and by segment.
    The gate reads ``accuracy`` and ``ece``: the time split's, or the audit split's when
    the time split is empty."""
    splits = {"time": dataset.heldout_time, "audit": dataset.heldout_audit}
    heldout = {name: _split_report(model, split) for name, split in splits.items()}
    _against_ceiling(heldout)
    primary = next((heldout[n] for n in ("time", "audit") if heldout[n]["labels"]), None)
    return {
        "heldout": heldout,
        "accuracy": primary["accuracy"] if primary else None,
        "ece": primary["ece"] if primary else None,
        "log_loss": primary["log_loss"] if primary else None,
        "non_tie_labels": primary["non_tie_labels"] if primary else 0,
        "seconds": round(seconds, 2),
    }


def _against_ceiling(heldout: dict) -> None:
    """Each criterion's accuracy as a share of the agreement ceiling (the best accuracy
    labels this noisy allow: quality_selectors), where reviewers overlapped enough."""
    ceilings = {
        view.criterion.slug: view.ceiling[1]
        for view in all_criteria_agreement()
        if view.ceiling is not None
    }
    for report in heldout.values():
        for name, scores in (report.get("criteria") or {}).items():
            ceiling = ceilings.get(name)
            accuracy = scores.get("accuracy")
            if ceiling and accuracy is not None and np.isfinite(accuracy):
                scores["ceiling"] = ceiling
                scores["share_of_ceiling"] = accuracy / ceiling


def _split_report(model, split: Split) -> dict:
    data = split.data
    if len(data) == 0:
        return {"labels": 0}
    probabilities = predict_probabilities(model, data.features_a.float(), data.features_b.float())
    outcomes = data.outcomes_for(model.criteria).numpy()
    report = evaluation_report(probabilities, outcomes, model.criteria)
    for name, groups in (("by_channel", split.channel), ("by_segment", split.segment)):
        report[name] = {
            str(group): _group_scores(probabilities, outcomes, groups == group, model.criteria)
            for group in sorted(set(groups))
        }
    return report


def _group_scores(probabilities, outcomes, rows, criteria) -> dict:
    part = evaluation_report(probabilities[rows], outcomes[rows], criteria)
    return {key: part[key] for key in ("accuracy", "log_loss", "ece", "labels")}
