"""Training pages: the models and runs overview, a run's live progress, a model version's
evaluation and provenance, and the training settings. Staff read; policy admins act."""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from core import charts
from core.web import error_lines
from governance.access import POLICY_ADMINS, STAFF, access
from governance.audit import audit_record, snapshot
from governance.models import GuidelineVersion
from training import registry, runs, selectors
from training.models import (
    ExplorationStage,
    ModelKind,
    ModelVersion,
    RunTrigger,
    TrainingRun,
    TrainingSettings,
)
from training.tasks import training_request


class SettingsForm(forms.ModelForm):
    class Meta:
        model = TrainingSettings
        fields = [
            "retrain_after_labels", "accuracy_margin", "max_calibration_error", "auto_promote",
            "ensemble_members", "max_epochs", "time_limit_seconds", "heartbeat_timeout_seconds",
            "max_attempts", "audit_share", "proposals_per_refresh", "kl_coefficient",
            "penalty_budget", "policy_critic_steps", "ope_margin", "hit_margin", "hit_k",
            "exploration_top_m", "exploration_budget_per_day",
        ]  # fmt: skip


@access(GET=STAFF)
def overview(request: HttpRequest) -> HttpResponse:
    context = {
        "kinds": [
            {
                "kind": kind,
                "label": label,
                "promoted": registry.promoted_version(kind),
                "versions": selectors.versions_of(kind)[:10],
            }
            for kind, label in ModelKind.choices
        ],
        "runs": selectors.runs_recent(20),
        "labels_since": selectors.labels_since_last_run(ModelKind.REWARD),
        "settings": runs.training_settings(),
        "may_act": POLICY_ADMINS.admits(request.user),
    }
    return render(request, "training/overview.html", context)


@access(POST=POLICY_ADMINS)
@require_POST
def run_request(request: HttpRequest) -> HttpResponse:
    kind = request.POST.get("kind", ModelKind.REWARD)
    if kind not in ModelKind.values:
        messages.error(request, f"kind: {kind!r} is not a model kind ({', '.join(ModelKind)})")
        return redirect("training:overview")
    run, created = training_request(kind=kind, trigger=RunTrigger.ADMIN, actor=request.user)
    if not created:
        messages.info(request, f"Run {run.pk} is already {run.status}: following it.")
    return redirect("training:run", pk=run.pk)


# --- a run -----------------------------------------------------------------------------------


@access(GET=STAFF)
def run_page(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun.objects.select_related("requested_by"), pk=pk)
    return render(request, "training/run.html", {"run": run, **_progress_context(run)})


@access(GET=STAFF)
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress fragment htmx polls; once the run has ended the fragment it returns
    no longer polls."""
    run = get_object_or_404(TrainingRun, pk=pk)
    return render(request, "training/_progress.html", {"run": run, **_progress_context(run)})


def _progress_context(run: TrainingRun) -> dict:
    losses = run.progress.get("losses") or []
    return {
        "model": ModelVersion.objects.filter(run=run).first(),
        "loss_chart": charts.line_chart(
            {"training loss": [(epoch, loss) for epoch, loss in losses]},
            title="Loss per epoch",
            x_label="epoch",
            y_label="negative log-likelihood",
        ),  # fmt: skip
    }


# --- a model version ----------------------------------------------------------------------------


@access(GET=STAFF)
def model_page(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(
        ModelVersion.objects.select_related(
            "run", "parent", "replaced", "promoted_by", "policy_version__policy"
        ),
        pk=pk,
    )
    heldout = version.metrics.get("heldout", {})
    context = {
        "version": version,
        "splits": [_split_view(name, heldout.get(name) or {}) for name in ("time", "audit")],
        "policy": _policy_view(version.metrics) if version.kind == ModelKind.POLICY else None,
        "stages": ExplorationStage.choices,
        "settings": runs.training_settings(),
        "guidelines": GuidelineVersion.objects.filter(
            pk__in=version.guideline_versions
        ).select_related("guideline"),
        "may_act": POLICY_ADMINS.admits(request.user),
        "events": selectors.model_history(version),
    }
    return render(request, "training/model.html", context)


SPLIT_TITLES = {
    "time": "Newest labels (held out by time)",
    "audit": "Random-audit tasks (an unbiased sample)",
}


def _split_view(name: str, report: dict) -> dict:
    """What the page shows of one held-out split: tables and charts."""
    view = {"name": name, "title": SPLIT_TITLES[name], "report": report}
    if not report.get("labels"):
        return view
    bins = [
        {
            "confidence_low": row["low"], "confidence_high": row["high"],
            "mean_confidence": row["mean_predicted"], "accuracy": row["observed"],
            "count": row["count"],
        }
        for row in report.get("reliability", [])
        if row["count"] and row["mean_predicted"] is not None
    ]  # fmt: skip
    view["reliability_chart"] = charts.reliability_diagram(bins, title=f"Reliability: {name} split")
    for group in ("by_channel", "by_segment"):
        bars = [
            (label, scores["accuracy"])
            for label, scores in (report.get(group) or {}).items()
            if scores.get("accuracy") is not None
        ]
        view[f"{group}_chart"] = charts.bar_chart(
            bars, title=f"Accuracy {group.replace('_', ' ')}", max_value=1.0
        )
    return view


OPE_ESTIMATORS = ("ips", "snips", "dr", "sndr")


def _policy_view(metrics: dict) -> dict:
    """What a policy's report shows: OPE with intervals, training curves, and per-segment
    exposure of topics and sources."""
    ope = metrics.get("ope") or {}
    view = {
        "estimates": [(name, ope[name]) for name in OPE_ESTIMATORS if name in ope],
        "ope": ope,
        "segments": [],
    }
    curves = metrics.get("curves") or {}
    if curves:
        view["curves_chart"] = charts.line_chart(
            {name: [tuple(point) for point in points] for name, points in curves.items()},
            title="Training", x_label="step", y_label="value",
        )  # fmt: skip
    for segment, exposure in sorted((metrics.get("segments") or {}).items()):
        view["segments"].append({
            "name": segment,
            "summary": exposure,
            "topics_chart": charts.bar_chart(
                _top(exposure.get("topics") or {}), title=f"Topic exposure: {segment}",
                max_value=1.0,
            ),
            "sources_chart": charts.bar_chart(
                _top(exposure.get("sources") or {}), title=f"Source exposure: {segment}",
                max_value=1.0,
            ),
        })  # fmt: skip
    return view


def _top(shares: dict, count: int = 12) -> list[tuple[str, float]]:
    return sorted(shares.items(), key=lambda pair: -pair[1])[:count]


@access(POST=POLICY_ADMINS)
@require_POST
def model_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=pk)
    act = {
        "promote": lambda: registry.model_promote(actor=request.user, version=version),
        "retire": lambda: registry.model_retire(actor=request.user, version=version),
    }[action]
    try:
        act()
    except ValidationError as error:
        for line in error_lines(error):
            messages.error(request, line)
    else:
        messages.success(request, f"{version.get_kind_display()} v{version.version}: {action}d.")
    return redirect("training:model", pk=pk)


@access(POST=POLICY_ADMINS)
@require_POST
def exploration(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=pk)
    try:
        stage = int(request.POST.get("stage", ""))
        registry.policy_set_exploration(actor=request.user, version=version, stage=stage)
    except ValueError:
        messages.error(request, "stage: choose 0, 1 or 2")
    except ValidationError as error:
        for line in error_lines(error):
            messages.error(request, line)
    else:
        messages.success(request, f"Policy v{version.version} now explores at stage {stage}.")
    return redirect("training:model", pk=pk)


@access(POST=POLICY_ADMINS)
@require_POST
def rollback(request: HttpRequest, kind: str) -> HttpResponse:
    if kind not in ModelKind.values:
        raise Http404(f"no model kind {kind!r}")
    try:
        restored = registry.model_rollback(actor=request.user, kind=kind)
    except ValidationError as error:
        for line in error_lines(error):
            messages.error(request, line)
    else:
        messages.success(request, f"Rolled back: v{restored.version} is promoted again.")
    return redirect("training:overview")


# --- settings ---------------------------------------------------------------------------------


@access(GET=STAFF, POST=POLICY_ADMINS)
def settings_page(request: HttpRequest) -> HttpResponse:
    current = runs.training_settings()
    may_edit = POLICY_ADMINS.admits(request.user)
    form = SettingsForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            before = snapshot(TrainingSettings.objects.select_for_update().get(pk=current.pk))
            saved = form.save()
            audit_record(
                actor=request.user, action="training_settings.update", target=saved,
                before=before, after=snapshot(saved),
            )  # fmt: skip
        messages.success(request, "Training settings saved.")
        return redirect("training:settings")
    if not may_edit:
        for field in form.fields.values():
            field.disabled = True
    return render(request, "training/settings.html", {"form": form, "may_edit": may_edit})


urlpatterns = [
    path("", overview, name="overview"),
    path("runs/request/", run_request, name="run_request"),
    path("runs/<int:pk>/", run_page, name="run"),
    path("runs/<int:pk>/progress/", run_progress, name="run_progress"),
    path("models/<int:pk>/", model_page, name="model"),
    path("models/<int:pk>/promote/", model_action, {"action": "promote"}, name="promote"),
    path("models/<int:pk>/retire/", model_action, {"action": "retire"}, name="retire"),
    path("models/<int:pk>/exploration/", exploration, name="exploration"),
    path("rollback/<slug:kind>/", rollback, name="rollback"),
    path("settings/", settings_page, name="settings"),
]
app_name = "training"
