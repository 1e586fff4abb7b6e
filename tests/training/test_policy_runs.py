"""The policy's Django side: a run trains from demonstrations and logs and registers a
candidate with its evaluation, the policy gate judges it, admins set the exploration stage
(audited), and the management command evaluates a stored policy on a slice of the logs."""

from io import StringIO

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from catalog.demo import seed_demo_world
from catalog.models import UserContext
from governance.demo import seed_governance
from governance.models import AuditEvent
from tests.annotation.factories import ensure_criteria
from tests.training.factories import demonstrated_store
from training import registry, runs
from training.ml.simulator import SimConfig, Simulator
from training.models import (
    ModelKind,
    ModelStatus,
    ModelVersion,
    RunTrigger,
    TrainingRun,
    TrainingSettings,
)
from training.policy_training import run_policy_training

pytestmark = pytest.mark.django_db


@pytest.fixture
def policy_world(settings, tmp_path):
    settings.SHEPHERD_MODEL_DIR = tmp_path / "models"
    ensure_criteria()
    sim = Simulator(SimConfig(n_items=150, n_users=40), seed=3)
    seed_demo_world(sim=sim, interactions=600, rng=np.random.default_rng(3))
    seed_governance()
    demonstrated_store(demonstrations=40, steps=2, seed=3)
    TrainingSettings.objects.update_or_create(pk=1, defaults={"policy_critic_steps": 100})


def train_once() -> ModelVersion:
    run, _ = runs.run_request(kind=ModelKind.POLICY, trigger=RunTrigger.ADMIN)
    assert run_policy_training(run.pk) == "succeeded", TrainingRun.objects.get(pk=run.pk).error
    return ModelVersion.objects.get(run=run)


def test_a_run_registers_an_evaluated_policy_that_breaks_no_hard_rule(policy_world):
    version = train_once()

    metrics = version.metrics
    assert version.kind == ModelKind.POLICY
    assert metrics["hard_violations"] == 0
    assert metrics["slates_checked"] > 0
    assert 0.0 <= metrics["hit_at_k"] <= 1.0
    assert 0.0 <= metrics["ndcg"] <= 1.0
    assert metrics["heldout_steps"] == 8  # the newest 4 of 40 trajectories, 2 steps each
    ope = metrics["ope"]
    for name in ("ips", "snips", "dr", "sndr"):
        assert ope[name]["low"] <= ope[name]["estimate"] <= ope[name]["high"]
    assert 0 < ope["ess"] <= ope["rows"]
    assert metrics["segments"]
    assert metrics["coverage"] > 0
    assert version.label_counts["demonstration_steps"] == 80
    # The first policy has nothing to compare to: the gate passes it, and it is promoted.
    assert version.gate["passed"], version.gate
    assert version.status == ModelStatus.PROMOTED


def test_the_next_run_is_compared_with_the_promoted_policy_on_the_same_data(policy_world):
    first = train_once()
    second = train_once()

    baseline = second.metrics["promoted"]
    assert baseline["version"] == first.version
    assert baseline["hit_at_k"] == pytest.approx(first.metrics["hit_at_k"])
    assert baseline["ope_dr"] is not None
    assert second.gate["compared_to"] == first.pk
    assert any("OPE lower bound" in reason for reason in second.gate["reasons"])


def test_a_run_without_demonstrations_fails_saying_so(settings, tmp_path):
    settings.SHEPHERD_MODEL_DIR = tmp_path
    ensure_criteria()
    seed_demo_world(
        sim=Simulator(SimConfig(n_items=60, n_users=10), seed=0), interactions=0,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    seed_governance()
    run, _ = runs.run_request(kind=ModelKind.POLICY, trigger=RunTrigger.ADMIN)

    assert run_policy_training(run.pk) == "failed"

    run.refresh_from_db()
    assert run.error == "0 demonstration steps to train on: at least 20 are needed"
    assert not ModelVersion.objects.exists()


# --- the gate --------------------------------------------------------------------------------


def policy_metrics(*, violations=0, low=0.30, hit=0.6, promoted_dr=0.31, promoted_hit=0.6):
    return {
        "hard_violations": violations, "slates_checked": 100, "k": 5, "hit_at_k": hit,
        "ope": {"dr": {"estimate": low + 0.02, "low": low, "high": low + 0.04}},
        "promoted": {"version": 1, "hit_at_k": promoted_hit, "ope_dr": promoted_dr},
    }  # fmt: skip


@pytest.fixture
def promoted_policy():
    return ModelVersion.objects.create(
        kind=ModelKind.POLICY, version=1, status=ModelStatus.PROMOTED, dataset_hash="0" * 64,
        artifact_path="policy/v1.pt", artifact_sha256="0" * 64,
    )  # fmt: skip


def test_the_policy_gate_refuses_a_hard_violation_and_a_low_ope_bound(promoted_policy):
    good = registry.gate_verdict(ModelKind.POLICY, policy_metrics(), promoted_policy)
    broken = registry.gate_verdict(ModelKind.POLICY, policy_metrics(violations=1), None)
    low = registry.gate_verdict(ModelKind.POLICY, policy_metrics(low=0.2), promoted_policy)
    worse_hits = registry.gate_verdict(ModelKind.POLICY, policy_metrics(hit=0.4), promoted_policy)

    assert good["passed"], good["reasons"]
    assert not broken["passed"]
    assert broken["reasons"][0].startswith("1 hard-rule violations in 100 evaluated slates")
    assert not low["passed"]
    assert "OPE lower bound (DR, 95%) 0.2000 is below 0.2900" in low["reasons"][1]
    assert not worse_hits["passed"]
    assert "held-out hit@5 0.400 is below 0.550" in worse_hits["reasons"][2]


def test_the_policy_gate_refuses_when_the_promoted_policy_could_not_be_scored(promoted_policy):
    metrics = policy_metrics()
    metrics["promoted"] = {"version": 1, "error": "the catalog changed"}
    unevaluated = {"hard_violations": None}

    verdict = registry.gate_verdict(ModelKind.POLICY, metrics, promoted_policy)

    assert not verdict["passed"]
    assert "could not be scored on the same logs" in verdict["reasons"][1]
    assert registry.gate_verdict(ModelKind.POLICY, unevaluated, None)["passed"] is False


# --- exploration ----------------------------------------------------------------------------


def test_exploration_moves_up_one_stage_at_a_time_and_is_audited(promoted_policy, admin_user):
    with pytest.raises(ValidationError, match="stages are taken one at a time"):
        registry.policy_set_exploration(actor=admin_user, version=promoted_policy, stage=2)
    registry.policy_set_exploration(actor=admin_user, version=promoted_policy, stage=1)
    registry.policy_set_exploration(actor=admin_user, version=promoted_policy, stage=2)
    registry.policy_set_exploration(actor=admin_user, version=promoted_policy, stage=0)

    promoted_policy.refresh_from_db()
    assert promoted_policy.exploration_stage == 0
    events = AuditEvent.objects.filter(action="model_version.exploration").order_by("pk")
    assert [(e.before, e.after) for e in events] == [
        ({"exploration_stage": 0}, {"exploration_stage": 1}),
        ({"exploration_stage": 1}, {"exploration_stage": 2}),
        ({"exploration_stage": 2}, {"exploration_stage": 0}),
    ]
    assert all(e.actor == admin_user for e in events)


def test_exploration_is_only_for_the_promoted_policy(promoted_policy, admin_user):
    candidate = ModelVersion.objects.create(
        kind=ModelKind.POLICY, version=2, dataset_hash="0" * 64, artifact_path="policy/v2.pt",
        artifact_sha256="0" * 64,
    )  # fmt: skip
    with pytest.raises(ValidationError, match="only the promoted policy"):
        registry.policy_set_exploration(actor=admin_user, version=candidate, stage=1)
    with pytest.raises(ValidationError, match="not a stage"):
        registry.policy_set_exploration(actor=admin_user, version=promoted_policy, stage=-1)


# --- the management command ------------------------------------------------------------------


def test_evaluate_policy_prints_every_estimator_on_a_slice(policy_world):
    version = train_once()
    out = StringIO()

    call_command("evaluate_policy", "--model-version", str(version.version), "--limit", "300",
                 "--bootstrap", "200", stdout=out)  # fmt: skip

    text = out.getvalue()
    assert text.startswith(f"Policy v{version.version} (promoted) on 300 logged rows")
    for name in ("IPS", "SNIPS", "DR", "SNDR", "DM"):
        assert f"\n  {name} " in text


def test_evaluate_policy_names_a_slice_with_nothing_in_it(policy_world):
    train_once()
    with pytest.raises(CommandError, match="no logged interactions in the slice"):
        call_command("evaluate_policy", "--segment", "nobody")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--model-version", "9"], "--model-version 9: no such policy version"),
        (["--since", "last week"], "--since 'last week': not an ISO date or date-time"),
        (["--until", "2026-13-01"], "--until '2026-13-01': not an ISO date or date-time"),
    ],
)
def test_evaluate_policy_names_the_bad_parameter(db, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("evaluate_policy", *arguments)


def test_evaluate_policy_without_a_promoted_policy_says_so(db):
    with pytest.raises(CommandError, match="no policy is promoted"):
        call_command("evaluate_policy")


def test_the_promoted_policy_proposes_its_own_slates_for_comparison(policy_world):
    from governance.engine.core import EngineContext
    from training.active_learning import POLICY_SAMPLES, _policy_slates
    from training.datasets import feature_space

    train_once()
    space = feature_space()
    contexts = list(
        UserContext.objects.values("id", "segment", "audience", "situation", "history")[:6]
    )

    proposed = _policy_slates(space, contexts, np.random.default_rng(0))

    assert [len(slates) for slates in proposed] == [1 + POLICY_SAMPLES] * 6
    for context, slates in zip(contexts, proposed, strict=True):
        for slate in slates:
            assert len(slate) == 5
            positions = [space.position_of_pk[pk] for pk in slate]
            assert not space.policy.violations(EngineContext(context["audience"]), positions)
