"""The promoted reward model proposes comparisons: each with its reason, the model that
proposed it and who may take it; a share drawn at random for unbiased evaluation; never
more waiting than the settings allow."""

import numpy as np
import pytest
from django.utils import timezone

from annotation.models import QueueTask, TaskAudience, TaskReason, TaskStatus
from catalog.models import Item, UserContext
from tests.training.factories import demo_world, labeled_store
from training import runs
from training.active_learning import queue_refresh
from training.models import ModelKind, ModelVersion, TrainingSettings
from training.reward_training import run_reward_training

# The run's heartbeat thread has its own connection: it must see committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def promoted_model(settings, tmp_path) -> ModelVersion:
    settings.SHEPHERD_MODEL_DIR = tmp_path / "models"
    demo_world()
    labeled_store(comparisons=400)
    runs.training_settings()
    TrainingSettings.objects.update(ensemble_members=3, max_epochs=20)
    run, _ = runs.run_request(kind=ModelKind.REWARD, trigger="admin")
    assert run_reward_training(run.pk) == "succeeded"
    return ModelVersion.objects.get(run=run)


def proposed() -> list[QueueTask]:
    return list(QueueTask.objects.filter(proposed_by__isnull=False).order_by("pk"))


def test_proposals_carry_their_reason_model_and_audience(promoted_model):
    TrainingSettings.objects.update(proposals_per_refresh=40, audit_share=0.25)
    sensitive = set(Item.objects.filter(sensitivity__gte=2).values_list("pk", flat=True))
    minors = set(UserContext.objects.filter(audience="minor").values_list("pk", flat=True))

    added = queue_refresh(now=timezone.now(), rng=np.random.default_rng(0))

    tasks = proposed()
    assert added == len(tasks) == 40
    assert all(t.proposed_by == promoted_model for t in tasks)
    assert all(t.note.startswith(f"reward v{promoted_model.version}:") for t in tasks)
    reasons = [t.reason for t in tasks]
    assert reasons.count(TaskReason.AUDIT) == 10
    for task in tasks:
        high_stakes = task.context_id in minors or bool(sensitive & {*task.slate_a, *task.slate_b})
        if task.reason != TaskReason.AUDIT:
            assert (task.reason == TaskReason.STAKES) == high_stakes
        expected = TaskAudience.SAFETY_REVIEWER if high_stakes else TaskAudience.LABELER
        assert task.audience == expected
        assert task.slate_a != task.slate_b
        assert task.status == TaskStatus.OPEN


def test_the_queue_never_holds_more_than_twice_a_batch_of_proposals(promoted_model):
    TrainingSettings.objects.update(proposals_per_refresh=30)
    rng = np.random.default_rng(1)

    counts = [queue_refresh(now=timezone.now(), rng=rng) for _ in range(3)]

    assert counts == [30, 30, 0]
    assert len(proposed()) == 60


def test_without_a_promoted_model_nothing_is_proposed(settings, tmp_path):
    settings.SHEPHERD_MODEL_DIR = tmp_path / "models"
    demo_world()

    assert queue_refresh(now=timezone.now()) == 0
    assert not proposed()
