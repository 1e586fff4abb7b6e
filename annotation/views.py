"""Labeling pages: the reviewer's home, the comparison flow (full page once, then cards
swapped by htmx, the next one fetched ahead), skips and heartbeats, label edits, and the
study participant's simplified page. Demonstrations live in views_demonstrations.py."""

import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from annotation import selectors, services
from annotation.forms import ComparisonForm, LabelEditForm, SkipForm, displayed
from annotation.models import Assignment, AssignmentState, Comparison, TaskAudience, TaskKind
from annotation.permissions import LABEL, STUDY, TAKE_TASKS
from core.web import add_errors
from governance.access import access
from governance.models import Criterion
from governance.roles import Role, user_roles
from governance.selectors import active_criteria, guideline_versions_pending

CARD_TEMPLATE = "annotation/compare.html#card"
STUDY_CARD_TEMPLATE = "annotation/study.html#card"


def guidelines_first(request: HttpRequest) -> HttpResponse | None:
    """Reviewers read new guideline versions before their next task."""
    if guideline_versions_pending(user=request.user):
        target = reverse("governance:guidelines_pending") + "?" + urlencode({"next": request.path})
        return redirect(target)
    return None


def _own_assignment(request: HttpRequest, pk: int) -> Assignment:
    """The user's assignment, or 404 (another reviewer's lease is none of their business)."""
    return get_object_or_404(
        Assignment.objects.select_related("task"), pk=pk, reviewer=request.user
    )


@access(GET=TAKE_TASKS)
def home(request: HttpRequest) -> HttpResponse:
    if Role.STUDY_PARTICIPANT in user_roles(request.user) and not LABEL.admits(request.user):
        return redirect("annotation:study")
    now = timezone.now()
    done_today = selectors.labels_today(reviewer=request.user, now=now)
    target = selectors.daily_target()
    context = {
        "counts": selectors.queue_counts(reviewer=request.user),
        "done_today": done_today,
        "target": target,
        "progress": min(100, round(100 * done_today / target)) if target else 100,
        "guidelines": selectors.guidelines_in_force(),
        "pending": guideline_versions_pending(user=request.user),
        "recent": selectors.recent_labels(reviewer=request.user),
    }
    return render(request, "annotation/home.html", context)


# --- comparisons ------------------------------------------------------------------------


def _next_card(request: HttpRequest, template: str, *, exclude: list[int] = ()) -> HttpResponse:
    """The reviewer's live lease (a reload resumes it), else a newly leased task."""
    now = timezone.now()
    kinds = [TaskKind.COMPARE]
    assignment = selectors.live_assignment(
        reviewer=request.user, now=now, kinds=kinds, exclude=exclude
    ) or services.task_lease_next(
        reviewer=request.user, now=now, kinds=kinds, exclude_tasks=exclude
    )
    return _card(request, template, assignment)


def _card(request, template: str, assignment: Assignment | None, form=None) -> HttpResponse:
    if assignment is None:
        return render(request, template, {"card": None})
    card = selectors.comparison_card(assignment)
    form = form or ComparisonForm(criteria=card.criteria, initial={"client_token": uuid.uuid4()})
    return render(request, template, {"card": card, "form": form, "skip_form": SkipForm()})


@access(GET=LABEL)
def compare(request: HttpRequest) -> HttpResponse:
    """The comparison page: one card at a time, answered from the keyboard."""
    return guidelines_first(request) or _next_card(request, "annotation/compare.html")


@access(GET=TAKE_TASKS)
def compare_prefetch(request: HttpRequest) -> HttpResponse:
    """The card after the current one, leased ahead so the swap after submit is instant."""
    current = [int(pk) for pk in request.GET.getlist("current") if pk.isdigit()]
    template = STUDY_CARD_TEMPLATE if request.GET.get("study") else CARD_TEMPLATE
    return _next_card(request, template, exclude=current)


@access(GET=TAKE_TASKS)
def compare_waiting(request: HttpRequest) -> HttpResponse:
    """Polled by an empty comparison card. When there is something for the reviewer (new
    guidelines to read, or a task, leased here so that the reload resumes it) the page
    reloads through its own view (HX-Refresh); otherwise 204, and the card waits on."""
    ready = guideline_versions_pending(user=request.user) or (
        services.task_lease_next(
            reviewer=request.user, now=timezone.now(), kinds=[TaskKind.COMPARE]
        )
        is not None
    )
    if not ready:
        return HttpResponse(status=204)
    response = HttpResponse()
    response["HX-Refresh"] = "true"
    return response


@access(POST=TAKE_TASKS)
def compare_submit(request: HttpRequest, pk: int) -> HttpResponse:
    assignment = _own_assignment(request, pk)
    study = assignment.task.audience == TaskAudience.STUDY_PARTICIPANT
    template = STUDY_CARD_TEMPLATE if study else CARD_TEMPLATE
    criteria = active_criteria()
    form = ComparisonForm(request.POST, criteria=criteria)
    if form.is_valid():
        data = services.ComparisonInput(
            judgments=form.judgments(assignment.left),
            confidence=form.cleaned_data["confidence"],
            rationale=form.cleaned_data["rationale"],
            reason_tags=tuple(form.cleaned_data["reason_tags"]),
            time_spent_ms=form.cleaned_data["time_spent_ms"] or 0,
        )
        token = form.cleaned_data["client_token"]
        try:
            services.label_submit_once(
                Comparison, reviewer=request.user, client_token=token,
                submit=lambda: services.comparison_submit(
                    reviewer=request.user, assignment=assignment, data=data,
                    client_token=token, now=timezone.now(),
                ),
            )  # fmt: skip
        except ValidationError as error:
            add_errors(form, error)
        else:
            return _after_label(request, template, assignment)
    return _card(request, template, assignment, form=form)


def _after_label(request: HttpRequest, template: str, done: Assignment) -> HttpResponse:
    """The page holds the next card already: tell it to swap (204). Otherwise send it."""
    if request.headers.get("X-Prefetched"):
        response = HttpResponse(status=204)
        response["HX-Trigger"] = "labelSaved"
        return response
    return _next_card(request, template, exclude=[done.task_id])


@access(POST=TAKE_TASKS)
def assignment_skip(request: HttpRequest, pk: int) -> HttpResponse:
    assignment = _own_assignment(request, pk)
    form = SkipForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else "skipped"
    services.assignment_release(assignment=assignment, now=timezone.now(), reason=reason)
    study = assignment.task.audience == TaskAudience.STUDY_PARTICIPANT
    return _after_label(request, STUDY_CARD_TEMPLATE if study else CARD_TEMPLATE, assignment)


@access(POST=TAKE_TASKS)
def assignment_heartbeat(request: HttpRequest, pk: int) -> HttpResponse:
    """Keeps the lease while the page is open; 410 when the slot went to someone else."""
    assignment = services.assignment_heartbeat(
        assignment=_own_assignment(request, pk), now=timezone.now()
    )
    return HttpResponse(status=204 if assignment.state == AssignmentState.LEASED else 410)


# --- the study participant's page -----------------------------------------------------


@access(GET=STUDY)
def study(request: HttpRequest) -> HttpResponse:
    """The same comparisons in plain language, without the internal figures."""
    if redirect_to := guidelines_first(request):
        return redirect_to
    return _next_card(request, "annotation/study.html")


# --- editing one's own labels -------------------------------------------------------------


@access(GET=LABEL, POST=LABEL)
def comparison_edit(request: HttpRequest, pk: int) -> HttpResponse:
    comparison = get_object_or_404(Comparison, pk=pk, reviewer=request.user)
    criteria = [c for c in Criterion.objects.all() if c.slug in comparison.judgments]
    initial = {"confidence": comparison.confidence, "rationale": comparison.rationale}
    initial.update({f"judgment_{slug}": value for slug, value in comparison.judgments.items()})
    form = LabelEditForm(request.POST or None, criteria=criteria, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.comparison_edit(
                actor=request.user,
                comparison=comparison,
                judgments=form.judgments(),
                confidence=form.cleaned_data["confidence"],
                rationale=form.cleaned_data["rationale"],
            )
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, "Saved your corrected label; the earlier version is kept.")
            return redirect("annotation:home")
    sides = {
        slug: displayed(value, comparison.left) for slug, value in comparison.judgments.items()
    }
    return render(
        request, "annotation/comparison_edit.html",
        {"comparison": comparison, "form": form, "sides": sides},
    )  # fmt: skip
