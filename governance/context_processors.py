from django.http import HttpRequest

from governance.roles import STAFF_ROLES, Role, user_roles
from governance.selectors import guideline_versions_pending

LABELING_ROLES = frozenset({Role.CURATOR, Role.SAFETY_REVIEWER, Role.STUDY_PARTICIPANT})


def roles(request: HttpRequest) -> dict:
    """Roles for the navigation, and how many guideline versions wait to be read."""
    held = user_roles(request.user)
    pending = len(guideline_versions_pending(user=request.user)) if held else 0
    return {
        "user_roles": sorted(held),
        "is_staff_role": bool(held & STAFF_ROLES),
        "can_label": bool(held & LABELING_ROLES),
        "can_demonstrate": bool(held & {Role.CURATOR, Role.SAFETY_REVIEWER}),
        "pending_guideline_count": pending,
    }
