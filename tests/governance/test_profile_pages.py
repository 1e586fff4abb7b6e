"""Profile pages: roles, API tokens shown once and usable against the API, revoking
(one's own, or anyone's for policy admins), the admin list of tokens, audit, CSRF."""

import re

import pytest
from django.db.models import Max
from django.test import Client
from django.urls import reverse

from governance import services
from governance.models import ApiToken, AuditEvent

pytestmark = pytest.mark.django_db

EVERYONE = ["curator", "safety_reviewer", "study_participant", "policy_admin", "outsider"]
NOT_ADMINS = ["curator", "safety_reviewer", "study_participant", "outsider"]
SECRET = re.compile(r"shp_[A-Za-z0-9_-]{20,}")
ME = "/api/v1/me/"


def _last_event_id() -> int:
    return AuditEvent.objects.aggregate(top=Max("pk"))["top"] or 0


def _events_since(event_id: int) -> list[str]:
    return list(AuditEvent.objects.filter(pk__gt=event_id).values_list("action", flat=True))


def _revoke_url(token: ApiToken) -> str:
    return reverse("governance:token_revoke", args=[token.pk])


def _bearer(secret: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {secret}"})


# --- who may do what ---------------------------------------------------------------------


@pytest.mark.parametrize("persona", EVERYONE)
def test_every_user_has_a_profile_and_manages_their_own_tokens(client, request, persona):
    user = request.getfixturevalue(persona)
    client.force_login(user)

    page = client.get(reverse("governance:profile"))
    created = client.post(reverse("governance:profile"), {"name": "script"})
    token = ApiToken.objects.get(user=user)
    revoked = client.post(_revoke_url(token))

    assert page.status_code == 200
    assert created.status_code == 200
    assert revoked.status_code == 302
    assert revoked["Location"] == reverse("governance:profile")


def test_the_profile_shows_the_username_and_roles(client, safety_reviewer):
    client.force_login(safety_reviewer)

    response = client.get(reverse("governance:profile"))

    assert "safety" in response.text
    assert "Safety reviewer" in response.text


@pytest.mark.parametrize("persona", NOT_ADMINS)
def test_only_policy_admins_see_every_token(client, request, persona):
    client.force_login(request.getfixturevalue(persona))

    assert client.get(reverse("governance:token_list_all")).status_code == 403


@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_visitors_are_sent_to_log_in(client, curator, method):
    token, _ = services.token_create(user=curator, name="script")
    urls = [
        reverse("governance:profile"),
        reverse("governance:token_list_all"),
        _revoke_url(token),
    ]
    for url in urls:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    token.refresh_from_db()
    assert token.is_active


def test_get_on_revoke_is_not_allowed(client, curator):
    token, _ = services.token_create(user=curator, name="script")
    client.force_login(curator)

    assert client.get(_revoke_url(token)).status_code == 405


# --- tokens ----------------------------------------------------------------------------------


def test_a_new_token_is_shown_once_and_works_against_the_api_until_revoked(client, curator):
    client.force_login(curator)
    before = _last_event_id()

    created = client.post(reverse("governance:profile"), {"name": "labeling script"})
    secret = SECRET.search(created.text).group(0)

    assert "will not be shown again" in created.text
    assert f'curl -H "Authorization: Bearer {secret}" http://testserver{ME}' in created.text
    assert "no-store" in created["Cache-Control"]
    assert _events_since(before) == ["token.create"]
    later = client.get(reverse("governance:profile"))
    assert secret not in later.text
    assert secret[:12] in later.text  # the prefix tells tokens apart
    assert "labeling script" in later.text

    me = _bearer(secret).get(ME)
    assert me.status_code == 200
    assert me.json()["username"] == "curator"

    token = ApiToken.objects.get(user=curator)
    before = _last_event_id()
    assert client.post(_revoke_url(token)).status_code == 302
    assert _events_since(before) == ["token.revoke"]
    assert _bearer(secret).get(ME).status_code == 401
    assert "revoked" in client.get(reverse("governance:profile")).text


def test_a_token_without_a_name_re_renders_the_form(client, curator):
    client.force_login(curator)

    response = client.post(reverse("governance:profile"), {"name": "   "})

    assert response.status_code == 200
    assert "required" in response.text
    assert not ApiToken.objects.exists()
    assert not SECRET.search(response.text)


def test_token_names_are_escaped(client, curator):
    services.token_create(user=curator, name="<b>mine</b>")
    client.force_login(curator)

    response = client.get(reverse("governance:profile"))

    assert "<b>mine</b>" not in response.text
    assert "&lt;b&gt;mine&lt;/b&gt;" in response.text


def test_revoking_someone_elses_token_is_not_found_and_leaves_it_active(
    client, curator, safety_reviewer
):
    token, secret = services.token_create(user=safety_reviewer, name="theirs")
    client.force_login(curator)
    before = _last_event_id()

    response = client.post(_revoke_url(token))
    missing = client.post(reverse("governance:token_revoke", args=[token.pk + 1000]))

    assert response.status_code == 404
    assert missing.status_code == 404
    token.refresh_from_db()
    assert token.is_active
    assert _events_since(before) == []
    assert _bearer(secret).get(ME).status_code == 200


def test_revoking_twice_writes_one_audit_event(client, curator):
    token, _ = services.token_create(user=curator, name="script")
    client.force_login(curator)
    before = _last_event_id()

    client.post(_revoke_url(token))
    client.post(_revoke_url(token))

    assert _events_since(before) == ["token.revoke"]


def test_a_policy_admin_lists_and_revokes_anyones_active_tokens(
    client, policy_admin, curator, safety_reviewer
):
    active, _ = services.token_create(user=curator, name="curator-script")
    gone, _ = services.token_create(user=safety_reviewer, name="old-script")
    services.token_revoke(actor=safety_reviewer, token=gone)
    client.force_login(policy_admin)
    all_tokens = reverse("governance:token_list_all")

    page = client.get(all_tokens)
    response = client.post(_revoke_url(active), {"next": all_tokens})

    assert page.status_code == 200
    assert "<td>curator-script</td>" in page.text
    assert "old-script" not in page.text
    assert f'name="next" value="{all_tokens}"' in page.text
    assert response.status_code == 302
    assert response["Location"] == all_tokens
    active.refresh_from_db()
    assert active.revoked_by == policy_admin
    assert "<td>curator-script</td>" not in client.get(all_tokens).text


@pytest.mark.parametrize("evil", ["https://evil.example/", "//evil.example/", "/\\evil.example"])
def test_revoke_ignores_next_off_site(client, curator, evil):
    token, _ = services.token_create(user=curator, name="script")
    client.force_login(curator)

    response = client.post(_revoke_url(token), {"next": evil})

    assert response["Location"] == reverse("governance:profile")


def test_token_writes_without_a_csrf_token_are_refused(curator):
    token, _ = services.token_create(user=curator, name="script")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(curator)
    before = _last_event_id()

    assert strict.post(reverse("governance:profile"), {"name": "x"}).status_code == 403
    assert strict.post(_revoke_url(token)).status_code == 403

    assert _events_since(before) == []
    token.refresh_from_db()
    assert token.is_active
    assert ApiToken.objects.count() == 1
