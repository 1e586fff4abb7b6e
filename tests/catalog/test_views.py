"""Catalog pages: who may see them, filters, htmx fragments, escaping."""

import pytest
from django.urls import reverse

from catalog.importing.importers import import_records

pytestmark = pytest.mark.django_db(transaction=True)

STAFF = ["curator", "safety_reviewer", "policy_admin"]
NOT_STAFF = ["study_participant", "outsider"]


@pytest.fixture
def items():
    import_records(
        "items",
        "test",
        [
            {"id": "item-1", "title": "Quiet pasta <b>night</b>", "topics": ["cooking"],
             "source": "daily-kitchen", "sensitivity": 0, "features": [0.0, 1.0]},
            {"id": "item-2", "title": "Loud casino", "topics": ["gambling"],
             "source": "night-desk", "sensitivity": 3, "features": [1.0, 0.0]},
        ],
    )  # fmt: skip
    import_records(
        "contexts",
        "test",
        [{"id": "ctx-1", "user": "u-1", "segment": "teen", "audience": "minor",
          "history": [{"item": "item-1", "event": "click"}]}],
    )  # fmt: skip


def _pages():
    from catalog.models import Item, UserContext

    item = Item.objects.get(external_id="item-1")
    ctx = UserContext.objects.get(external_id="ctx-1")
    return [
        reverse("catalog:item_list"),
        reverse("catalog:item_detail", args=[item.pk]),
        reverse("catalog:context_list"),
        reverse("catalog:context_detail", args=[ctx.pk]),
    ]


@pytest.mark.parametrize("persona", STAFF)
def test_staff_roles_see_every_catalog_page(client, request, items, persona):
    client.force_login(request.getfixturevalue(persona))
    for page in _pages():
        assert client.get(page).status_code == 200, page


@pytest.mark.parametrize("persona", NOT_STAFF)
def test_other_users_are_refused_every_catalog_page(client, request, items, persona):
    client.force_login(request.getfixturevalue(persona))
    for page in _pages():
        assert client.get(page).status_code == 403, page


def test_a_missing_item_is_404(client, curator, items):
    client.force_login(curator)
    assert client.get(reverse("catalog:item_detail", args=[999_999])).status_code == 404


def test_filters_narrow_the_item_list(client, curator, items):
    client.force_login(curator)
    url = reverse("catalog:item_list")

    assert "Loud casino" not in client.get(url, {"max_sensitivity": "1"}).text
    assert "Quiet pasta" not in client.get(url, {"topic": "gambling"}).text
    assert "Loud casino" in client.get(url, {"q": "casino"}).text
    assert "Quiet pasta" in client.get(url, {"source": "daily-kitchen"}).text
    assert client.get(url, {"max_sensitivity": "lots"}).status_code == 200  # ignored


def test_htmx_requests_get_only_the_results_fragment(client, curator, items):
    client.force_login(curator)

    fragment = client.get(
        reverse("catalog:item_list"), {"q": "pasta"}, headers={"HX-Request": "true"}
    )
    page = client.get(reverse("catalog:item_list"), {"q": "pasta"})

    assert fragment.text.lstrip().startswith('<div id="results">')
    assert "<html" not in fragment.text
    assert "<html" in page.text


def test_item_titles_are_escaped(client, curator, items):
    client.force_login(curator)

    response = client.get(reverse("catalog:item_list"))

    assert "<b>night</b>" not in response.text
    assert "&lt;b&gt;night&lt;/b&gt;" in response.text


def test_a_context_page_shows_history_titles(client, curator, items):
    from catalog.models import UserContext

    client.force_login(curator)
    ctx = UserContext.objects.get(external_id="ctx-1")

    response = client.get(reverse("catalog:context_detail", args=[ctx.pk]))

    assert "Quiet pasta" in response.text
    assert "Minor" in response.text
