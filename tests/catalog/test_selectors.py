import numpy as np
import pytest

from catalog.importing.importers import import_records
from catalog.selectors import (
    _feature_matrix_by_chunks,
    catalog_counts,
    item_feature_matrix,
    item_list,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_feature_matrix_holds_every_vector_in_key_order(monkeypatch):
    import catalog.selectors

    monkeypatch.setattr(catalog.selectors, "FEATURE_CHUNK_ROWS", 7)  # several chunks
    rows = [
        {"id": f"item-{n}", "title": "T", "source": "s", "sensitivity": 0,
         "features": [n, -n, n / 4]}
        for n in range(50)
    ]  # fmt: skip
    import_records("items", "test", rows)

    pks, matrix = item_feature_matrix()
    chunked_pks, chunked = _feature_matrix_by_chunks(3)  # the path other databases take

    np.testing.assert_array_equal(chunked, matrix)
    np.testing.assert_array_equal(chunked_pks, pks)
    assert matrix.dtype == np.float32
    assert matrix.shape == (50, 3)
    assert list(pks) == sorted(pks)
    from catalog.models import Item

    by_pk = dict(Item.objects.values_list("pk", "external_id"))
    for pk, row in zip(pks, matrix, strict=True):
        n = int(by_pk[pk].split("-")[1])
        np.testing.assert_array_equal(row, np.array([n, -n, n / 4], dtype=np.float32))


def test_an_empty_catalog_gives_empty_arrays():
    pks, matrix = item_feature_matrix()
    assert pks.shape == (0,)
    assert matrix.shape == (0, 0)


def test_counts_and_item_filters():
    import_records(
        "items",
        "test",
        [
            {"id": "a", "title": "Alpha", "topics": ["x"], "source": "s", "sensitivity": 2,
             "features": [1.0]},
            {"id": "b", "title": "Beta", "topics": ["y"], "source": "t", "sensitivity": 0,
             "features": [1.0]},
        ],
    )  # fmt: skip

    assert catalog_counts() == {"items": 2, "topics": 2, "contexts": 0, "interactions": 0}
    assert [i.external_id for i in item_list(max_sensitivity=1)] == ["b"]
    assert [i.external_id for i in item_list(topic="x")] == ["a"]
    assert [i.external_id for i in item_list(search="bet")] == ["b"]
    assert [i.external_id for i in item_list(source="s")] == ["a"]
