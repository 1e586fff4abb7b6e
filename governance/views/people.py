"""People and their roles (policy admins only). Role changes are audited."""

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from governance import services
from governance.access import POLICY_ADMINS, access
from governance.forms import RoleForm
from governance.roles import Role


@access(GET=POLICY_ADMINS)
def people_list(request: HttpRequest) -> HttpResponse:
    users = User.objects.order_by("username").prefetch_related("groups")
    query = request.GET.get("q", "").strip()
    if query:
        users = users.filter(username__icontains=query)
    page = Paginator(users, 50).get_page(request.GET.get("page"))
    rows = [(user, sorted(services.user_roles_of(user))) for user in page]
    return render(request, "governance/people/list.html", {"page": page, "rows": rows, "q": query})


@access(GET=POLICY_ADMINS, POST=POLICY_ADMINS)
def person_roles(request: HttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(User, pk=pk)
    current = [role.value for role in services.user_roles_of(person)]
    form = RoleForm(request.POST or None, initial={"roles": current})
    if request.method == "POST" and form.is_valid():
        roles = {Role(value) for value in form.cleaned_data["roles"]}
        services.user_roles_set(actor=request.user, user=person, roles=roles)
        messages.success(request, f"Saved the roles of {person.username}.")
        return redirect("governance:people_list")
    return render(request, "governance/people/roles.html", {"person": person, "form": form})


urlpatterns = [
    path("people/", people_list, name="people_list"),
    path("people/<int:pk>/roles/", person_roles, name="person_roles"),
]
