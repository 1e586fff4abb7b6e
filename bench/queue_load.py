"""The labeling queue under real load, through HTTP.

    python bench/queue_load.py [--tasks 1000000] [--reviewers 32] [--seconds 30]
                               [--rate 50] [--workers 3] [--threads 8]

Starts the app under gunicorn on 127.0.0.1 against a fresh PostgreSQL database, seeds
TASKS open comparison tasks and REVIEWERS curator accounts (each with an API token, the
guidelines acknowledged), then runs two phases through the API, each bounded in time:
- saturation: REVIEWERS concurrent clients, each looping next task → submit, no pause;
- paced: arrivals at RATE labels/s (as if 250 reviewers each labeled every 5 s), each a
  next task → submit by a reviewer not busy with another arrival.
Then it checks the database: no lease held twice, no task over its overlap, every
submission the clients were told was stored is there. It stops everything it started.
Prints one JSON line last: {"tasks", "reviewers", "saturation_labels_per_s", "paced_rate",
"paced_next_p50_ms", "paced_next_p95_ms", "paced_next_p99_ms", "paced_submit_p50_ms",
"paced_submit_p95_ms", "paced_submit_p99_ms", "errors", "duplicate_leases",
"over_overlap", "lost_submissions"}.
"""

import argparse
import http.client
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, django_setup, emit, fresh_database, manage

HOST = "127.0.0.1"
JUDGMENTS = {"safety": "tie", "relevance": "a", "diversity": "b", "overall": "a"}
REQUEST_TIMEOUT = 30


# --- seeding ---------------------------------------------------------------------------


def seed(tasks: int, reviewers: int) -> list[str]:
    """The demo catalog, TASKS open comparison tasks (by COPY), reviewers with tokens."""
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from catalog.demo import seed_demo_world
    from catalog.models import Item, UserContext
    from governance.demo import seed_governance
    from governance.models import GuidelineVersion, VersionStatus
    from governance.services import guideline_acknowledge, token_create
    from training.ml.simulator import SimConfig, Simulator

    sim = Simulator(SimConfig(n_items=2000, n_users=500), seed=0)
    seed_demo_world(sim=sim, interactions=0, rng=np.random.default_rng(0))
    seed_governance()
    items = np.array(Item.objects.values_list("pk", flat=True))
    contexts = np.array(UserContext.objects.values_list("pk", flat=True))
    _copy_tasks(connection, tasks, items, contexts, np.random.default_rng(1))
    curators = Group.objects.get(name="curator")
    published = list(GuidelineVersion.objects.filter(status=VersionStatus.PUBLISHED))
    secrets = []
    for n in range(reviewers):
        user = User.objects.create_user(f"load-reviewer-{n}", password=None)
        user.groups.add(curators)
        for version in published:
            guideline_acknowledge(user=user, version=version)
        secrets.append(token_create(user=user, name="load")[1])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE annotation_queuetask")
    return secrets


def _copy_tasks(connection, count: int, items, contexts, rng) -> None:
    columns = (
        "kind, reason, status, audience, skills, context_id, slate_a, slate_b, priority, "
        "overlap_target, labels_count, leased_count, created_at, note"
    )
    statement = f"COPY annotation_queuetask ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for start in range(0, count, 50_000):
            size = min(50_000, count - start)
            slates = np.stack([rng.choice(items, 10, replace=False) for _ in range(size)])
            chosen = rng.choice(contexts, size)
            priorities = rng.integers(0, 1000, size)
            buffer = io.StringIO()
            for row in range(size):
                a = json.dumps(slates[row, :5].tolist())
                b = json.dumps(slates[row, 5:].tolist())
                buffer.write(
                    f"compare\taudit\topen\tlabeler\t[]\t{chosen[row]}\t{a}\t{b}\t"
                    f"{priorities[row]}\t1\t0\t0\t2026-12-01T00:00:00+00:00\t\n"
                )
            copy.write(buffer.getvalue())


# --- the server ----------------------------------------------------------------------------


def start_server(database_url: str, port: int, workers: int, threads: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"{HOST}:{port}",
            "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
            "--log-level", "warning", "--keep-alive", "30",
        ],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/health/")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    stop_server(server)
    raise SystemExit("gunicorn did not answer /health/ within 60 s")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# --- clients -------------------------------------------------------------------------------


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    labels: int = 0
    errors: list = field(default_factory=list)
    next_ms: list = field(default_factory=list)
    submit_ms: list = field(default_factory=list)
    stored_tokens: list = field(default_factory=list)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)


class Client:
    """One reviewer's keep-alive connection to the API."""

    def __init__(self, port: int, secret: str):
        self.port = port
        self.headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        self.connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)

    def post(self, path: str, body: dict) -> tuple[int, dict | None, float]:
        started = time.perf_counter()
        for attempt in range(2):  # a closed keep-alive connection is reopened once
            try:
                self.connection.request("POST", path, json.dumps(body), self.headers)
                response = self.connection.getresponse()
                raw = response.read()
                break
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = http.client.HTTPConnection(
                    HOST, self.port, timeout=REQUEST_TIMEOUT
                )
                if attempt:
                    raise
        elapsed = (time.perf_counter() - started) * 1000
        return response.status, (json.loads(raw) if raw else None), elapsed

    def label_once(self, tally: Tally) -> bool:
        """next → submit; False when the queue had nothing."""
        status, body, next_ms = self.post("/api/v1/assignments/next/", {"kinds": ["compare"]})
        if status == 204:
            return False
        if status not in (200, 201):
            tally.error(f"next {status}")
            return True
        token = str(uuid.uuid4())
        payload = {"judgments": JUDGMENTS, "confidence": 3, "client_token": token}
        status, _, submit_ms = self.post(f"/api/v1/assignments/{body['id']}/comparison/", payload)
        with tally.lock:
            tally.next_ms.append(next_ms)
            tally.submit_ms.append(submit_ms)
            if status in (200, 201):
                tally.labels += 1
                tally.stored_tokens.append(token)
            else:
                tally.errors.append(f"submit {status}")
        return True


def saturation(port: int, secrets: list[str], seconds: float) -> tuple[Tally, float]:
    tally = Tally()
    deadline = time.monotonic() + seconds

    def loop(secret: str) -> None:
        client = Client(port, secret)
        while time.monotonic() < deadline:
            try:
                if not client.label_once(tally):
                    return
            except Exception as error:  # counted, the run goes on
                tally.error(repr(error))

    started = time.monotonic()
    threads = [threading.Thread(target=loop, args=(s,)) for s in secrets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally, time.monotonic() - started


def paced(port: int, secrets: list[str], seconds: float, rate: float) -> Tally:
    tally = Tally()
    free: queue.Queue = queue.Queue()
    for secret in secrets:
        free.put(Client(port, secret))
    arrivals: queue.Queue = queue.Queue()

    def worker() -> None:
        while arrivals.get() is not None:
            try:
                client = free.get(timeout=REQUEST_TIMEOUT)
            except queue.Empty:
                tally.error("no free reviewer")
                continue
            try:
                client.label_once(tally)
            except Exception as error:
                tally.error(repr(error))
            finally:
                free.put(client)

    workers = [threading.Thread(target=worker) for _ in range(len(secrets))]
    for thread in workers:
        thread.start()
    started = time.monotonic()
    for n in range(int(seconds * rate)):
        time.sleep(max(0.0, started + n / rate - time.monotonic()))
        arrivals.put(n)
    for _ in workers:
        arrivals.put(None)
    for thread in workers:
        thread.join()
    return tally


# --- checks ----------------------------------------------------------------------------------


def database_checks(tokens: list[str]) -> dict[str, int]:
    from django.db.models import Count, F

    from annotation.models import Assignment, AssignmentState, Comparison, QueueTask

    live = (
        Assignment.objects.filter(state=AssignmentState.LEASED)
        .values("task", "reviewer")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    over = QueueTask.objects.filter(
        labels_count__gt=F("overlap_target") - F("leased_count")
    ).count()
    labels_over = (
        Comparison.objects.values("task").annotate(n=Count("id")).filter(n__gt=1).count()
    )  # overlap is 1 here: two labels on one task would be one too many
    stored = {
        str(t)
        for t in Comparison.objects.filter(client_token__in=tokens).values_list(
            "client_token", flat=True
        )
    }
    return {
        "duplicate_leases": live,
        "over_overlap": over + labels_over,
        "lost_submissions": len(set(tokens) - stored),
    }


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--reviewers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--database", default="shepherd_bench_queue")
    args = parser.parse_args()

    database_url = fresh_database(args.database)
    manage("migrate", "-v0", database_url=database_url)
    django_setup(database_url)
    print(f"seeding {args.tasks:,} tasks …", file=sys.stderr)
    secrets = seed(args.tasks, args.reviewers)
    server = start_server(database_url, args.port, args.workers, args.threads)
    try:
        print("saturation …", file=sys.stderr)
        busy, elapsed = saturation(args.port, secrets, args.seconds)
        print(f"  {busy.labels} labels in {elapsed:.1f} s; paced …", file=sys.stderr)
        steady = paced(args.port, secrets, args.seconds, args.rate)
    finally:
        stop_server(server)
    checks = database_checks(busy.stored_tokens + steady.stored_tokens)
    errors = busy.errors + steady.errors
    if errors:
        print(f"errors (first 5): {errors[:5]}", file=sys.stderr)
    emit(
        {
            "tasks": args.tasks,
            "reviewers": args.reviewers,
            "saturation_labels_per_s": round(busy.labels / elapsed, 1),
            "paced_rate": args.rate,
            "paced_labels": steady.labels,
            "paced_next_p50_ms": percentile(steady.next_ms, 50),
            "paced_next_p95_ms": percentile(steady.next_ms, 95),
            "paced_next_p99_ms": percentile(steady.next_ms, 99),
            "paced_submit_p50_ms": percentile(steady.submit_ms, 50),
            "paced_submit_p95_ms": percentile(steady.submit_ms, 95),
            "paced_submit_p99_ms": percentile(steady.submit_ms, 99),
            "errors": len(errors),
            **checks,
        }
    )


if __name__ == "__main__":
    main()
