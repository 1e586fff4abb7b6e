"""The API: one error body everywhere, token authentication, pagination, a policy's life
through the API, the engine's verdict on a slate, and a schema that models every body."""

import numpy as np
import pytest
import yaml
from django.core.management import call_command
from django.test import Client

from catalog.models import Item, ItemTopic, Source, Topic, UserContext
from catalog.services import catalog_changed
from governance import services
from governance.models import AuditEvent, PolicyVersion

pytestmark = pytest.mark.django_db


def api(user=None, token: str | None = None) -> Client:
    client = Client(headers={"Authorization": f"Bearer {token}"} if token else {})
    if user is not None:
        client.force_login(user)
    return client


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    return body["error"]


# --- the error body ------------------------------------------------------------------------


def test_anonymous_requests_get_401_with_the_error_body():
    response = api().get("/api/v1/me/")

    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_forbidden_role_gets_403_with_the_error_body(curator):
    response = api(curator).post("/api/v1/criteria/", {}, content_type="application/json")

    assert response.status_code == 403
    assert error_of(response)["code"] == "permission_denied"


def test_invalid_input_names_each_field(policy_admin):
    response = api(policy_admin).post(
        "/api/v1/criteria/", {"slug": "not a slug", "weight": -1}, content_type="application/json"
    )

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"slug", "name", "description", "weight"}


def test_unknown_objects_and_urls_are_404_with_the_error_body(curator):
    assert error_of(api(curator).get("/api/v1/criteria/nope/"))["code"] == "not_found"
    missing = api(curator).get("/api/v1/no-such-endpoint/")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"


def test_a_method_a_view_does_not_declare_is_405(curator):
    response = api(curator).delete("/api/v1/criteria/")

    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


# --- tokens --------------------------------------------------------------------------------


def test_a_token_authenticates_until_revoked(curator):
    created = api(curator).post(
        "/api/v1/tokens/", {"name": "script"}, content_type="application/json"
    )
    secret = created.json()["secret"]

    me = api(token=secret).get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["username"] == "curator"
    assert me.json()["roles"] == ["curator"]

    revoked = api(curator).delete(f"/api/v1/tokens/{created.json()['id']}/")
    assert revoked.status_code == 204
    assert api(token=secret).get("/api/v1/me/").status_code == 401


def test_tokens_list_shows_only_mine_and_never_secrets(curator, safety_reviewer):
    services.token_create(user=safety_reviewer, name="theirs")
    api(curator).post("/api/v1/tokens/", {"name": "mine"}, content_type="application/json")

    listed = api(curator).get("/api/v1/tokens/").json()

    assert [t["name"] for t in listed] == ["mine"]
    assert "secret" not in listed[0]


def test_another_users_token_is_404_and_an_admin_may_revoke_it(
    curator, safety_reviewer, policy_admin
):
    token, _ = services.token_create(user=safety_reviewer, name="theirs")

    assert api(curator).delete(f"/api/v1/tokens/{token.pk}/").status_code == 404
    assert api(policy_admin).delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    token.refresh_from_db()
    assert token.revoked_by == policy_admin


def test_a_wrong_token_is_401():
    assert api(token="shp_not-a-real-token").get("/api/v1/me/").status_code == 401


# --- a policy's life ------------------------------------------------------------------------


@pytest.fixture
def little_catalog():
    source_a, source_b = (
        Source.objects.create(slug="a", name="A"),
        Source.objects.create(slug="b", name="B"),
    )
    cooking = Topic.objects.create(slug="cooking", name="Cooking")
    gambling = Topic.objects.create(slug="gambling", name="Gambling", sensitive=True)
    for n, (source, topic, sensitivity) in enumerate(
        [(source_a, cooking, 0), (source_b, cooking, 0), (source_a, gambling, 3)]
    ):
        item = Item.objects.create(
            external_id=f"item-{n}", title=f"Item {n}", source=source, sensitivity=sensitivity,
            features=np.zeros(2, "<f4").tobytes(),
        )  # fmt: skip
        ItemTopic.objects.create(item=item, topic=topic)
    catalog_changed()
    UserContext.objects.create(
        external_id="ctx-minor", user_ref="u", segment="teen", audience="minor"
    )


def test_a_policy_is_drafted_edited_published_and_frozen_through_the_api(
    policy_admin, little_catalog
):
    client = api(policy_admin)
    assert client.post("/api/v1/policies/", {"slug": "platform", "name": "Platform"},
                       content_type="application/json").status_code == 201  # fmt: skip
    assert client.post("/api/v1/policies/platform/versions/", {},
                       content_type="application/json").status_code == 201  # fmt: skip
    rules = [
        {"id": "minors", "kind": "forbidden_topics", "topics": ["gambling"], "audiences": ["minor"]}
    ]

    edited = client.patch(
        "/api/v1/policies/platform/versions/1/", {"rules": rules, "changelog": "protect minors"},
        content_type="application/json",
    )  # fmt: skip
    published = client.post("/api/v1/policies/platform/versions/1/publish/")
    frozen = client.patch(
        "/api/v1/policies/platform/versions/1/", {"rules": [], "changelog": "x"},
        content_type="application/json",
    )  # fmt: skip

    assert edited.status_code == 200
    assert edited.json()["problems"] == []
    assert published.json()["status"] == "published"
    assert frozen.status_code == 400
    assert "cannot change" in error_of(frozen)["message"]
    assert client.get("/api/v1/policies/platform/").json()["active_version"] == 1
    assert PolicyVersion.objects.get().rules == rules


def test_a_draft_with_bad_rules_lists_its_problems_and_cannot_publish(policy_admin):
    services.policy_create(actor=policy_admin, slug="platform", name="Platform")
    client = api(policy_admin)
    client.post("/api/v1/policies/platform/versions/", {
        "rules": [{"id": "x", "kind": "max_sensitivity", "level": 5}], "changelog": "bad",
    }, content_type="application/json")  # fmt: skip

    detail = client.get("/api/v1/policies/platform/versions/1/").json()
    refused = client.post("/api/v1/policies/platform/versions/1/publish/")

    assert detail["problems"] == ["rule 1 'x': level: must be from 0 to 3, got 5"]
    assert refused.status_code == 400
    assert error_of(refused)["fields"]["rules"] == detail["problems"]


def test_the_check_endpoint_gives_the_engines_verdict(policy_admin, curator, little_catalog):
    policy = services.policy_create(actor=policy_admin, slug="platform", name="Platform")
    draft = services.policy_version_create_draft(
        actor=policy_admin, policy=policy, changelog="v1",
        rules=[{"id": "minors", "kind": "forbidden_topics", "topics": ["gambling"],
                "audiences": ["minor"]},
               {"id": "sources", "kind": "min_distinct_sources", "count": 2},
               {"id": "sensitive", "kind": "sensitive_topic_penalty", "weight": 0.5}],
    )  # fmt: skip
    services.policy_version_publish(actor=policy_admin, version=draft)

    response = api(curator).post(
        "/api/v1/policies/platform/check/",
        {"context": "ctx-minor", "slate": ["item-0", "item-2"]},
        content_type="application/json",
    )

    verdict = response.json()
    assert response.status_code == 200
    assert verdict["allowed"] is False
    assert [v["rule"] for v in verdict["violations"]] == ["minors", "sources"]
    assert verdict["violations"][0]["items"] == ["item-2"]  # both items share source a
    assert verdict["penalty_terms"] == {"sensitive": 0.5}
    fine = api(curator).post(
        "/api/v1/policies/platform/check/", {"context": "ctx-minor", "slate": ["item-0", "item-1"]},
        content_type="application/json",
    ).json()  # fmt: skip
    assert fine["allowed"] is True


def test_the_check_endpoint_names_unknown_items_and_contexts(policy_admin, curator, little_catalog):
    services.policy_create(actor=policy_admin, slug="platform", name="Platform")
    unknown = api(curator).post(
        "/api/v1/policies/platform/check/", {"context": "ctx-404", "slate": ["item-0"]},
        content_type="application/json",
    )  # fmt: skip

    assert unknown.status_code == 400
    assert "unknown context" in error_of(unknown)["fields"]["context"][0]


# --- roles, audit, pagination ----------------------------------------------------------------


def test_roles_set_through_the_api_are_audited(policy_admin, curator):
    response = api(policy_admin).put(
        f"/api/v1/users/{curator.pk}/roles/", {"roles": ["curator", "safety_reviewer"]},
        content_type="application/json",
    )  # fmt: skip

    assert response.json()["roles"] == ["curator", "safety_reviewer"]
    event = AuditEvent.objects.get(action="user.roles")
    assert event.actor == policy_admin
    assert event.request_id  # the request's id, set by the middleware


def test_the_audit_log_filters_and_pages(policy_admin):
    for n in range(3):
        services.criterion_create(actor=policy_admin, slug=f"c{n}", name="C", description="d")
    services.policy_create(actor=policy_admin, slug="p", name="P")

    page = (
        api(policy_admin)
        .get("/api/v1/audit-events/", {"action": "criterion.create", "page_size": 2})
        .json()
    )

    assert page["count"] == 3
    assert len(page["results"]) == 2
    assert page["next"]
    assert {e["action"] for e in page["results"]} == {"criterion.create"}
    bad = api(policy_admin).get("/api/v1/audit-events/", {"since": "yesterday"})
    assert bad.status_code == 400
    assert "since" in error_of(bad)["fields"]


# --- the schema --------------------------------------------------------------------------------


def test_the_schema_is_valid_openapi_3_and_models_every_body(tmp_path, curator):
    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    schema = yaml.safe_load(path.read_text())

    assert schema["openapi"].startswith("3.")
    for route, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {route}"
            if method in ("post", "put", "patch") and operation.get("requestBody") is not None:
                assert "content" in operation["requestBody"], where
            successes = {c: r for c, r in operation["responses"].items() if c.startswith("2")}
            assert successes, where
            for code, response in successes.items():
                if code != "204":
                    assert "content" in response, f"{where} {code} has no modelled body"
            assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }
    assert api(curator).get("/api/schema/").status_code == 200
    docs = api(curator).get("/api/docs/")
    assert docs.status_code == 200
    assert "cdn" not in docs.text.lower()
