"""Changes to governed state: criteria, content policies, guidelines, roles and API
tokens. Each runs in one transaction and writes exactly one audit event."""

import secrets
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from catalog.models import Item, Topic
from catalog.services import catalog_changed
from governance.audit import audit_record, snapshot
from governance.models import (
    ApiToken,
    ContentPolicy,
    Criterion,
    Guideline,
    GuidelineAcknowledgement,
    GuidelineVersion,
    PolicyVersion,
    VersionStatus,
)
from governance.roles import Role, user_roles
from governance.rules import validate_rules
from governance.selectors import forget_in_force

# Slugs a page under /governance/guidelines/ would shadow.
RESERVED_GUIDELINE_SLUGS = frozenset({"pending"})
CRITERION_FIELDS = ("name", "description", "plain_description", "weight", "is_veto", "active")


class ImmutableVersion(ValidationError):
    """A published or retired version cannot change."""


# --- criteria --------------------------------------------------------------------------


def _in_force_changed() -> None:
    """What is in force changed: drop the cached reads now (this process) and again once
    the transaction commits (so a read between now and then cannot leave a stale value)."""
    forget_in_force()
    transaction.on_commit(forget_in_force)


@transaction.atomic
def criterion_create(*, actor: User, slug: str, **values: Any) -> Criterion:
    position = (Criterion.objects.aggregate(top=Max("position"))["top"] or 0) + 1
    criterion = Criterion(slug=slug, position=position, **_only(values, CRITERION_FIELDS))
    criterion.full_clean()
    criterion.save()
    audit_record(
        actor=actor, action="criterion.create", target=criterion, after=snapshot(criterion)
    )
    _in_force_changed()
    return criterion


@transaction.atomic
def criterion_update(*, actor: User, criterion: Criterion, **values: Any) -> Criterion:
    criterion = Criterion.objects.select_for_update().get(pk=criterion.pk)
    before = snapshot(criterion)
    for name, value in _only(values, CRITERION_FIELDS).items():
        setattr(criterion, name, value)
    criterion.full_clean()
    criterion.save()
    audit_record(
        actor=actor, action="criterion.update", target=criterion,
        before=before, after=snapshot(criterion),
    )  # fmt: skip
    _in_force_changed()
    return criterion


def _only(values: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    unknown = set(values) - set(allowed)
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "cannot be set"))
    return values


# --- content policies --------------------------------------------------------------------


def rules_errors(rules: Any) -> list[str]:
    """Readable problems with a version's rules, checked against the current catalog."""
    topics = Topic.objects.values_list("slug", flat=True)
    errors = validate_rules(rules, topic_slugs=topics, known_items=_known_items)
    return [str(error) for error in errors]


def _known_items(external_ids: list[str]) -> set[str]:
    return set(
        Item.objects.filter(external_id__in=external_ids).values_list("external_id", flat=True)
    )


@transaction.atomic
def policy_create(*, actor: User, slug: str, name: str, description: str = "") -> ContentPolicy:
    policy = ContentPolicy(slug=slug, name=name, description=description)
    policy.full_clean()
    policy.save()
    audit_record(actor=actor, action="policy.create", target=policy, after=snapshot(policy))
    return policy


@transaction.atomic
def policy_version_create_draft(
    *, actor: User, policy: ContentPolicy, rules: list | None = None, changelog: str = ""
) -> PolicyVersion:
    """A new draft; its rules start as given, else as a copy of the active version's."""
    policy = ContentPolicy.objects.select_for_update().get(pk=policy.pk)
    if rules is None:
        active = policy.versions.filter(status=VersionStatus.PUBLISHED).first()
        rules = list(active.rules) if active else []
    version = PolicyVersion.objects.create(
        policy=policy,
        number=_next_number(policy.versions),
        rules=rules,
        changelog=changelog,
        created_by=actor,
    )
    audit_record(
        actor=actor, action="policy_version.create", target=version, after=snapshot(version)
    )
    return version


@transaction.atomic
def policy_version_update_draft(
    *, actor: User, version: PolicyVersion, rules: list, changelog: str
) -> PolicyVersion:
    """Drafts may hold invalid rules while an admin works on them; publishing checks."""
    version = _locked_draft(PolicyVersion, version)
    before = snapshot(version)
    version.rules = rules
    version.changelog = changelog
    version.save(update_fields=["rules", "changelog"])
    audit_record(
        actor=actor, action="policy_version.update", target=version,
        before=before, after=snapshot(version),
    )  # fmt: skip
    return version


@transaction.atomic
def policy_version_publish(*, actor: User, version: PolicyVersion) -> PolicyVersion:
    """Validate, publish, and retire the version it replaces: one audit event that shows
    both in its before and after."""
    version = _locked_draft(PolicyVersion, version)
    errors = rules_errors(version.rules)
    if errors:
        raise ValidationError({"rules": errors})
    _require_changelog(version)
    now = timezone.now()
    replaced = _retire_in_force(PolicyVersion, now, policy=version.policy)
    before = snapshot(version)
    version.status = VersionStatus.PUBLISHED
    version.published_by = actor
    version.published_at = now
    version.save(update_fields=["status", "published_by", "published_at"])
    _in_force_changed()
    audit_record(
        actor=actor, action="policy_version.publish", target=version,
        before={**before, "replaces": replaced.pk if replaced else None},
        after=snapshot(version),
    )  # fmt: skip
    return version


@transaction.atomic
def policy_version_delete_draft(*, actor: User, version: PolicyVersion) -> None:
    version = _locked_draft(PolicyVersion, version)
    before = snapshot(version)
    audit_record(actor=actor, action="policy_version.delete", target=version, before=before)
    version.delete()


def _next_number(versions) -> int:
    return (versions.aggregate(top=Max("number"))["top"] or 0) + 1


def _require_changelog(version) -> None:
    if not version.changelog.strip():
        raise ValidationError({"changelog": "say in a line what this version changes"})


def _retire_in_force(model, now, **owner):
    """Retire the version in force of the same policy or guideline (the one a new
    publication replaces); returns it, or None."""
    replaced = (
        model.objects.select_for_update().filter(status=VersionStatus.PUBLISHED, **owner).first()
    )
    if replaced is not None:
        replaced.status = VersionStatus.RETIRED
        fields = ["status"]
        if hasattr(replaced, "retired_at"):
            replaced.retired_at = now
            fields.append("retired_at")
        replaced.save(update_fields=fields)
    return replaced


def _locked_draft(model, version):
    locked = model.objects.select_for_update().get(pk=version.pk)
    if locked.status != VersionStatus.DRAFT:
        raise ImmutableVersion(f"version {locked.number} is {locked.status}: it cannot change")
    return locked


# --- guidelines --------------------------------------------------------------------------


@transaction.atomic
def guideline_create(*, actor: User, slug: str, title: str, task_kind: str = "") -> Guideline:
    if slug in RESERVED_GUIDELINE_SLUGS:
        raise ValidationError({"slug": "this slug is taken by a page: choose another"})
    guideline = Guideline(slug=slug, title=title, task_kind=task_kind)
    guideline.full_clean()
    guideline.save()
    audit_record(
        actor=actor, action="guideline.create", target=guideline, after=snapshot(guideline)
    )
    return guideline


@transaction.atomic
def guideline_version_create_draft(
    *, actor: User, guideline: Guideline, body: str | None = None, changelog: str = ""
) -> GuidelineVersion:
    guideline = Guideline.objects.select_for_update().get(pk=guideline.pk)
    if body is None:
        current = guideline.versions.filter(status=VersionStatus.PUBLISHED).first()
        body = current.body if current else ""
    version = GuidelineVersion.objects.create(
        guideline=guideline,
        number=_next_number(guideline.versions),
        body=body,
        changelog=changelog,
        created_by=actor,
    )
    audit_record(
        actor=actor,
        action="guideline_version.create",
        target=version,
        after=_guideline_snapshot(version),
    )
    return version


@transaction.atomic
def guideline_version_update_draft(
    *,
    actor: User,
    version: GuidelineVersion,
    body: str,
    changelog: str,
    affects_criteria: list[Criterion] | None = None,
) -> GuidelineVersion:
    version = _locked_draft(GuidelineVersion, version)
    before = _guideline_snapshot(version)
    version.body = body
    version.changelog = changelog
    version.save(update_fields=["body", "changelog"])
    if affects_criteria is not None:
        version.affects_criteria.set(affects_criteria)
    audit_record(
        actor=actor, action="guideline_version.update", target=version,
        before=before, after=_guideline_snapshot(version),
    )  # fmt: skip
    return version


@transaction.atomic
def guideline_version_publish(*, actor: User, version: GuidelineVersion) -> GuidelineVersion:
    version = _locked_draft(GuidelineVersion, version)
    if not version.body.strip():
        raise ValidationError({"body": "a guideline cannot be empty"})
    _require_changelog(version)
    now = timezone.now()
    replaced = _retire_in_force(GuidelineVersion, now, guideline=version.guideline)
    before = _guideline_snapshot(version)
    version.status = VersionStatus.PUBLISHED
    version.published_at = now
    version.save(update_fields=["status", "published_at"])
    _in_force_changed()
    audit_record(
        actor=actor, action="guideline_version.publish", target=version,
        before={**before, "replaces": replaced.pk if replaced else None},
        after=_guideline_snapshot(version),
    )  # fmt: skip
    return version


def _guideline_snapshot(version: GuidelineVersion) -> dict:
    data = snapshot(version)
    if version.pk:
        data["affects_criteria"] = sorted(version.affects_criteria.values_list("slug", flat=True))
    return data


def guideline_acknowledge(*, user: User, version: GuidelineVersion) -> GuidelineAcknowledgement:
    """Idempotent. Reading a guideline is a reviewer's act, not a governance change:
    it is recorded on its own row, not in the audit log."""
    if version.status != VersionStatus.PUBLISHED:
        raise ValidationError("only the published version can be acknowledged")
    acknowledgement, _ = GuidelineAcknowledgement.objects.get_or_create(user=user, version=version)
    return acknowledgement


# --- roles -----------------------------------------------------------------------------


@transaction.atomic
def user_roles_set(*, actor: User, user: User, roles: set[Role]) -> User:
    user = User.objects.select_for_update().get(pk=user.pk)
    before = sorted(role.value for role in user_roles_of(user))
    keep = user.groups.exclude(name__in=[role.value for role in Role])
    wanted = [Group.objects.get_or_create(name=role.value)[0] for role in sorted(roles)]
    user.groups.set([*keep, *wanted])
    after = sorted(role.value for role in roles)
    audit_record(
        actor=actor, action="user.roles", target=user,
        before={"roles": before}, after={"roles": after},
    )  # fmt: skip
    return user


def user_roles_of(user: User) -> frozenset[Role]:
    """Roles held through groups (not the superuser's implied ones)."""
    names = set(user.groups.values_list("name", flat=True))
    return frozenset(role for role in Role if role.value in names)


# --- topics ------------------------------------------------------------------------------


@transaction.atomic
def topic_update(
    *, actor: User, topic: Topic, name: str, sensitive: bool, description: str
) -> Topic:
    """Whether a topic is sensitive changes what policies allow: audited."""
    topic = Topic.objects.select_for_update().get(pk=topic.pk)
    before = snapshot(topic)
    topic.name, topic.sensitive, topic.description = name, sensitive, description
    topic.full_clean()
    topic.save()
    catalog_changed()
    audit_record(
        actor=actor, action="topic.update", target=topic, before=before, after=snapshot(topic)
    )
    return topic


# --- API tokens --------------------------------------------------------------------------

TOKEN_PREFIX_LENGTH = 8


@transaction.atomic
def token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token and its secret, which is shown once and never stored."""
    if not name.strip():
        raise ValidationError({"name": "give the token a name"})
    secret = "shp_" + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name.strip()[:100],
        prefix=secret[: TOKEN_PREFIX_LENGTH + 4],
        key_hash=ApiToken.hash_key(secret),
    )
    audit_record(
        actor=user, action="token.create", target=token,
        after=snapshot(token, ["user", "name", "prefix", "created_at"]),
    )  # fmt: skip
    return token, secret


@transaction.atomic
def token_revoke(*, actor: User, token: ApiToken) -> ApiToken:
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        return token  # already revoked: nothing changes, nothing to audit
    before = snapshot(token, ["revoked_at", "revoked_by"])
    token.revoked_at = timezone.now()
    token.revoked_by = actor
    token.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(
        actor=actor, action="token.revoke", target=token,
        before=before, after=snapshot(token, ["revoked_at", "revoked_by"]),
    )  # fmt: skip
    return token


def token_owner_may_manage(*, actor: User, token: ApiToken) -> bool:
    """Users manage their own tokens; policy admins may revoke anyone's."""
    return token.user_id == actor.pk or Role.POLICY_ADMIN in user_roles(actor)
