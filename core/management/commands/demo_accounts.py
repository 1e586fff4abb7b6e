"""One demo account per role (and a superuser), created once; prints names and passwords.

Passwords are random, generated on the first run and kept in var/demo-accounts.json
(readable by its owner only), so every later run can print them again.
"""

import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction

from annotation.models import ReviewerProfile
from governance.roles import Role

ACCOUNTS: list[tuple[str, Role | None]] = [
    ("curator", Role.CURATOR),
    ("safety_reviewer", Role.SAFETY_REVIEWER),
    ("study_participant", Role.STUDY_PARTICIPANT),
    ("policy_admin", Role.POLICY_ADMIN),
    ("superuser", None),
]


class Command(BaseCommand):
    help = "Create the demo accounts (once) and print their names and passwords."

    def handle(self, *args, **options) -> None:
        store = Path(settings.VAR_DIR) / "demo-accounts.json"
        passwords = json.loads(store.read_text()) if store.exists() else {}
        with transaction.atomic():
            for username, role in ACCOUNTS:
                user = User.objects.filter(username=username).first()
                if user is None or username not in passwords:
                    passwords[username] = secrets.token_urlsafe(9)
                    user = _create_or_reset(username, role, passwords[username])
        store.write_text(json.dumps(passwords, indent=2))
        store.chmod(0o600)
        self.stdout.write("Demo accounts (username / password / role):")
        for username, role in ACCOUNTS:
            label = role.label if role else "Superuser (Django admin)"
            self.stdout.write(f"  {username:<18} {passwords[username]:<14} {label}")


def _create_or_reset(username: str, role: Role | None, password: str) -> User:
    user, _ = User.objects.get_or_create(username=username)
    user.set_password(password)
    user.is_staff = user.is_superuser = role is None
    user.save()
    if role is not None:
        user.groups.set([Group.objects.get_or_create(name=role.value)[0]])
    if role == Role.SAFETY_REVIEWER:  # so the demo has someone to adjudicate
        ReviewerProfile.objects.update_or_create(user=user, defaults={"skills": ["senior"]})
    return user
