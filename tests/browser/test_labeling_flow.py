"""A reviewer's session in a real browser: log in, three comparisons by keyboard alone
(each next card without a page load), a two-step demonstration that survives a reload,
and the rows it leaves in the database."""

import pytest

from annotation.models import Comparison, Demonstration, QueueTask, TaskKind, TaskReason
from governance.roles import Role
from tests.annotation.factories import compare_tasks, ensure_criteria, small_catalog
from tests.conftest import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def reviewer():
    ensure_criteria()
    context, items = small_catalog(n_items=12)
    compare_tasks(context, items, 4)
    QueueTask.objects.create(kind=TaskKind.DEMONSTRATE, reason=TaskReason.MANUAL, context=context)
    return make_user("reviewer", Role.CURATOR)


# safety tie, relevance A, diversity B, overall A, confidence 4
ANSWER_KEYS = ["3", "1", "2", "1", "4"]
NEW_CARD = """old => {
    const card = document.getElementById("card");
    return card && card.dataset.assignment !== old;
}"""


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.press("#id_password", "Enter")
    page.wait_for_url(f"{live_server.url}/")


def test_three_comparisons_by_keyboard_alone(page, live_server, reviewer, screenshot):
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/label/compare/")
    page.wait_for_selector("#card[data-assignment]")
    page.evaluate("window.__samePage = true")  # a full page load would forget this
    screenshot("compare")

    seen = []
    for _ in range(3):
        assignment = page.get_attribute("#card", "data-assignment")
        seen.append(assignment)
        page.wait_for_timeout(300)  # let the next card's prefetch start
        for key in ANSWER_KEYS:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        page.wait_for_function(NEW_CARD, arg=assignment)

    assert page.evaluate("window.__samePage") is True
    screenshot("after-three")
    stored = list(Comparison.objects.filter(reviewer=reviewer).order_by("pk"))
    assert len(stored) == 3
    assert [str(c.assignment_id) for c in stored] == seen
    for comparison in stored:
        assert comparison.judgments["safety"] == "tie"
        assert comparison.judgments["relevance"] == comparison.left
        assert comparison.confidence == 4
        assert comparison.time_spent_ms > 0


def test_an_empty_comparison_page_shows_the_task_that_arrives(page, live_server, screenshot):
    ensure_criteria()
    make_user("waiting", Role.CURATOR)
    log_in(page, live_server, "waiting")
    page.goto(f"{live_server.url}/label/compare/")
    page.wait_for_selector("#waiting")
    screenshot("waiting")

    context, items = small_catalog(n_items=12)
    compare_tasks(context, items, 1)
    # The card checks every 30 s; the test fires the same check at once.
    page.dispatch_event("#waiting", "queue-check")

    page.wait_for_selector("#card[data-assignment]")
    assert page.get_attribute("#card", "data-task") == str(QueueTask.objects.get().pk)
    screenshot("arrived")


def test_a_two_step_demonstration_survives_a_reload(page, live_server, reviewer, screenshot):
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/label/demonstrate/")
    page.wait_for_selector("#candidates .candidate")
    builder_url = page.url

    for key in ["j", "a", "j", "a"]:  # first two candidates into the slate
        page.keyboard.press(key)
    page.keyboard.press("j")
    page.keyboard.press("x")
    page.keyboard.press("2")  # reject the third as irrelevant
    page.click("#step-rationale")
    page.keyboard.type("Two cooking picks for a casual cook.")
    page.keyboard.press("Escape")
    page.wait_for_selector("#save-status:has-text('All changes saved.')")
    screenshot("builder-step-1")

    page.reload()
    page.wait_for_selector("#slate li")
    assert page.url == builder_url
    assert page.locator("#slate li").count() == 2
    assert page.input_value("#step-rationale") == "Two cooking picks for a casual cook."
    assert page.locator("#rejected li").count() == 1

    page.keyboard.press("n")
    page.wait_for_selector("#step-number:has-text('2')")
    page.wait_for_selector("#candidates .candidate")
    for key in ["j", "j", "j", "j", "a"]:  # a fourth item for step two
        page.keyboard.press(key)
    page.fill("#expected-outcome", "They stay and cook.")
    page.fill("#trajectory-rationale", "Start familiar, then widen.")
    page.wait_for_selector("#save-status:has-text('All changes saved.')")
    screenshot("builder-step-2")
    page.click("#submit-demonstration")
    page.wait_for_url(f"{live_server.url}/label/")
    screenshot("home-after")

    demonstration = Demonstration.objects.get(reviewer=reviewer)
    steps = list(demonstration.steps.order_by("index"))
    assert len(steps) == 2
    assert len(steps[0].chosen) == 2
    assert steps[0].rejected[0]["reason"] == "irrelevant"
    assert steps[0].rationale == "Two cooking picks for a casual cook."
    assert len(steps[1].chosen) == 1
    history = [entry["item"] for entry in steps[1].state["history"]]
    assert history[-2:] == ["item-0", "item-1"]
    assert demonstration.expected_outcome == "They stay and cook."
    assert demonstration.task is not None
