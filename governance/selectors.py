"""Reads of governed state, shared by the pages and the API."""

from django.db.models import QuerySet

from catalog.models import Item, UserContext
from core.cache import process_memory, ttl_cache
from governance.access import POLICY_ADMINS
from governance.models import (
    Criterion,
    Guideline,
    GuidelineAcknowledgement,
    GuidelineVersion,
    PolicyVersion,
    VersionStatus,
)
from governance.policy_engine import (
    active_version,
    catalog_index,
    compile_version,
    engine_context,
)
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
    not acknowledged yet: shown before their next task (so read before every lease)."""
    concerning = [
        v for v in published_guideline_versions() if guideline_concerns(v.guideline, user)
    ]
    unknown = [v.pk for v in concerning if (user.pk, v.pk) not in _acknowledged]
    if unknown:
        read = GuidelineAcknowledgement.objects.filter(user=user, version_id__in=unknown)
        for version_id in read.values_list("version_id", flat=True):
            acknowledged_remember(user.pk, version_id)
    return [v for v in concerning if (user.pk, v.pk) not in _acknowledged]


# An acknowledgement is never withdrawn, so once seen it can be remembered for good.
_acknowledged: set[tuple[int, int]] = process_memory(set())
ACKNOWLEDGED_MEMORY_LIMIT = 200_000


def acknowledged_remember(user_id: int, version_id: int) -> None:
    if len(_acknowledged) >= ACKNOWLEDGED_MEMORY_LIMIT:
        _acknowledged.clear()
    _acknowledged.add((user_id, version_id))


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


# --- what is in force (read by every label) ------------------------------------------------
# Cached for a few seconds: every lease and submission reads these, they change only when
# an admin publishes or edits, and the services that change them clear the cache on
# commit. A label submitted in another process within seconds of a publication records
# the version its reviewer worked under, which is the one it should record.
IN_FORCE_SECONDS = 5.0


@ttl_cache(IN_FORCE_SECONDS)
def active_criteria() -> list[Criterion]:
    return list(Criterion.objects.filter(active=True))


@ttl_cache(IN_FORCE_SECONDS)
def published_guideline_versions() -> list[GuidelineVersion]:
    return list(
        GuidelineVersion.objects.filter(status=VersionStatus.PUBLISHED)
        .select_related("guideline")
        .order_by("guideline__slug")
    )


@ttl_cache(IN_FORCE_SECONDS)
def guideline_in_force(task_kind: str) -> GuidelineVersion | None:
    """The published guideline for a task kind, else the general one."""
    published = GuidelineVersion.objects.filter(status=VersionStatus.PUBLISHED).select_related(
        "guideline"
    )
    return (
        published.filter(guideline__task_kind=task_kind).first()
        or published.filter(guideline__task_kind="").first()
    )


@ttl_cache(IN_FORCE_SECONDS)
def policy_version_in_force() -> PolicyVersion | None:
    return active_version()


def forget_in_force() -> None:
    """Called on commit by every service that changes what is in force."""
    for cached in (
        active_criteria,
        guideline_in_force,
        policy_version_in_force,
        published_guideline_versions,
    ):
        cached.clear()
