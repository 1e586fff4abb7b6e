"""Guideline pages: who may read and write them, drafts, the live preview, diffs,
acknowledgements and the pending list, sanitized rendering, audit events, CSRF."""

import re

import pytest
from django.db.models import Max
from django.test import Client
from django.urls import reverse

from governance import services
from governance.models import (
    AuditEvent,
    Criterion,
    Guideline,
    GuidelineAcknowledgement,
    GuidelineVersion,
    VersionStatus,
)

pytestmark = pytest.mark.django_db

EVERYONE = ["curator", "safety_reviewer", "study_participant", "policy_admin", "outsider"]
NOT_ADMINS = ["curator", "safety_reviewer", "study_participant", "outsider"]
EVIL_BODY = """# Be careful

<script>alert(1)</script>

[x](javascript:alert(1))

<img src=x onerror=alert(1)>

<iframe src="https://evil.example/"></iframe>

<div style="position:fixed;top:0">covering div</div>
"""


@pytest.fixture
def guideline(policy_admin) -> Guideline:
    """The general guideline, with v1 published."""
    guideline = services.guideline_create(actor=policy_admin, slug="general", title="General")
    v1 = services.guideline_version_create_draft(
        actor=policy_admin, guideline=guideline, body="# Rules\n\nBe kind.\n", changelog="first"
    )
    services.guideline_version_publish(actor=policy_admin, version=v1)
    return guideline


@pytest.fixture
def draft(guideline, policy_admin) -> GuidelineVersion:
    """v2 of the general guideline, a draft."""
    return services.guideline_version_create_draft(
        actor=policy_admin,
        guideline=guideline,
        body="# Rules\n\nBe kind.\nBe brief.\n",
        changelog="brevity",
    )


def _url(name: str, *args, **query) -> str:
    url = reverse(f"governance:{name}", args=args)
    if query:
        url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return url


def _last_event_id() -> int:
    return AuditEvent.objects.aggregate(top=Max("pk"))["top"] or 0


def _events_since(event_id: int) -> list[str]:
    return list(AuditEvent.objects.filter(pk__gt=event_id).values_list("action", flat=True))


def _admin_writes(draft) -> list[tuple[str, dict]]:
    slug, number = draft.guideline.slug, draft.number
    return [
        (_url("guideline_list"), {"slug": "compare", "title": "Compare", "task_kind": "compare"}),
        (_url("guideline_detail", slug), {}),
        (_url("guideline_version", slug, number), {"body": "# New", "changelog": "new"}),
        (_url("guideline_preview", slug, number), {"body": "# New"}),
        (_url("guideline_publish", slug, number), {}),
    ]


# --- who may do what ---------------------------------------------------------------------


@pytest.mark.parametrize("persona", EVERYONE)
def test_every_user_reads_the_guideline_pages(client, request, guideline, persona):
    client.force_login(request.getfixturevalue(persona))
    pages = [
        _url("guideline_list"),
        _url("guideline_detail", "general"),
        _url("guideline_version", "general", 1),
        _url("guideline_diff", "general", **{"from": 1, "to": 1}),
        _url("guidelines_pending"),
    ]
    for page in pages:
        assert client.get(page).status_code == 200, page


@pytest.mark.parametrize("persona", EVERYONE)
def test_every_user_may_acknowledge_a_published_version(client, request, guideline, persona):
    user = request.getfixturevalue(persona)
    client.force_login(user)

    response = client.post(_url("guideline_acknowledge", "general", 1))

    assert response.status_code == 302
    assert GuidelineAcknowledgement.objects.filter(user=user, version__number=1).exists()


@pytest.mark.parametrize("persona", NOT_ADMINS)
def test_only_policy_admins_may_write_guidelines(client, request, draft, persona):
    client.force_login(request.getfixturevalue(persona))
    before = _last_event_id()

    for url, data in _admin_writes(draft):
        assert client.post(url, data).status_code == 403, url

    assert _events_since(before) == []
    assert not Guideline.objects.filter(slug="compare").exists()


def test_a_policy_admin_may_do_every_guideline_write(client, policy_admin, draft):
    client.force_login(policy_admin)

    for url, data in _admin_writes(draft):
        assert client.post(url, data).status_code in (200, 302), url


@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_visitors_are_sent_to_log_in(client, draft, method):
    urls = [
        _url("guideline_list"),
        _url("guidelines_pending"),
        _url("guideline_detail", "general"),
        _url("guideline_diff", "general"),
        _url("guideline_version", "general", 1),
        _url("guideline_preview", "general", 2),
        _url("guideline_publish", "general", 2),
        _url("guideline_acknowledge", "general", 1),
    ]
    for url in urls:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


@pytest.mark.parametrize("persona", NOT_ADMINS)
def test_drafts_are_not_found_for_anyone_but_policy_admins(client, request, draft, persona):
    client.force_login(request.getfixturevalue(persona))

    assert client.get(_url("guideline_version", "general", 2)).status_code == 404
    assert client.post(_url("guideline_acknowledge", "general", 2)).status_code == 404
    diff = client.get(_url("guideline_diff", "general", **{"from": 1, "to": 2}))
    assert diff.status_code == 404
    page = client.get(_url("guideline_detail", "general")).text
    # Neither a link to the draft nor its number (not a bare "v2": a CSRF token may hold it).
    assert _url("guideline_version", "general", 2) not in page
    assert ">v2<" not in page
    assert "v2 " not in page


def test_policy_admins_see_drafts_with_an_edit_form(client, policy_admin, draft):
    client.force_login(policy_admin)

    detail = client.get(_url("guideline_detail", "general"))
    page = client.get(_url("guideline_version", "general", 2))

    assert "v2" in detail.text
    assert page.status_code == 200
    assert 'name="body"' in page.text
    assert _url("guideline_publish", "general", 2) in page.text


def test_a_published_version_has_no_edit_form(client, policy_admin, guideline):
    client.force_login(policy_admin)

    page = client.get(_url("guideline_version", "general", 1))

    assert 'name="body"' not in page.text


def test_an_unknown_guideline_or_version_is_404(client, curator, guideline):
    client.force_login(curator)

    assert client.get(_url("guideline_detail", "nope")).status_code == 404
    assert client.get(_url("guideline_version", "general", 9)).status_code == 404


# --- writes and their audit events -------------------------------------------------------


def test_creating_a_guideline_writes_one_audit_event(client, policy_admin):
    client.force_login(policy_admin)
    before = _last_event_id()

    response = client.post(
        _url("guideline_list"), {"slug": "compare", "title": "Compare", "task_kind": "compare"}
    )

    assert response.status_code == 302
    assert response["Location"] == _url("guideline_detail", "compare")
    assert Guideline.objects.get(slug="compare").task_kind == "compare"
    assert _events_since(before) == ["guideline.create"]


def test_a_duplicate_or_reserved_slug_re_renders_the_form_with_the_error(
    client, policy_admin, guideline
):
    client.force_login(policy_admin)
    before = _last_event_id()

    duplicate = client.post(_url("guideline_list"), {"slug": "general", "title": "Again"})
    reserved = client.post(_url("guideline_list"), {"slug": "pending", "title": "Pending"})

    assert duplicate.status_code == 200
    assert "already exists" in duplicate.text
    assert reserved.status_code == 200
    assert "taken by a page" in reserved.text
    assert _events_since(before) == []


def test_starting_a_draft_writes_one_audit_event_and_goes_to_its_page(
    client, policy_admin, guideline
):
    client.force_login(policy_admin)
    before = _last_event_id()

    response = client.post(_url("guideline_detail", "general"))

    assert response.status_code == 302
    assert response["Location"] == _url("guideline_version", "general", 2)
    assert guideline.versions.get(number=2).body == "# Rules\n\nBe kind.\n"
    assert _events_since(before) == ["guideline_version.create"]


def test_saving_a_draft_writes_one_audit_event(client, policy_admin, draft):
    client.force_login(policy_admin)
    safety = Criterion.objects.get(slug="safety")
    before = _last_event_id()

    response = client.post(
        _url("guideline_version", "general", 2),
        {
            "body": "# Rules\n\nBe safe.",
            "changelog": "safety first",
            "affects_criteria": [safety.pk],
        },
    )

    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.body == "# Rules\n\nBe safe."
    assert draft.changelog == "safety first"
    assert list(draft.affects_criteria.all()) == [safety]
    assert _events_since(before) == ["guideline_version.update"]


def test_saving_a_published_version_is_refused_with_a_message(client, policy_admin, guideline):
    client.force_login(policy_admin)
    before = _last_event_id()

    response = client.post(
        _url("guideline_version", "general", 1), {"body": "changed", "changelog": "sneaky"}
    )

    assert response.status_code == 200
    assert "cannot change" in response.text
    assert guideline.versions.get(number=1).body == "# Rules\n\nBe kind.\n"
    assert _events_since(before) == []


def test_publishing_writes_one_audit_event_and_retires_the_previous_version(
    client, policy_admin, draft
):
    client.force_login(policy_admin)
    before = _last_event_id()

    response = client.post(_url("guideline_publish", "general", 2))

    assert response.status_code == 302
    assert _events_since(before) == ["guideline_version.publish"]
    statuses = dict(draft.guideline.versions.values_list("number", "status"))
    assert statuses == {1: VersionStatus.RETIRED, 2: VersionStatus.PUBLISHED}


def test_publishing_without_a_changelog_shows_the_error(client, policy_admin, guideline):
    client.force_login(policy_admin)
    services.guideline_version_create_draft(actor=policy_admin, guideline=guideline)
    before = _last_event_id()

    response = client.post(_url("guideline_publish", "general", 2))

    assert response.status_code == 200
    assert "say in a line what this version changes" in response.text
    assert guideline.versions.get(number=2).status == VersionStatus.DRAFT
    assert _events_since(before) == []


def test_acknowledging_writes_no_audit_event(client, curator, guideline):
    client.force_login(curator)
    before = _last_event_id()

    client.post(_url("guideline_acknowledge", "general", 1))

    assert GuidelineAcknowledgement.objects.filter(user=curator).count() == 1
    assert _events_since(before) == []


def test_writes_without_a_csrf_token_are_refused(policy_admin, draft):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(policy_admin)
    before = _last_event_id()

    for url, data in [
        *_admin_writes(draft),
        (_url("guideline_acknowledge", "general", 1), {}),
    ]:
        assert strict.post(url, data).status_code == 403, url

    assert _events_since(before) == []
    assert not GuidelineAcknowledgement.objects.exists()


# --- rendering -----------------------------------------------------------------------------


def _assert_inert(text: str) -> None:
    articles = re.findall(r"<article[^>]*>(.*?)</article>", text, re.S)
    assert articles
    for html in articles:
        assert "<script" not in html
        assert "style=" not in html
    # The page's own <script src=htmx> aside, nothing of the body survives as markup.
    assert "<script>" not in text
    assert "javascript:" not in text
    assert "onerror" not in text
    assert "<iframe" not in text


def test_a_hostile_guideline_body_renders_inert_on_the_version_and_pending_pages(
    client, curator, policy_admin, guideline
):
    evil = services.guideline_version_create_draft(
        actor=policy_admin, guideline=guideline, body=EVIL_BODY, changelog="evil"
    )
    services.guideline_version_publish(actor=policy_admin, version=evil)
    client.force_login(curator)

    version_page = client.get(_url("guideline_version", "general", 2))
    pending_page = client.get(_url("guidelines_pending"))
    detail_page = client.get(_url("guideline_detail", "general"))

    for page in (version_page, pending_page, detail_page):
        assert page.status_code == 200
        assert "Be careful</h1>" in page.text
        assert "covering div" in page.text
        _assert_inert(page.text)


def test_the_htmx_preview_returns_only_the_sanitized_fragment(client, policy_admin, draft):
    client.force_login(policy_admin)

    response = client.post(
        _url("guideline_preview", "general", 2),
        {"body": EVIL_BODY},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 200
    assert response.text.strip().startswith('<article id="preview"')
    assert "<html" not in response.text
    assert "Be careful</h1>" in response.text
    _assert_inert(response.text)


def test_the_diff_marks_added_and_removed_lines_and_escapes_them(client, curator, policy_admin):
    guideline = services.guideline_create(actor=policy_admin, slug="review", title="Review")
    for body in ("Same line\n<b>old</b>\n", "Same line\n<b>new</b>\n"):
        version = services.guideline_version_create_draft(
            actor=policy_admin, guideline=guideline, body=body, changelog="change"
        )
        services.guideline_version_publish(actor=policy_admin, version=version)
    client.force_login(curator)

    response = client.get(_url("guideline_diff", "review", **{"from": 1, "to": 2}))

    assert response.status_code == 200
    assert '<del class="removed">- &lt;b&gt;old&lt;/b&gt;</del>' in response.text
    assert '<ins class="added">+ &lt;b&gt;new&lt;/b&gt;</ins>' in response.text
    assert '<span class="same">  Same line</span>' in response.text
    assert 'class="hunk' in response.text
    assert "<b>new</b>" not in response.text


def test_the_diff_without_or_with_bad_versions_says_what_to_do(client, curator, guideline):
    client.force_login(curator)

    empty = client.get(_url("guideline_diff", "general"))
    bad = client.get(_url("guideline_diff", "general", **{"from": "one", "to": 1}))
    half = client.get(_url("guideline_diff", "general", **{"to": 1}))
    unknown = client.get(_url("guideline_diff", "general", **{"from": 1, "to": 7}))

    assert empty.status_code == 200
    assert "Choose two versions to compare" in empty.text
    assert bad.status_code == 200
    assert "whole number" in bad.text
    assert half.status_code == 200
    assert "required" in half.text
    assert unknown.status_code == 404


def test_the_detail_page_offers_to_compare_versions(client, policy_admin, draft):
    client.force_login(policy_admin)

    response = client.get(_url("guideline_detail", "general"))

    assert f'action="{_url("guideline_diff", "general")}"' in response.text
    assert response.text.count("<select") == 2


# --- pending and acknowledgements ------------------------------------------------------------


def test_a_curator_reads_a_new_version_in_pending_then_no_longer_sees_it(
    client, curator, policy_admin, guideline
):
    services.guideline_acknowledge(user=curator, version=guideline.versions.get(number=1))
    admin = Client()
    admin.force_login(policy_admin)
    admin.post(_url("guideline_detail", "general"))
    admin.post(
        _url("guideline_version", "general", 2),
        {"body": "# Rules\n\nAlways cite the **source**.", "changelog": "cite sources"},
    )
    assert admin.post(_url("guideline_publish", "general", 2)).status_code == 302
    client.force_login(curator)

    before = client.get(_url("guidelines_pending"))
    list_before = client.get(_url("guideline_list"))
    acknowledged = client.post(_url("guideline_acknowledge", "general", 2))
    after = client.get(_url("guidelines_pending"))

    assert "Always cite the <strong>source</strong>" in before.text
    assert "I have read this version" in before.text
    assert "to read" in list_before.text
    assert acknowledged["Location"] == _url("guidelines_pending")
    assert "Always cite" not in after.text
    assert "Nothing to read" in after.text
    assert "to read</span>" not in client.get(_url("guideline_list")).text


def test_guidelines_for_other_task_kinds_are_not_pending(client, study_participant, policy_admin):
    guideline = services.guideline_create(
        actor=policy_admin, slug="flags", title="Flags", task_kind="review_flag"
    )
    version = services.guideline_version_create_draft(
        actor=policy_admin, guideline=guideline, body="Flag it.", changelog="first"
    )
    services.guideline_version_publish(actor=policy_admin, version=version)
    client.force_login(study_participant)

    assert "Nothing to read" in client.get(_url("guidelines_pending")).text


def test_only_the_published_version_can_be_acknowledged(client, curator, policy_admin, draft):
    services.guideline_version_publish(actor=policy_admin, version=draft)
    client.force_login(curator)

    response = client.post(_url("guideline_acknowledge", "general", 1))  # now retired

    assert response.status_code == 200
    assert "only the published version can be acknowledged" in response.text
    assert not GuidelineAcknowledgement.objects.filter(user=curator).exists()


def test_acknowledging_returns_to_next_once_nothing_is_pending(client, curator, guideline):
    client.force_login(curator)

    response = client.post(
        _url("guideline_acknowledge", "general", 1), {"next": "/catalog/items/?q=a"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/catalog/items/?q=a"


def test_acknowledging_keeps_next_while_more_is_pending(client, curator, policy_admin, guideline):
    other = services.guideline_create(actor=policy_admin, slug="compare", title="Compare")
    version = services.guideline_version_create_draft(
        actor=policy_admin, guideline=other, body="Compare.", changelog="first"
    )
    services.guideline_version_publish(actor=policy_admin, version=version)
    client.force_login(curator)

    response = client.post(_url("guideline_acknowledge", "general", 1), {"next": "/task/7/"})
    page = client.get(response["Location"])

    assert response["Location"] == _url("guidelines_pending") + "?next=%2Ftask%2F7%2F"
    assert 'name="next" value="/task/7/"' in page.text


@pytest.mark.parametrize(
    "evil", ["https://evil.example/", "//evil.example/", "/\\evil.example/", "javascript:alert(1)"]
)
def test_next_pointing_off_site_is_ignored(client, curator, guideline, evil):
    client.force_login(curator)

    page = client.get(_url("guidelines_pending"), {"next": evil})
    response = client.post(_url("guideline_acknowledge", "general", 1), {"next": evil})

    assert "evil.example" not in page.text
    assert 'name="next"' not in page.text
    assert response["Location"] == _url("guidelines_pending")
