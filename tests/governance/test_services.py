"""Governance services: each change writes exactly one audit event in its transaction;
published versions cannot change (services and database both refuse); the audit log
cannot be edited."""

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from catalog.models import Topic
from catalog.selectors import catalog_generation
from governance import services
from governance.audit import audit_record
from governance.models import (
    ApiToken,
    AuditEvent,
    Criterion,
    GuidelineVersion,
    PolicyVersion,
    VersionStatus,
)
from governance.roles import Role, user_roles

pytestmark = pytest.mark.django_db

GOOD_RULES = [{"id": "minors", "kind": "max_sensitivity", "audience": "minor", "level": 1}]


class AuditCount:
    """Counts the audit events a block of code writes."""

    def __enter__(self):
        self.before = AuditEvent.objects.count()
        return self

    def __exit__(self, *exc):
        self.written = AuditEvent.objects.count() - self.before
        self.last = AuditEvent.objects.order_by("-id").first()


@pytest.fixture
def policy(policy_admin):
    return services.policy_create(actor=policy_admin, slug="platform", name="Platform")


@pytest.fixture
def published(policy, policy_admin):
    draft = services.policy_version_create_draft(
        actor=policy_admin, policy=policy, rules=GOOD_RULES, changelog="first"
    )
    return services.policy_version_publish(actor=policy_admin, version=draft)


# --- exactly one event per change --------------------------------------------------------


def test_creating_and_changing_a_criterion_each_write_one_event(policy_admin):
    with AuditCount() as created:
        criterion = services.criterion_create(
            actor=policy_admin, slug="novelty", name="Novelty", description="New to the user?"
        )
    with AuditCount() as changed:
        services.criterion_update(actor=policy_admin, criterion=criterion, weight=0.3)

    assert (created.written, changed.written) == (1, 1)
    event = changed.last
    assert event.action == "criterion.update"
    assert event.actor == policy_admin
    assert event.before["weight"] == 1.0
    assert event.after["weight"] == 0.3


def test_every_step_of_a_policy_version_writes_one_event(policy, policy_admin):
    with AuditCount() as draft_made:
        draft = services.policy_version_create_draft(actor=policy_admin, policy=policy)
    with AuditCount() as edited:
        services.policy_version_update_draft(
            actor=policy_admin, version=draft, rules=GOOD_RULES, changelog="minors"
        )
    with AuditCount() as published_event:
        services.policy_version_publish(actor=policy_admin, version=draft)

    assert (draft_made.written, edited.written, published_event.written) == (1, 1, 1)
    assert edited.last.before["rules"] == []
    assert edited.last.after["rules"] == GOOD_RULES
    assert published_event.last.action == "policy_version.publish"


def test_publishing_retires_the_version_in_force(published, policy, policy_admin):
    second = services.policy_version_create_draft(actor=policy_admin, policy=policy, changelog="2")

    services.policy_version_publish(actor=policy_admin, version=second)

    statuses = dict(PolicyVersion.objects.values_list("number", "status"))
    assert statuses == {1: VersionStatus.RETIRED, 2: VersionStatus.PUBLISHED}
    assert AuditEvent.objects.order_by("-id").first().before["replaces"] == published.pk


def test_a_new_draft_starts_as_a_copy_of_the_version_in_force(published, policy, policy_admin):
    draft = services.policy_version_create_draft(actor=policy_admin, policy=policy)

    assert draft.number == 2
    assert draft.rules == GOOD_RULES


def test_publishing_refuses_invalid_rules_naming_rule_field_and_reason(policy, policy_admin):
    draft = services.policy_version_create_draft(
        actor=policy_admin, policy=policy, changelog="bad",
        rules=[{"id": "cap", "kind": "max_sensitivity", "audience": "minor", "level": 9}],
    )  # fmt: skip

    with AuditCount() as attempt, pytest.raises(ValidationError) as refused:
        services.policy_version_publish(actor=policy_admin, version=draft)

    assert refused.value.message_dict["rules"] == [
        "rule 1 'cap': level: must be from 0 to 3, got 9"
    ]
    assert attempt.written == 0
    assert PolicyVersion.objects.get(pk=draft.pk).status == VersionStatus.DRAFT


def test_publishing_needs_a_changelog_line(policy, policy_admin):
    draft = services.policy_version_create_draft(
        actor=policy_admin, policy=policy, rules=GOOD_RULES
    )

    with pytest.raises(ValidationError, match="changelog"):
        services.policy_version_publish(actor=policy_admin, version=draft)


def test_roles_and_tokens_changes_write_one_event_each(curator, policy_admin):
    with AuditCount() as roles:
        services.user_roles_set(actor=policy_admin, user=curator, roles={Role.SAFETY_REVIEWER})
    with AuditCount() as created:
        token, _ = services.token_create(user=curator, name="laptop")
    with AuditCount() as revoked:
        services.token_revoke(actor=curator, token=token)
    with AuditCount() as revoked_again:
        services.token_revoke(actor=curator, token=token)

    assert (roles.written, created.written, revoked.written, revoked_again.written) == (1, 1, 1, 0)
    assert user_roles(User.objects.get(pk=curator.pk)) == {Role.SAFETY_REVIEWER}
    role_event = AuditEvent.objects.get(action="user.roles")
    assert (role_event.before, role_event.after) == (
        {"roles": ["curator"]}, {"roles": ["safety_reviewer"]},
    )  # fmt: skip


def test_guideline_versions_write_one_event_per_step(policy_admin):
    with AuditCount() as made:
        guideline = services.guideline_create(actor=policy_admin, slug="general", title="General")
        draft = services.guideline_version_create_draft(
            actor=policy_admin, guideline=guideline, body="# Hi", changelog="first"
        )
        services.guideline_version_update_draft(
            actor=policy_admin, version=draft, body="# Hello", changelog="first",
            affects_criteria=[Criterion.objects.get(slug="safety")],
        )  # fmt: skip
        services.guideline_version_publish(actor=policy_admin, version=draft)

    assert made.written == 4
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions[-3:] == [
        "guideline_version.create", "guideline_version.update", "guideline_version.publish",
    ]  # fmt: skip
    assert AuditEvent.objects.get(action="guideline_version.update").after["affects_criteria"] == [
        "safety"
    ]


def test_marking_a_topic_sensitive_is_audited_and_refreshes_engine_arrays(policy_admin):
    topic = Topic.objects.create(slug="gambling", name="Gambling")
    generation = catalog_generation()

    with AuditCount() as change:
        services.topic_update(
            actor=policy_admin, topic=topic, name="Gambling", sensitive=True, description=""
        )

    assert change.written == 1
    assert change.last.after["sensitive"] is True
    assert catalog_generation() != generation


def test_a_system_change_is_audited_as_system():
    policy = services.policy_create(actor=None, slug="platform", name="Platform")

    event = AuditEvent.objects.get(object_id=str(policy.pk), action="policy.create")
    assert event.actor is None
    assert event.actor_name == "system"


# --- immutability --------------------------------------------------------------------------


def test_the_service_refuses_to_change_a_published_version(published, policy_admin):
    with pytest.raises(services.ImmutableVersion):
        services.policy_version_update_draft(
            actor=policy_admin, version=published, rules=[], changelog="sneaky"
        )
    with pytest.raises(services.ImmutableVersion):
        services.policy_version_delete_draft(actor=policy_admin, version=published)

    assert PolicyVersion.objects.get(pk=published.pk).rules == GOOD_RULES


def test_the_database_refuses_to_change_a_published_version(published):
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyVersion.objects.filter(pk=published.pk).update(rules=[])
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyVersion.objects.filter(pk=published.pk).delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyVersion.objects.filter(pk=published.pk).update(status=VersionStatus.DRAFT)

    assert PolicyVersion.objects.get(pk=published.pk).rules == GOOD_RULES


def test_the_database_lets_a_published_version_retire_and_nothing_else(published):
    PolicyVersion.objects.filter(pk=published.pk).update(
        status=VersionStatus.RETIRED, retired_at=timezone.now()
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyVersion.objects.filter(pk=published.pk).update(changelog="rewritten history")


def test_the_database_refuses_to_change_a_published_guideline(policy_admin):
    guideline = services.guideline_create(actor=policy_admin, slug="general", title="General")
    draft = services.guideline_version_create_draft(
        actor=policy_admin, guideline=guideline, body="# Rules", changelog="first"
    )
    services.guideline_version_publish(actor=policy_admin, version=draft)

    with pytest.raises(IntegrityError), transaction.atomic():
        GuidelineVersion.objects.filter(pk=draft.pk).update(body="# Other rules")


def test_two_published_versions_of_one_policy_cannot_exist(published, policy):
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyVersion.objects.create(
            policy=policy, number=9, status=VersionStatus.PUBLISHED, published_at=timezone.now()
        )


# --- the audit log itself ------------------------------------------------------------------


def test_audit_events_cannot_be_edited_or_deleted(published):
    event = AuditEvent.objects.first()

    event.action = "forged"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="forged")
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()


def test_audit_record_refuses_to_run_outside_the_changes_transaction(policy_admin):
    assert connection.in_atomic_block  # the test's own transaction
    with transaction.atomic():
        audit_record(actor=policy_admin, action="x.y", object_type="x", object_id=1)


def test_a_failed_change_leaves_no_event(policy, policy_admin):
    with AuditCount() as attempt, pytest.raises(ValidationError):
        services.criterion_create(actor=policy_admin, slug="not a slug!", name="x", description="y")

    assert attempt.written == 0
    assert not ApiToken.objects.exists()
