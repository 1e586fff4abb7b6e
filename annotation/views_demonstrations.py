"""The demonstration builder: start from a queue task or a context, pick candidates into an
ordered slate, reject others with reasons, advance the user's state step by step, and
submit the trajectory. The page saves its whole state to the server as the expert works
(and to the browser's storage when the connection drops), so nothing is lost."""

import json
import uuid

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone

from annotation import demonstrations, selectors, services
from annotation.models import DemonstrationDraft, RejectReason, TaskKind
from annotation.permissions import LABEL
from annotation.views import guidelines_first
from catalog.models import Item, Source, Topic, UserContext
from core.web import error_lines
from governance.access import access
from governance.policy_engine import active_version, catalog_index, compile_version, engine_context

CANDIDATES_SHOWN = 50


def _own_draft(request: HttpRequest, pk: int) -> DemonstrationDraft:
    return get_object_or_404(
        DemonstrationDraft.objects.select_related("context", "task"), pk=pk, reviewer=request.user
    )


@access(GET=LABEL)
def demonstrate(request: HttpRequest) -> HttpResponse:
    """The next demonstration task (a live lease resumes), opened in the builder."""
    if redirect_to := guidelines_first(request):
        return redirect_to
    now, kinds = timezone.now(), [TaskKind.DEMONSTRATE]
    assignment = selectors.live_assignment(reviewer=request.user, now=now, kinds=kinds)
    assignment = assignment or services.task_lease_next(reviewer=request.user, now=now, kinds=kinds)
    if assignment is None:
        return render(request, "annotation/demonstrate_empty.html")
    draft = demonstrations.draft_open(
        reviewer=request.user, context=assignment.task.context, task=assignment.task
    )
    return redirect("annotation:builder", pk=draft.pk)


@access(POST=LABEL)
def demonstrate_context(request: HttpRequest, pk: int) -> HttpResponse:
    """A demonstration from a context picked in the catalog."""
    context = get_object_or_404(UserContext, pk=pk)
    draft = demonstrations.draft_open(reviewer=request.user, context=context)
    return redirect("annotation:builder", pk=draft.pk)


@access(GET=LABEL)
def builder(request: HttpRequest, pk: int) -> HttpResponse:
    draft = _own_draft(request, pk)
    return render(
        request,
        "annotation/builder.html",
        {
            "draft": draft,
            "items": _item_info(_draft_items(draft.data), draft.context),
            "history_titles": _history_titles(draft.data),
            "topics": Topic.objects.order_by("slug"),
            "sources": Source.objects.order_by("slug"),
            "reasons": RejectReason.choices,
            "urls": {
                "save": reverse("annotation:builder_save", args=[pk]),
                "next": reverse("annotation:builder_next_step", args=[pk]),
                "submit": reverse("annotation:builder_submit", args=[pk]),
                "candidates": reverse("annotation:builder_candidates", args=[pk]),
            },
        },
    )


def _history_titles(data: dict) -> dict[str, str]:
    """Titles of every item in the steps' histories (which name items by external id)."""
    ids = {entry["item"] for step in data["steps"] for entry in step["state"]["history"]}
    return dict(Item.objects.filter(external_id__in=ids).values_list("external_id", "title"))


def _draft_items(data: dict) -> set[int]:
    return {
        pk
        for step in data["steps"]
        for pk in step["chosen"] + step["shown"] + [r["item"] for r in step["rejected"]]
    }


def _item_info(pks, context: UserContext) -> dict[int, dict]:
    """What the builder shows of each item, including the hard rules it breaks here."""
    items = Item.objects.filter(pk__in=pks).select_related("source").prefetch_related("topics")
    breaks = _rules_broken([item.pk for item in items], context)
    return {
        item.pk: {
            "id": item.pk,
            "title": item.title,
            "topics": [t.slug for t in item.topics.all()],
            "source": item.source.name,
            "sensitivity": item.sensitivity,
            "breaks": breaks.get(item.pk, []),
        }
        for item in items
    }


def _rules_broken(pks: list[int], context: UserContext) -> dict[int, list[str]]:
    version = active_version()
    if version is None or not pks:
        return {}
    index = catalog_index()
    engine = compile_version(version)
    situation = engine_context(context, index=index)
    known = [pk for pk in pks if pk in index.position_of_pk]
    mask = engine.allowed_mask(situation, index.positions(known))
    return {
        pk: [v.rule_id for v in engine.violations(situation, index.positions([pk]))]
        for pk, allowed in zip(known, mask, strict=True)
        if not allowed
    }


@access(GET=LABEL)
def builder_candidates(request: HttpRequest, pk: int) -> HttpResponse:
    """Candidates for the current step: search and filters (an htmx fragment)."""
    draft = _own_draft(request, pk)
    items = Item.objects.order_by("pk")
    if query := request.GET.get("q", "").strip():
        items = items.filter(Q(title__icontains=query) | Q(external_id=query))
    if topic := request.GET.get("topic"):
        items = items.filter(topics__slug=topic)
    if source := request.GET.get("source"):
        items = items.filter(source__slug=source)
    if (level := request.GET.get("max_sensitivity", "")).isdigit():
        items = items.filter(sensitivity__lte=int(level))
    pks = list(items.values_list("pk", flat=True)[:CANDIDATES_SHOWN])
    info = _item_info(pks, draft.context)
    candidates = [info[pk] for pk in pks if pk in info]
    return render(request, "annotation/_candidates.html", {"candidates": candidates})


def _json_body(request: HttpRequest) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except json.JSONDecodeError:
        raise ValidationError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    return body


def _revision(body: dict) -> int:
    try:
        return int(body.get("revision", -1))
    except (TypeError, ValueError):
        raise ValidationError("revision must be a whole number") from None


def _json_error(error: ValidationError, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": " ".join(error_lines(error))}, status=status)


@access(POST=LABEL)
def builder_save(request: HttpRequest, pk: int) -> JsonResponse:
    draft = _own_draft(request, pk)
    try:
        body = _json_body(request)
        draft = demonstrations.draft_save(
            reviewer=request.user, draft=draft, data=body.get("data"), revision=_revision(body)
        )
    except demonstrations.DraftConflict as error:
        return _json_error(error, status=409)
    except ValidationError as error:
        return _json_error(error)
    return JsonResponse({"revision": draft.revision})


@access(POST=LABEL)
def builder_next_step(request: HttpRequest, pk: int) -> JsonResponse:
    draft = _own_draft(request, pk)
    try:
        body = _json_body(request)
        draft = demonstrations.draft_next_step(
            reviewer=request.user, draft=draft, revision=_revision(body)
        )
    except demonstrations.DraftConflict as error:
        return _json_error(error, status=409)
    except ValidationError as error:
        return _json_error(error)
    items = _item_info(_draft_items(draft.data), draft.context)
    return JsonResponse(
        {"revision": draft.revision, "data": draft.data, "items": items,
         "history_titles": _history_titles(draft.data)}
    )  # fmt: skip


@access(POST=LABEL)
def builder_submit(request: HttpRequest, pk: int) -> JsonResponse:
    draft = _own_draft(request, pk)
    try:
        body = _json_body(request)
        token = uuid.UUID(str(body.get("client_token")))
        demonstrations.demonstration_submit(
            reviewer=request.user,
            draft=draft,
            client_token=token,
            now=timezone.now(),
            time_spent_ms=max(0, int(body.get("time_spent_ms", 0))),
        )
    except (ValidationError, services.LabelRefused) as error:
        return _json_error(error)
    except (TypeError, ValueError):
        return _json_error(ValidationError("client_token must be a UUID; time_spent_ms a number"))
    return JsonResponse({"next": reverse("annotation:home")})


urlpatterns = [
    path("demonstrate/", demonstrate, name="demonstrate"),
    path("demonstrate/context/<int:pk>/", demonstrate_context, name="demonstrate_context"),
    path("demonstrate/drafts/<int:pk>/", builder, name="builder"),
    path("demonstrate/drafts/<int:pk>/candidates/", builder_candidates, name="builder_candidates"),
    path("demonstrate/drafts/<int:pk>/save/", builder_save, name="builder_save"),
    path("demonstrate/drafts/<int:pk>/next-step/", builder_next_step, name="builder_next_step"),
    path("demonstrate/drafts/<int:pk>/submit/", builder_submit, name="builder_submit"),
]
