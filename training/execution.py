"""What every training run does around its model's own training: claim the run, beat
while working, report progress, and fail it (removing any partial artifact) on any error.
A run's work is a function (run, heartbeat, artifact path) -> None that registers its
model through the registry or raises."""

import logging
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.utils import timezone

from training import registry, runs
from training.models import TrainingRun

log = logging.getLogger(__name__)

Work = Callable[[TrainingRun, runs.Heartbeat, Path], None]


class NotEnoughData(ValueError):
    """Too few labels or demonstrations to train anything worth registering: the run
    fails with this message alone (no traceback: nothing is broken)."""


def run_execute(run_id: int, work: Work) -> str:
    """Do the work of a queued run; what happened, in a word."""
    run = runs.run_claim(run_id, now=timezone.now())
    if run is None:
        return "not queued"  # finished, or another worker has it
    artifact = registry.artifact_path(run)
    torch.set_num_threads(settings.SHEPHERD_TORCH_THREADS)
    with runs.Heartbeat(run) as heartbeat:
        try:
            work(run, heartbeat, artifact)
        except registry.RunLost:
            artifact.unlink(missing_ok=True)
            return "lost"
        except Exception as error:  # noqa: BLE001 - any failure fails the run, with its trace
            artifact.unlink(missing_ok=True)
            log.exception("%s run %s failed", run.kind, run.pk)
            runs.run_fail(run, now=timezone.now(), error=_failure(error))
            return "failed"
    return "succeeded"


def _failure(error: Exception) -> str:
    if isinstance(error, NotEnoughData):
        return str(error)
    return "".join(traceback.format_exception(error))[-5000:]


def progress(run: TrainingRun, **values) -> None:
    """Record the run's progress (and beat); a run taken from this worker stops here."""
    if not runs.run_beat(run, now=timezone.now(), progress=values):
        raise registry.RunLost(f"run {run.pk} was taken from this worker")


def json_safe(value):
    """Metrics as JSON: NaN (nothing to measure) becomes null, NumPy scalars plain."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(item) for item in value]
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value
