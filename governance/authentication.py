"""Bearer tokens for the API (``Authorization: Bearer shp_…``)."""

import functools
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from governance.models import ApiToken
from governance.roles import remember_roles

# Recording each use would write on every request; once a minute is enough to tell
# owners which tokens are alive.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@functools.cache
def _token_query() -> tuple[str, list[str], list[str]]:
    """SELECT a live token, its user and the user's group names (one row per group)."""
    quote = connection.ops.quote_name
    user_model = get_user_model()
    memberships = user_model.groups.through._meta
    token_fields = [f.attname for f in ApiToken._meta.concrete_fields]
    user_fields = [f.attname for f in user_model._meta.concrete_fields]
    columns = [
        *(f"t.{quote(f.column)}" for f in ApiToken._meta.concrete_fields),
        *(f"u.{quote(f.column)}" for f in user_model._meta.concrete_fields),
        "g.name",
    ]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(ApiToken._meta.db_table)} t "
        f"JOIN {quote(user_model._meta.db_table)} u ON u.id = t.user_id "
        f"LEFT JOIN {quote(memberships.db_table)} ug ON ug.user_id = u.id "
        f"LEFT JOIN {quote(Group._meta.db_table)} g ON g.id = ug.group_id "
        "WHERE t.key_hash = %s AND t.revoked_at IS NULL"
    )
    return sql, token_fields, user_fields


def token_with_user(key_hash: str) -> ApiToken | None:
    """The live token with this hash, its user attached with their roles cached, or None.
    Every API request runs this: one hand-written query rather than the ORM's three
    (token, user, groups), as its compilation costs more than the query itself."""
    sql, token_fields, user_fields = _token_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, [key_hash])
        rows = cursor.fetchall()
    if not rows:
        return None
    first, split = rows[0], len(token_fields)
    token = ApiToken.from_db(connection.alias, token_fields, first[:split])
    user = get_user_model().from_db(connection.alias, user_fields, first[split:-1])
    token.user = user
    remember_roles(user, (row[-1] for row in rows if row[-1] is not None))
    return token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode().lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "The Authorization header must be 'Bearer <token>'."
            )
        secret = header[1].decode(errors="replace")
        token = token_with_user(ApiToken.hash_key(secret))
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "governance.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from your profile page.",
        }
