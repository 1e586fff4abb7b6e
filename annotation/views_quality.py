"""Quality pages: agreement per criterion and per reviewer, the team table, adjudication,
gold tasks, reviewers' skills and flags, the queue's settings, and re-queuing labels
after a guideline change."""

from django import forms
from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone

from annotation import quality, quality_selectors, selectors, services
from annotation.models import (
    Assignment,
    AssignmentState,
    Comparison,
    Judgment,
    QueueSettings,
    QueueTask,
    ReviewerCriterionStats,
    TaskKind,
)
from annotation.permissions import LABEL, READ_ALL_LABELS
from core.web import add_errors, error_lines
from governance.access import STAFF, access
from governance.models import Criterion, GuidelineVersion, VersionStatus


class DecisionForm(forms.Form):
    """An adjudicator's decision (or an admin's gold answer) per criterion."""

    rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, criteria, **kwargs):
        super().__init__(*args, **kwargs)
        self.criteria = criteria
        for criterion in criteria:
            self.fields[f"judgment_{criterion.slug}"] = forms.ChoiceField(
                choices=Judgment.choices, label=criterion.name, widget=forms.RadioSelect
            )

    def judgments(self) -> dict[str, str]:
        return {c.slug: self.cleaned_data[f"judgment_{c.slug}"] for c in self.criteria}


class SettingsForm(forms.ModelForm):
    class Meta:
        model = QueueSettings
        fields = [
            "overlap_compare", "overlap_demonstrate", "gold_rate", "gold_min_accuracy",
            "gold_min_answers", "adjudicate_below", "aging_points_per_hour",
        ]  # fmt: skip


class SkillsForm(forms.Form):
    skills = forms.CharField(
        required=False, help_text="comma-separated, e.g. senior, topic:gambling, lang:de"
    )


def _active_criteria() -> list[Criterion]:
    return list(Criterion.objects.filter(active=True))


# --- agreement ---------------------------------------------------------------------------


@access(GET=STAFF)
def overview(request: HttpRequest) -> HttpResponse:
    admin = READ_ALL_LABELS.admits(request.user)
    context = {
        "criteria": quality_selectors.all_criteria_agreement(),
        "flagged": quality_selectors.flagged_reviewers() if admin else [],
    }
    return render(request, "annotation/quality/overview.html", context)


@access(GET=STAFF)
def criterion_page(request: HttpRequest, slug: str) -> HttpResponse:
    criterion = get_object_or_404(Criterion, slug=slug)
    view = quality_selectors.criterion_agreement(criterion)
    return render(request, "annotation/quality/criterion.html", {"view": view})


@access(GET=READ_ALL_LABELS)
def team_page(request: HttpRequest) -> HttpResponse:
    rows = quality_selectors.team(now=timezone.now())
    return render(request, "annotation/quality/team.html", {"rows": rows})


@access(GET=LABEL | READ_ALL_LABELS)
def reviewer_page(request: HttpRequest, pk: int) -> HttpResponse:
    """One's own statistics; policy admins see everyone's. Others: 404."""
    if pk != request.user.pk and not READ_ALL_LABELS.admits(request.user):
        raise Http404
    reviewer = get_object_or_404(User, pk=pk)
    stats = quality_selectors.reviewer_stats(reviewer, now=timezone.now())
    per_criterion = ReviewerCriterionStats.objects.filter(reviewer=reviewer).order_by("criterion")
    context = {
        "stats": stats,
        "per_criterion": per_criterion,
        "skills": services.reviewer_skills(reviewer),
    }
    return render(request, "annotation/quality/reviewer.html", context)


# --- admins' actions ---------------------------------------------------------------------------


@access(GET=READ_ALL_LABELS, POST=READ_ALL_LABELS)
def reviewer_skills(request: HttpRequest, pk: int) -> HttpResponse:
    reviewer = get_object_or_404(User, pk=pk)
    form = SkillsForm(
        request.POST or None, initial={"skills": ", ".join(services.reviewer_skills(reviewer))}
    )
    if request.method == "POST" and form.is_valid():
        skills = form.cleaned_data["skills"].split(",")
        quality.reviewer_skills_set(actor=request.user, user=reviewer, skills=skills)
        if "clear_flag" in request.POST:
            quality.reviewer_flag_clear(actor=request.user, user=reviewer)
        messages.success(request, f"Saved the skills of {reviewer.username}.")
        return redirect("quality:reviewer", pk=pk)
    return render(request, "annotation/quality/skills.html", {"reviewer": reviewer, "form": form})


@access(GET=READ_ALL_LABELS, POST=READ_ALL_LABELS)
def settings_page(request: HttpRequest) -> HttpResponse:
    current = quality.queue_settings()
    form = SettingsForm(request.POST or None, instance=QueueSettings.objects.get(pk=current.pk))
    if request.method == "POST" and form.is_valid():
        try:
            quality.queue_settings_update(actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, "Saved the queue settings.")
            return redirect("quality:settings")
    return render(request, "annotation/quality/settings.html", {"form": form})


@access(GET=READ_ALL_LABELS, POST=READ_ALL_LABELS)
def task_page(request: HttpRequest, pk: int) -> HttpResponse:
    """A task with its labels and resolution; admins mark it as gold from here."""
    task = get_object_or_404(QueueTask.objects.select_related("context"), pk=pk)
    labels = Comparison.objects.filter(task=task).select_related("reviewer").order_by("created_at")
    resolution = getattr(task, "resolution", None)
    initial = {f"judgment_{s}": v for s, v in (resolution.judgments if resolution else {}).items()}
    form = DecisionForm(request.POST or None, criteria=_active_criteria(), initial=initial)
    if request.method == "POST" and form.is_valid():
        gold = quality.gold_create(actor=request.user, task=task, judgments=form.judgments())
        messages.success(request, f"Gold task {gold.pk} joins the queue, unmarked.")
        return redirect("quality:task", pk=pk)
    return render(
        request, "annotation/quality/task.html",
        {"task": task, "labels": labels, "resolution": resolution, "form": form},
    )  # fmt: skip


@access(GET=READ_ALL_LABELS, POST=READ_ALL_LABELS)
def requeue_page(request: HttpRequest) -> HttpResponse:
    versions = (
        GuidelineVersion.objects.filter(
            status=VersionStatus.PUBLISHED, affects_criteria__isnull=False
        )
        .select_related("guideline")
        .prefetch_related("affects_criteria")
        .distinct()
    )
    if request.method == "POST":
        version = get_object_or_404(versions, pk=request.POST.get("version", 0))
        try:
            count = quality.labels_requeue_for_guideline(actor=request.user, version=version)
        except ValidationError as error:
            messages.error(request, " ".join(error_lines(error)))
        else:
            messages.success(request, f"Re-queued {count} tasks for review.")
        return redirect("quality:requeue")
    return render(request, "annotation/quality/requeue.html", {"versions": versions})


# --- adjudication --------------------------------------------------------------------------------


@access(GET=LABEL, POST=LABEL)
def adjudicate(request: HttpRequest) -> HttpResponse:
    """Senior reviewers decide the tasks labelers disagreed on (the queue routes these
    tasks by the "senior" skill, and never to someone who labeled the task)."""
    now = timezone.now()
    kinds = [TaskKind.ADJUDICATE]
    assignment = selectors.live_assignment(reviewer=request.user, now=now, kinds=kinds)
    assignment = assignment or services.task_lease_next(reviewer=request.user, now=now, kinds=kinds)
    if assignment is None:
        return render(request, "annotation/quality/adjudicate.html", {"assignment": None})
    form = DecisionForm(request.POST or None, criteria=_active_criteria())
    if request.method == "POST" and form.is_valid():
        try:
            services.adjudication_submit(
                reviewer=request.user, assignment=assignment, judgments=form.judgments(),
                rationale=form.cleaned_data["rationale"], now=timezone.now(),
            )  # fmt: skip
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, "Decided: the task's label is resolved.")
            return redirect("quality:adjudicate")
    return render(
        request, "annotation/quality/adjudicate.html", _adjudication_context(assignment, form)
    )


def _adjudication_context(assignment: Assignment, form: DecisionForm) -> dict:
    source = assignment.task.source_task
    labels = Comparison.objects.filter(task=source).order_by("created_at")
    return {
        "assignment": assignment,
        "card": selectors.comparison_card(
            Assignment(task=assignment.task, left="a", state=AssignmentState.LEASED)
        ),
        "labels": labels,
        "form": form,
    }


urlpatterns = [
    path("", overview, name="overview"),
    path("criteria/<slug:slug>/", criterion_page, name="criterion"),
    path("reviewers/", team_page, name="team"),
    path("reviewers/<int:pk>/", reviewer_page, name="reviewer"),
    path("reviewers/<int:pk>/skills/", reviewer_skills, name="skills"),
    path("settings/", settings_page, name="settings"),
    path("tasks/<int:pk>/", task_page, name="task"),
    path("requeue/", requeue_page, name="requeue"),
    path("adjudicate/", adjudicate, name="adjudicate"),
]
app_name = "quality"
