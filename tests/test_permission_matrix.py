"""The permission matrix, walked for every URL, method and role.

Every view declares who may use each method (governance.access). This test:
- fails when a URL declares nothing (or has no sample arguments below);
- for every declared method and every persona, sends the request and checks the answer:
  403 for a role the declaration excludes; for an allowed role, never 401/403/5xx, and
  2xx/3xx for reads;
- holds the README's table equal to `manage.py access_matrix`.
Object-level rules (another user's token, drafts) have their own tests in the apps.
"""

import re
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.urls import resolve
from django.utils import timezone

from annotation import demonstrations
from annotation.models import (
    Assignment,
    Comparison,
    Demonstration,
    QueueTask,
    TaskKind,
    TaskReason,
)
from catalog.models import Item, ItemTopic, Source, Topic, UserContext
from catalog.services import catalog_changed
from core.management.commands.access_matrix import markdown_table
from core.urlwalk import site_urls
from governance.access import audience_for, declared_access
from governance.models import (
    ApiToken,
    ContentPolicy,
    Criterion,
    Guideline,
    GuidelineVersion,
    PolicyVersion,
    VersionStatus,
)
from tests.conftest import make_user
from training.models import ModelKind, ModelVersion, RunTrigger, TrainingRun

ROOT = Path(__file__).resolve().parent.parent
PERSONAS = ["curator", "safety_reviewer", "study_participant", "policy_admin", "outsider"]
METHODS_WITH_BODY = {"POST", "PUT", "PATCH"}


@pytest.fixture
def world(db):
    """A little of everything the URLs point at; returns the URL arguments to use."""
    source = Source.objects.create(slug="s1", name="S1")
    topic = Topic.objects.create(slug="cooking", name="Cooking")
    items = []
    for n in range(3):
        item = Item.objects.create(
            external_id=f"item-{n}", title=f"Item {n}", source=source, sensitivity=n,
            features=np.zeros(2, "<f4").tobytes(),
        )  # fmt: skip
        ItemTopic.objects.create(item=item, topic=topic)
        items.append(item)
    catalog_changed()
    context = UserContext.objects.create(
        external_id="ctx-1", user_ref="u-1", segment="casual", audience="adult",
        history=[{"item": "item-0", "event": "click"}],
    )  # fmt: skip
    policy = ContentPolicy.objects.create(slug="platform", name="Platform")
    PolicyVersion.objects.create(
        policy=policy, number=1, status=VersionStatus.PUBLISHED, published_at="2026-01-01T00:00Z",
        rules=[{"id": "minors", "kind": "max_sensitivity", "audience": "minor", "level": 1}],
        changelog="v1",
    )  # fmt: skip
    PolicyVersion.objects.create(policy=policy, number=2, rules=[], changelog="")
    guideline = Guideline.objects.create(slug="general", title="General")
    GuidelineVersion.objects.create(
        guideline=guideline, number=1, status=VersionStatus.PUBLISHED, body="# Be kind",
        changelog="v1", published_at="2026-01-01T00:00Z",
    )  # fmt: skip
    owner = make_user("token-owner")
    token = ApiToken.objects.create(user=owner, name="t", prefix="shp_x", key_hash="0" * 64)
    slates = {"slate_a": [items[0].pk, items[1].pk], "slate_b": [items[2].pk]}

    def owned_assignment(user) -> int:
        """A live lease of a compare task by the persona (leases are per person)."""
        task = QueueTask.objects.create(
            kind=TaskKind.COMPARE, reason=TaskReason.MANUAL, context=context, leased_count=1,
            **slates,
        )  # fmt: skip
        now = timezone.now()
        return Assignment.objects.create(
            task=task, reviewer=user, leased_at=now, expires_at=now + timedelta(minutes=5),
            heartbeat_at=now,
        ).pk  # fmt: skip

    def owned_comparison(user) -> int:
        judgments = dict.fromkeys(Criterion.objects.values_list("slug", flat=True), "tie")
        return Comparison.objects.create(
            reviewer=user, context=context, channel="curation", left="a", judgments=judgments,
            confidence=3, client_token=uuid.uuid4(), **slates,
        ).pk  # fmt: skip

    def a_task(user) -> int:
        return QueueTask.objects.create(
            kind=TaskKind.COMPARE, reason=TaskReason.MANUAL, context=context, **slates
        ).pk

    def owned_demonstration(user) -> int:
        return Demonstration.objects.create(
            reviewer=user, context=context, channel="curation", client_token=uuid.uuid4()
        ).pk

    def owned_draft(user) -> int:
        return demonstrations.draft_open(reviewer=user, context=context).pk

    run = TrainingRun.objects.create(kind=ModelKind.REWARD, trigger=RunTrigger.ADMIN)
    model = ModelVersion.objects.create(
        kind=ModelKind.REWARD, version=1, run=run, dataset_hash="0" * 64,
        metrics={"accuracy": 0.8, "ece": 0.01}, gate={"passed": True, "reasons": []},
        artifact_path="reward/v1.pt", artifact_sha256="0" * 64,
    )  # fmt: skip

    return {
        "pk": {
            "item": items[0].pk,
            "context": context.pk,
            "token": token.pk,
            "person": owner.pk,
            "assignment": owned_assignment,
            "comparison": owned_comparison,
            "draft": owned_draft,
            "demonstration": owned_demonstration,
            "self": lambda user: user.pk,
            "task": a_task,
            "run": run.pk,
            "model": model.pk,
        },
        "slug": {
            "criteria": "safety",
            "policies": "platform",
            "guidelines": "general",
            "topics": "cooking",
        },
        "number": 1,
        "kind": ModelKind.REWARD,
    }


def _kwargs(route: str, params: list[str], world: dict, user) -> dict:
    """Sample arguments for a route, chosen by the area the URL belongs to; objects that
    belong to someone are made for the persona asking."""
    kwargs = {}
    for name in params:
        if name in ("number", "kind"):
            kwargs[name] = world[name]
        elif name == "slug":
            area = next((a for a in world["slug"] if f"/{a}/" in route), None)
            assert area, f"{route}: add a sample slug for it to the matrix test"
            kwargs[name] = world["slug"][area]
        elif name == "pk":
            kind = next((kind for part, kind in PK_AREAS.items() if part in route), None)
            assert kind, f"{route}: add a sample primary key for it to the matrix test"
            sample = world["pk"][kind]
            kwargs[name] = sample(user) if callable(sample) else sample
        else:
            raise AssertionError(f"{route}: no sample value for <{name}>")
    return kwargs


PK_AREAS = {
    "/items/": "item", "/contexts/": "context", "/tokens/": "token", "/people/": "person",
    "/users/": "person", "/assignments/": "assignment", "/comparisons/": "comparison",
    "/drafts/": "draft", "/demonstrate/context/": "context", "/demonstrations/": "demonstration",
    "/reviewers/": "self", "/quality/tasks/": "task", "/training/runs/": "run",
    "/training/models/": "model",
}  # fmt: skip


def declared_cases() -> list[tuple[str, str, str]]:
    """(url name, route, method) for every declared method of every URL."""
    cases = []
    for url in site_urls():
        if url.path.startswith("/admin/"):
            continue
        declared = declared_access(resolve(url.path).func)
        if declared is None:
            continue
        cases.extend((url.name, url.route, method) for method in declared)
    return cases


def test_every_url_declares_who_may_use_it():
    undeclared = [
        url.route
        for url in site_urls()
        if not url.path.startswith("/admin/") and declared_access(resolve(url.path).func) is None
    ]
    assert undeclared == []


def test_the_readme_table_is_the_declared_matrix():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, (
        "run `python manage.py access_matrix` and paste into the README"
    )


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(("name", "route", "method"), declared_cases())
def test_each_role_gets_what_the_matrix_declares(
    client, request, world, persona, name, route, method
):
    user = request.getfixturevalue(persona)
    client.force_login(user)
    path = _path(route, world, user)
    declared = declared_access(resolve(path).func)
    allowed = audience_for(declared, method).admits(user)

    response = _send(client, method, path)

    if allowed:
        assert response.status_code not in (401, 403), f"{persona} {method} {path}"
        assert response.status_code < 500, f"{persona} {method} {path}: {response.status_code}"
        if method == "GET":
            assert response.status_code < 400, f"{persona} GET {path}: {response.status_code}"
    else:
        assert response.status_code == 403, f"{persona} {method} {path}: {response.status_code}"


def _path(route: str, world: dict, user) -> str:
    params = re.findall(r"<(?:\w+:)?(\w+)>", route)
    kwargs = _kwargs(route, params, world, user)
    for name, value in kwargs.items():
        route = re.sub(rf"<(?:\w+:)?{name}>", str(value), route)
    return route


def _send(client, method: str, path: str):
    if path.startswith("/api/"):
        body = {} if method in METHODS_WITH_BODY else None
        return getattr(client, method.lower())(path, data=body, content_type="application/json")
    return getattr(client, method.lower())(path)
