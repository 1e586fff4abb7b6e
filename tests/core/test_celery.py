"""A real round trip: this process sends a task, a separate worker process runs it
against the test database, and the result comes back, through Redis and through the
embedded filesystem broker the demo uses."""

import pytest
from celery import Celery

from catalog.importing.importers import import_records
from config.celery import app
from tests.workers import worker_process

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


def test_a_task_round_trips_through_the_embedded_filesystem_broker(tmp_path, monkeypatch):
    _two_items()
    env = {
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_RESULT_BACKEND": f"file://{tmp_path / 'results'}",
        "SHEPHERD_VAR_DIR": str(tmp_path),
    }
    for name, value in env.items():  # Celery lets these variables override any app's conf
        monkeypatch.setenv(name, value)
    folder = tmp_path / "broker" / "queue"
    for path in (folder, tmp_path / "results"):
        path.mkdir(parents=True)
    with worker_process(**env) as (queue, _process):
        client = Celery("embedded-client")
        client.conf.broker_transport_options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
        }
        result = client.send_task("core.tasks.ping", args=[7], queue=queue)

        assert result.get(timeout=ROUND_TRIP_SECONDS) == {"echo": 7, "items": 2}
