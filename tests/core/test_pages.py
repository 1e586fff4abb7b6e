"""Login, logout, the home page per role, and the health check."""

import json

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from core.services import heartbeat_record
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_a_user_logs_in_with_the_form_and_lands_home(client, curator):
    response = client.post(
        reverse("login"), {"username": "curator", "password": PASSWORD}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("home")
    assert "Welcome, curator" in response.text


def test_a_wrong_password_re_renders_the_form_with_an_error(client, curator):
    response = client.post(reverse("login"), {"username": "curator", "password": "nope"})

    assert response.status_code == 200
    assert "did not match" in response.text
    assert "_auth_user_id" not in client.session


def test_login_enforces_csrf(curator):
    strict = Client(enforce_csrf_checks=True)

    response = strict.post(reverse("login"), {"username": "curator", "password": PASSWORD})

    assert response.status_code == 403


def test_logout_is_a_post_and_ends_the_session(client, curator):
    client.force_login(curator)

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 302


@pytest.mark.parametrize(
    ("persona", "sees_catalog"),
    [
        ("curator", True),
        ("safety_reviewer", True),
        ("policy_admin", True),
        ("study_participant", False),
        ("outsider", False),
    ],
)
def test_home_shows_the_catalog_only_to_staff_roles(client, request, persona, sees_catalog):
    client.force_login(request.getfixturevalue(persona))

    response = client.get(reverse("home"))

    assert response.status_code == 200
    assert ("logged interactions" in response.text) is sees_catalog
    assert (reverse("catalog:item_list") in response.text) is sees_catalog


def test_the_home_page_escapes_user_names(client, db):
    from tests.conftest import make_user

    client.force_login(make_user("<script>alert(1)</script>"))

    response = client.get(reverse("home"))

    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_health_reports_the_database_and_the_beat_heartbeat(client):
    body = json.loads(client.get(reverse("health")).content)
    assert body == {
        "database": "ok",
        "beat_last_seen": None,
        "beat_seconds_ago": None,
        "beat_ok": False,
    }

    heartbeat_record(name="beat", now=timezone.now())

    body = json.loads(client.get(reverse("health")).content)
    assert body["beat_ok"] is True
    assert body["beat_seconds_ago"] < 60


def test_every_response_carries_a_request_id_and_keeps_a_sane_given_one(client):
    made_up = client.get(reverse("health"))
    given = client.get(reverse("health"), headers={"X-Request-ID": "lb-1234.abc"})
    hostile = client.get(reverse("health"), headers={"X-Request-ID": "<script>" + "x" * 100})

    assert len(made_up["X-Request-ID"]) == 32
    assert given["X-Request-ID"] == "lb-1234.abc"
    assert hostile["X-Request-ID"] != "<script>" + "x" * 100
