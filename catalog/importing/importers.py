"""The three importers (items, contexts, interactions) and the pipeline that runs them.

An import is one transaction: rows are validated one by one as they stream in, written in
batches (COPY on PostgreSQL), and the whole file is committed only when every row is
good. Items and contexts go through a staging table first, so that duplicates inside the
file are found by the database (memory stays flat) and the upsert is one statement.
References (item and context ids) are resolved in batches through a bounded cache.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from orjson import dumps

from catalog.importing import bulk, schema
from catalog.importing.progress import Progress
from catalog.importing.readers import FileSource, RecordSource, detect_format
from catalog.importing.schema import FieldError
from catalog.models import FEATURE_DTYPE, ImportRun, Item, LoggedInteraction, UserContext
from catalog.services import catalog_changed

MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True)
class RowError:
    line: int
    field: str | None
    message: str

    def format(self, source_name: str) -> str:
        where = f"{source_name}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


@dataclass
class ErrorLog:
    """Keeps the first errors (in line order as found) and counts them all."""

    kept: list[RowError] = field(default_factory=list)
    total: int = 0

    def add(self, line: int, field_name: str | None, message: str) -> None:
        self.total += 1
        if len(self.kept) < MAX_REPORTED_ERRORS:
            self.kept.append(RowError(line, field_name, message))

    def __bool__(self) -> bool:
        return self.total > 0


class ImportFailed(Exception):
    def __init__(self, source_name: str, errors: ErrorLog):
        self.source_name = source_name
        self.errors = errors
        lines = [error.format(source_name) for error in sorted(errors.kept, key=lambda e: e.line)]
        if errors.total > len(errors.kept):
            lines.append(f"… and {errors.total - len(errors.kept)} more errors")
        rows = "1 bad row" if errors.total == 1 else f"{errors.total} bad rows"
        lines.append(f"{source_name}: nothing was imported ({rows})")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ImportResult:
    kind: str
    rows: int
    created: int
    updated: int
    seconds: float
    sha256: str
    new_topics: list[str] = field(default_factory=list)
    new_sources: list[str] = field(default_factory=list)


class IdResolver:
    """Maps external ids to primary keys, querying only ids not seen lately. The cache is
    bounded so that memory stays flat on a catalog of any size."""

    CACHE_LIMIT = 200_000

    def __init__(self, table: str, reads: bulk.LookupConnection):
        self.table = table
        self.reads = reads
        self.cache: dict[str, int] = {}

    def lookup(self, external_ids: set[str]) -> dict[str, int]:
        missing = [e for e in external_ids if e not in self.cache]
        if missing:
            if len(self.cache) + len(missing) > self.CACHE_LIMIT:
                self.cache = {e: self.cache[e] for e in external_ids if e in self.cache}
            self.cache.update(self.reads.external_ids(self.table, missing))
        return self.cache


class Importer:
    """Receives validated rows, streams them to a sink in batches, and finishes."""

    kind: ClassVar[str]
    fields: ClassVar[tuple[schema.Field, ...]]
    csv_columns: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, errors: ErrorLog, batch_rows: int, *, nested: bool = False):
        self.errors = errors
        self.batch_rows = batch_rows
        self.batch: list[tuple[int, Any]] = []
        self.rows = 0
        self.sinks: list[bulk.CopySink | bulk.InsertSink] = []
        self.reads = bulk.LookupConnection(nested=nested, suspend=self.suspend_sinks)

    def suspend_sinks(self) -> None:
        for sink in self.sinks:
            sink.suspend()

    @staticmethod
    def csv_row_hook(row: dict[str, Any]) -> dict[str, Any]:
        return row

    def validate(self, row: Any, *, from_csv: bool) -> dict[str, Any]:
        return schema.validate(self.fields, row, from_csv=from_csv)

    def open_sink(
        self, table: str, columns: tuple[str, ...], kinds: tuple[str, ...]
    ) -> bulk.CopySink | bulk.InsertSink:
        sink = bulk.open_sink(table, columns, kinds)
        self.sinks.append(sink)
        return sink

    def add(self, line: int, values: dict[str, Any]) -> None:
        self.rows += 1
        self.batch.append((line, values))
        if len(self.batch) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            self.write_batch(self.batch)
            self.batch = []

    def end_streams(self) -> None:
        """After the last row: the sinks finish, so later statements can run."""
        self.flush()
        for sink in self.sinks:
            sink.close(failed=bool(self.errors))

    def write_batch(self, batch: list[tuple[int, dict[str, Any]]]) -> None:
        raise NotImplementedError

    def finish(self) -> tuple[int, int]:
        """Checks that need the whole file, then the final writes: (created, updated)."""
        return self.rows, 0

    def close(self) -> None:
        """Always called, after commit or rollback."""
        for sink in self.sinks:
            sink.close(failed=True)
        self.reads.close()


class ItemImporter(Importer):
    kind = ImportRun.Kind.ITEMS
    fields = schema.ITEM_FIELDS
    STAGE = "stage_import_item"

    def __init__(self, errors: ErrorLog, batch_rows: int, *, nested: bool = False):
        super().__init__(errors, batch_rows, nested=nested)
        self.feature_dim = _catalog_feature_dim()
        self.new_topics: list[str] = []
        self.new_sources: list[str] = []
        bulk.create_staging_table(
            self.STAGE,
            "line bigint, external_id varchar(128), title varchar(300), description text, "
            "source varchar(64), sensitivity smallint, audience_rating varchar(8), "
            f"topics {_json_type()}, features {_binary_type()}",
        )
        # One sink only: a connection streams one COPY at a time.
        self.sink = self.open_sink(
            self.STAGE,
            ("line", "external_id", "title", "description", "source", "sensitivity",
             "audience_rating", "topics", "features"),
            (bulk.INT, bulk.TEXT, bulk.TEXT, bulk.TEXT, bulk.TEXT, bulk.INT, bulk.TEXT,
             bulk.JSON, bulk.BYTES),
        )  # fmt: skip

    def add(self, line: int, values: dict[str, Any]) -> None:
        dim = len(values["features"])
        if self.feature_dim is None:
            self.feature_dim = dim  # the first row sets the dimension of a new catalog
        if dim != self.feature_dim:
            self.errors.add(
                line,
                "features",
                f"has {dim} numbers; the catalog's vectors have {self.feature_dim}",
            )
            return
        super().add(line, values)

    def write_batch(self, batch: list[tuple[int, dict[str, Any]]]) -> None:
        if self.errors:
            return  # nothing will be committed; keep validating only
        self.sink.write(
            [
                (line, v["id"], v["title"], v["description"], v["source"], v["sensitivity"],
                 v["audience_rating"], v["topics"],
                 np.asarray(v["features"], dtype=FEATURE_DTYPE).tobytes())
                for line, v in batch
            ]
        )  # fmt: skip

    def finish(self) -> tuple[int, int]:
        _report_duplicates(self.STAGE, self.errors)
        if self.errors:
            return 0, 0
        self.new_sources = _insert_missing_slugs("catalog_source", self.STAGE, "source")
        self.new_topics = _insert_missing_slugs(
            "catalog_topic", _staged_topics(self.STAGE), "topic"
        )
        updated = _count_existing(self.STAGE, "catalog_item")
        bulk.execute(
            f"""
            INSERT INTO catalog_item (external_id, title, description, source_id, sensitivity,
                                      audience_rating, features, updated_at)
            SELECT s.external_id, s.title, s.description, src.id, s.sensitivity,
                   s.audience_rating, s.features, %s
            FROM {self.STAGE} s JOIN catalog_source src ON src.slug = s.source
            WHERE true
            ON CONFLICT (external_id) DO UPDATE SET
                title = excluded.title, description = excluded.description,
                source_id = excluded.source_id, sensitivity = excluded.sensitivity,
                audience_rating = excluded.audience_rating, features = excluded.features,
                updated_at = excluded.updated_at
            """,
            [timezone.now()],
        )
        # An item's topics are replaced by the file's, not merged with the old ones.
        bulk.execute(
            f"""
            DELETE FROM catalog_itemtopic WHERE item_id IN (
                SELECT i.id FROM catalog_item i JOIN {self.STAGE} s
                ON s.external_id = i.external_id)
            """
        )
        bulk.execute(
            f"""
            INSERT INTO catalog_itemtopic (item_id, topic_id)
            SELECT i.id, t.id FROM {_staged_topics(self.STAGE)} st
            JOIN catalog_item i ON i.external_id = st.external_id
            JOIN catalog_topic t ON t.slug = st.topic
            ORDER BY st.line, st.position
            """
        )
        return self.rows - updated, updated

    def close(self) -> None:
        super().close()
        _drop_staging(self.STAGE)


class ContextImporter(Importer):
    kind = ImportRun.Kind.CONTEXTS
    fields = schema.CONTEXT_FIELDS
    csv_columns = schema.CONTEXT_CSV_COLUMNS
    csv_row_hook = staticmethod(schema.situation_from_csv)
    STAGE = "stage_import_context"

    def __init__(self, errors: ErrorLog, batch_rows: int, *, nested: bool = False):
        super().__init__(errors, batch_rows, nested=nested)
        self.items = IdResolver(Item._meta.db_table, self.reads)
        bulk.create_staging_table(
            self.STAGE,
            "line bigint, external_id varchar(128), user_ref varchar(128), segment varchar(64), "
            f"audience varchar(8), situation {_json_type()}, history {_json_type()}",
        )
        self.sink = self.open_sink(
            self.STAGE,
            ("line", "external_id", "user_ref", "segment", "audience", "situation", "history"),
            (bulk.INT, bulk.TEXT, bulk.TEXT, bulk.TEXT, bulk.TEXT, bulk.JSON, bulk.JSON),
        )

    def write_batch(self, batch: list[tuple[int, dict[str, Any]]]) -> None:
        known = self.items.lookup({e["item"] for _, v in batch for e in v["history"]})
        rows = []
        for line, v in batch:
            unknown = next((e["item"] for e in v["history"] if e["item"] not in known), None)
            if unknown is not None:
                self.errors.add(line, "history", f"unknown item {unknown!r}")
                continue
            rows.append(
                (line, v["id"], v["user"], v["segment"], v["audience"], v["situation"],
                 v["history"])
            )  # fmt: skip
        if not self.errors:
            self.sink.write(rows)

    def finish(self) -> tuple[int, int]:
        _report_duplicates(self.STAGE, self.errors)
        if self.errors:
            return 0, 0
        updated = _count_existing(self.STAGE, "catalog_usercontext")
        bulk.execute(
            f"""
            INSERT INTO catalog_usercontext (external_id, user_ref, segment, audience,
                                             situation, history, updated_at)
            SELECT external_id, user_ref, segment, audience, situation, history, %s
            FROM {self.STAGE}
            WHERE true
            ON CONFLICT (external_id) DO UPDATE SET
                user_ref = excluded.user_ref, segment = excluded.segment,
                audience = excluded.audience, situation = excluded.situation,
                history = excluded.history, updated_at = excluded.updated_at
            """,
            [timezone.now()],
        )
        return self.rows - updated, updated

    def close(self) -> None:
        super().close()
        _drop_staging(self.STAGE)


class InteractionImporter(Importer):
    """Appends logged interactions. There is no natural key to upsert by, so a file
    already imported (same sha256) is refused unless the caller allows it.

    The hot path of the largest imports: rows stay tuples, and on PostgreSQL each is
    formatted straight into a COPY line."""

    kind = ImportRun.Kind.INTERACTIONS
    fields = schema.INTERACTION_FIELDS
    COLUMNS = (
        "context_id", "slate", "clicks", "reward", "logging_policy", "propensity", "logged_at"
    )  # fmt: skip
    KINDS = (bulk.INT, bulk.JSON, bulk.JSON, bulk.FLOAT, bulk.TEXT, bulk.FLOAT, bulk.TIME)

    def __init__(self, errors: ErrorLog, batch_rows: int, *, nested: bool = False):
        super().__init__(errors, batch_rows, nested=nested)
        self.items = IdResolver(Item._meta.db_table, self.reads)
        self.contexts = IdResolver(UserContext._meta.db_table, self.reads)
        self.sink = self.open_sink(LoggedInteraction._meta.db_table, self.COLUMNS, self.KINDS)
        self.copy_lines = isinstance(self.sink, bulk.CopySink)
        self.policy_text: dict[str, str] = {}  # few distinct names: escape each once

    def validate(self, row: Any, *, from_csv: bool) -> tuple:
        return schema.validate_interaction(row, from_csv=from_csv)

    def write_batch(self, batch: list[tuple[int, tuple]]) -> None:
        items_get, contexts_get = self.items.cache.get, self.contexts.cache.get
        format_row = self._copy_line if self.copy_lines else self._insert_row
        out = []
        pending = []
        for entry in batch:  # most ids are cached after the first batch
            row = entry[1]
            slate = list(map(items_get, row[1]))
            context_pk = contexts_get(row[0])
            if context_pk is None or None in slate:
                pending.append(entry)
            else:
                out.append(format_row(context_pk, slate, row))
        if pending:
            out.extend(format_row(*resolved) for resolved in self._resolve_pending(pending))
        if self.errors:
            return
        if self.copy_lines:
            self.sink.write_lines(out)
        else:
            self.sink.write(out)

    def _copy_line(self, context_pk: int, slate: list[int], row: tuple) -> str:
        _, _, clicks, reward, policy, chance, moment = row
        text = self.policy_text.get(policy) or self._policy_text(policy)
        return (
            f"{context_pk}\t{dumps(slate).decode()}\t{dumps(clicks).decode()}\t{reward!r}\t"
            f"{text}\t{chance!r}\t{moment}\n"
        )

    @staticmethod
    def _insert_row(context_pk: int, slate: list[int], row: tuple) -> tuple:
        _, _, clicks, reward, policy, chance, moment = row
        return (context_pk, slate, clicks, reward, policy, chance, datetime.fromisoformat(moment))

    def _resolve_pending(self, pending: list[tuple[int, tuple]]) -> list[tuple]:
        """Query the ids the cache lacks, then resolve the rows or report them."""
        items = self.items.lookup({item for _, row in pending for item in row[1]})
        contexts = self.contexts.lookup({row[0] for _, row in pending})
        resolved = []
        for line, row in pending:
            context_pk = contexts.get(row[0])
            slate = list(map(items.get, row[1]))
            if context_pk is None:
                self.errors.add(line, "context", f"unknown context {row[0]!r}")
            elif None in slate:
                self.errors.add(line, "slate", f"unknown item {row[1][slate.index(None)]!r}")
            else:
                resolved.append((context_pk, slate, row))
        return resolved

    def _policy_text(self, policy: str) -> str:
        text = self.policy_text[policy] = bulk.copy_text(policy)
        return text


IMPORTERS: dict[str, type[Importer]] = {
    ImportRun.Kind.ITEMS: ItemImporter,
    ImportRun.Kind.CONTEXTS: ContextImporter,
    ImportRun.Kind.INTERACTIONS: InteractionImporter,
}


def _binary_type() -> str:
    return "bytea" if bulk.is_postgresql() else "blob"


def _json_type() -> str:
    return "jsonb" if bulk.is_postgresql() else "text"


def _staged_topics(stage: str) -> str:
    """A derived table of (line, external_id, topic, position): one row per topic of each
    staged item. Links are inserted in file order, so an item's first topic (its primary
    topic) has the lowest ItemTopic id."""
    if bulk.is_postgresql():
        return (
            "(SELECT s.line, s.external_id, x.value AS topic, x.position "
            f"FROM {stage} s CROSS JOIN LATERAL "
            "jsonb_array_elements_text(s.topics) WITH ORDINALITY AS x(value, position))"
        )
    return (
        "(SELECT s.line, s.external_id, x.value AS topic, x.key AS position "
        f"FROM {stage} s, json_each(s.topics) AS x)"
    )


def _catalog_feature_dim() -> int | None:
    sample = Item.objects.values_list("features", flat=True).first()
    return None if sample is None else len(bytes(sample)) // FEATURE_DTYPE.itemsize


def _report_duplicates(stage: str, errors: ErrorLog) -> None:
    """Every repeat of an id in the file is an error, named at the repeat's line."""
    repeats = f"""
        FROM {stage} s JOIN (
            SELECT external_id, MIN(line) AS line FROM {stage}
            GROUP BY external_id HAVING COUNT(*) > 1
        ) first ON first.external_id = s.external_id AND s.line > first.line
    """
    ((total,),) = bulk.fetch_all(f"SELECT COUNT(*) {repeats}")
    shown = bulk.fetch_all(
        f"SELECT s.line, s.external_id, first.line {repeats} ORDER BY s.line "
        f"LIMIT {MAX_REPORTED_ERRORS}"
    )
    for line, external_id, first_line in shown:
        errors.add(line, "id", f"{external_id!r} appears again (first at line {first_line})")
    errors.total += total - len(shown)


def _insert_missing_slugs(table: str, staged: str, column: str) -> list[str]:
    """Create the sources or topics a file names that the catalog lacks. New topics are
    not sensitive until an admin says so; the command lists them so nobody is surprised."""
    missing = [
        slug
        for (slug,) in bulk.fetch_all(
            f"""
            SELECT DISTINCT s.{column} FROM {staged} s
            WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.slug = s.{column})
            ORDER BY s.{column}
            """
        )
    ]
    defaults = SLUG_TABLE_DEFAULTS[table]
    bulk.insert_values(
        table,
        ("slug", "name", *defaults),
        [(slug, _title_from_slug(slug), *defaults.values()) for slug in missing],
    )
    return missing


SLUG_TABLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "catalog_source": {},
    "catalog_topic": {"sensitive": False, "description": ""},
}


def _title_from_slug(slug: str) -> str:
    return slug.replace("-", " ").replace("_", " ").capitalize()


def _count_existing(stage: str, table: str) -> int:
    ((count,),) = bulk.fetch_all(
        f"SELECT COUNT(*) FROM {stage} s JOIN {table} t ON t.external_id = s.external_id"
    )
    return count


def _drop_staging(*names: str) -> None:
    if not bulk.is_postgresql():  # PostgreSQL drops them on commit or rollback
        for name in names:
            bulk.drop_staging_table(name)


def run_import(
    kind: str,
    source: FileSource | RecordSource,
    *,
    allow_repeat: bool = False,
    progress: Progress | None = None,
    batch_rows: int | None = None,
) -> ImportResult:
    """Import every row of ``source`` or none of them (raises ``ImportFailed``)."""
    started = time.monotonic()
    errors = ErrorLog()
    importer_class = IMPORTERS[kind]
    nested = connection.in_atomic_block
    with transaction.atomic():
        importer = importer_class(
            errors, batch_rows or settings.SHEPHERD_IMPORT_BATCH_ROWS, nested=nested
        )
        try:
            _feed(importer, source, errors, progress)
            importer.end_streams()
            created, updated = importer.finish()
            if errors:
                raise ImportFailed(source.name, errors)
            digest = source.digest()
            if kind == ImportRun.Kind.INTERACTIONS and not allow_repeat:
                _refuse_repeat(kind, source.name, digest)
            result = ImportResult(
                kind=kind,
                rows=importer.rows,
                created=created,
                updated=updated,
                seconds=time.monotonic() - started,
                sha256=digest,
                new_topics=getattr(importer, "new_topics", []),
                new_sources=getattr(importer, "new_sources", []),
            )
            if kind == ImportRun.Kind.ITEMS:
                catalog_changed()
            ImportRun.objects.create(
                kind=kind,
                source_name=source.name[:500],
                sha256=digest,
                rows=result.rows,
                created=result.created,
                seconds=result.seconds,
            )
        finally:
            importer.close()
    return result


def _feed(
    importer: Importer,
    source: FileSource | RecordSource,
    errors: ErrorLog,
    progress: Progress | None,
) -> None:
    from_csv = source.from_csv
    validate = importer.validate
    add = importer.add
    rows_seen = 0
    for line, row in source:
        rows_seen += 1
        if not rows_seen & 4095 and progress is not None:
            progress.update(rows_seen, source.bytes_read)
        try:
            if type(row) is FieldError:
                raise row
            add(line, validate(row, from_csv=from_csv))
        except FieldError as error:
            errors.add(line, error.field, error.message)
    if progress is not None:
        progress.close(rows_seen, source.bytes_read)


def _refuse_repeat(kind: str, source_name: str, digest: str) -> None:
    previous = ImportRun.objects.filter(kind=kind, sha256=digest).order_by("-finished_at").first()
    if previous is not None:
        raise ImportRepeated(source_name, previous)


class ImportRepeated(Exception):
    def __init__(self, source_name: str, previous: ImportRun):
        super().__init__(
            f"{source_name}: this exact file was imported on "
            f"{previous.finished_at:%Y-%m-%d %H:%M} UTC ({previous.rows} rows); nothing was "
            "imported. Pass --allow-repeat to import it again."
        )


def open_source(kind: str, path: Path, fmt: str | None) -> FileSource:
    """A file of ``kind`` rows; the format comes from ``fmt`` or the file's extension."""
    importer_class = IMPORTERS[kind]
    columns = importer_class.csv_columns or tuple(f.name for f in importer_class.fields)
    return FileSource(
        path,
        detect_format(path, fmt),
        csv_columns=columns,
        csv_row_hook=importer_class.csv_row_hook,
    )


def import_records(kind: str, name: str, rows: Iterable[dict[str, Any]]) -> ImportResult:
    """Import in-memory rows in the JSON form through the same pipeline as files."""
    return run_import(kind, RecordSource(name, rows), allow_repeat=True)
