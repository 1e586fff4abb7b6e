"""The SQLite path of the importers (the demo's database): the real commands in a child
process on a fresh SQLite file, since the suite itself runs on PostgreSQL."""

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def manage(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    import os

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SHEPHERD_VAR_DIR": str(tmp_path / "var"),
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_RESULT_BACKEND": f"file://{tmp_path / 'results'}",
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        capture_output=True, text=True, cwd=ROOT, env=env, check=False,
    )  # fmt: skip


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def count(tmp_path: Path, model: str) -> int:
    script = f"from catalog.models import {model}; print({model}.objects.count())"
    return int(manage(tmp_path, "shell", "-c", script).stdout.strip().splitlines()[-1])


def test_the_importers_work_all_or_nothing_on_sqlite(tmp_path):
    assert manage(tmp_path, "migrate", "-v0").returncode == 0
    items = [
        {"id": f"item-{n}", "title": f"T{n}", "topics": ["a", "b"], "source": "s",
         "sensitivity": 1, "features": [0.5, n]}
        for n in range(1, 4)
    ]  # fmt: skip
    contexts = [{"id": "ctx-1", "user": "u", "segment": "casual", "audience": "adult",
                 "history": [{"item": "item-1", "event": "click"}]}]  # fmt: skip
    log = [{"context": "ctx-1", "slate": ["item-2", "item-1"], "clicks": [1], "reward": 1,
            "logging_policy": "p", "propensity": 0.5,
            "timestamp": "2026-11-02T10:15:00Z"}]  # fmt: skip

    for command, name, rows in [
        ("import_items", "items.jsonl", items),
        ("import_items", "items.jsonl", items),  # twice: one copy
        ("import_contexts", "ctx.jsonl", contexts),
        ("import_interactions", "log.jsonl", log),
    ]:
        done = manage(tmp_path, command, str(jsonl(tmp_path / name, rows)))
        assert done.returncode == 0, done.stderr

    assert count(tmp_path, "Item") == 3
    assert count(tmp_path, "ItemTopic") == 6
    assert count(tmp_path, "LoggedInteraction") == 1

    bad = log + [{**log[0], "slate": ["item-9", "item-1"]}]
    failed = manage(tmp_path, "import_interactions", str(jsonl(tmp_path / "bad.jsonl", bad)))
    assert failed.returncode == 1
    assert f"{tmp_path / 'bad.jsonl'}:2: slate: unknown item 'item-9'" in failed.stderr
    assert count(tmp_path, "LoggedInteraction") == 1


def test_seed_demo_builds_a_small_world_on_sqlite(tmp_path):
    assert manage(tmp_path, "migrate", "-v0").returncode == 0

    done = manage(tmp_path, "seed_demo", "--items", "300", "--users", "40", "--interactions", "500")

    assert done.returncode == 0, done.stderr
    assert count(tmp_path, "Item") == 300
    assert count(tmp_path, "UserContext") == 40
    assert count(tmp_path, "LoggedInteraction") == 500
    again = manage(tmp_path, "seed_demo", "--if-empty")
    assert "already has items" in again.stdout
    assert count(tmp_path, "LoggedInteraction") == 500
