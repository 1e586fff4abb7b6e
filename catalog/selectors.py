"""Reads of the catalog: counts, filtered lists for the pages, and the arrays that the
constraint engine, training and serving work on."""

import numpy as np
from django.db.models import Count, Q, QuerySet

from catalog.models import (
    FEATURE_DTYPE,
    CatalogGeneration,
    Item,
    LoggedInteraction,
    Topic,
    UserContext,
)

FEATURE_CHUNK_ROWS = 50_000


def catalog_counts() -> dict[str, int]:
    return {
        "items": Item.objects.count(),
        "topics": Topic.objects.count(),
        "contexts": UserContext.objects.count(),
        "interactions": LoggedInteraction.objects.count(),
    }


def item_list(
    *,
    search: str = "",
    topic: str = "",
    source: str = "",
    max_sensitivity: int | None = None,
) -> QuerySet[Item]:
    items = Item.objects.select_related("source").prefetch_related("topics").order_by("pk")
    if search:
        items = items.filter(Q(title__icontains=search) | Q(external_id=search))
    if topic:
        items = items.filter(topics__slug=topic)
    if source:
        items = items.filter(source__slug=source)
    if max_sensitivity is not None:
        items = items.filter(sensitivity__lte=max_sensitivity)
    return items


def topic_list_with_counts() -> QuerySet[Topic]:
    return Topic.objects.annotate(item_count=Count("items")).order_by("slug")


def context_list(*, segment: str = "", audience: str = "") -> QuerySet[UserContext]:
    contexts = UserContext.objects.order_by("pk")
    if segment:
        contexts = contexts.filter(segment=segment)
    if audience:
        contexts = contexts.filter(audience=audience)
    return contexts


def item_feature_matrix() -> tuple[np.ndarray, np.ndarray]:
    """(item primary keys, float32 matrix with one row per item), in primary-key order.

    Read in key-ordered chunks straight into one preallocated array, so loading 10⁶
    vectors costs one pass over their bytes and no per-row Python objects beyond a chunk.
    """
    total = Item.objects.count()
    if total == 0:
        return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=FEATURE_DTYPE)
    first = Item.objects.order_by("pk").values_list("features", flat=True).first()
    dim = len(bytes(first)) // FEATURE_DTYPE.itemsize
    pks = np.empty(total, dtype=np.int64)
    matrix = np.empty((total, dim), dtype=FEATURE_DTYPE)
    filled, last_pk = 0, 0
    while filled < total:
        chunk = list(
            Item.objects.filter(pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", "features")[:FEATURE_CHUNK_ROWS]
        )
        if not chunk:
            break
        n = min(len(chunk), total - filled)  # rows added since the count are left out
        pks[filled : filled + n] = [pk for pk, _ in chunk[:n]]
        buffer = b"".join(bytes(features) for _, features in chunk[:n])
        matrix[filled : filled + n] = np.frombuffer(buffer, dtype=FEATURE_DTYPE).reshape(n, dim)
        filled += n
        last_pk = chunk[-1][0]
    return pks[:filled], matrix[:filled]


def catalog_generation() -> int:
    return CatalogGeneration.objects.filter(pk=1).values_list("generation", flat=True).first() or 0
