"""The demonstration builder's server side: drafts saved and guarded against another
tab, states advanced with the simulator's transition, submissions checked and idempotent."""

import json
import math
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation import demonstrations, services
from annotation.models import Demonstration, DemonstrationDraft, QueueTask, TaskKind, TaskReason
from governance import services as governance
from tests.annotation.factories import ensure_criteria, small_catalog

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    ensure_criteria()
    return small_catalog(n_items=8)


def minors_see_nothing_sensitive(context, admin, rule_id: str) -> None:
    """Make the context a minor's and publish a policy capping minors' sensitivity at 0."""
    context.audience = "minor"
    context.save()
    policy = governance.policy_create(actor=admin, slug="platform", name="Platform")
    rule = {"id": rule_id, "kind": "max_sensitivity", "audience": "minor", "level": 0}
    version = governance.policy_version_create_draft(
        actor=admin, policy=policy, changelog="minors", rules=[rule]
    )
    governance.policy_version_publish(actor=admin, version=version)


def post_json(client, name: str, draft: DemonstrationDraft, body: dict):
    return client.post(
        reverse(f"annotation:{name}", args=[draft.pk]),
        json.dumps(body),
        content_type="application/json",
    )


def test_a_task_opens_one_draft_that_a_reload_finds_again(client, curator, world):
    context, _ = world
    QueueTask.objects.create(kind=TaskKind.DEMONSTRATE, reason=TaskReason.MANUAL, context=context)
    client.force_login(curator)

    first = client.get(reverse("annotation:demonstrate"))
    second = client.get(reverse("annotation:demonstrate"))

    assert first["Location"] == second["Location"]
    assert DemonstrationDraft.objects.filter(reviewer=curator).count() == 1


def test_the_first_state_is_the_context_with_fatigue_replayed_from_history(curator, world):
    context, _ = world

    draft = demonstrations.draft_open(reviewer=curator, context=context)

    state = draft.data["steps"][0]["state"]
    assert state["history"] == context.history
    # One item of one topic, the newest entry: the last of a slate of five, w = 1 / log2(6).
    assert state["topic_fatigue"] == {"cooking": pytest.approx(1 / math.log2(6), abs=1e-4)}


def test_saving_keeps_the_slate_and_refuses_a_stale_copy(client, curator, world):
    context, items = world
    draft = demonstrations.draft_open(reviewer=curator, context=context)
    client.force_login(curator)
    data = draft.data
    data["steps"][0]["chosen"] = [items[1].pk, items[2].pk]
    data["steps"][0]["rationale"] = "fresh picks"

    saved = post_json(client, "builder_save", draft, {"data": data, "revision": 0})
    stale = post_json(client, "builder_save", draft, {"data": data, "revision": 0})

    assert saved.json() == {"revision": 1}
    assert stale.status_code == 409
    assert "another window" in stale.json()["error"]
    draft.refresh_from_db()
    assert draft.data["steps"][0]["chosen"] == [items[1].pk, items[2].pk]


def test_the_page_cannot_rewrite_a_state(client, curator, world):
    context, _ = world
    draft = demonstrations.draft_open(reviewer=curator, context=context)
    client.force_login(curator)
    data = draft.data
    data["steps"][0]["state"] = {"history": [], "situation": {"fatigue": 0}, "topic_fatigue": {}}

    post_json(client, "builder_save", draft, {"data": data, "revision": 0})

    draft.refresh_from_db()
    assert draft.data["steps"][0]["state"]["history"] == context.history


def test_the_next_step_grows_history_and_fatigue(client, curator, world):
    context, items = world
    draft = demonstrations.draft_open(reviewer=curator, context=context)
    data = draft.data
    data["steps"][0]["chosen"] = [items[1].pk, items[2].pk]
    demonstrations.draft_save(reviewer=curator, draft=draft, data=data, revision=0)
    client.force_login(curator)

    response = post_json(client, "builder_next_step", draft, {"revision": 1})

    body = response.json()
    state = body["data"]["steps"][1]["state"]
    assert [e["item"] for e in state["history"]][-2:] == ["item-1", "item-2"]
    # δ·f + w_0 + w_1, f = 1 / log2(6) from the history (the first state's test)
    before = 1 / math.log2(6)
    expected = 0.7 * before + 1 + 1 / math.log2(3)
    assert state["topic_fatigue"]["cooking"] == pytest.approx(expected, abs=1e-3)
    assert state["situation"]["fatigue"] > 0


def test_a_next_step_needs_a_slate(client, curator, world):
    context, _ = world
    draft = demonstrations.draft_open(reviewer=curator, context=context)
    client.force_login(curator)

    response = post_json(client, "builder_next_step", draft, {"revision": 0})

    assert response.status_code == 400
    assert "choose at least one item" in response.json()["error"]


def test_submitting_stores_the_trajectory_once_and_drops_the_draft(client, curator, world):
    context, items = world
    draft = demonstrations.draft_open(reviewer=curator, context=context)
    data = draft.data
    data["steps"][0].update(
        chosen=[items[3].pk], rejected=[{"item": items[4].pk, "reason": "unsafe"}]
    )
    data["expected_outcome"] = "they keep reading"
    demonstrations.draft_save(reviewer=curator, draft=draft, data=data, revision=0)
    client.force_login(curator)
    token = str(uuid.uuid4())

    first = post_json(
        client, "builder_submit", draft, {"client_token": token, "time_spent_ms": 5000}
    )

    assert first.status_code == 200
    demonstration = Demonstration.objects.get()
    assert demonstration.time_spent_ms == 5000
    step = demonstration.steps.get()
    assert step.chosen == [items[3].pk]
    assert set(step.shown) >= {items[3].pk, items[4].pk}
    assert not DemonstrationDraft.objects.exists()
    again = demonstrations.demonstration_submit(
        reviewer=curator, draft=draft, client_token=uuid.UUID(token), now=timezone.now()
    )
    assert again.pk == demonstration.pk


def test_a_slate_that_breaks_a_hard_rule_is_refused_naming_the_step(curator, policy_admin, world):
    context, items = world
    minors_see_nothing_sensitive(context, policy_admin, "minors-nothing-sensitive")
    draft = demonstrations.draft_open(reviewer=curator, context=context)
    data = draft.data
    data["steps"][0]["chosen"] = [items[1].pk]  # sensitivity 1
    demonstrations.draft_save(reviewer=curator, draft=draft, data=data, revision=0)

    with pytest.raises(services.ValidationError) as refused:
        demonstrations.demonstration_submit(
            reviewer=curator, draft=draft, client_token=uuid.uuid4(), now=timezone.now()
        )

    assert "step 1" in str(refused.value)
    assert "minors-nothing-sensitive" in str(refused.value)
    assert not Demonstration.objects.exists()


def test_candidates_show_the_rules_they_break(client, curator, policy_admin, world):
    context, _ = world
    minors_see_nothing_sensitive(context, policy_admin, "minors-cap")
    draft = demonstrations.draft_open(reviewer=curator, context=context)
    client.force_login(curator)

    fragment = client.get(
        reverse("annotation:builder_candidates", args=[draft.pk]), {"max_sensitivity": "1"}
    )

    assert "breaks minors-cap" in fragment.text
    assert fragment.text.count('data-item="') == 8


def test_another_reviewers_draft_is_404(client, curator, safety_reviewer, world):
    context, _ = world
    draft = demonstrations.draft_open(reviewer=curator, context=context)
    client.force_login(safety_reviewer)

    assert client.get(reverse("annotation:builder", args=[draft.pk])).status_code == 404
    assert (
        post_json(client, "builder_save", draft, {"data": draft.data, "revision": 0}).status_code
        == 404
    )
