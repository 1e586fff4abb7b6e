"""Reads of governed state, shared by the pages and the API."""

from django.db.models import QuerySet

from catalog.models import Item, UserContext
from governance.access import POLICY_ADMINS
from governance.models import (
    Guideline,
    GuidelineAcknowledgement,
    GuidelineVersion,
    PolicyVersion,
    VersionStatus,
)
from governance.policy_engine import catalog_index, compile_version, engine_context
from governance.roles import Role, user_roles

# Which roles a task kind's guideline concerns ("" is the general guideline: everyone).
GUIDELINE_READERS: dict[str, frozenset[Role]] = {
    "compare": frozenset({Role.CURATOR, Role.SAFETY_REVIEWER, Role.STUDY_PARTICIPANT}),
    "demonstrate": frozenset({Role.CURATOR, Role.SAFETY_REVIEWER}),
    "review_flag": frozenset({Role.SAFETY_REVIEWER}),
    "adjudicate": frozenset({Role.CURATOR, Role.SAFETY_REVIEWER}),
}


def guideline_concerns(guideline: Guideline, user) -> bool:
    roles = user_roles(user)
    if not roles:
        return False
    readers = GUIDELINE_READERS.get(guideline.task_kind)
    return readers is None or bool(roles & readers)


def guideline_versions_pending(*, user) -> list[GuidelineVersion]:
    """Published versions of the guidelines that concern ``user`` and that the user has
    not acknowledged yet: shown before their next task."""
    read = GuidelineAcknowledgement.objects.filter(user=user).values_list("version_id", flat=True)
    published = (
        GuidelineVersion.objects.filter(status=VersionStatus.PUBLISHED)
        .exclude(pk__in=read)
        .select_related("guideline")
        .order_by("guideline__slug")
    )
    return [v for v in published if guideline_concerns(v.guideline, user)]


def guideline_versions_visible(*, user, guideline: Guideline) -> QuerySet[GuidelineVersion]:
    """Drafts are for policy admins; everyone sees what was published."""
    versions = guideline.versions.select_related("guideline").prefetch_related("affects_criteria")
    if not POLICY_ADMINS.admits(user):
        versions = versions.exclude(status=VersionStatus.DRAFT)
    return versions


def slate_verdict(*, version: PolicyVersion, context: UserContext, external_ids: list[str]) -> dict:
    """The engine's verdict on a slate (items by external id) for a context."""
    index = catalog_index()
    engine = compile_version(version)
    pks = dict(Item.objects.filter(external_id__in=external_ids).values_list("external_id", "pk"))
    positions = index.positions([pks[e] for e in external_ids])
    external_of_position = dict(zip(positions.tolist(), external_ids, strict=True))
    situation = engine_context(context, index=index)
    violations = engine.violations(situation, positions)
    terms = engine.penalty_terms(situation, positions)
    return {
        "allowed": not violations,
        "violations": [
            {
                "rule": v.rule_id,
                "kind": v.kind,
                "items": [external_of_position[int(i)] for i in v.items],
                "message": v.message,
            }
            for v in violations
        ],
        "penalty": float(sum(terms.values())),
        "penalty_terms": {rule: float(value) for rule, value in terms.items()},
    }
