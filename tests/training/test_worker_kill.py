"""A real Celery worker process, killed with SIGKILL in the middle of a reward-model run:
no model is registered, beat's reclaim queues the run again, and the next worker trains
it to the end."""

import os
import signal
import time

import pytest
from django.utils import timezone

from config.celery import app
from tests.training.factories import demo_world, labeled_store
from tests.workers import worker_process
from training import registry, tasks
from training.models import ModelKind, ModelVersion, RunStatus, RunTrigger, TrainingSettings

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HEARTBEAT_TIMEOUT = 3
WAIT_SECONDS = 300  # generous: the worker starts Django and PyTorch first


def wait_for(condition, *, what: str, seconds: float = WAIT_SECONDS, every: float = 0.05):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def purge_training_queue(settings) -> None:
    """Messages an earlier test run left on the shared test broker must not be taken."""
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.SHEPHERD_TRAINING_QUEUE)


def test_a_worker_killed_mid_run_leaves_no_model_and_the_retry_succeeds(settings, tmp_path):
    store = tmp_path / "models"
    settings.SHEPHERD_MODEL_DIR = store
    demo_world(items=150, users=40)
    labeled_store(comparisons=4000)
    TrainingSettings.objects.update_or_create(
        pk=1,
        defaults={"ensemble_members": 5, "max_epochs": 200, "max_attempts": 2,
                  "heartbeat_timeout_seconds": HEARTBEAT_TIMEOUT},
    )  # fmt: skip
    purge_training_queue(settings)
    env = {"SHEPHERD_MODEL_DIR": str(store)}

    with worker_process(queue=settings.SHEPHERD_TRAINING_QUEUE, **env) as (_, worker):
        run, _ = tasks.training_request(kind=ModelKind.REWARD, trigger=RunTrigger.SCHEDULE)

        def training_started():
            run.refresh_from_db()
            return run.progress.get("stage") == "training" and run.progress.get("epoch", 0) >= 1

        wait_for(training_started, what="the first epoch")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()

    run.refresh_from_db()
    assert (run.status, run.attempt) == (RunStatus.RUNNING, 1)
    assert not ModelVersion.objects.exists()
    time.sleep(HEARTBEAT_TIMEOUT + 1)
    assert tasks.reclaim_lost_runs() == 1

    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert "stopped beating" in run.error
    with worker_process(queue=settings.SHEPHERD_TRAINING_QUEUE, **env):

        def finished():
            run.refresh_from_db()
            return run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED)

        wait_for(finished, what="the retry to finish", every=0.5)

    assert (run.status, run.attempt) == (RunStatus.SUCCEEDED, 2), run.error
    version = ModelVersion.objects.get()
    assert version.run == run
    assert version.artifact_path == f"reward/run-{run.pk}-attempt-2.pt"
    assert registry.file_sha256(store / version.artifact_path) == version.artifact_sha256
    assert sorted(p.name for p in (store / "reward").iterdir()) == [
        f"run-{run.pk}-attempt-2.pt"
    ]  # the killed attempt left nothing behind
    assert run.finished_at <= timezone.now()
