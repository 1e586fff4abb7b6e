"""A run's page in a real browser: the epoch and the loss curve update while the run
trains (htmx polling), and the polling stops once the run has ended."""

import time

import pytest

from governance.roles import Role
from tests.browser.test_labeling_flow import log_in
from tests.conftest import make_user
from training.models import ModelKind, RunStatus, RunTrigger, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUIET_SECONDS = 5  # longer than two polling intervals


def test_the_run_page_follows_the_run_and_stops_polling_when_it_ends(page, live_server, screenshot):
    make_user("watcher", Role.CURATOR)
    run = TrainingRun.objects.create(
        kind=ModelKind.REWARD, trigger=RunTrigger.LABELS, status=RunStatus.RUNNING,
        progress={"stage": "training", "epoch": 1, "epochs": 60, "eta_seconds": 90,
                  "losses": [[1, 0.9]]},
    )  # fmt: skip
    polls = []
    page.on("request", lambda r: polls.append(r.url) if "/progress/" in r.url else None)
    log_in(page, live_server, "watcher")
    page.goto(f"{live_server.url}/training/runs/{run.pk}/")
    page.wait_for_selector("#run-epoch:has-text('1')")

    losses = [[epoch, 0.9 - 0.1 * epoch] for epoch in range(1, 6)]
    TrainingRun.objects.filter(pk=run.pk).update(
        progress={"stage": "training", "epoch": 5, "epochs": 60, "eta_seconds": 60,
                  "losses": losses}
    )  # fmt: skip
    page.wait_for_selector("#run-epoch:has-text('5')")
    points = page.get_attribute("#run-progress polyline", "points")
    screenshot("training")
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    page.wait_for_selector("#run-status:has-text('succeeded')")
    screenshot("finished")
    polls_when_finished = len(polls)
    time.sleep(QUIET_SECONDS)

    assert len(points.split()) == 5  # one point per epoch of the curve
    assert polls_when_finished >= 2
    assert len(polls) == polls_when_finished  # the finished fragment no longer polls
