"""The policy editor: rules through the form and as JSON, validation that names the rule,
the preview of what a version does to the catalog, publishing."""

import json

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse

from catalog.demo import seed_demo_world
from governance import services
from governance.demo import PLATFORM_RULES, seed_governance
from governance.models import AuditEvent, PolicyVersion, VersionStatus
from training.ml.simulator import SimConfig, Simulator

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_world():
    sim = Simulator(SimConfig(n_items=300, n_users=30), seed=5)
    seed_demo_world(sim=sim, interactions=0, rng=np.random.default_rng(5))
    seed_governance()


@pytest.fixture
def draft(demo_world, policy_admin):
    policy = PolicyVersion.objects.get(status=VersionStatus.PUBLISHED).policy
    return services.policy_version_create_draft(actor=policy_admin, policy=policy)


def version_url(version, name="governance:policy_version") -> str:
    return reverse(name, args=[version.policy.slug, version.number])


def test_the_editor_shows_rules_problems_and_actions_to_admins(client, policy_admin, draft):
    client.force_login(policy_admin)

    page = client.get(version_url(draft))

    assert page.status_code == 200
    for rule in PLATFORM_RULES:
        assert rule["id"] in page.text
    assert "Add rule" in page.text
    assert "Publish version 2" in page.text


def test_staff_see_a_version_but_cannot_edit_it(client, curator, draft):
    client.force_login(curator)

    page = client.get(version_url(draft))

    assert page.status_code == 200
    assert "Add rule" not in page.text
    assert client.post(version_url(draft), {"rules": "[]"}).status_code == 403


def test_adding_a_rule_through_the_form_saves_it_and_audits(client, policy_admin, draft):
    client.force_login(policy_admin)
    events = AuditEvent.objects.count()

    response = client.post(
        version_url(draft, "governance:policy_rules_change"),
        {"kind": "max_sensitivity", "id": "teen-cap", "audience": "minor", "level": "0"},
    )

    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.rules[-1] == {
        "id": "teen-cap",
        "kind": "max_sensitivity",
        "audience": "minor",
        "level": 0,
    }
    assert AuditEvent.objects.count() == events + 1


def test_an_invalid_rule_form_re_renders_with_its_errors(client, policy_admin, draft):
    client.force_login(policy_admin)

    response = client.post(
        version_url(draft, "governance:policy_rules_change"),
        {"kind": "min_distinct_sources", "id": "", "count": "0"},
    )

    assert response.status_code == 200
    assert "This field is required" in response.text
    assert "greater than or equal to 1" in response.text


def test_removing_a_rule_by_position(client, policy_admin, draft):
    client.force_login(policy_admin)

    client.post(version_url(draft, "governance:policy_rules_change"), {"remove": "0"})

    draft.refresh_from_db()
    assert [r["id"] for r in draft.rules] == [r["id"] for r in PLATFORM_RULES[1:]]


def test_malformed_json_is_refused_with_line_and_column(client, policy_admin, draft):
    client.force_login(policy_admin)

    response = client.post(
        version_url(draft), {"rules": '[{"id": "x",\n "kind": }]', "changelog": ""}
    )

    assert response.status_code == 200
    assert "not valid JSON: Expecting value at line 2, column 10" in response.text
    draft.refresh_from_db()
    assert draft.rules == PLATFORM_RULES


def test_saved_json_with_a_bad_rule_lists_the_problem_and_publishing_is_refused(
    client, policy_admin, draft
):
    client.force_login(policy_admin)
    bad = [{"id": "oops", "kind": "forbidden_topics", "topics": ["poker"]}]

    client.post(version_url(draft), {"rules": json.dumps(bad), "changelog": "try"})
    page = client.get(version_url(draft))
    published = client.post(version_url(draft, "governance:policy_version_publish"), follow=True)

    assert "rule 1 &#x27;oops&#x27;: topics: unknown topics: poker" in page.text
    assert "Not published" in published.text
    draft.refresh_from_db()
    assert draft.status == VersionStatus.DRAFT


def test_publishing_puts_the_draft_in_force_and_retires_the_old_version(
    client, policy_admin, draft
):
    client.force_login(policy_admin)
    client.post(
        version_url(draft), {"rules": json.dumps(PLATFORM_RULES[:2]), "changelog": "fewer rules"}
    )

    response = client.post(version_url(draft, "governance:policy_version_publish"), follow=True)

    assert "now in force" in response.text
    assert dict(PolicyVersion.objects.values_list("number", "status")) == {
        1: VersionStatus.RETIRED, 2: VersionStatus.PUBLISHED,
    }  # fmt: skip


def test_the_preview_counts_items_each_rule_removes_and_repairs_a_slate(client, curator, draft):
    client.force_login(curator)

    fragment = client.get(
        version_url(draft, "governance:policy_version_preview"), headers={"HX-Request": "true"}
    )

    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert "minors-no-sensitive-topics" in fragment.text
    assert "Before: more of what they saw lately" in fragment.text
    assert "After: repaired under this version" in fragment.text


def test_the_preview_waits_for_valid_rules(client, policy_admin, draft):
    client.force_login(policy_admin)
    client.post(version_url(draft), {"rules": '[{"id": "x", "kind": "nope"}]', "changelog": ""})

    fragment = client.get(version_url(draft, "governance:policy_version_preview"))

    assert "Fix the rules" in fragment.text


def test_rule_ids_are_escaped(client, policy_admin, draft):
    client.force_login(policy_admin)
    hostile = [{"id": "<script>alert(1)</script>", "kind": "min_distinct_sources", "count": 2}]
    client.post(version_url(draft), {"rules": json.dumps(hostile), "changelog": ""})

    page = client.get(version_url(draft))

    assert "<script>alert(1)</script>" not in page.text


def test_editor_posts_need_a_csrf_token(policy_admin, draft):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(policy_admin)

    assert strict.post(version_url(draft), {"rules": "[]"}).status_code == 403
