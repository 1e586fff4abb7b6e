"""A real round trip: this process sends a task, a separate worker process runs it
against the test database, and the result comes back, through Redis and through the
embedded filesystem broker the demo uses."""

import json
import subprocess
import sys

import pytest

from catalog.importing.importers import import_records
from config.celery import app
from tests.workers import child_environment, worker_process

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROUND_TRIP_SECONDS = 60  # generous: the worker starts Django first


def _two_items():
    import_records(
        "items",
        "test",
        [
            {"id": f"item-{n}", "title": "T", "source": "s", "sensitivity": 0, "features": [1.0]}
            for n in (1, 2)
        ],
    )


def test_a_task_round_trips_through_redis_and_a_worker_process():
    _two_items()
    with worker_process() as (queue, _process):
        result = app.send_task("core.tasks.ping", args=[41], queue=queue)

        assert result.get(timeout=ROUND_TRIP_SECONDS) == {"echo": 41, "items": 2}


# The client runs in its own process too: Celery reads CELERY_BROKER_URL from the
# environment on every access, so switching this process to the filesystem broker would
# leave its connection pool pointing there for the tests that follow.
CLIENT = """
import json, sys
from celery import Celery
queue, broker = sys.argv[1:]
client = Celery("embedded-client")
client.conf.broker_transport_options = {
    "data_folder_in": f"{broker}/queue", "data_folder_out": f"{broker}/queue",
    "control_folder": f"{broker}/control",
}
print(json.dumps(client.send_task("core.tasks.ping", args=[7], queue=queue).get(timeout=60)))
"""


def test_a_task_round_trips_through_the_embedded_filesystem_broker(tmp_path):
    _two_items()
    env = {
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_RESULT_BACKEND": f"file://{tmp_path / 'results'}",
        "SHEPHERD_VAR_DIR": str(tmp_path),
    }
    broker = tmp_path / "broker"
    for path in (broker / "queue", broker / "control", tmp_path / "results"):
        path.mkdir(parents=True)
    with worker_process(**env) as (queue, _process):
        client = subprocess.run(
            [sys.executable, "-c", CLIENT, queue, str(broker)], cwd=tmp_path,
            env=child_environment(**env), capture_output=True, text=True,
            timeout=ROUND_TRIP_SECONDS + 30,
        )  # fmt: skip

    assert client.returncode == 0, client.stderr
    assert json.loads(client.stdout) == {"echo": 7, "items": 2}
