"""Celery tasks of the learning loop: thin wrappers that call the training services.

Training tasks go to the ``training`` queue (config: acknowledged late, one at a time per
worker process), with a hard time limit from the training settings. Beat finds runs whose
worker died, retrains when enough new labels arrived, and refreshes the queue.
"""

import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from training import registry, runs
from training.models import ModelKind, RunStatus, RunTrigger, TrainingRun

log = logging.getLogger(__name__)


@shared_task(acks_late=True)
def train_reward_model(run_id: int) -> str:
    from training.reward_training import run_reward_training

    return run_reward_training(run_id)


@shared_task(acks_late=True)
def train_policy(run_id: int) -> str:
    from training.policy_training import run_policy_training

    return run_policy_training(run_id)


TRAINERS = {ModelKind.REWARD: train_reward_model, ModelKind.POLICY: train_policy}


def run_enqueue(run: TrainingRun) -> None:
    """Send the run's task once the transaction that queued it commits."""
    limit = run.config.get("time_limit_seconds", runs.training_settings().time_limit_seconds)
    task = TRAINERS[run.kind]
    transaction.on_commit(
        lambda: task.apply_async(args=[run.pk], time_limit=limit, soft_time_limit=limit - 10)
    )


def training_request(*, kind: str, trigger: str, actor=None) -> tuple[TrainingRun, bool]:
    """Queue a run (or join the one in progress) and send its task."""
    run, created = runs.run_request(kind=kind, trigger=trigger, actor=actor)
    if created:
        run_enqueue(run)
    return run, created


@shared_task
def reclaim_lost_runs() -> int:
    """Beat: runs whose worker stopped beating are queued again (and re-sent) or failed."""
    changed = runs.runs_reclaim_lost(now=timezone.now())
    for lost, status in changed:
        registry.artifact_discard(lost)
        if status == RunStatus.QUEUED:
            run_enqueue(TrainingRun.objects.get(pk=lost.pk))
    return len(changed)


@shared_task
def retrain_if_due() -> int | None:
    """Beat: a reward-model run once enough labels arrived since the last one started."""
    from training.selectors import labels_since_last_run

    if labels_since_last_run(ModelKind.REWARD) < runs.training_settings().retrain_after_labels:
        return None
    run, _ = training_request(kind=ModelKind.REWARD, trigger=RunTrigger.LABELS)
    return run.pk


@shared_task
def scheduled_retrain() -> int:
    """Beat, daily: a reward-model run whatever the count (guidelines and the catalog move
    too)."""
    run, _ = training_request(kind=ModelKind.REWARD, trigger=RunTrigger.SCHEDULE)
    return run.pk


@shared_task
def refresh_queue() -> int:
    """Propose comparison tasks where the promoted reward model is unsure or the stakes are
    high (with a share of random audits); returns how many were added."""
    from training.active_learning import queue_refresh

    return queue_refresh(now=timezone.now())


@shared_task
def retrain_policy(*, trigger: str = RunTrigger.PROMOTION) -> int:
    """A policy run (or the one in progress): after each reward-model promotion, since
    the policy improves against the reward model's utility."""
    run, _ = training_request(kind=ModelKind.POLICY, trigger=trigger)
    return run.pk


def after_promotion(version) -> None:
    """A newly promoted reward model proposes the next comparisons and retrains the
    policy against itself."""
    if version.kind == ModelKind.REWARD:
        refresh_queue.delay()
        retrain_policy.delay()
