"""The import commands: good files in both formats, every kind of bad row, all or nothing,
idempotency. Tables are compared before and after a failed import to prove nothing was
written. Runs against PostgreSQL (COPY path); test_importers_sqlite.py covers SQLite."""

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from django.core.management import CommandError, call_command

from catalog.importing.importers import MAX_REPORTED_ERRORS, import_records
from catalog.models import ImportRun, Item, LoggedInteraction, Source, Topic, UserContext

ROOT = Path(__file__).resolve().parents[2]

# Lookups of a top-level import go through a second connection, which sees only
# committed rows: these tests commit, like the real commands do.
pytestmark = pytest.mark.django_db(transaction=True)


def item(n: int, **overrides) -> dict:
    row = {
        "id": f"item-{n}",
        "title": f"Item number {n}",
        "description": "Plain words.",
        "topics": ["cooking", "travel"] if n % 2 else ["cooking"],
        "source": "daily-kitchen",
        "sensitivity": n % 4,
        "audience_rating": "all",
        "features": [float(n), 0.5, -1.25],
    }
    return {**row, **overrides}


def context(n: int, **overrides) -> dict:
    row = {
        "id": f"ctx-{n}",
        "user": f"u-{n}",
        "segment": "casual",
        "audience": "adult" if n % 3 else "minor",
        "situation": {"fatigue": 0.25, "hour": 21},
        "history": [{"item": "item-1", "event": "click"}, {"item": "item-2", "event": "view"}],
    }
    return {**row, **overrides}


def interaction(n: int, **overrides) -> dict:
    row = {
        "context": f"ctx-{n % 3}",
        "slate": ["item-1", "item-2", "item-3"],
        "clicks": [0],
        "reward": 1.0,
        "logging_policy": "popularity-softmax",
        "propensity": 0.125,
        "timestamp": "2026-11-02T10:15:00Z",
    }
    return {**row, **overrides}


def write_jsonl(path: Path, rows: list) -> Path:
    with path.open("wb") as handle:
        for row in rows:
            handle.write(row if isinstance(row, bytes) else orjson.dumps(row))
            handle.write(b"\n")
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def snapshot() -> dict:
    return {
        "items": sorted(Item.objects.values_list("external_id", "title", "sensitivity")),
        "topics": sorted(Topic.objects.values_list("slug", flat=True)),
        "sources": sorted(Source.objects.values_list("slug", flat=True)),
        "contexts": sorted(UserContext.objects.values_list("external_id", "segment")),
        "interactions": LoggedInteraction.objects.count(),
        "runs": ImportRun.objects.count(),
    }


def run(command: str, path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command(command, str(path), *args, stdout=out)
    return out.getvalue()


def import_failure(command: str, path: Path, *args: str) -> list[str]:
    with pytest.raises(CommandError) as failure:
        run(command, path, *args)
    return str(failure.value).splitlines()


@pytest.fixture
def catalog(tmp_path) -> None:
    """Three items and three contexts, committed."""
    run("import_items", write_jsonl(tmp_path / "items.jsonl", [item(n) for n in (1, 2, 3)]))
    run("import_contexts", write_jsonl(tmp_path / "ctx.jsonl", [context(n) for n in (0, 1, 2)]))


# --- good files --------------------------------------------------------------------


def test_it_imports_items_with_topics_sources_and_feature_vectors(tmp_path):
    output = run("import_items", write_jsonl(tmp_path / "items.jsonl", [item(1), item(2)]))

    assert "imported 2 items (2 new, 0 updated)" in output
    first = Item.objects.get(external_id="item-1")
    assert first.title == "Item number 1"
    assert first.source.slug == "daily-kitchen"
    assert sorted(first.topics.values_list("slug", flat=True)) == ["cooking", "travel"]
    assert first.sensitivity == 1
    np.testing.assert_array_equal(first.feature_vector, np.array([1.0, 0.5, -1.25], "<f4"))
    assert "new topics: cooking, travel" in output
    assert "new sources: daily-kitchen" in output
    assert not Topic.objects.get(slug="travel").sensitive


def test_the_csv_form_imports_the_same_items_as_jsonl(tmp_path):
    header = ["id", "title", "description", "topics", "source", "sensitivity",
              "audience_rating", "features"]  # fmt: skip
    rows = [["item-1", "Item number 1", "Plain words.", "cooking|travel", "daily-kitchen", "1",
             "all", "1.0 0.5 -1.25"]]  # fmt: skip
    run("import_items", write_csv(tmp_path / "items.csv", header, rows))
    from_csv = snapshot()
    vector_csv = Item.objects.get().feature_vector.copy()
    Item.objects.all().delete()

    run("import_items", write_jsonl(tmp_path / "items.jsonl", [item(1)]), "--format", "jsonl")

    assert snapshot()["items"] == from_csv["items"]
    np.testing.assert_array_equal(Item.objects.get().feature_vector, vector_csv)


def test_importing_the_same_items_twice_leaves_one_copy_of_each(tmp_path):
    path = write_jsonl(tmp_path / "items.jsonl", [item(n) for n in range(1, 6)])
    run("import_items", path)
    before = snapshot()

    output = run("import_items", path)

    assert "(0 new, 5 updated)" in output
    assert snapshot()["items"] == before["items"]
    assert Item.objects.count() == 5


def test_a_second_import_updates_fields_and_replaces_topics(tmp_path):
    run("import_items", write_jsonl(tmp_path / "a.jsonl", [item(1)]))

    run("import_items", write_jsonl(tmp_path / "b.jsonl", [item(1, title="New", topics=["pets"])]))

    updated = Item.objects.get(external_id="item-1")
    assert updated.title == "New"
    assert list(updated.topics.values_list("slug", flat=True)) == ["pets"]


def test_it_imports_contexts_with_situation_defaults_and_history(tmp_path, catalog):
    ctx = UserContext.objects.get(external_id="ctx-1")
    assert ctx.audience == "adult"
    assert ctx.situation == {
        "fatigue": 0.25, "traffic": 0.5, "hour": 21, "weekday": 0,
        "new_feature_exposure": False, "policy_change_period": False,
    }  # fmt: skip
    assert ctx.history[0] == {"item": "item-1", "event": "click"}
    assert UserContext.objects.get(external_id="ctx-0").audience == "minor"


def test_contexts_in_csv_spread_the_situation_over_columns(tmp_path, catalog):
    header = ["id", "user", "segment", "audience", "fatigue", "hour", "new_feature_exposure",
              "history"]  # fmt: skip
    rows = [["ctx-9", "u-9", "night-owl", "adult", "0.5", "2", "true", "item-1:click|item-3:skip"]]

    run("import_contexts", write_csv(tmp_path / "ctx.csv", header, rows))

    ctx = UserContext.objects.get(external_id="ctx-9")
    assert ctx.situation["fatigue"] == 0.5
    assert ctx.situation["hour"] == 2
    assert ctx.situation["new_feature_exposure"] is True
    assert ctx.history == [
        {"item": "item-1", "event": "click"},
        {"item": "item-3", "event": "skip"},
    ]


def test_it_imports_interactions_with_resolved_slates(tmp_path, catalog):
    rows = [interaction(n) for n in range(10)]

    output = run("import_interactions", write_jsonl(tmp_path / "log.jsonl", rows))

    assert "imported 10 interactions" in output
    logged = LoggedInteraction.objects.order_by("pk").first()
    pks = dict(Item.objects.values_list("external_id", "pk"))
    assert logged.slate == [pks["item-1"], pks["item-2"], pks["item-3"]]
    assert logged.clicks == [0]
    assert logged.propensity == 0.125
    assert logged.logged_at.isoformat() == "2026-11-02T10:15:00+00:00"
    assert UserContext.objects.get(pk=logged.context_id).external_id == "ctx-0"


def test_interactions_in_csv_import_like_jsonl(tmp_path, catalog):
    header = ["context", "slate", "clicks", "reward", "logging_policy", "propensity", "timestamp"]
    rows = [["ctx-1", "item-3|item-1", "", "-0.5", "uniform", "0.5", "2026-11-02T10:15:00+01:00"]]

    run("import_interactions", write_csv(tmp_path / "log.csv", header, rows))

    logged = LoggedInteraction.objects.get()
    assert logged.clicks == []
    assert logged.reward == -0.5
    assert logged.logged_at.isoformat() == "2026-11-02T09:15:00+00:00"


def test_an_interactions_file_already_imported_is_refused_unless_allowed(tmp_path, catalog):
    path = write_jsonl(tmp_path / "log.jsonl", [interaction(n) for n in range(4)])
    run("import_interactions", path)

    lines = import_failure("import_interactions", path)

    assert "this exact file was imported" in lines[0]
    assert LoggedInteraction.objects.count() == 4
    run("import_interactions", path, "--allow-repeat")
    assert LoggedInteraction.objects.count() == 8


def test_an_import_nested_in_a_transaction_sees_that_transactions_rows(tmp_path):
    from django.db import transaction

    with transaction.atomic():
        import_records("items", "test", [item(1), item(2), item(3)])
        import_records("contexts", "test", [context(1)])
        result = import_records("interactions", "test", [interaction(1), interaction(4)])

    assert result.rows == 2
    assert LoggedInteraction.objects.count() == 2


def test_every_import_is_recorded_with_its_sha256(tmp_path):
    path = write_jsonl(tmp_path / "items.jsonl", [item(1)])
    run("import_items", path)

    recorded = ImportRun.objects.get()
    import hashlib

    assert recorded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert recorded.kind == "items"
    assert recorded.rows == 1


# --- bad files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        (b'{"id": "item-9", "title": ', None, "malformed JSON"),
        (item(9, sensitivity="high"), "sensitivity", "must be a whole number from 0 to 3"),
        (item(9, sensitivity=7), "sensitivity", "must be from 0 to 3, got 7"),
        (item(9, sensitivity=True), "sensitivity", "must be a whole number"),
        ({k: v for k, v in item(9).items() if k != "title"}, "title", "is required"),
        (item(9, features=[1.0, "x", 2.0]), "features", "entry 1 is not a finite number"),
        (item(9, features=[1.0, 2.0]), "features", "has 2 numbers; the catalog's vectors have 3"),
        (item(9, topics=["Not A Slug"]), "topics", "is not a slug"),
        (item(9, audience_rating="kids"), "audience_rating", "must be one of all, teen, adult"),
        (item(9, colour="red"), "colour", "unknown field"),
        (item(1), "id", "'item-1' appears again (first at line 1)"),
        ([1, 2, 3], None, "a row must be a JSON object"),
    ],
)
def test_a_bad_item_row_names_file_line_and_field_and_imports_nothing(
    tmp_path, row, field, message
):
    path = write_jsonl(tmp_path / "items.jsonl", [item(1), item(2), row])
    before = snapshot()

    lines = import_failure("import_items", path)

    where = f"{path}:3: {field}: " if field else f"{path}:3: "
    assert lines[0].startswith(where), lines
    assert message in lines[0]
    assert lines[-1] == f"{path}: nothing was imported (1 bad row)"
    assert snapshot() == before


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        (interaction(1, propensity=0), "propensity", "must be in (0, 1], got 0"),
        (interaction(1, propensity=1.5), "propensity", "must be in (0, 1], got 1.5"),
        (interaction(1, propensity="0.5"), "propensity", "must be a number"),
        (interaction(1, reward=None), "reward", "is required"),
        (interaction(1, slate=[]), "slate", "must be a non-empty list of item ids"),
        (interaction(1, slate=["item-1", "item-1"]), "slate", "shows an item twice"),
        (interaction(1, slate=["item-1", 5]), "slate", "entry 1 is not an item id"),
        (interaction(1, slate=["item-1", "item-404"]), "slate", "unknown item 'item-404'"),
        (interaction(1, context="ctx-404"), "context", "unknown context 'ctx-404'"),
        (interaction(1, clicks=[3]), "clicks", "position 3 is past the slate's 3 items"),
        (interaction(1, clicks=[-1]), "clicks", "-1 is not a position"),
        (interaction(1, timestamp="yesterday"), "timestamp", "is not an ISO 8601 timestamp"),
        (interaction(1, timestamp="2026-11-02T10:15:00"), "timestamp", "needs a UTC offset"),
        (interaction(1, logging_policy=""), "logging_policy", "must not be empty"),
    ],
)
def test_a_bad_interaction_row_names_its_field_and_imports_nothing(
    tmp_path, catalog, row, field, message
):
    path = write_jsonl(tmp_path / "log.jsonl", [interaction(0), row, interaction(2)])
    before = snapshot()

    lines = import_failure("import_interactions", path)

    assert lines[0].startswith(f"{path}:2: {field}: "), lines
    assert message in lines[0]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        (context(5, audience="child"), "audience", "must be one of adult, minor"),
        (context(5, situation={"mood": 1}), "situation", "unknown key 'mood'"),
        (context(5, situation={"hour": 24}), "situation", "hour: must be from 0 to 23, got 24"),
        (context(5, history=[{"item": "item-404", "event": "click"}]), "history", "unknown item"),
        (context(5, history=[{"item": "item-1", "event": "stare"}]), "history", "event must be"),
        (context(1), "id", "'ctx-1' appears again (first at line 1)"),
    ],
)
def test_a_bad_context_row_names_its_field_and_imports_nothing(
    tmp_path, catalog, row, field, message
):
    path = write_jsonl(tmp_path / "ctx.jsonl", [context(1), row])
    before = snapshot()

    lines = import_failure("import_contexts", path)

    assert lines[0].startswith(f"{path}:2: {field}: "), lines
    assert message in lines[0]
    assert snapshot() == before


def test_a_file_that_breaks_at_its_last_line_leaves_every_table_unchanged(tmp_path, catalog):
    rows = [interaction(n) for n in range(20_000)] + [interaction(1, propensity=2.0)]
    path = write_jsonl(tmp_path / "log.jsonl", rows)
    before = snapshot()

    lines = import_failure("import_interactions", path, "--batch-rows", "1000")

    assert lines[0].startswith(f"{path}:20001: propensity: ")
    assert snapshot() == before


def test_it_reports_twenty_errors_and_counts_the_rest(tmp_path):
    rows = [item(n, sensitivity=9) for n in range(1, 31)]
    path = write_jsonl(tmp_path / "items.jsonl", rows)

    lines = import_failure("import_items", path)

    assert len([line for line in lines if ": sensitivity: " in line]) == MAX_REPORTED_ERRORS
    assert "… and 10 more errors" in lines
    assert lines[-1] == f"{path}: nothing was imported (30 bad rows)"


def test_every_repeated_id_counts_as_an_error(tmp_path):
    rows = [item(1)] * 25 + [item(2), item(2)]

    lines = import_failure("import_items", write_jsonl(tmp_path / "items.jsonl", rows))

    assert lines[0].endswith("'item-1' appears again (first at line 1)")
    assert lines[-1].endswith("nothing was imported (25 bad rows)")


def test_csv_rows_with_missing_cells_or_unknown_columns_are_named(tmp_path):
    header = ["id", "title", "source", "sensitivity", "features"]
    path = write_csv(tmp_path / "items.csv", header, [["item-1", "T", "s", "0", "1 2"], ["item-2"]])
    assert import_failure("import_items", path)[0] == f"{path}:3: has 1 cells, the header has 5"

    unknown = write_csv(tmp_path / "bad.csv", ["id", "colour"], [["item-1", "red"]])
    assert "header unknown column 'colour'" in import_failure("import_items", unknown)[0]


def test_an_unknown_extension_needs_format(tmp_path):
    path = write_jsonl(tmp_path / "items.txt", [item(1)])

    with pytest.raises(CommandError, match="cannot tell the format"):
        run("import_items", path)
    run("import_items", path, "--format", "jsonl")
    assert Item.objects.count() == 1


def test_the_command_exits_non_zero_and_prints_errors_on_stderr(tmp_path):
    path = write_jsonl(tmp_path / "items.jsonl", [item(1, sensitivity=-1)])

    completed = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "import_items", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_subprocess_env(),
        check=False,
    )

    assert completed.returncode == 1
    assert f"{path}:1: sensitivity: must be from 0 to 3, got -1" in completed.stderr
    assert Item.objects.count() == 0


def _subprocess_env() -> dict[str, str]:
    """The child must use the test database, not the default one."""
    import os

    from django.db import connection

    settings = connection.settings_dict
    url = (
        f"postgres://{settings['USER']}:{settings['PASSWORD'] or ''}@{settings['HOST']}:"
        f"{settings['PORT']}/{settings['NAME']}"
    )
    return {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.base"}
