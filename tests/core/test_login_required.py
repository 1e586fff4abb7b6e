"""Every page and endpoint requires login: walking the whole URL configuration, an
anonymous request gets a redirect to a login page or 401/403, except the few pages that
must answer anonymously."""

import pytest
from django.conf import settings
from django.urls import reverse

from core.urlwalk import site_urls

# Pages that answer anonymous visitors, and why.
PUBLIC = {
    "login": "the login page itself",
    "health": "for load balancers; reveals no data",
}
ADMIN_LOGIN = "/admin/login/"


def _login_paths() -> set[str]:
    return {reverse(settings.LOGIN_URL), ADMIN_LOGIN}


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_every_url_but_login_and_health_turns_anonymous_visitors_away(client, method):
    walked = 0
    for url in site_urls():
        if url.name in PUBLIC or url.path.startswith(ADMIN_LOGIN):
            continue
        response = getattr(client, method)(url.path)
        walked += 1
        if response.status_code in (301, 302):
            target = response["Location"].split("?")[0]
            assert target in _login_paths(), f"{url.route} redirects to {target}"
        else:
            assert response.status_code in (401, 403), (
                f"{url.route} answered {response.status_code}"
            )
    assert walked > 20  # the admin alone has dozens: the walk really ran


@pytest.mark.django_db
def test_the_public_pages_answer_anonymous_visitors(client):
    assert client.get(reverse("login")).status_code == 200
    assert client.get(reverse("health")).status_code == 200


def test_every_public_name_still_exists():
    names = {url.name for url in site_urls()}
    assert set(PUBLIC) <= names
