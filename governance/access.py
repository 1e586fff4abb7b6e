"""Who may do what: one declaration per view and HTTP method, enforced where it is
declared and read by the permission-matrix tests and the README's table.

    @access(GET=STAFF, POST=POLICY_ADMINS)
    def criterion_list(request): …

    class CriterionListApi(ApiView):
        access = {"GET": STAFF, "POST": POLICY_ADMINS}

A method without an entry answers 405; a user the audience does not admit gets 403.
Anonymous visitors never reach the check: LoginRequiredMiddleware sends page requests
to the login page, and the API answers 401.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from governance.roles import Role, user_roles

View = Callable[..., HttpResponse]


@dataclass(frozen=True)
class Audience:
    """A set of roles, or every logged-in user when ``roles`` is None, or everyone (logged
    in or not) when ``public``."""

    name: str
    roles: frozenset[Role] | None
    public: bool = False

    def __or__(self, other: "Audience") -> "Audience":
        """Either audience: the union of their roles."""
        if self.public or other.public:
            return PUBLIC
        if self.roles is None or other.roles is None:
            return ANY_USER
        return Audience(f"{self.name} or {other.name}", self.roles | other.roles)

    def admits(self, user) -> bool:
        if self.public:
            return True
        if not user.is_authenticated:
            return False
        return self.roles is None or bool(user_roles(user) & self.roles)


PUBLIC = Audience("anyone", None, public=True)
ANY_USER = Audience("any logged-in user", None)
STAFF = Audience("staff", frozenset({Role.CURATOR, Role.SAFETY_REVIEWER, Role.POLICY_ADMIN}))
LABELERS = Audience("labelers", frozenset({Role.CURATOR, Role.SAFETY_REVIEWER}))
SAFETY_REVIEWERS = Audience("safety reviewers", frozenset({Role.SAFETY_REVIEWER}))
STUDY_PARTICIPANTS = Audience("study participants", frozenset({Role.STUDY_PARTICIPANT}))
POLICY_ADMINS = Audience("policy admins", frozenset({Role.POLICY_ADMIN}))

Access = dict[str, Audience]


def audience_for(access: Access, method: str) -> Audience | None:
    """HEAD is allowed where GET is (Django and DRF answer it alike)."""
    return access.get("GET" if method == "HEAD" else method)


def access(**methods: Audience) -> Callable[[View], View]:
    declared: Access = dict(methods)

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            audience = audience_for(declared, request.method)
            if audience is None:
                return HttpResponseNotAllowed(sorted(declared))
            if not audience.admits(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapper.access = declared
        if any(audience.public for audience in declared.values()):
            wrapper = login_not_required(wrapper)
        return wrapper

    return decorator


def declared_access(callback) -> Access | None:
    """The access a URL's view declares: on a function view, or on a class view's class."""
    for holder in (callback, getattr(callback, "view_class", None), getattr(callback, "cls", None)):
        declared = getattr(holder, "access", None)
        if isinstance(declared, dict):
            return declared
    return None


class DeclaredAccess(BasePermission):
    """The user is one of the audience the view declares for this method."""

    def has_permission(self, request, view) -> bool:
        declared = getattr(view, "access", None)
        if not isinstance(declared, dict):
            return False  # a view that declares nothing admits nobody
        audience = audience_for(declared, request.method)
        anonymous = not request.user or not request.user.is_authenticated
        if anonymous and not (audience and audience.public):
            raise exceptions.NotAuthenticated  # credentials first, whatever the method
        if audience is None:
            # An undeclared method is not offered, even if the view has a handler for it.
            raise exceptions.MethodNotAllowed(request.method)
        return audience.admits(request.user)
