"""The life of a training run: requested (queued), claimed by one worker (running, with a
heartbeat), then succeeded with its model registered, or failed with the reason.

Every transition is one conditional UPDATE, so a redelivered Celery message, a beat
reclaim and a worker that was presumed dead but is not can never run the same run twice
or finish it twice: whoever does not match the expected state does nothing.
"""

import os
import socket
import threading
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from governance.audit import audit_record
from training.models import (
    ACTIVE_RUN_STATES,
    RunStatus,
    RunTrigger,
    TrainingRun,
    TrainingSettings,
)


def training_settings() -> TrainingSettings:
    return TrainingSettings.objects.get_or_create(pk=1)[0]


def run_request(*, kind: str, trigger: str, actor=None) -> tuple[TrainingRun, bool]:
    """Queue a run of ``kind`` unless one is queued or running already: (the run, True
    when this call created it). The caller sends the Celery task for a new run once this
    commits (``training.tasks.run_enqueue``)."""
    existing = TrainingRun.objects.filter(kind=kind, status__in=ACTIVE_RUN_STATES).first()
    if existing is not None:
        return existing, False
    settings = training_settings()
    config = {
        "ensemble_members": settings.ensemble_members,
        "max_epochs": settings.max_epochs,
        "time_limit_seconds": settings.time_limit_seconds,
    }
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                kind=kind, trigger=trigger, requested_by=actor, config=config
            )
            if trigger == RunTrigger.ADMIN:
                audit_record(
                    actor=actor, action="training_run.request", target=run,
                    after={"kind": kind, "config": config},
                )  # fmt: skip
    except IntegrityError:  # another request won the race: join its run
        return TrainingRun.objects.get(kind=kind, status__in=ACTIVE_RUN_STATES), False
    return run, True


def run_claim(run_id: int, *, now: datetime) -> TrainingRun | None:
    """Take a queued run for this process: running, attempt + 1, beating from now. None
    when it is not queued (finished, or another worker has it)."""
    claimed = TrainingRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING,
        attempt=F("attempt") + 1,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        started_at=now,
        heartbeat_at=now,
        error="",
    )
    return TrainingRun.objects.get(pk=run_id) if claimed else None


def run_beat(run: TrainingRun, *, now: datetime, progress: dict | None = None) -> bool:
    """Record that the run is alive (and how far it got). False when the run is no longer
    this worker's to run (beat failed it as lost): the caller must stop."""
    changes = {"heartbeat_at": now}
    if progress is not None:
        changes["progress"] = progress
        run.progress = progress
    return bool(
        TrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, attempt=run.attempt).update(
            **changes
        )
    )


def run_succeed(run: TrainingRun, *, now: datetime, metrics: dict) -> bool:
    """Mark the run succeeded; call inside the transaction that registers its model, so
    both happen or neither. False when the run is no longer this worker's."""
    return bool(
        TrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, attempt=run.attempt).update(
            status=RunStatus.SUCCEEDED, finished_at=now, heartbeat_at=now, metrics=metrics
        )
    )


def run_fail(run: TrainingRun, *, now: datetime, error: str) -> bool:
    return bool(
        TrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, attempt=run.attempt).update(
            status=RunStatus.FAILED, finished_at=now, error=error[:5000]
        )
    )


def run_record_dataset(run: TrainingRun, *, dataset_hash: str, label_counts: dict) -> None:
    run.dataset_hash, run.label_counts = dataset_hash, label_counts
    TrainingRun.objects.filter(pk=run.pk).update(
        dataset_hash=dataset_hash, label_counts=label_counts
    )


def runs_reclaim_lost(*, now: datetime) -> list[tuple[TrainingRun, str]]:
    """Runs whose heartbeat stopped (their worker was killed): queued again while they
    have attempts left, failed otherwise. Returns (the run as its lost attempt left it,
    new status) for each; the caller discards that attempt's files and re-sends the task
    of the requeued ones."""
    settings = training_settings()
    cutoff = now - timedelta(seconds=settings.heartbeat_timeout_seconds)
    changed = []
    for run in TrainingRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff):
        lost = TrainingRun.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, attempt=run.attempt, heartbeat_at__lt=cutoff
        )
        silence = f"its worker ({run.worker}) stopped beating at {run.heartbeat_at:%H:%M:%S}"
        if run.attempt < settings.max_attempts:
            if lost.update(status=RunStatus.QUEUED, error=f"retrying: {silence}"):
                changed.append((run, RunStatus.QUEUED))
        elif lost.update(
            status=RunStatus.FAILED, finished_at=now,
            error=f"failed after {run.attempt} attempts: {silence}",
        ):  # fmt: skip
            changed.append((run, RunStatus.FAILED))
    return changed


class Heartbeat:
    """Beats for a run from a background thread while the work runs, so a long step
    (loading data, one slow epoch) never looks like a dead worker. ``lost`` turns true
    when the run was taken from this worker; the work checks it between steps."""

    def __init__(self, run: TrainingRun):
        self.run = run
        # Three beats per timeout at least: one late beat never makes a live run look lost.
        self.every = min(10.0, training_settings().heartbeat_timeout_seconds / 3)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"beat-{run.pk}")

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        from django.db import connection

        try:
            while not self._stop.wait(self.every):
                if not run_beat(self.run, now=timezone.now()):
                    self.lost = True
                    return
        finally:
            connection.close()  # this thread's own connection
