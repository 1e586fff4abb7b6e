"""The roles people hold in Shepherd, as Django groups (created by a data migration)."""

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class Role(StrEnum):
    CURATOR = "curator"
    SAFETY_REVIEWER = "safety_reviewer"
    STUDY_PARTICIPANT = "study_participant"
    POLICY_ADMIN = "policy_admin"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


# Roles that see the catalog and internal figures (study participants do not).
STAFF_ROLES = frozenset({Role.CURATOR, Role.SAFETY_REVIEWER, Role.POLICY_ADMIN})


def user_roles(user: "AbstractBaseUser | AnonymousUser") -> frozenset[Role]:
    """The user's roles; a superuser holds every role. Cached on the user object."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_shepherd_roles", None)
    if cached is None:
        names = () if user.is_superuser else user.groups.values_list("name", flat=True)
        cached = remember_roles(user, names)
    return cached


def remember_roles(user: "AbstractBaseUser", group_names) -> frozenset[Role]:
    """Cache the roles of ``user`` given its group names (for a caller that fetched them
    along with the user, saving the query)."""
    names = set(group_names)
    roles = frozenset(Role) if user.is_superuser else frozenset(r for r in Role if r in names)
    user._shepherd_roles = roles
    return roles


def has_any_role(user: "AbstractBaseUser | AnonymousUser", roles: frozenset[Role]) -> bool:
    return bool(user_roles(user) & roles)
