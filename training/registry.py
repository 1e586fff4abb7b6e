"""The model registry: where artifacts live, how a trained model is registered (all or
nothing), the promotion gate, and the admin actions on versions (promote, retire, roll
back), each audited."""

import hashlib
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from governance.audit import audit_record, snapshot
from training import runs
from training.models import ExplorationStage, ModelKind, ModelStatus, ModelVersion, TrainingRun


class RunLost(RuntimeError):
    """The run was taken from this worker (beat presumed it dead) before it finished."""


def model_store() -> Path:
    return Path(settings.SHEPHERD_MODEL_DIR)


def artifact_path(run: TrainingRun) -> Path:
    """Where this attempt of the run writes its artifact (absolute). An attempt that dies
    leaves at most this file behind, never a registered model; the next attempt writes
    its own."""
    folder = model_store() / run.kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"run-{run.pk}-attempt-{run.attempt}.pt"


def artifact_discard(run: TrainingRun) -> None:
    """Remove what a lost attempt of the run may have left: its artifact, or the temporary
    file of an interrupted write. Never registered, so nothing refers to them."""
    final = artifact_path(run)
    for path in [final, *final.parent.glob(f".{final.name}.*.tmp")]:
        path.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- registering --------------------------------------------------------------------------


def model_register(
    *,
    run: TrainingRun,
    artifact: Path,
    sha256: str,
    feature_schema: dict,
    metrics: dict,
    guideline_versions: list[int],
    policy_version=None,
) -> ModelVersion:
    """Register the run's model and mark the run succeeded, in one transaction, after
    checking the artifact on disk is the one trained. The gate's verdict is stored with
    it; a candidate that passes is promoted at once when the settings say so."""
    if file_sha256(artifact) != sha256:
        raise ValidationError({"artifact": f"{artifact} does not hash to {sha256}"})
    now = timezone.now()
    with transaction.atomic():
        promoted = promoted_version(run.kind)
        top = ModelVersion.objects.filter(kind=run.kind).aggregate(top=Max("version"))["top"]
        version = ModelVersion.objects.create(
            kind=run.kind, version=(top or 0) + 1, run=run, parent=promoted,
            config=run.config, feature_schema=feature_schema, dataset_hash=run.dataset_hash,
            label_counts=run.label_counts, guideline_versions=sorted(guideline_versions),
            policy_version=policy_version, metrics=metrics,
            gate=gate_verdict(run.kind, metrics, promoted),
            artifact_path=str(artifact.relative_to(model_store())), artifact_sha256=sha256,
        )  # fmt: skip
        if not runs.run_succeed(run, now=now, metrics=metrics):
            raise RunLost(f"run {run.pk} is no longer this worker's: nothing registered")
        audit_record(
            actor=None,
            action="model_version.register",
            target=version,
            after=snapshot(version, ["kind", "version", "dataset_hash", "gate"]),
        )
        if version.gate["passed"] and runs.training_settings().auto_promote:
            _promote(version, actor=None, now=now)
    return version


# --- the gate ----------------------------------------------------------------------------


# Below this many held-out labels, ECE is mostly sampling noise (a perfectly calibrated
# model scores about 0.05–0.1 on 50 labels in 15 bins): it is reported, not judged.
MIN_CALIBRATION_LABELS = 200


def gate_verdict(kind: str, metrics: dict, promoted: ModelVersion | None) -> dict:
    """Whether a candidate may be promoted, with every reason (each kind has its gate)."""
    if kind == ModelKind.POLICY:
        return policy_gate_verdict(metrics, promoted)
    return reward_gate_verdict(metrics, promoted)


def reward_gate_verdict(metrics: dict, promoted: ModelVersion | None) -> dict:
    """A reward model passes when its held-out
    accuracy is not worse than the promoted model's by more than the margin and its
    expected calibration error is within bounds (judged on enough labels)."""
    settings_ = runs.training_settings()
    reasons, passed = [], True
    accuracy, ece = metrics.get("accuracy"), metrics.get("ece")
    if accuracy is None or ece is None:
        return {"passed": False, "reasons": ["no held-out evaluation"], "compared_to": None}
    if promoted is None:
        reasons.append(f"held-out accuracy {accuracy:.3f}; no promoted model to compare to")
    else:
        floor = promoted.metrics.get("accuracy", 0.0) - settings_.accuracy_margin
        verdict = "not below" if accuracy >= floor else "below"
        passed &= accuracy >= floor
        reasons.append(
            f"held-out accuracy {accuracy:.3f} is {verdict} {floor:.3f} (v{promoted.version}'s "
            f"{promoted.metrics.get('accuracy', 0.0):.3f} − margin {settings_.accuracy_margin})"
        )
    judged = metrics.get("non_tie_labels", MIN_CALIBRATION_LABELS)
    if judged < MIN_CALIBRATION_LABELS:
        reasons.append(
            f"calibration error {ece:.3f} not judged: {judged} held-out labels that are not "
            f"ties, {MIN_CALIBRATION_LABELS} needed"
        )
    else:
        calibrated = ece <= settings_.max_calibration_error
        passed &= calibrated
        reasons.append(
            f"calibration error {ece:.3f} is {'within' if calibrated else 'above'} the bound "
            f"{settings_.max_calibration_error}"
        )
    return {
        "passed": bool(passed),
        "reasons": reasons,
        "compared_to": promoted.pk if promoted else None,
    }


def policy_gate_verdict(metrics: dict, promoted: ModelVersion | None) -> dict:
    """A policy passes when it broke no hard rule in evaluation, its OPE lower bound (DR,
    95%) is not below the promoted policy's estimate by more than the margin, and its
    held-out hit@k is not worse than the promoted policy's by more than the margin. The
    promoted policy is scored on the same logs and demonstrations in the same run
    (``metrics["promoted"]``), so both figures come from one yardstick."""
    settings_ = runs.training_settings()
    violations = metrics.get("hard_violations")
    if violations is None:
        return {"passed": False, "reasons": ["no evaluation"], "compared_to": None}
    passed = violations == 0
    reasons = [
        f"{violations} hard-rule violations in {metrics.get('slates_checked', 0)} evaluated "
        f"slates ({'none allowed' if violations else 'as required'})"
    ]
    ope, hit = metrics.get("ope") or {}, metrics.get("hit_at_k")
    baseline = metrics.get("promoted") or {}
    if promoted is None:
        reasons.append("no promoted policy to compare to")
    else:
        ok, reason = _ope_check(ope, baseline.get("ope_dr"), settings_.ope_margin)
        passed &= ok
        reasons.append(reason)
        ok, reason = _hit_check(hit, baseline.get("hit_at_k"), settings_.hit_margin,
                                metrics.get("k"))  # fmt: skip
        passed &= ok
        reasons.append(reason)
    return {
        "passed": bool(passed),
        "reasons": reasons,
        "compared_to": promoted.pk if promoted else None,
    }


def _ope_check(ope: dict, promoted: float | None, margin: float):
    candidate = ope.get("dr") or {}
    if candidate.get("low") is None:
        return False, "no off-policy estimate: no logged interactions to evaluate on"
    if promoted is None:
        return False, "the promoted policy could not be scored on the same logs"
    floor = promoted - margin
    ok = candidate["low"] >= floor
    support = (
        f"; effective sample size {ope['ess']:.0f} of {ope['rows']} rows" if "ess" in ope else ""
    )
    return ok, (
        f"OPE lower bound (DR, 95%) {candidate['low']:.4f} is {'not below' if ok else 'below'} "
        f"{floor:.4f} (the promoted policy's estimate {promoted:.4f} − margin {margin}{support})"
    )


def _hit_check(candidate: float | None, promoted: float | None, margin: float, k):
    if candidate is None:
        return False, "no held-out demonstrations to compute hit@k on"
    if promoted is None:
        return False, "the promoted policy could not be scored on the same demonstrations"
    floor = promoted - margin
    ok = candidate >= floor
    return ok, (
        f"held-out hit@{k} {candidate:.3f} is {'not below' if ok else 'below'} {floor:.3f} "
        f"(the promoted policy's {promoted:.3f} − margin {margin})"
    )


# --- admin actions ----------------------------------------------------------------------------


def promoted_version(kind: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(kind=kind, status=ModelStatus.PROMOTED).first()


@transaction.atomic
def model_promote(*, actor, version: ModelVersion) -> ModelVersion:
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != ModelStatus.CANDIDATE:
        raise ValidationError(
            {"status": f"only a candidate can be promoted (this one is {version.status})"}
        )
    if not version.gate.get("passed"):
        reasons = "; ".join(version.gate.get("reasons", []))
        raise ValidationError({"gate": f"the gate refused it: {reasons}"})
    return _promote(version, actor=actor, now=timezone.now())


def _promote(version: ModelVersion, *, actor, now) -> ModelVersion:
    before = snapshot(version, ["status"])
    current = (
        ModelVersion.objects.select_for_update()
        .filter(kind=version.kind, status=ModelStatus.PROMOTED)
        .first()
    )
    if current is not None:
        _set_status(current, ModelStatus.RETIRED, actor=actor, action="model_version.replace")
    version.status, version.promoted_at, version.promoted_by = ModelStatus.PROMOTED, now, actor
    version.replaced = current
    version.save(update_fields=["status", "promoted_at", "promoted_by", "replaced"])
    audit_record(
        actor=actor, action="model_version.promote", target=version, before=before,
        after={"status": version.status, "replaced": current.pk if current else None},
    )  # fmt: skip
    transaction.on_commit(lambda: _after_promotion(version))
    return version


def _after_promotion(version: ModelVersion) -> None:
    """What a promotion sets going, once it has committed."""
    from training.tasks import after_promotion

    after_promotion(version)


@transaction.atomic
def model_retire(*, actor, version: ModelVersion) -> ModelVersion:
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.status not in (ModelStatus.CANDIDATE, ModelStatus.PROMOTED):
        raise ValidationError({"status": f"a {version.status} model is retired already"})
    return _set_status(version, ModelStatus.RETIRED, actor=actor, action="model_version.retire")


@transaction.atomic
def model_rollback(*, actor, kind: str) -> ModelVersion:
    """Put back the model the promoted one replaced; the promoted one is rolled back."""
    current = (
        ModelVersion.objects.select_for_update()
        .filter(kind=kind, status=ModelStatus.PROMOTED)
        .first()
    )
    if current is None or current.replaced_id is None:
        raise ValidationError({"kind": f"no promoted {kind} model with a predecessor to restore"})
    previous = ModelVersion.objects.select_for_update().get(pk=current.replaced_id)
    _set_status(current, ModelStatus.ROLLED_BACK, actor=actor, action="model_version.rollback")
    before = snapshot(previous, ["status"])
    previous.status, previous.promoted_at, previous.promoted_by = (
        ModelStatus.PROMOTED,
        timezone.now(),
        actor,
    )
    previous.save(update_fields=["status", "promoted_at", "promoted_by"])
    audit_record(
        actor=actor, action="model_version.restore", target=previous, before=before,
        after={"status": previous.status, "instead_of": current.pk},
    )  # fmt: skip
    transaction.on_commit(lambda: _after_promotion(previous))
    return previous


@transaction.atomic
def policy_set_exploration(*, actor, version: ModelVersion, stage: int) -> ModelVersion:
    """Set how the promoted policy explores. Up one stage at a time (each stage is judged
    on the figures the one before produced); down to any stage at once, since stepping
    back is always the safe direction."""
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.kind != ModelKind.POLICY or version.status != ModelStatus.PROMOTED:
        raise ValidationError({"status": "only the promoted policy has an exploration stage"})
    if stage not in ExplorationStage.values:
        raise ValidationError({"stage": f"{stage} is not a stage (0, 1 or 2)"})
    if stage > version.exploration_stage + 1:
        raise ValidationError(
            {"stage": f"from stage {version.exploration_stage} the next is "
                      f"{version.exploration_stage + 1}: stages are taken one at a time"}
        )  # fmt: skip
    before = snapshot(version, ["exploration_stage"])
    version.exploration_stage = stage
    version.save(update_fields=["exploration_stage"])
    audit_record(actor=actor, action="model_version.exploration", target=version,
                 before=before, after={"exploration_stage": stage})  # fmt: skip
    return version


def _set_status(version: ModelVersion, status: str, *, actor, action: str) -> ModelVersion:
    before = snapshot(version, ["status"])
    version.status = status
    version.save(update_fields=["status"])
    audit_record(actor=actor, action=action, target=version, before=before,
                 after={"status": status})  # fmt: skip
    return version
