"""Quality pages: what each shows, and the admins' actions they carry out."""

import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation import services
from annotation.models import (
    GoldAnswer,
    QueueSettings,
    QueueTask,
    ReviewerProfile,
    TaskKind,
    TaskResolution,
)
from governance.models import AuditEvent
from governance.roles import Role
from tests.annotation.factories import ALL_TIE, compare_tasks, ensure_criteria, small_catalog
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def disputed():
    """A task three reviewers disagreed on, and its adjudication task."""
    ensure_criteria()
    context, items = small_catalog()
    task = compare_tasks(context, items, 1, overlap_target=3)[0]
    for n, choice in enumerate(["a", "b", "tie"]):
        person = make_user(f"l{n}", Role.CURATOR)
        lease = services.task_lease_next(reviewer=person, now=timezone.now())
        services.comparison_submit(
            reviewer=person, assignment=lease, client_token=uuid.uuid4(), now=timezone.now(),
            data=services.ComparisonInput(judgments={**ALL_TIE, "overall": choice}, confidence=2),
        )  # fmt: skip
    return task


def test_the_overview_and_criterion_pages_show_agreement(client, curator, disputed):
    client.force_login(curator)

    overview = client.get(reverse("quality:overview"))
    criterion = client.get(reverse("quality:criterion", args=["overall"]))

    assert "Krippendorff" in overview.text
    assert "l0 × l1" in criterion.text or "l0 × l2" in criterion.text


def test_a_senior_reviewer_adjudicates_through_the_page(client, disputed):
    senior = make_user("senior", Role.CURATOR)
    ReviewerProfile.objects.create(user=senior, skills=["senior"])
    client.force_login(senior)

    page = client.get(reverse("quality:adjudicate"))
    assert "Reviewer 3" in page.text
    decision = {f"judgment_{slug}": value for slug, value in {**ALL_TIE, "overall": "a"}.items()}
    missing_reason = client.post(reverse("quality:adjudicate"), decision)
    assert "say why" in missing_reason.text
    done = client.post(reverse("quality:adjudicate"), {**decision, "rationale": "A fits"})

    assert done.status_code == 302
    assert TaskResolution.objects.get(task=disputed).judgments["overall"] == "a"


def test_an_admin_marks_a_task_as_gold(client, policy_admin, disputed):
    client.force_login(policy_admin)
    decision = {f"judgment_{slug}": value for slug, value in ALL_TIE.items()}

    client.post(reverse("quality:task", args=[disputed.pk]), decision)

    gold = QueueTask.objects.get(kind=TaskKind.GOLD)
    assert GoldAnswer.objects.get(task=gold).judgments == ALL_TIE


def test_settings_and_skills_are_changed_and_audited(client, policy_admin, curator):
    client.force_login(policy_admin)
    form = {
        "overlap_compare": 2, "overlap_demonstrate": 1, "gold_rate": 0.1,
        "gold_min_accuracy": 0.6, "gold_min_answers": 5, "adjudicate_below": 0.5,
        "aging_points_per_hour": 50,
    }  # fmt: skip

    client.post(reverse("quality:settings"), form)
    client.post(reverse("quality:skills", args=[curator.pk]), {"skills": "senior, topic:gambling"})

    assert QueueSettings.objects.get().gold_rate == 0.1
    assert ReviewerProfile.objects.get(user=curator).skills == ["senior", "topic:gambling"]
    assert (
        AuditEvent.objects.filter(action__in=["queue_settings.update", "user.skills"]).count() == 2
    )


def test_a_reviewer_sees_their_own_statistics_but_not_anothers(client, curator, safety_reviewer):
    client.force_login(curator)

    assert client.get(reverse("quality:reviewer", args=[curator.pk])).status_code == 200
    assert client.get(reverse("quality:reviewer", args=[safety_reviewer.pk])).status_code == 404


def test_the_team_table_lists_every_labeler(client, policy_admin, disputed):
    client.force_login(policy_admin)

    page = client.get(reverse("quality:team"))

    for name in ("l0", "l1", "l2"):
        assert name in page.text
