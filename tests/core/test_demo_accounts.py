import io
import json
import stat

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from governance.roles import user_roles

pytestmark = pytest.mark.django_db


def run(settings, tmp_path) -> str:
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command("demo_accounts", stdout=out)
    return out.getvalue()


def test_it_creates_one_account_per_role_that_can_log_in(settings, tmp_path):
    output = run(settings, tmp_path)

    passwords = json.loads((tmp_path / "demo-accounts.json").read_text())
    assert set(passwords) == {
        "curator", "safety_reviewer", "study_participant", "policy_admin", "superuser",
    }  # fmt: skip
    for username, password in passwords.items():
        assert f"{username:<18} {password}" in output
        user = authenticate(username=username, password=password)
        assert user is not None, username
    assert {
        r.value for r in user_roles(authenticate(username="curator", password=passwords["curator"]))
    } == {"curator"}
    assert stat.S_IMODE((tmp_path / "demo-accounts.json").stat().st_mode) == 0o600


def test_a_second_run_keeps_the_passwords(settings, tmp_path):
    first = run(settings, tmp_path)
    second = run(settings, tmp_path)

    assert first == second
