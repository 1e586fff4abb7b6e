"""Reads of the training app: runs, versions, and trained models loaded for use."""

from functools import lru_cache
from pathlib import Path

from annotation.models import Comparison, Demonstration
from governance.models import AuditEvent
from training.datasets import FeatureSpace, feature_space
from training.ml.features import FeatureSchema
from training.ml.reward_model import RewardModel, load_checkpoint
from training.models import ModelKind, ModelStatus, ModelVersion, RunStatus, TrainingRun
from training.registry import model_store


def labels_since_last_run(kind: str) -> int:
    """Labels stored since the latest run of ``kind`` that did not fail was requested (all
    of them when there was none)."""
    last = (
        TrainingRun.objects.filter(kind=kind)
        .exclude(status=RunStatus.FAILED)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    comparisons, demonstrations = Comparison.objects.all(), Demonstration.objects.all()
    if last is not None:
        comparisons = comparisons.filter(created_at__gt=last)
        demonstrations = demonstrations.filter(created_at__gt=last)
    return comparisons.count() + demonstrations.count()


def promoted_reward_model() -> tuple[ModelVersion, RewardModel, FeatureSpace] | None:
    """The promoted reward model, loaded (its sha256 checked) with the feature space it
    reads; None when none is promoted. Raises VocabularyChanged when the catalog or the
    policy moved on since it was trained."""
    version = ModelVersion.objects.filter(
        kind=ModelKind.REWARD, status=ModelStatus.PROMOTED
    ).first()
    if version is None:
        return None
    space = feature_space()
    space.check_model(version.feature_schema)
    return version, _load_reward_model(version.pk, version.artifact_sha256), space


@lru_cache(maxsize=4)
def _load_reward_model(version_pk: int, sha256: str) -> RewardModel:
    version = ModelVersion.objects.get(pk=version_pk)
    record = {k: v for k, v in version.feature_schema.items() if k != "vocabulary"}
    model, _ = load_checkpoint(
        Path(model_store()) / version.artifact_path,
        sha256=sha256,
        schema=FeatureSchema.from_dict(record),
    )
    return model


def runs_recent(limit: int = 50) -> list[TrainingRun]:
    return list(TrainingRun.objects.select_related("requested_by", "model")[:limit])


def versions_of(kind: str) -> list[ModelVersion]:
    return list(
        ModelVersion.objects.filter(kind=kind)
        .select_related("run", "promoted_by", "replaced")
        .order_by("-version")
    )


def model_history(version: ModelVersion) -> list[AuditEvent]:
    """The audit events of a model version (registered, promoted, retired, …), oldest first."""
    return list(
        AuditEvent.objects.filter(
            object_type=ModelVersion._meta.label_lower, object_id=str(version.pk)
        ).order_by("pk")
    )
