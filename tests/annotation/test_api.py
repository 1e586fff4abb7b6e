"""The labeling API: take, keep and skip tasks; submit comparisons (idempotently, within
the task's overlap) and demonstrations; read labels back blind; one error body."""

import uuid
from datetime import datetime, timedelta

import pytest
from django.db import IntegrityError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation import apis, quality, services
from annotation.models import (
    Assignment,
    AssignmentState,
    Comparison,
    Demonstration,
    QueueTask,
    TaskKind,
    TaskReason,
    TaskStatus,
)
from catalog.models import UserContext
from catalog.selectors import _EXTERNAL_IDS as item_external_ids_cache
from governance import services as governance
from governance.models import GuidelineVersion
from governance.roles import Role
from tests.annotation.factories import ALL_TIE, compare_tasks, ensure_criteria, small_catalog
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

NEXT = "/api/v1/assignments/next/"


def api(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(client: Client, path: str, body: dict | None = None):
    return client.post(path, body or {}, content_type="application/json")


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    return body["error"]


def comparison_body(**overrides) -> dict:
    return {"judgments": ALL_TIE, "confidence": 4, "client_token": str(uuid.uuid4()), **overrides}


def submit(client: Client, assignment_id: int, **overrides):
    return post(
        client, f"/api/v1/assignments/{assignment_id}/comparison/", comparison_body(**overrides)
    )


def labeled(user, task: QueueTask) -> Comparison:
    """A comparison stored through the services, as another client would."""
    assignment = services.task_lease_next(reviewer=user, now=timezone.now())
    assert assignment.task_id == task.pk
    return services.comparison_submit(
        reviewer=user, assignment=assignment, client_token=uuid.uuid4(), now=timezone.now(),
        data=services.ComparisonInput(judgments=ALL_TIE, confidence=3),
    )  # fmt: skip


@pytest.fixture
def catalog():
    ensure_criteria()
    return small_catalog()


@pytest.fixture
def minor_context(catalog) -> UserContext:
    return UserContext.objects.create(
        external_id="ctx-minor", user_ref="u-2", segment="teen", audience="minor",
        history=[{"item": "item-0", "event": "click"}],
    )  # fmt: skip


def demonstrate_task(context: UserContext, **fields) -> QueueTask:
    return QueueTask.objects.create(
        kind=TaskKind.DEMONSTRATE, reason=TaskReason.MANUAL, context=context, **fields
    )


def publish_guideline(admin, slug: str = "general") -> GuidelineVersion:
    guideline = governance.guideline_create(actor=admin, slug=slug, title=slug.capitalize())
    draft = governance.guideline_version_create_draft(
        actor=admin, guideline=guideline, body="# Be kind", changelog="v1"
    )
    return governance.guideline_version_publish(actor=admin, version=draft)


def publish_minors_policy(admin) -> None:
    """The policy in force (settings.SHEPHERD_CONTENT_POLICY): nothing sensitive for minors."""
    policy = governance.policy_create(actor=admin, slug="platform", name="Platform")
    draft = governance.policy_version_create_draft(
        actor=admin, policy=policy, changelog="x",
        rules=[{"id": "minors", "kind": "max_sensitivity", "audience": "minor", "level": 0}],
    )  # fmt: skip
    governance.policy_version_publish(actor=admin, version=draft)


# --- taking tasks --------------------------------------------------------------------------


def test_a_task_is_taken_kept_alive_and_labeled(curator, catalog):
    context, items = catalog
    (task,) = compare_tasks(context, items, 1)
    client = api(curator)

    taken = post(client, NEXT)
    assignment = taken.json()
    beat = post(client, f"/api/v1/assignments/{assignment['id']}/heartbeat/")
    stored = submit(client, assignment["id"], reason_tags=["too-samey"])

    assert taken.status_code == 201
    assert assignment["state"] == "leased"
    assert assignment["left"] in ("a", "b")
    assert assignment["task"]["id"] == task.pk
    assert assignment["task"]["slate_a"] == ["item-0", "item-1", "item-2"]
    assert assignment["task"]["slate_b"] == ["item-3", "item-4", "item-5"]
    assert assignment["task"]["criteria"] == ["safety", "relevance", "diversity", "overall"]
    assert assignment["task"]["context"]["external_id"] == "ctx-1"
    assert assignment["task"]["context"]["history"] == [{"item": "item-0", "event": "click"}]
    assert beat.status_code == 200
    assert beat.json()["state"] == "leased"
    assert when(beat.json()["expires_at"]) >= when(assignment["expires_at"])
    assert stored.status_code == 201
    comparison = stored.json()
    assert comparison["task"] == task.pk
    assert comparison["reviewer"] == "curator"
    assert comparison["context"] == "ctx-1"
    assert comparison["channel"] == "curation"
    assert comparison["left"] == assignment["left"]
    assert comparison["slate_b"] == ["item-3", "item-4", "item-5"]
    assert comparison["judgments"] == ALL_TIE
    assert comparison["reason_tags"] == ["too-samey"]
    task.refresh_from_db()
    assert (task.status, task.labels_count, task.leased_count) == (TaskStatus.DONE, 1, 0)


@pytest.mark.parametrize("kind", [TaskKind.COMPARE, TaskKind.GOLD, TaskKind.DEMONSTRATE])
def test_the_fast_output_of_a_lease_is_the_serializers_output(curator, policy_admin, catalog, kind):
    context, items = catalog
    publish_guideline(policy_admin)
    quality.queue_settings_update(actor=policy_admin, gold_rate=1.0)  # gold is always tried
    (task,) = compare_tasks(context, items, 1, kind=kind)
    assignment = services.task_lease_next(reviewer=curator, now=timezone.now())
    external_ids = {item.pk: item.external_id for item in items}

    fast = apis.AssignmentOut.as_dict(assignment, external_ids)
    slow = apis.AssignmentOut(assignment, context={"external_ids": external_ids}).data

    assert fast == slow
    assert fast["task"]["kind"] == (
        TaskKind.DEMONSTRATE if kind == TaskKind.DEMONSTRATE else "compare"
    )


@pytest.mark.parametrize("versions", [False, True])
def test_the_fast_output_of_a_comparison_is_the_serializers_output(
    curator, policy_admin, catalog, versions
):
    context, items = catalog
    if versions:
        publish_guideline(policy_admin)
        publish_minors_policy(policy_admin)
    (task,) = compare_tasks(context, items, 1)
    comparison = labeled(curator, task)
    external_ids = {item.pk: item.external_id for item in items[:5]}  # one item left the catalog

    fast = apis.ComparisonOut.as_dict(comparison, external_ids)
    slow = apis.ComparisonOut(comparison, context={"external_ids": external_ids}).data

    assert fast == slow
    assert fast["slate_b"][-1] is None
    assert (fast["guideline_version"] is not None) == versions


def test_nothing_to_do_is_204(curator, catalog):
    response = post(api(curator), NEXT)

    assert response.status_code == 204
    assert not response.content


def test_a_live_lease_is_resumed_not_doubled(curator, catalog):
    context, items = catalog
    compare_tasks(context, items, 2)
    demonstrate_task(context)
    client = api(curator)

    first = post(client, NEXT, {"kinds": ["compare"]})
    again = post(client, NEXT, {"kinds": ["compare"]})
    other_kind = post(client, NEXT, {"kinds": ["demonstrate"]})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert other_kind.status_code == 201
    assert other_kind.json()["task"]["kind"] == "demonstrate"
    assert other_kind.json()["task"]["criteria"] == []
    assert Assignment.objects.filter(reviewer=curator, state=AssignmentState.LEASED).count() == 2


def test_unknown_kinds_are_400(curator, catalog):
    response = post(api(curator), NEXT, {"kinds": ["poetry"]})

    assert response.status_code == 400
    assert "kinds.0" in error_of(response)["fields"]


def test_pending_guidelines_are_read_before_the_next_task(curator, policy_admin, catalog):
    context, items = catalog
    compare_tasks(context, items, 1)
    publish_guideline(policy_admin)
    client = api(curator)

    refused = post(client, NEXT)
    acknowledged = post(client, "/api/v1/guidelines/general/versions/1/acknowledge/")
    retried = post(client, NEXT)

    assert refused.status_code == 409
    error = error_of(refused)
    assert error["code"] == "guidelines_pending"
    assert "general:1" in error["message"]
    assert acknowledged.status_code == 200
    assert retried.status_code == 201


def _drain(client: Client) -> list[str]:
    """Every task audience the queue offers this client, skipping each task it gets."""
    audiences = []
    while (taken := post(client, NEXT)).status_code == 201:
        audiences.append(taken.json()["task"]["audience"])
        post(client, f"/api/v1/assignments/{taken.json()['id']}/skip/", {"reason": "survey"})
    assert taken.status_code == 204
    return audiences


def test_each_role_gets_only_the_tasks_of_its_audiences(
    curator, safety_reviewer, study_participant, catalog
):
    context, items = catalog
    compare_tasks(context, items, 1, audience="safety_reviewer", priority=3)
    compare_tasks(context, items, 1, audience="study_participant", priority=2)
    compare_tasks(context, items, 1, audience="labeler", priority=1)

    assert _drain(api(study_participant)) == ["study_participant"]
    assert _drain(api(curator)) == ["labeler"]
    assert _drain(api(safety_reviewer)) == ["safety_reviewer", "labeler"]


def test_a_role_that_takes_no_tasks_is_403(policy_admin, outsider, catalog):
    assert post(api(policy_admin), NEXT).status_code == 403
    assert error_of(post(api(outsider), NEXT))["code"] == "permission_denied"


# --- submitting comparisons ----------------------------------------------------------------


def test_a_retried_submission_is_stored_once(curator, catalog):
    context, items = catalog
    compare_tasks(context, items, 1)
    client = api(curator)
    assignment = post(client, NEXT).json()
    body = comparison_body()
    path = f"/api/v1/assignments/{assignment['id']}/comparison/"

    first = post(client, path, body)
    retry = post(client, path, body)

    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == first.json()
    assert Comparison.objects.count() == 1


def test_a_retry_racing_its_original_is_answered_with_the_original(curator, catalog, monkeypatch):
    """The retry passed the service's token check before the original committed, so the
    service refuses it as a second label of the task: the API answers the original."""
    context, items = catalog
    compare_tasks(context, items, 1)
    client = api(curator)
    assignment = post(client, NEXT).json()
    body = comparison_body()
    real_submit = services.comparison_submit

    def original_commits_first(**kwargs):
        real_submit(**kwargs)
        raise services.LabelRefused("you have already labeled this task")

    monkeypatch.setattr(services, "comparison_submit", original_commits_first)
    raced = post(client, f"/api/v1/assignments/{assignment['id']}/comparison/", body)

    assert raced.status_code == 200
    assert raced.json()["client_token"] == body["client_token"]
    assert Comparison.objects.count() == 1


def test_a_second_label_of_the_same_task_is_refused(curator, catalog):
    context, items = catalog
    compare_tasks(context, items, 1, overlap_target=2)
    client = api(curator)
    assignment = post(client, NEXT).json()
    submit(client, assignment["id"])

    again = submit(client, assignment["id"])

    assert again.status_code == 409
    error = error_of(again)
    assert error["code"] == "label_refused"
    assert "already labeled" in error["message"]
    assert Comparison.objects.count() == 1


def test_a_label_after_the_lease_expired_is_stored_while_a_slot_is_free(curator, catalog):
    context, items = catalog
    (task,) = compare_tasks(context, items, 1)
    client = api(curator)
    assignment = post(client, NEXT).json()
    services.leases_reclaim_expired(now=timezone.now() + timedelta(hours=1))

    stored = submit(client, assignment["id"])

    assert stored.status_code == 201
    task.refresh_from_db()
    assert (task.status, task.labels_count, task.leased_count) == (TaskStatus.DONE, 1, 0)


def test_a_label_after_the_lease_expired_is_refused_once_others_filled_the_task(curator, catalog):
    context, items = catalog
    (task,) = compare_tasks(context, items, 1, overlap_target=2)
    client = api(curator)
    assignment = post(client, NEXT).json()
    services.leases_reclaim_expired(now=timezone.now() + timedelta(hours=1))
    for n in range(2):
        labeled(make_user(f"other-{n}", Role.CURATOR), task)

    late = submit(client, assignment["id"])

    assert late.status_code == 409
    assert error_of(late)["code"] == "label_refused"
    assert not Comparison.objects.filter(reviewer=curator).exists()
    task.refresh_from_db()
    assert task.labels_count == 2


def test_judgments_the_service_refuses_are_400_by_field(curator, catalog):
    context, items = catalog
    compare_tasks(context, items, 1)
    client = api(curator)
    assignment = post(client, NEXT).json()

    missing = submit(client, assignment["id"], judgments={"safety": "tie"})
    unexplained = submit(client, assignment["id"], judgments={**ALL_TIE, "safety": "a"})
    out_of_range = submit(client, assignment["id"], confidence=9, client_token="nope")

    assert missing.status_code == 400
    assert "relevance" in error_of(missing)["fields"]["judgments"][0]
    assert set(error_of(unexplained)["fields"]) == {"rationale"}
    assert set(error_of(out_of_range)["fields"]) == {"confidence", "client_token"}
    assert not Comparison.objects.exists()


def test_only_a_compare_task_takes_a_comparison(curator, catalog):
    context, _ = catalog
    demonstrate_task(context)
    client = api(curator)
    assignment = post(client, NEXT).json()

    response = submit(client, assignment["id"])

    assert response.status_code == 400
    assert "takes no comparison" in error_of(response)["message"]


# --- skipping, and other people's leases -----------------------------------------------------


def test_a_skip_frees_the_slot_for_someone_else_but_not_for_the_skipper(
    curator, safety_reviewer, catalog
):
    context, items = catalog
    (task,) = compare_tasks(context, items, 1)
    client = api(curator)
    assignment = post(client, NEXT).json()

    no_reason = post(client, f"/api/v1/assignments/{assignment['id']}/skip/")
    skipped = post(client, f"/api/v1/assignments/{assignment['id']}/skip/", {"reason": "unsure"})

    assert no_reason.status_code == 400
    assert set(error_of(no_reason)["fields"]) == {"reason"}
    assert skipped.status_code == 200
    assert skipped.json()["state"] == "released"
    assert Assignment.objects.get(pk=assignment["id"]).skip_reason == "unsure"
    assert post(client, NEXT).status_code == 204
    other = post(api(safety_reviewer), NEXT)
    assert other.status_code == 201
    assert other.json()["task"]["id"] == task.pk


def test_another_reviewers_lease_is_404_everywhere(curator, safety_reviewer, catalog):
    context, items = catalog
    compare_tasks(context, items, 1)
    assignment = post(api(safety_reviewer), NEXT).json()
    client = api(curator)
    base = f"/api/v1/assignments/{assignment['id']}"

    answers = [
        post(client, f"{base}/heartbeat/"),
        post(client, f"{base}/skip/", {"reason": "x"}),
        post(client, f"{base}/comparison/", comparison_body()),
    ]

    assert [r.status_code for r in answers] == [404, 404, 404]
    assert {error_of(r)["code"] for r in answers} == {"not_found"}
    assert Assignment.objects.get(pk=assignment["id"]).state == AssignmentState.LEASED
    assert not Comparison.objects.exists()


# --- reading comparisons ---------------------------------------------------------------------


def test_labels_are_blind_but_policy_admins_read_them_all(
    curator, safety_reviewer, study_participant, policy_admin, catalog
):
    context, items = catalog
    mine_task, theirs_task = compare_tasks(context, items, 2)
    mine = labeled(curator, mine_task)
    theirs = labeled(safety_reviewer, theirs_task)

    listed = api(curator).get("/api/v1/comparisons/").json()
    hidden = api(curator).get(f"/api/v1/comparisons/{theirs.pk}/")
    everything = api(policy_admin).get("/api/v1/comparisons/").json()
    read_by_admin = api(policy_admin).get(f"/api/v1/comparisons/{theirs.pk}/")

    assert [c["id"] for c in listed["results"]] == [mine.pk]
    assert hidden.status_code == 404
    assert error_of(hidden)["code"] == "not_found"
    assert {c["id"] for c in everything["results"]} == {mine.pk, theirs.pk}
    assert read_by_admin.json()["reviewer"] == "safety"
    assert api(study_participant).get("/api/v1/comparisons/").json()["count"] == 0


def test_comparisons_filter_by_task_channel_context_time_guideline_and_reviewer(
    curator, safety_reviewer, policy_admin, catalog, minor_context
):
    context, items = catalog
    (plain,) = compare_tasks(context, items, 1)
    (safety,) = compare_tasks(context, items, 1, audience="safety_reviewer")
    (minor,) = compare_tasks(minor_context, items, 1)
    old = labeled(curator, plain)
    flagged = labeled(safety_reviewer, safety)
    version = publish_guideline(policy_admin)
    young = labeled(curator, minor)
    Comparison.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    client = api(policy_admin)

    def ids(**params) -> set[int]:
        response = client.get("/api/v1/comparisons/", params)
        assert response.status_code == 200, response.content
        return {c["id"] for c in response.json()["results"]}

    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(task=plain.pk) == {old.pk}
    assert ids(channel="safety_review") == {flagged.pk}
    assert ids(context="ctx-minor") == {young.pk}
    assert ids(since=yesterday) == {flagged.pk, young.pk}
    assert ids(until=yesterday) == {old.pk}
    assert ids(guideline_version=version.pk) == {young.pk}
    assert ids(reviewer="curator") == {old.pk, young.pk}
    assert api(curator).get("/api/v1/comparisons/", {"reviewer": "safety"}).json()["count"] == 0
    bad = client.get("/api/v1/comparisons/", {"since": "yesterday", "channel": "tv"})
    assert bad.status_code == 400
    assert set(error_of(bad)["fields"]) == {"since", "channel"}


def test_comparison_pages_cost_the_same_queries_whatever_their_length(
    curator, safety_reviewer, policy_admin, catalog
):
    context, items = catalog
    tasks = compare_tasks(context, items, 6)
    publish_guideline(policy_admin)
    reviewers = [curator, safety_reviewer]
    for n, task in enumerate(tasks[:2]):
        labeled(reviewers[n], task)
    client = api(policy_admin)

    def queries() -> int:
        item_external_ids_cache.clear()  # count the lookup a cold process makes
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/comparisons/").status_code == 200
        return len(captured)

    few = queries()
    for n, task in enumerate(tasks[2:]):
        labeled(reviewers[n % 2], task)
    assert queries() == few


# --- demonstrations --------------------------------------------------------------------------


def demonstration_body(**overrides) -> dict:
    return {
        "steps": [
            {"chosen": ["item-0", "item-2"], "rationale": "start with what they like",
             "rejected": [{"item": "item-1", "reason": "irrelevant"}], "shown": ["item-3"]},
            {"chosen": ["item-4"]},
        ],
        "expected_outcome": "they keep reading",
        "tags": ["gentle"],
        "client_token": str(uuid.uuid4()),
        **overrides,
    }  # fmt: skip


def test_a_demonstration_of_a_task_is_submitted_whole_and_once(curator, catalog):
    context, _ = catalog
    task = demonstrate_task(context)
    client = api(curator)
    assignment = post(client, NEXT, {"kinds": ["demonstrate"]}).json()
    body = demonstration_body(assignment=assignment["id"])

    created = post(client, "/api/v1/demonstrations/", body)
    retried = post(client, "/api/v1/demonstrations/", body)

    assert created.status_code == 201, created.content
    demonstration = created.json()
    first, second = demonstration["steps"]
    assert demonstration["task"] == task.pk
    assert demonstration["context"] == "ctx-1"
    assert demonstration["tags"] == ["gentle"]
    assert first["index"] == 0
    assert first["state"]["history"] == [{"item": "item-0", "event": "click"}]
    assert first["chosen"] == ["item-0", "item-2"]
    assert first["rejected"] == [{"item": "item-1", "reason": "irrelevant"}]
    assert sorted(first["shown"]) == ["item-0", "item-1", "item-2", "item-3"]
    # The second step starts where the first step's slate left the user.
    assert second["state"]["history"] == [
        {"item": "item-0", "event": "click"},
        {"item": "item-0", "event": "view"},
        {"item": "item-2", "event": "view"},
    ]
    assert second["chosen"] == ["item-4"]
    assert retried.status_code == 200
    assert retried.json() == demonstration
    assert Demonstration.objects.count() == 1
    task.refresh_from_db()
    assert (task.status, task.labels_count, task.leased_count) == (TaskStatus.DONE, 1, 0)


def test_a_demonstration_from_the_catalog_breaking_a_hard_rule_is_refused_by_step(
    curator, policy_admin, minor_context
):
    publish_minors_policy(policy_admin)
    client = api(curator)
    # item-1 has sensitivity 1: above what the policy allows minors.
    breaking = demonstration_body(
        context="ctx-minor", steps=[{"chosen": ["item-0"]}, {"chosen": ["item-2", "item-1"]}]
    )
    fine = demonstration_body(context="ctx-minor", steps=[{"chosen": ["item-0", "item-2"]}])

    refused = post(client, "/api/v1/demonstrations/", breaking)
    stored = post(client, "/api/v1/demonstrations/", fine)

    assert refused.status_code == 400
    error = error_of(refused)
    assert error["code"] == "invalid"
    assert error["fields"]["steps"][0].startswith("step 2: max_sensitivity 'minors'")
    assert stored.status_code == 201
    assert stored.json()["task"] is None
    assert stored.json()["channel"] == "curation"
    assert stored.json()["policy_version"]["policy"] == "platform"
    assert Demonstration.objects.count() == 1


def test_demonstration_requests_name_what_is_wrong(curator, safety_reviewer, catalog):
    context, items = catalog
    compare_tasks(context, items, 1)
    compare_lease = post(api(curator), NEXT).json()
    demonstrate_task(context)
    their_lease = post(api(safety_reviewer), NEXT, {"kinds": ["demonstrate"]}).json()
    client = api(curator)

    def fields(**overrides) -> dict:
        response = post(client, "/api/v1/demonstrations/", demonstration_body(**overrides))
        assert response.status_code == 400, response.content
        return error_of(response)["fields"]

    assert "non_field_errors" in fields()  # neither an assignment nor a context
    assert "non_field_errors" in fields(assignment=compare_lease["id"], context="ctx-1")
    assert "not of a demonstrate task" in fields(assignment=compare_lease["id"])["assignment"][0]
    assert fields(assignment=their_lease["id"]) == {"assignment": ["you hold no such lease"]}
    assert fields(context="ctx-404") == {"context": ["unknown context 'ctx-404'"]}
    unknown = fields(context="ctx-1", steps=[{"chosen": ["item-0"]}, {"chosen": ["item-99"]}])
    assert unknown == {"steps": ["step 2: unknown items item-99"]}
    assert set(fields(context="ctx-1", steps=[{"chosen": []}])) == {"steps.0.chosen"}
    bad_reason = [{"chosen": ["item-0"], "rejected": [{"item": "item-1", "reason": "meh"}]}]
    assert set(fields(context="ctx-1", steps=bad_reason)) == {"steps.0.rejected.0.reason"}
    twice = fields(context="ctx-1", steps=[{"chosen": ["item-0", "item-0"]}])
    assert twice == {"steps": ["step 1: the slate shows an item twice"]}
    assert not Demonstration.objects.exists()


def test_a_demonstration_retry_racing_its_original_is_answered_with_the_original(
    curator, catalog, monkeypatch
):
    """From the catalog no lease serializes the two: the retry trips the unique token."""
    real_submit = apis.demonstration_submit_steps

    def original_commits_first(**kwargs):
        real_submit(**kwargs)
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(apis, "demonstration_submit_steps", original_commits_first)
    raced = post(api(curator), "/api/v1/demonstrations/", demonstration_body(context="ctx-1"))

    assert raced.status_code == 200
    assert Demonstration.objects.count() == 1


def test_study_participants_do_not_demonstrate(study_participant, catalog):
    response = post(api(study_participant), "/api/v1/demonstrations/", demonstration_body())

    assert response.status_code == 403


def test_demonstrations_are_read_blind_with_their_steps(
    curator, safety_reviewer, policy_admin, catalog
):
    made = {}
    for user in (curator, safety_reviewer):
        response = post(api(user), "/api/v1/demonstrations/", demonstration_body(context="ctx-1"))
        made[user.username] = response.json()["id"]

    listed = api(curator).get("/api/v1/demonstrations/").json()
    hidden = api(curator).get(f"/api/v1/demonstrations/{made['safety']}/")
    read_by_admin = api(policy_admin).get(f"/api/v1/demonstrations/{made['safety']}/")

    assert [d["id"] for d in listed["results"]] == [made["curator"]]
    assert listed["results"][0]["steps"][1]["chosen"] == ["item-4"]
    assert hidden.status_code == 404
    assert read_by_admin.status_code == 200
    assert read_by_admin.json()["reviewer"] == "safety"
    assert api(policy_admin).get("/api/v1/demonstrations/").json()["count"] == 2
    assert api(policy_admin).get(
        "/api/v1/demonstrations/", {"reviewer": "curator"}
    ).json()["count"] == 1  # fmt: skip


def test_demonstration_pages_cost_the_same_queries_whatever_their_length(
    curator, policy_admin, catalog
):
    client = api(policy_admin)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/demonstrations/").status_code == 200
        return len(captured)

    for _ in range(2):
        post(api(curator), "/api/v1/demonstrations/", demonstration_body(context="ctx-1"))
    few = queries()
    for _ in range(4):
        post(api(curator), "/api/v1/demonstrations/", demonstration_body(context="ctx-1"))
    assert queries() == few
