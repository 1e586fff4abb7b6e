from django.http import HttpRequest

from governance.roles import STAFF_ROLES, user_roles
from governance.selectors import guideline_versions_pending


def roles(request: HttpRequest) -> dict:
    """Roles for the navigation, and how many guideline versions wait to be read."""
    held = user_roles(request.user)
    pending = len(guideline_versions_pending(user=request.user)) if held else 0
    return {
        "user_roles": sorted(held),
        "is_staff_role": bool(held & STAFF_ROLES),
        "pending_guideline_count": pending,
    }
