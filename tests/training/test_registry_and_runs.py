"""Training runs and the model registry, in process: a run from the labeled store to a
registered (and gated) model, the run's states, the gate's verdicts, and the admin
actions on versions, each audited."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from governance.models import AuditEvent
from tests.training.factories import demo_world, labeled_store
from training import registry, runs
from training.models import ModelKind, ModelStatus, ModelVersion, RunStatus, TrainingRun
from training.reward_training import run_reward_training
from training.selectors import labels_since_last_run, promoted_reward_model

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def model_store(settings, tmp_path):
    settings.SHEPHERD_MODEL_DIR = tmp_path / "models"
    runs.training_settings()  # the row, with its defaults
    return settings.SHEPHERD_MODEL_DIR


def small_settings(**values) -> None:
    from training.models import TrainingSettings

    TrainingSettings.objects.filter(pk=1).update(ensemble_members=3, max_epochs=30, **values)


def queued_run() -> TrainingRun:
    run, created = runs.run_request(kind=ModelKind.REWARD, trigger="labels")
    assert created
    return run


def fake_version(number: int, *, accuracy: float, status=ModelStatus.CANDIDATE, **fields):
    return ModelVersion.objects.create(
        kind=ModelKind.REWARD, version=number, status=status, dataset_hash="x" * 64,
        metrics={"accuracy": accuracy, "ece": 0.01}, gate={"passed": True, "reasons": []},
        artifact_path=f"reward/v{number}.pt", artifact_sha256="0" * 64, **fields,
    )  # fmt: skip


# --- a run, end to end ---------------------------------------------------------------------


# The run's heartbeat thread has its own connection: it must see committed rows.
@pytest.mark.django_db(transaction=True)
def test_a_run_trains_evaluates_registers_and_promotes_the_first_model(model_store):
    demo_world()
    labeled_store(comparisons=600)
    small_settings()
    run = queued_run()

    assert run_reward_training(run.pk) == "succeeded"

    run.refresh_from_db()
    version = ModelVersion.objects.get(run=run)
    assert run.status == RunStatus.SUCCEEDED
    assert run.label_counts["comparisons"] == 600
    assert run.progress["stage"] == "saving"
    assert run.progress["losses"]
    assert version.status == ModelStatus.PROMOTED  # first model, calibrated: the gate passes
    assert version.gate["passed"]
    assert version.gate["compared_to"] is None
    assert version.dataset_hash == run.dataset_hash
    assert version.feature_schema["vocabulary"]["topics"]
    assert (model_store / version.artifact_path).exists()
    heldout = version.metrics["heldout"]
    assert heldout["time"]["labels"] > 0
    assert heldout["audit"]["labels"] > 0
    assert heldout["time"]["accuracy"] > 0.7  # the rule is learnable from item features
    assert set(heldout["time"]["by_channel"]) == {"curation"}
    actions = list(
        AuditEvent.objects.filter(object_id=str(version.pk))
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert actions == ["model_version.register", "model_version.promote"]
    loaded = promoted_reward_model()
    assert loaded is not None
    assert loaded[0] == version


@pytest.mark.django_db(transaction=True)
def test_too_few_labels_fail_the_run_with_the_reason_and_register_nothing():
    demo_world()
    labeled_store(comparisons=5)
    run = queued_run()

    assert run_reward_training(run.pk) == "failed"

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "training pairs: at least 20 are needed" in run.error
    assert not ModelVersion.objects.exists()


def test_a_run_is_only_claimed_once():
    run = queued_run()
    first = runs.run_claim(run.pk, now=timezone.now())
    second = runs.run_claim(run.pk, now=timezone.now())

    assert first is not None
    assert first.attempt == 1
    assert first.status == RunStatus.RUNNING
    assert second is None
    assert run_reward_training(run.pk) == "not queued"


def test_a_second_request_joins_the_run_in_progress():
    first, created = runs.run_request(kind=ModelKind.REWARD, trigger="admin")
    second, again = runs.run_request(kind=ModelKind.REWARD, trigger="labels")

    assert created
    assert not again
    assert second == first
    assert TrainingRun.objects.count() == 1


def test_a_run_whose_worker_went_silent_is_retried_then_failed():
    small_settings(heartbeat_timeout_seconds=60, max_attempts=2)
    run = queued_run()
    now = timezone.now()
    claimed = runs.run_claim(run.pk, now=now - timedelta(minutes=5))

    assert [(r.pk, r.attempt, s) for r, s in runs.runs_reclaim_lost(now=now)] == [
        (run.pk, 1, RunStatus.QUEUED)
    ]
    again = runs.run_claim(run.pk, now=now - timedelta(minutes=3))
    assert again.attempt == 2
    assert not runs.run_beat(claimed, now=now)  # the first attempt's worker lost it
    assert [(r.pk, s) for r, s in runs.runs_reclaim_lost(now=now)] == [(run.pk, RunStatus.FAILED)]
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "failed after 2 attempts" in run.error


def test_a_run_taken_from_its_worker_cannot_register_its_model(model_store):
    run = queued_run()
    claimed = runs.run_claim(run.pk, now=timezone.now())
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.QUEUED)  # beat took it back
    artifact = registry.artifact_path(claimed)
    artifact.write_bytes(b"weights")

    with pytest.raises(registry.RunLost):
        registry.model_register(
            run=claimed, artifact=artifact, sha256=registry.file_sha256(artifact),
            feature_schema={}, metrics={"accuracy": 0.9, "ece": 0.01}, guideline_versions=[],
        )  # fmt: skip

    assert not ModelVersion.objects.exists()
    assert not AuditEvent.objects.filter(action="model_version.register").exists()


def test_an_artifact_that_does_not_match_its_hash_is_refused(model_store):
    claimed = runs.run_claim(queued_run().pk, now=timezone.now())
    artifact = registry.artifact_path(claimed)
    artifact.write_bytes(b"weights")

    with pytest.raises(ValidationError, match="does not hash to"):
        registry.model_register(
            run=claimed, artifact=artifact, sha256="0" * 64, feature_schema={},
            metrics={}, guideline_versions=[],
        )  # fmt: skip

    assert not ModelVersion.objects.exists()


def test_labels_since_the_last_run_start_from_its_request():
    demo_world()
    labeled_store(comparisons=7)
    assert labels_since_last_run(ModelKind.REWARD) == 7
    queued_run()
    labeled_store(comparisons=3, seed=1)
    assert labels_since_last_run(ModelKind.REWARD) == 3


# --- the gate ---------------------------------------------------------------------------------


def test_the_gate_refuses_a_worse_or_miscalibrated_candidate_and_says_why():
    promoted = fake_version(1, accuracy=0.80, status=ModelStatus.PROMOTED)

    close = registry.gate_verdict("reward", {"accuracy": 0.79, "ece": 0.02}, promoted)
    worse = registry.gate_verdict("reward", {"accuracy": 0.70, "ece": 0.02}, promoted)
    uncalibrated = registry.gate_verdict(
        "reward", {"accuracy": 0.85, "ece": 0.2, "non_tie_labels": 500}, promoted
    )
    few = registry.gate_verdict(
        "reward", {"accuracy": 0.85, "ece": 0.2, "non_tie_labels": 50}, promoted
    )
    unevaluated = registry.gate_verdict("reward", {"accuracy": None, "ece": None}, promoted)

    assert close["passed"]
    assert close["compared_to"] == promoted.pk
    assert not worse["passed"]
    assert "0.700 is below 0.780" in worse["reasons"][0]
    assert not uncalibrated["passed"]
    assert "calibration error 0.200 is above the bound 0.05" in uncalibrated["reasons"][1]
    assert few["passed"]
    assert "not judged: 50 held-out labels" in few["reasons"][1]
    assert not unevaluated["passed"]


# --- admin actions -------------------------------------------------------------------------


def test_promotion_replaces_and_rollback_restores_each_audited(policy_admin):
    first = fake_version(1, accuracy=0.8, status=ModelStatus.PROMOTED)
    second = fake_version(2, accuracy=0.82)

    registry.model_promote(actor=policy_admin, version=second)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (ModelStatus.RETIRED, ModelStatus.PROMOTED)
    assert second.replaced == first
    assert second.promoted_by == policy_admin

    restored = registry.model_rollback(actor=policy_admin, kind=ModelKind.REWARD)
    second.refresh_from_db()
    assert restored == first
    assert restored.status == ModelStatus.PROMOTED
    assert second.status == ModelStatus.ROLLED_BACK
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", "actor_name"))
    assert actions == [
        ("model_version.replace", "admin"),
        ("model_version.promote", "admin"),
        ("model_version.rollback", "admin"),
        ("model_version.restore", "admin"),
    ]


def test_a_refused_candidate_cannot_be_promoted(policy_admin):
    refused = fake_version(1, accuracy=0.5)
    ModelVersion.objects.filter(pk=refused.pk).update(
        gate={"passed": False, "reasons": ["held-out accuracy 0.500 is below 0.780"]}
    )
    refused.refresh_from_db()

    with pytest.raises(ValidationError, match="the gate refused it: held-out accuracy"):
        registry.model_promote(actor=policy_admin, version=refused)
    with pytest.raises(ValidationError, match="no promoted reward model"):
        registry.model_rollback(actor=policy_admin, kind=ModelKind.REWARD)


def test_retiring_is_audited_and_final(policy_admin):
    version = fake_version(1, accuracy=0.8)

    registry.model_retire(actor=policy_admin, version=version)
    with pytest.raises(ValidationError, match="retired already"):
        registry.model_retire(actor=policy_admin, version=version)

    assert AuditEvent.objects.filter(action="model_version.retire").count() == 1
