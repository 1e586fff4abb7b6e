"""A real Celery worker process for integration tests, on the test database."""

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """The URL of the database the tests run on (pytest-django's test_… database)."""
    s = connection.settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD'] or ''}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def child_environment(**overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": test_database_url(),
    }
    env.update(overrides)
    return env


@contextmanager
def worker_process(
    *, queue: str | None = None, **env: str
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start ``celery worker`` consuming one private queue; stop it afterwards.
    Yields (queue name, process)."""
    queue = queue or f"test-{uuid.uuid4().hex[:8]}"
    loglevel = os.environ.get("TEST_WORKER_LOGLEVEL", "WARNING")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--queues", queue, "--concurrency", "1", "--loglevel", loglevel,
            "--without-mingle", "--without-gossip", "--hostname", f"{queue}@%h",
        ],
        cwd=ROOT,
        env=child_environment(**env),
        start_new_session=True,  # its own process group: stopped with its children
    )  # fmt: skip
    try:
        yield queue, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
