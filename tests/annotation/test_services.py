"""Whole demonstrations submitted at once (demonstration_submit_steps): states computed as
the builder computes them, each step checked, the task's slot claimed, stored once."""

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from annotation import services
from annotation.demonstrations import demonstration_submit_steps, draft_open
from annotation.models import (
    AssignmentState,
    Channel,
    Demonstration,
    DemonstrationDraft,
    QueueTask,
    TaskKind,
    TaskReason,
    TaskStatus,
)
from catalog.models import UserContext
from governance import services as governance
from tests.annotation.factories import compare_tasks, ensure_criteria, small_catalog

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog():
    ensure_criteria()
    return small_catalog()


def lease_of_demonstration(reviewer, context):
    QueueTask.objects.create(kind=TaskKind.DEMONSTRATE, reason=TaskReason.MANUAL, context=context)
    return services.task_lease_next(reviewer=reviewer, now=timezone.now())


def submit(reviewer, steps, **origin):
    return demonstration_submit_steps(
        reviewer=reviewer, steps=steps, client_token=origin.pop("client_token", uuid.uuid4()),
        now=timezone.now(), **origin,
    )  # fmt: skip


def test_each_state_is_the_one_the_previous_slate_leads_to(curator, catalog):
    context, items = catalog
    first, second = items[0].pk, items[2].pk

    demonstration = submit(
        curator, [{"chosen": [first, second], "rationale": " why "}, {"chosen": [items[4].pk]}],
        context=context, tags=["t"],
    )  # fmt: skip

    steps = list(demonstration.steps.all())
    assert [s.index for s in steps] == [0, 1]
    assert steps[0].state["history"] == context.history
    assert steps[1].state["history"] == [
        *context.history,
        {"item": "item-0", "event": "view"},
        {"item": "item-2", "event": "view"},
    ]
    # Seeing two cooking items made the user more tired of cooking.
    assert steps[1].state["topic_fatigue"]["cooking"] > steps[0].state["topic_fatigue"]["cooking"]
    assert steps[0].rationale == "why"
    assert (demonstration.task, demonstration.channel) == (None, Channel.CURATION)


def test_a_task_demonstration_claims_the_slot_and_drops_the_builders_draft(curator, catalog):
    context, items = catalog
    assignment = lease_of_demonstration(curator, context)
    draft_open(reviewer=curator, context=context, task=assignment.task)

    demonstration = submit(curator, [{"chosen": [items[0].pk]}], assignment=assignment)

    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.SUBMITTED
    assert demonstration.assignment == assignment
    task = QueueTask.objects.get(pk=assignment.task_id)
    assert (task.status, task.labels_count, task.leased_count) == (TaskStatus.DONE, 1, 0)
    assert not DemonstrationDraft.objects.exists()


def test_a_retry_returns_the_first_and_a_second_label_is_refused(curator, catalog):
    context, items = catalog
    assignment = lease_of_demonstration(curator, context)
    token = uuid.uuid4()
    steps = [{"chosen": [items[0].pk]}]

    first = submit(curator, steps, assignment=assignment, client_token=token)
    retry = submit(curator, steps, assignment=assignment, client_token=token)

    assert retry == first
    with pytest.raises(services.LabelRefused, match="already labeled"):
        submit(curator, steps, assignment=assignment)
    assert Demonstration.objects.count() == 1


def test_someone_elses_token_is_refused(curator, safety_reviewer, catalog):
    context, items = catalog
    token = uuid.uuid4()
    submit(curator, [{"chosen": [items[0].pk]}], context=context, client_token=token)

    with pytest.raises(services.LabelRefused, match="someone else"):
        submit(safety_reviewer, [{"chosen": [items[0].pk]}], context=context, client_token=token)


def test_a_step_breaking_a_hard_rule_is_refused_by_number_and_claims_nothing(
    curator, policy_admin, catalog
):
    _, items = catalog
    policy = governance.policy_create(actor=policy_admin, slug="platform", name="Platform")
    draft = governance.policy_version_create_draft(
        actor=policy_admin, policy=policy, changelog="x",
        rules=[{"id": "minors", "kind": "max_sensitivity", "audience": "minor", "level": 0}],
    )  # fmt: skip
    governance.policy_version_publish(actor=policy_admin, version=draft)
    minor = UserContext.objects.create(
        external_id="ctx-minor", user_ref="u-2", segment="teen", audience="minor"
    )
    assignment = lease_of_demonstration(curator, minor)

    with pytest.raises(ValidationError) as refused:
        submit(
            curator, [{"chosen": [items[0].pk]}, {"chosen": [items[1].pk]}], assignment=assignment
        )

    assert refused.value.message_dict["chosen"][0].startswith("step 2: max_sensitivity 'minors'")
    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.LEASED
    assert not Demonstration.objects.exists()


def test_only_a_demonstrate_task_takes_a_demonstration(curator, catalog):
    context, items = catalog
    compare_tasks(context, items, 1)
    assignment = services.task_lease_next(reviewer=curator, now=timezone.now())

    with pytest.raises(ValidationError) as refused:
        submit(curator, [{"chosen": [items[0].pk]}], assignment=assignment)

    assert "assignment" in refused.value.message_dict


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ([], "at least one step"),
        ([{"chosen": []}], "step 1: choose at least one item"),
        ([{"chosen": [1]}] * 21, "at most 20 steps"),
    ],
)
def test_steps_within_the_builders_limits(curator, catalog, steps, problem):
    context, _ = catalog

    with pytest.raises(ValidationError, match=problem):
        submit(curator, steps, context=context)


def test_an_origin_is_either_a_lease_or_a_context(curator, catalog):
    with pytest.raises(ValueError, match="either"):
        submit(curator, [{"chosen": [1]}])
