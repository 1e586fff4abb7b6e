"""Shared set-up for benchmarks: a fresh PostgreSQL database, Django configured for it,
and child processes measured on their own (wall time and peak memory)."""

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_URL = "postgres://postgres:postgres@127.0.0.1:5432/postgres"


def fresh_database(name: str, admin_url: str = DEFAULT_ADMIN_URL) -> str:
    """Drop and re-create database ``name``; return its URL."""
    import psycopg

    with psycopg.connect(
        admin_url.replace("postgres://", "postgresql://"), autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def django_setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def manage(*args: str, database_url: str) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        check=True,
        env={**os.environ, "DATABASE_URL": database_url},
        cwd=ROOT,
    )


@dataclass(frozen=True)
class ChildRun:
    seconds: float
    peak_rss_mb: float
    returncode: int


def run_measured(script: Path, args: list[str], env: dict[str, str]) -> ChildRun:
    """Run a Python script in a child process: its wall time and its own peak memory."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "peak.json"
        command = [sys.executable, str(ROOT / "bench" / "measured.py"), str(report), str(script)]
        started = time.monotonic()
        completed = subprocess.run([*command, *args], env=env, cwd=ROOT, check=False)
        seconds = time.monotonic() - started
        peak = json.loads(report.read_text())["peak_rss_mb"] if report.exists() else float("nan")
    return ChildRun(seconds, peak, completed.returncode)


def emit(result: dict) -> None:
    """Every benchmark ends by printing one JSON line."""
    print(json.dumps(result), flush=True)
