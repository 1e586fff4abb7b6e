"""Fixtures shared by the whole suite: personas, one per role, and factories."""

from typing import TYPE_CHECKING

import pytest

from governance.roles import Role

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PASSWORD = "correct horse battery staple"


def make_user(username: str, *roles: Role, superuser: bool = False) -> "User":
    from django.contrib.auth.models import Group, User

    if superuser:
        user = User.objects.create_superuser(username, f"{username}@example.test", PASSWORD)
    else:
        user = User.objects.create_user(username, f"{username}@example.test", PASSWORD)
    for role in roles:
        # get_or_create: transactional tests flush the groups the migration made.
        user.groups.add(Group.objects.get_or_create(name=role.value)[0])
    return user


@pytest.fixture
def curator(db) -> "User":
    return make_user("curator", Role.CURATOR)


@pytest.fixture
def safety_reviewer(db) -> "User":
    return make_user("safety", Role.SAFETY_REVIEWER)


@pytest.fixture
def study_participant(db) -> "User":
    return make_user("participant", Role.STUDY_PARTICIPANT)


@pytest.fixture
def policy_admin(db) -> "User":
    return make_user("admin", Role.POLICY_ADMIN)


@pytest.fixture
def outsider(db) -> "User":
    """Logged in, but holds no role."""
    return make_user("outsider")


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test starts with nothing cached from the one before it (what is in force,
    queue settings): a test's database is new, its process-wide caches are not."""
    from core.cache import clear_all

    clear_all()
    yield
    clear_all()
