from django.http import HttpRequest

from governance.roles import STAFF_ROLES, user_roles


def roles(request: HttpRequest) -> dict:
    held = user_roles(request.user)
    return {"user_roles": sorted(held), "is_staff_role": bool(held & STAFF_ROLES)}
