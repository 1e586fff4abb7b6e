"""Bulk writes inside the caller's transaction: one streaming COPY on PostgreSQL, batched
INSERTs on SQLite. Both import paths run the same validation; only the last step differs.

On PostgreSQL a whole import is one ``COPY … FROM STDIN`` kept open from the first row to
the last, fed by psycopg's queued writer (a thread that sends while Python parses), so the
server parses and indexes rows while the importer reads the next ones. Because that COPY
holds the connection, id lookups during the import go through a second, read-only
connection (``LookupConnection``): they only read rows committed before the import.
"""

import math
import queue
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
from django.db import connection

# Column kinds a sink knows how to write.
INT, FLOAT, TEXT, JSON, TIME, BYTES = "int", "float", "text", "json", "time", "bytes"

# Batches handed to the COPY's sending thread and not yet sent (each about a megabyte).
IN_FLIGHT_BATCHES = 8

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def copy_text(value: str) -> str:
    """A string as COPY's text format wants it (backslash, tab and line breaks escaped)."""
    return value.translate(_COPY_ESCAPES)


def _copy_float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return repr(value)


def _copy_json(value: Any) -> str:
    return orjson.dumps(value).decode().translate(_COPY_ESCAPES)


def _copy_time(value: datetime) -> str:
    return value.isoformat()


def _copy_bytes(value: bytes) -> str:
    return "\\\\x" + value.hex()  # bytea's hex form, its backslash escaped for COPY


_COPY_FORMATTERS: dict[str, Callable[[Any], str]] = {
    INT: str,
    FLOAT: _copy_float,
    TEXT: copy_text,
    JSON: _copy_json,
    TIME: _copy_time,
    BYTES: _copy_bytes,
}


class CopySink:
    """Rows to one table through a streaming COPY (PostgreSQL), opened at the first
    write and kept open until ``suspend`` or ``close``."""

    def __init__(self, table: str, columns: Sequence[str], kinds: Sequence[str]):
        self.formatters = [_COPY_FORMATTERS[kind] for kind in kinds]
        column_list = ", ".join(quote(c) for c in columns)
        self.sql = f"COPY {quote(table)} ({column_list}) FROM STDIN"
        self._cursor = None
        self._context = None
        self._copy = None

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        formatters = self.formatters
        self.write_lines(
            ["\t".join([f(v) for f, v in zip(formatters, row, strict=True)]) + "\n" for row in rows]
        )

    def write_lines(self, lines: list[str]) -> None:
        """Lines already in COPY's text format, each ending in a newline."""
        if self._copy is None:
            self._start()
        self._copy.write("".join(lines).encode())

    def _start(self) -> None:
        connection.ensure_connection()
        self._cursor = connection.connection.cursor()
        self._context = self._cursor.copy(self.sql, writer=_background_writer(self._cursor))
        self._copy = self._context.__enter__()

    def suspend(self) -> None:
        """End the COPY so the connection can run a query; the next write starts another."""
        self.close()

    def close(self, *, failed: bool = False) -> None:
        """End the COPY: the server finishes the rows (or discards them when failed)."""
        if self._copy is None:
            return
        error = RuntimeError("import aborted") if failed else None
        context, cursor = self._context, self._cursor
        self._context = self._cursor = self._copy = None
        context.__exit__(type(error) if error else None, error, None)
        cursor.close()


def _background_writer(cursor):
    """A COPY writer that sends from a thread, with a few batches in flight at most.

    psycopg's own QueuedLibpqWriter queues up to 1024 buffers (128 MiB): an importer that
    reads faster than the server writes fills that queue, and its memory grows with the
    file. This one blocks the importer once ``IN_FLIGHT_BATCHES`` batches are waiting."""
    from psycopg.copy import LibpqWriter

    class BoundedQueuedWriter(LibpqWriter):
        def __init__(self, cursor):
            super().__init__(cursor)
            self._pending: queue.Queue[bytes] = queue.Queue(maxsize=IN_FLIGHT_BATCHES)
            self._sender: threading.Thread | None = None
            self._send_error: BaseException | None = None

        def _send_all(self) -> None:
            try:
                while data := self._pending.get():
                    super().write(data)
            except BaseException as error:  # handed to the importer's thread
                self._send_error = error
                while self._pending.get():  # keep draining so write() never blocks
                    pass

        def write(self, data) -> None:
            if self._send_error is not None:
                raise self._send_error
            if self._sender is None:
                self._sender = threading.Thread(target=self._send_all, daemon=True)
                self._sender.start()
            self._pending.put(bytes(data))

        def finish(self, exc: BaseException | None = None) -> None:
            if self._sender is not None:
                self._pending.put(b"")
                self._sender.join()
                self._sender = None
            if self._send_error is not None:
                raise self._send_error
            super().finish(exc)

    return BoundedQueuedWriter(cursor)


class InsertSink:
    """Rows to one table through batched INSERTs (databases without COPY)."""

    def __init__(self, table: str, columns: Sequence[str], kinds: Sequence[str]):
        column_list = ", ".join(quote(c) for c in columns)
        placeholders = ", ".join(["%s"] * len(columns))
        self.sql = f"INSERT INTO {quote(table)} ({column_list}) VALUES ({placeholders})"
        adapt_time = connection.ops.adapt_datetimefield_value
        converters = {JSON: lambda v: orjson.dumps(v).decode(), TIME: adapt_time}
        self.converters = [converters.get(kind) for kind in kinds]

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        converters = self.converters
        values = [[c(v) if c else v for c, v in zip(converters, row, strict=True)] for row in rows]
        with connection.cursor() as cursor:
            cursor.executemany(self.sql, values)

    def suspend(self) -> None:
        pass

    def close(self, *, failed: bool = False) -> None:
        pass


def open_sink(table: str, columns: Sequence[str], kinds: Sequence[str]) -> CopySink | InsertSink:
    sink_class = CopySink if is_postgresql() else InsertSink
    return sink_class(table, columns, kinds)


class LookupConnection:
    """Reads during an import, while a COPY may hold the import's connection.

    A top-level import on PostgreSQL reads through a second connection, so the COPY runs
    on undisturbed; it sees the catalog as committed before the import began. An import
    nested in an outer transaction must see that transaction's rows, so it reads on its
    own connection and suspends the COPY for each query (``suspend`` is called first).
    """

    def __init__(self, *, nested: bool, suspend: Callable[[], None]):
        self._raw = None
        self._suspend = suspend
        if is_postgresql() and not nested:
            self._raw = connection.get_new_connection(connection.get_connection_params())
            self._raw.autocommit = True
            self._raw.read_only = True

    def external_ids(self, table: str, external_ids: list[str]) -> list[tuple[str, int]]:
        """(external_id, id) for each of ``external_ids`` present in ``table``."""
        if self._raw is not None:
            return self._raw.execute(
                f"SELECT external_id, id FROM {quote(table)} WHERE external_id = ANY(%s)",
                [external_ids],
            ).fetchall()
        self._suspend()
        found = []
        with connection.cursor() as cursor:
            for start in range(0, len(external_ids), 900):  # under SQLite's parameter limit
                chunk = external_ids[start : start + 900]
                marks = ", ".join(["%s"] * len(chunk))
                cursor.execute(
                    f"SELECT external_id, id FROM {quote(table)} WHERE external_id IN ({marks})",
                    chunk,
                )
                found.extend(cursor.fetchall())
        return found

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()


def execute(sql: str, params: Sequence[Any] = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def fetch_all(sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def create_staging_table(name: str, column_definitions: str) -> None:
    """A temporary table private to this connection, dropped with the transaction
    (PostgreSQL) or explicitly by ``drop_staging_table`` (SQLite)."""
    suffix = " ON COMMIT DROP" if is_postgresql() else ""
    execute(f"DROP TABLE IF EXISTS {quote(name)}")
    execute(f"CREATE TEMPORARY TABLE {quote(name)} ({column_definitions}){suffix}")


def drop_staging_table(name: str) -> None:
    execute(f"DROP TABLE IF EXISTS {quote(name)}")


def insert_values(table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A few rows by plain INSERT (new topics and sources, say)."""
    if rows:
        sink = InsertSink(table, columns, [TEXT] * len(columns))
        sink.write(rows)
