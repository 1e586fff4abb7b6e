"""Pages: profile. Who I am, my roles and my API tokens; policy admins also see every
active token and may revoke any."""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers

from core.web import safe_next
from governance import services
from governance.access import ANY_USER, POLICY_ADMINS, access
from governance.models import ApiToken
from governance.roles import user_roles


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. “labeling script”")


@access(GET=ANY_USER, POST=ANY_USER)
def profile(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST) if request.method == "POST" else TokenForm()
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            token, secret = services.token_create(user=request.user, name=form.cleaned_data["name"])
        except ValidationError as error:
            form.add_error(None, error.messages)
        else:
            # Rendered, never redirected: the secret is shown in this response only.
            me_url = request.build_absolute_uri(reverse("api-me"))
            created = {"token": token, "secret": secret, "me_url": me_url}
            form = TokenForm()
    context = {
        "roles": sorted(user_roles(request.user)),
        "tokens": ApiToken.objects.filter(user=request.user),
        "form": form,
        "created": created,
    }
    response = render(request, "governance/profile/profile.html", context)
    add_never_cache_headers(response)
    return response


@access(POST=ANY_USER)
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Owners revoke their own tokens, policy admins anyone's; for everyone else another
    user's token is as missing as a token that does not exist."""
    token = ApiToken.objects.filter(pk=pk).first()
    if token is None or not services.token_owner_may_manage(actor=request.user, token=token):
        raise Http404
    services.token_revoke(actor=request.user, token=token)
    messages.success(request, f"Revoked the token {token.prefix}… ({token.name}).")
    return redirect(safe_next(request) or reverse("governance:profile"))


@access(GET=POLICY_ADMINS)
def token_list_all(request: HttpRequest) -> HttpResponse:
    tokens = (
        ApiToken.objects.filter(revoked_at__isnull=True)
        .select_related("user")
        .order_by("user__username", "-created_at")
    )
    return render(request, "governance/profile/token_list_all.html", {"tokens": tokens})


urlpatterns = [
    path("profile/", profile, name="profile"),
    path("profile/tokens/<int:pk>/revoke/", token_revoke, name="token_revoke"),
    path("tokens/", token_list_all, name="token_list_all"),
]
