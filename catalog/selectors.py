"""Reads of the catalog: counts, filtered lists for the pages, and the arrays that the
constraint engine, training and serving work on."""

import numpy as np
from django.db import connection
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

    On PostgreSQL the rows arrive as one binary COPY, which NumPy reads in place as an
    array of fixed-size records: 10⁶ vectors load in about a second. Elsewhere they are
    read in key-ordered chunks.
    """
    first = Item.objects.order_by("pk").values_list("features", flat=True).first()
    if first is None:
        return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=FEATURE_DTYPE)
    dim = len(bytes(first)) // FEATURE_DTYPE.itemsize
    if connection.vendor == "postgresql":
        return _feature_matrix_by_copy(dim)
    return _feature_matrix_by_chunks(dim)


# PostgreSQL's binary COPY: a 19-byte header, then per row a field count (int16) and per
# field a length (int32) and the bytes, all big-endian except our little-endian floats;
# a trailer of -1 (int16).
_COPY_HEADER_BYTES = 19
_COPY_TRAILER_BYTES = 2


def _feature_matrix_by_copy(dim: int) -> tuple[np.ndarray, np.ndarray]:
    record = np.dtype(
        [("fields", ">i2"), ("key_length", ">i4"), ("key", ">i8"),
         ("vector_length", ">i4"), ("vector", FEATURE_DTYPE, (dim,))]
    )  # fmt: skip
    chunks = []
    with connection.cursor() as cursor:
        sql = "COPY (SELECT id, features FROM catalog_item ORDER BY id) TO STDOUT (FORMAT BINARY)"
        with cursor.cursor.copy(sql) as copy:
            chunks.extend(bytes(data) for data in copy)
    payload = b"".join(chunks)[_COPY_HEADER_BYTES:-_COPY_TRAILER_BYTES]
    if len(payload) % record.itemsize:
        raise ValueError("item feature vectors differ in length: the catalog is inconsistent")
    rows = np.frombuffer(payload, dtype=record)
    if not (
        (rows["fields"] == 2).all()
        and (rows["key_length"] == 8).all()
        and (rows["vector_length"] == dim * FEATURE_DTYPE.itemsize).all()
    ):
        raise ValueError("item feature vectors differ in length: the catalog is inconsistent")
    return rows["key"].astype(np.int64), np.ascontiguousarray(rows["vector"])


def _feature_matrix_by_chunks(dim: int) -> tuple[np.ndarray, np.ndarray]:
    keys, blocks, last_pk = [], [], 0
    while True:
        chunk = list(
            Item.objects.filter(pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", "features")[:FEATURE_CHUNK_ROWS]
        )
        if not chunk:
            break
        keys.extend(pk for pk, _ in chunk)
        buffer = b"".join(bytes(features) for _, features in chunk)
        blocks.append(np.frombuffer(buffer, dtype=FEATURE_DTYPE).reshape(len(chunk), dim))
        last_pk = chunk[-1][0]
    return np.array(keys, dtype=np.int64), np.concatenate(blocks)


def catalog_generation() -> int:
    return CatalogGeneration.objects.filter(pk=1).values_list("generation", flat=True).first() or 0


# An item's primary key and external id never change (imports upsert by external id and
# keep the key; keys are never reused), so the mapping can be cached for the process.
_EXTERNAL_IDS: dict[int, str] = {}
_EXTERNAL_IDS_LIMIT = 500_000


def item_external_ids(pks) -> dict[int, str]:
    """External ids of items by primary key (missing items are left out)."""
    wanted = set(pks)
    missing = [pk for pk in wanted if pk not in _EXTERNAL_IDS]
    if missing:
        if len(_EXTERNAL_IDS) + len(missing) > _EXTERNAL_IDS_LIMIT:
            _EXTERNAL_IDS.clear()
        _EXTERNAL_IDS.update(Item.objects.filter(pk__in=missing).values_list("pk", "external_id"))
    return {pk: _EXTERNAL_IDS[pk] for pk in wanted if pk in _EXTERNAL_IDS}
