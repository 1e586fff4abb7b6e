"""Access checks for HTML views. The full role × action matrix arrives with issue #3;
these are the pieces every view composes."""

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from governance.roles import Role, has_any_role

View = Callable[..., HttpResponse]


def role_required(*roles: Role) -> Callable[[View], View]:
    """Logged-in users without one of ``roles`` get 403 (anonymous ones never get here:
    LoginRequiredMiddleware sends them to the login page)."""
    allowed = frozenset(roles)

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not has_any_role(request.user, allowed):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
