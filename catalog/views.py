"""Catalog pages: browse and filter items and contexts (read-only; imports are commands)."""

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from catalog import selectors
from catalog.models import Audience, Item, Source, UserContext
from catalog.permissions import BROWSE_CATALOG
from governance.access import access

PAGE_SIZE = 50


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


@access(GET=BROWSE_CATALOG)
def item_list(request: HttpRequest) -> HttpResponse:
    filters = {
        "search": request.GET.get("q", "").strip(),
        "topic": request.GET.get("topic", ""),
        "source": request.GET.get("source", ""),
        "max_sensitivity": _int_or_none(request.GET.get("max_sensitivity")),
    }
    page = Paginator(selectors.item_list(**filters), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filters": filters,
        "topics": selectors.topic_list_with_counts(),
        "sources": Source.objects.all(),
    }
    template = "catalog/item_list.html"
    if request.htmx:
        template += "#results"
    return render(request, template, context)


@access(GET=BROWSE_CATALOG)
def item_detail(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(Item.objects.select_related("source"), pk=pk)
    return render(
        request,
        "catalog/item_detail.html",
        {"item": item, "vector": [round(float(v), 3) for v in item.feature_vector]},
    )


@access(GET=BROWSE_CATALOG)
def context_list(request: HttpRequest) -> HttpResponse:
    filters = {
        "segment": request.GET.get("segment", ""),
        "audience": request.GET.get("audience", ""),
    }
    page = Paginator(selectors.context_list(**filters), PAGE_SIZE).get_page(request.GET.get("page"))
    segments = UserContext.objects.order_by("segment").values_list("segment", flat=True).distinct()
    context = {
        "page": page,
        "filters": filters,
        "segments": segments,
        "audiences": Audience.choices,
    }
    template = "catalog/context_list.html"
    if request.htmx:
        template += "#results"
    return render(request, template, context)


@access(GET=BROWSE_CATALOG)
def context_detail(request: HttpRequest, pk: int) -> HttpResponse:
    context_obj = get_object_or_404(UserContext, pk=pk)
    history_ids = [entry["item"] for entry in context_obj.history]
    titles = dict(
        Item.objects.filter(external_id__in=history_ids).values_list("external_id", "title")
    )
    history = [{**entry, "title": titles.get(entry["item"], "")} for entry in context_obj.history]
    return render(
        request,
        "catalog/context_detail.html",
        {"ctx": context_obj, "history": history},
    )
