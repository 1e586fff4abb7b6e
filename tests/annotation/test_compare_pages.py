"""The comparison pages: cards, htmx submissions, the prefetched next card, skips,
heartbeats, guideline gating, the study page, and editing one's own labels."""

import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation import services
from annotation.models import Assignment, AssignmentState, Comparison, LabelRevision, TaskAudience
from governance import services as governance
from governance.models import AuditEvent
from tests.annotation.factories import compare_tasks, ensure_criteria, small_catalog

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def tasks():
    ensure_criteria()
    context, items = small_catalog()
    return compare_tasks(context, items, 5)


def answers(**overrides) -> dict:
    data = {
        "judgment_safety": "tie", "judgment_relevance": "left", "judgment_diversity": "right",
        "judgment_overall": "left", "confidence": "4", "rationale": "", "time_spent_ms": "1200",
        "client_token": str(uuid.uuid4()),
    }  # fmt: skip
    return {**data, **overrides}


def live(user) -> Assignment:
    return Assignment.objects.get(reviewer=user, state=AssignmentState.LEASED)


def test_the_compare_page_leases_a_task_and_shows_both_slates(client, curator, tasks):
    client.force_login(curator)

    page = client.get(reverse("annotation:compare"))

    assert page.status_code == 200
    assignment = live(curator)
    assert f'data-assignment="{assignment.pk}"' in page.text
    assert "Slate A" in page.text
    assert "Slate B" in page.text
    assert "Item 0" in page.text


def test_a_reload_resumes_the_same_lease(client, curator, tasks):
    client.force_login(curator)
    client.get(reverse("annotation:compare"))
    first = live(curator)

    client.get(reverse("annotation:compare"))

    assert Assignment.objects.filter(reviewer=curator).count() == 1
    assert live(curator).pk == first.pk


def test_submitting_stores_canonical_judgments_and_returns_the_next_card(client, curator, tasks):
    client.force_login(curator)
    client.get(reverse("annotation:compare"))
    assignment = live(curator)

    response = client.post(
        reverse("annotation:compare_submit", args=[assignment.pk]), answers(), headers=HTMX
    )

    comparison = Comparison.objects.get(reviewer=curator)
    left, right = assignment.left, "b" if assignment.left == "a" else "a"
    assert comparison.judgments == {
        "safety": "tie", "relevance": left, "diversity": right, "overall": left,
    }  # fmt: skip
    assert comparison.left == assignment.left
    assert comparison.time_spent_ms == 1200
    assert response.status_code == 200
    assert 'id="card"' in response.text
    assert "<html" not in response.text
    assert live(curator).task_id != assignment.task_id


def test_with_a_prefetched_card_the_server_only_stores_and_says_so(client, curator, tasks):
    client.force_login(curator)
    client.get(reverse("annotation:compare"))
    current = live(curator)
    prefetched = client.get(
        reverse("annotation:compare_prefetch"), {"current": current.task_id}, headers=HTMX
    )
    assert prefetched.status_code == 200
    assert Assignment.objects.filter(reviewer=curator, state=AssignmentState.LEASED).count() == 2

    response = client.post(
        reverse("annotation:compare_submit", args=[current.pk]), answers(),
        headers={**HTMX, "X-Prefetched": "1"},
    )  # fmt: skip

    assert response.status_code == 204
    assert response["HX-Trigger"] == "labelSaved"
    assert Comparison.objects.filter(reviewer=curator).count() == 1


def test_missing_answers_re_render_the_card_with_errors_and_store_nothing(client, curator, tasks):
    client.force_login(curator)
    client.get(reverse("annotation:compare"))
    assignment = live(curator)
    incomplete = answers()
    del incomplete["judgment_overall"]

    response = client.post(
        reverse("annotation:compare_submit", args=[assignment.pk]), incomplete, headers=HTMX
    )

    assert response.status_code == 200
    assert "choose for Overall" in response.text
    assert not Comparison.objects.exists()
    assert live(curator).pk == assignment.pk


def test_a_safety_preference_needs_a_rationale(client, curator, tasks):
    client.force_login(curator)
    client.get(reverse("annotation:compare"))
    assignment = live(curator)

    response = client.post(
        reverse("annotation:compare_submit", args=[assignment.pk]),
        answers(judgment_safety="left"), headers=HTMX,
    )  # fmt: skip

    assert "explain a safety judgment" in response.text
    assert not Comparison.objects.exists()


def test_the_same_submission_twice_stores_one_label(client, curator, tasks):
    client.force_login(curator)
    client.get(reverse("annotation:compare"))
    assignment = live(curator)
    data = answers()

    client.post(reverse("annotation:compare_submit", args=[assignment.pk]), data, headers=HTMX)
    client.post(reverse("annotation:compare_submit", args=[assignment.pk]), data, headers=HTMX)

    assert Comparison.objects.filter(reviewer=curator).count() == 1


def test_another_reviewers_lease_is_404(client, curator, safety_reviewer, tasks):
    theirs = services.task_lease_next(reviewer=safety_reviewer, now=timezone.now())
    client.force_login(curator)

    assert (
        client.post(reverse("annotation:compare_submit", args=[theirs.pk]), answers()).status_code
        == 404
    )
    assert client.post(reverse("annotation:assignment_skip", args=[theirs.pk])).status_code == 404
    assert (
        client.post(reverse("annotation:assignment_heartbeat", args=[theirs.pk])).status_code == 404
    )


def test_skipping_frees_the_slot_and_shows_the_next_card(client, curator, tasks):
    client.force_login(curator)
    client.get(reverse("annotation:compare"))
    skipped = live(curator)

    response = client.post(
        reverse("annotation:assignment_skip", args=[skipped.pk]),
        {"reason": "not my area"},
        headers=HTMX,
    )

    skipped.refresh_from_db()
    assert skipped.state == AssignmentState.RELEASED
    assert skipped.skip_reason == "not my area"
    assert skipped.task.leased_count == 0
    assert 'id="card"' in response.text
    assert live(curator).task_id != skipped.task_id


def test_a_heartbeat_keeps_the_lease_and_an_expired_one_is_taken_back(client, curator, tasks):
    client.force_login(curator)
    client.get(reverse("annotation:compare"))
    assignment = live(curator)

    assert (
        client.post(reverse("annotation:assignment_heartbeat", args=[assignment.pk])).status_code
        == 204
    )
    services.leases_reclaim_expired(now=timezone.now() + timezone.timedelta(hours=1))
    assert (
        client.post(reverse("annotation:assignment_heartbeat", args=[assignment.pk])).status_code
        == 204
    )
    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.LEASED


def test_new_guideline_versions_come_before_the_next_task(client, curator, policy_admin, tasks):
    guideline = governance.guideline_create(
        actor=policy_admin, slug="compare", title="C", task_kind="compare"
    )
    draft = governance.guideline_version_create_draft(
        actor=policy_admin, guideline=guideline, body="# Compare well", changelog="first"
    )
    version = governance.guideline_version_publish(actor=policy_admin, version=draft)
    client.force_login(curator)

    gated = client.get(reverse("annotation:compare"))
    governance.guideline_acknowledge(user=curator, version=version)
    allowed = client.get(reverse("annotation:compare"))

    assert gated.status_code == 302
    assert gated["Location"].startswith(reverse("governance:guidelines_pending"))
    assert allowed.status_code == 200
    assignment = live(curator)
    client.post(reverse("annotation:compare_submit", args=[assignment.pk]), answers())
    assert Comparison.objects.get(reviewer=curator).guideline_version == version


def test_the_study_page_shows_plain_words_and_no_internal_figures(client, study_participant, tasks):
    for task in tasks:
        task.audience = TaskAudience.STUDY_PARTICIPANT
        task.save()
    client.force_login(study_participant)

    page = client.get(reverse("annotation:study"))

    assert page.status_code == 200
    assert "List A" in page.text
    for internal in ("Slate A", "sources ·", "penalty", "sensitivity", "breaks", "veto", "Segment"):
        assert internal not in page.text, internal
    assert "Is anything here unsafe or upsetting for this person?" in page.text
    assignment = live(study_participant)
    client.post(reverse("annotation:compare_submit", args=[assignment.pk]), answers())
    assert Comparison.objects.get(reviewer=study_participant).channel == "user_study"


def test_a_study_participant_is_sent_from_home_to_the_study(client, study_participant):
    client.force_login(study_participant)

    assert client.get(reverse("annotation:home"))["Location"] == reverse("annotation:study")


def test_home_shows_counts_progress_and_recent_labels(client, curator, tasks):
    client.force_login(curator)
    client.get(reverse("annotation:compare"))
    client.post(reverse("annotation:compare_submit", args=[live(curator).pk]), answers())

    page = client.get(reverse("annotation:home"))

    assert "1 / 100" in page.text
    assert "comparisons waiting" in page.text
    assert reverse("annotation:comparison_edit", args=[Comparison.objects.get().pk]) in page.text


def test_editing_my_label_keeps_the_old_version_and_is_audited(client, curator, tasks):
    client.force_login(curator)
    client.get(reverse("annotation:compare"))
    client.post(reverse("annotation:compare_submit", args=[live(curator).pk]), answers())
    comparison = Comparison.objects.get()
    edit = reverse("annotation:comparison_edit", args=[comparison.pk])

    response = client.post(edit, {
        "judgment_safety": "tie", "judgment_relevance": "tie", "judgment_diversity": "tie",
        "judgment_overall": "tie", "confidence": "2", "rationale": "second thoughts",
    })  # fmt: skip

    assert response.status_code == 302
    comparison.refresh_from_db()
    assert comparison.confidence == 2
    assert LabelRevision.objects.get(comparison=comparison).before["confidence"] == 4
    assert AuditEvent.objects.filter(action="comparison.edit").count() == 1


def test_nobody_edits_anothers_label_or_a_locked_one(
    client, curator, safety_reviewer, policy_admin, tasks
):
    client.force_login(curator)
    client.get(reverse("annotation:compare"))
    client.post(reverse("annotation:compare_submit", args=[live(curator).pk]), answers())
    comparison = Comparison.objects.get()
    edit = reverse("annotation:comparison_edit", args=[comparison.pk])

    client.force_login(safety_reviewer)
    assert client.get(edit).status_code == 404

    services.labels_lock(actor=policy_admin, comparisons=[comparison.pk])
    client.force_login(curator)
    locked = client.post(edit, {
        "judgment_safety": "tie", "judgment_relevance": "tie", "judgment_diversity": "tie",
        "judgment_overall": "tie", "confidence": "2", "rationale": "",
    })  # fmt: skip
    assert "locked" in locked.text
    assert AuditEvent.objects.filter(action="comparison.lock").count() == 1


def test_an_empty_card_waits_then_reloads_onto_a_task_leased_for_it(client, curator):
    ensure_criteria()
    client.force_login(curator)
    empty = client.get(reverse("annotation:compare"))
    waiting = reverse("annotation:compare_waiting")
    assert "Nothing to compare right now" in empty.text
    assert f'hx-get="{waiting}"' in empty.text

    nothing = client.get(waiting, headers=HTMX)
    assert nothing.status_code == 204
    assert "HX-Refresh" not in nothing

    context, items = small_catalog()
    compare_tasks(context, items, 1)
    ready = client.get(waiting, headers=HTMX)
    assert ready.status_code == 200
    assert ready["HX-Refresh"] == "true"
    leased = live(curator)
    reloaded = client.get(reverse("annotation:compare"))
    assert f'data-assignment="{leased.pk}"' in reloaded.text  # the reload resumes it


def test_a_waiting_card_reloads_for_new_guidelines_without_leasing(
    client, curator, policy_admin, tasks
):
    guideline = governance.guideline_create(
        actor=policy_admin, slug="compare", title="C", task_kind="compare"
    )
    draft = governance.guideline_version_create_draft(
        actor=policy_admin, guideline=guideline, body="# Compare well", changelog="first"
    )
    governance.guideline_version_publish(actor=policy_admin, version=draft)
    client.force_login(curator)

    ready = client.get(reverse("annotation:compare_waiting"), headers=HTMX)

    assert ready["HX-Refresh"] == "true"
    assert not Assignment.objects.filter(reviewer=curator).exists()


def test_the_study_page_waits_too(client, study_participant):
    ensure_criteria()
    client.force_login(study_participant)
    page = client.get(reverse("annotation:study"))
    assert "There is nothing more to answer right now" in page.text
    assert f'hx-get="{reverse("annotation:compare_waiting")}"' in page.text
