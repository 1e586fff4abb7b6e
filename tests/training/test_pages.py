"""The training pages: the overview, a run's progress fragment (which stops polling once
the run has ended), a model's evaluation with its charts, admin actions and settings,
each audited; user text on them is escaped."""

import pytest
from django.test import Client

from governance.models import AuditEvent
from training import runs
from training.models import (
    ModelKind,
    ModelStatus,
    ModelVersion,
    RunStatus,
    RunTrigger,
    TrainingRun,
    TrainingSettings,
)

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def a_model(number: int = 1, **fields) -> ModelVersion:
    report = {
        "labels": 300, "non_tie_labels": 250, "accuracy": 0.81, "log_loss": 0.52, "ece": 0.03,
        "criteria": {"safety": {"accuracy": 0.9, "log_loss": 0.3, "ece": 0.02,
                                "non_tie_labels": 100}},
        "reliability": [
            {"low": 0.5, "high": 0.75, "mean_predicted": 0.62, "observed": 0.6, "count": 120},
            {"low": 0.75, "high": 1.0, "mean_predicted": 0.85, "observed": 0.88, "count": 130},
        ],
        "by_channel": {"curation": {"accuracy": 0.8}},
        "by_segment": {"<b>teen</b>": {"accuracy": 0.7}},
    }  # fmt: skip
    defaults = {
        "kind": ModelKind.REWARD, "version": number, "dataset_hash": "d" * 64,
        "metrics": {"accuracy": 0.81, "ece": 0.03, "heldout": {"time": report}},
        "gate": {"passed": True, "reasons": ["held-out accuracy 0.810"]},
        "artifact_path": f"reward/v{number}.pt", "artifact_sha256": "0" * 64,
    }  # fmt: skip
    return ModelVersion.objects.create(**{**defaults, **fields})


def test_the_overview_lists_models_and_runs(curator):
    a_model(1, status=ModelStatus.PROMOTED)
    run = TrainingRun.objects.create(kind=ModelKind.REWARD, trigger=RunTrigger.LABELS)

    page = logged_in(curator).get("/training/")

    assert page.status_code == 200
    assert b"Promoted: <a" in page.content
    assert f'<a href="/training/runs/{run.pk}/">#{run.pk}</a>'.encode() in page.content
    assert b"Train the reward model now" not in page.content  # curators do not act


def test_an_admin_request_queues_one_run_audited(policy_admin):
    client = logged_in(policy_admin)

    first = client.post("/training/runs/request/")
    second = client.post("/training/runs/request/", follow=True)

    run = TrainingRun.objects.get()
    assert first.url == f"/training/runs/{run.pk}/"
    assert b"already queued" in second.content
    assert (run.trigger, run.requested_by) == (RunTrigger.ADMIN, policy_admin)
    assert AuditEvent.objects.filter(action="training_run.request").count() == 1


def test_the_progress_fragment_polls_while_the_run_is_active_and_stops_after(curator):
    run = TrainingRun.objects.create(
        kind=ModelKind.REWARD, trigger=RunTrigger.LABELS, status=RunStatus.RUNNING,
        progress={"stage": "training", "epoch": 3, "epochs": 60, "eta_seconds": 40,
                  "losses": [[1, 0.9], [2, 0.7], [3, 0.6]]},
    )  # fmt: skip
    client = logged_in(curator)

    running = client.get(f"/training/runs/{run.pk}/progress/").content.decode()
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    finished = client.get(f"/training/runs/{run.pk}/progress/").content.decode()

    assert 'hx-trigger="every 2s"' in running
    assert 'epoch <span id="run-epoch">3</span> of at most 60' in running
    assert "<polyline" in running  # the loss curve
    assert "hx-trigger" not in finished


def test_the_model_page_shows_the_evaluation_with_escaped_labels(curator):
    model = a_model()

    page = logged_in(curator).get(f"/training/models/{model.pk}/").content.decode()

    assert "reliability-diagram" in page
    assert "&lt;b&gt;teen&lt;/b&gt;" in page
    assert "<b>teen</b>" not in page
    assert "Gate: passed" in page
    assert "No held-out labels of this kind yet." in page  # the audit split is empty


def test_admins_promote_and_roll_back_from_the_pages(policy_admin):
    first = a_model(1, status=ModelStatus.PROMOTED)
    second = a_model(2)
    client = logged_in(policy_admin)

    client.post(f"/training/models/{second.pk}/promote/")
    second.refresh_from_db()
    assert second.status == ModelStatus.PROMOTED
    client.post(f"/training/rollback/{ModelKind.REWARD}/")

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (ModelStatus.PROMOTED, ModelStatus.ROLLED_BACK)
    assert client.post("/training/rollback/nonsense/").status_code == 404


def test_a_refused_promotion_says_why(policy_admin):
    refused = a_model(1, gate={"passed": False, "reasons": ["calibration error 0.2 is above"]})

    page = logged_in(policy_admin).post(f"/training/models/{refused.pk}/promote/", follow=True)

    assert b"the gate refused it: calibration error 0.2 is above" in page.content
    refused.refresh_from_db()
    assert refused.status == ModelStatus.CANDIDATE


def test_settings_are_read_only_for_staff_and_audited_for_admins(curator, policy_admin):
    runs.training_settings()
    form = logged_in(curator).get("/training/settings/").content.decode()
    assert "disabled" in form

    values = {
        "retrain_after_labels": 50, "accuracy_margin": 0.01, "max_calibration_error": 0.04,
        "auto_promote": "", "ensemble_members": 5, "max_epochs": 40,
        "time_limit_seconds": 900, "heartbeat_timeout_seconds": 60, "max_attempts": 3,
        "audit_share": 0.2, "proposals_per_refresh": 100, "kl_coefficient": 0.1,
        "penalty_budget": 0.3, "policy_critic_steps": 500, "ope_margin": 0.01,
        "hit_margin": 0.05, "hit_k": 5, "exploration_top_m": 10, "exploration_budget_per_day": 500,
    }  # fmt: skip
    response = logged_in(policy_admin).post("/training/settings/", values)

    assert response.status_code == 302
    saved = TrainingSettings.objects.get()
    assert (saved.retrain_after_labels, saved.auto_promote) == (50, False)
    assert (saved.kl_coefficient, saved.penalty_budget) == (0.1, 0.3)
    event = AuditEvent.objects.get(action="training_settings.update")
    assert event.before["retrain_after_labels"] == 500
    assert event.after["retrain_after_labels"] == 50


def test_settings_out_of_bounds_are_refused_by_field(policy_admin):
    runs.training_settings()
    values = {
        "retrain_after_labels": 50, "accuracy_margin": 0.01, "max_calibration_error": 0.04,
        "ensemble_members": 5, "max_epochs": 40, "time_limit_seconds": 900,
        "heartbeat_timeout_seconds": 60, "max_attempts": 3, "audit_share": 1.5,
        "proposals_per_refresh": 100,
    }  # fmt: skip

    response = logged_in(policy_admin).post("/training/settings/", values)

    assert response.status_code == 200
    assert "audit_share" in response.context["form"].errors
    assert not AuditEvent.objects.filter(action="training_settings.update").exists()


# --- the policy ------------------------------------------------------------------------------


def a_policy(number: int = 1, **fields) -> ModelVersion:
    metrics = {
        "k": 5, "hit_at_k": 0.62, "ndcg": 0.71, "heldout_steps": 40, "hard_violations": 0,
        "slates_checked": 1000, "soft_penalty": 0.21, "penalty_budget": 0.5, "diversity": 0.4,
        "coverage": 0.3, "novelty": 7.2,
        "ope": {
            "rows": 5000, "ess": 123.4, "logged_mean_reward": 0.31, "max_weight": 40.0,
            "slice": {"logging_policy": "<i>legacy</i>"},
            **{name: {"estimate": 0.35, "low": 0.33, "high": 0.37}
               for name in ("ips", "snips", "dr", "sndr")},
        },
        "segments": {"<b>teen</b>": {"slates": 10, "penalty": 0.1,
                                     "topics": {"<script>x</script>": 0.7, "news": 0.3},
                                     "sources": {"wire": 1.0}}},
        "curves": {"critic": [[100, 0.7], [200, 0.5]], "multiplier λ": [[0, 0.0], [1, 0.1]]},
    }  # fmt: skip
    defaults = {
        "kind": ModelKind.POLICY, "version": number, "dataset_hash": "d" * 64,
        "metrics": metrics, "gate": {"passed": True, "reasons": ["0 hard-rule violations"]},
        "artifact_path": f"policy/v{number}.pt", "artifact_sha256": "0" * 64,
    }  # fmt: skip
    return ModelVersion.objects.create(**{**defaults, **fields})


def test_a_policy_page_reports_its_evaluation_with_user_text_escaped(curator):
    version = a_policy(status=ModelStatus.PROMOTED)

    page = logged_in(curator).get(f"/training/models/{version.pk}/").content.decode()

    assert "hit@5 0.620, NDCG@5 0.710" in page
    assert "5000 logged rows of &lt;i&gt;legacy&lt;/i&gt;" in page
    assert "effective sample size of the weights 123.4" in page
    assert "<td>DR</td><td>0.3500</td><td>[0.3300, 0.3700]</td>" in page
    assert "Exploration: stage 0" in page
    assert "&lt;b&gt;teen&lt;/b&gt;" in page
    assert "<b>teen</b>" not in page
    assert "<script>x</script>" not in page
    assert page.count("<svg") == 3  # training curves, topic and source exposure
    assert 'name="stage"' not in page  # curators do not set the stage


def test_an_admin_moves_the_promoted_policy_to_the_next_stage(policy_admin):
    version = a_policy(status=ModelStatus.PROMOTED)
    client = logged_in(policy_admin)

    skipped = client.post(f"/training/models/{version.pk}/exploration/", {"stage": 2}, follow=True)
    moved = client.post(f"/training/models/{version.pk}/exploration/", {"stage": 1}, follow=True)

    assert b"stages are taken one at a time" in skipped.content
    assert b"now explores at stage 1" in moved.content
    version.refresh_from_db()
    assert version.exploration_stage == 1
    assert AuditEvent.objects.filter(action="model_version.exploration").count() == 1


def test_an_admin_asks_for_a_policy_run_and_a_bad_kind_is_refused(policy_admin):
    client = logged_in(policy_admin)

    response = client.post("/training/runs/request/", {"kind": "policy"})
    refused = client.post("/training/runs/request/", {"kind": "oracle"}, follow=True)

    run = TrainingRun.objects.get()
    assert (run.kind, run.trigger, run.requested_by) == ("policy", "admin", policy_admin)
    assert response.headers["Location"] == f"/training/runs/{run.pk}/"
    assert b"kind: &#x27;oracle&#x27; is not a model kind" in refused.content
