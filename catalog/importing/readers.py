"""Row sources for the importer: files (JSONL or CSV), read as a stream, and in-memory
records (how ``seed_demo`` feeds the same pipeline).

A source yields ``(line_number, row)`` where ``row`` is a dict, or a ``FieldError`` for a
line that could not be read at all (malformed JSON, a CSV record with the wrong number of
cells). It hashes what it reads, so the import's provenance names the exact input.
"""

import csv
import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from catalog.importing.schema import FieldError

FORMATS = ("jsonl", "csv")
READ_BLOCK_BYTES = 1 << 20
Row = tuple[int, "dict[str, Any] | FieldError"]


def detect_format(path: Path, explicit: str | None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {explicit!r}")
        return explicit
    suffix = path.suffix.lower().lstrip(".")
    if suffix in {"jsonl", "ndjson", "json"}:
        return "jsonl"
    if suffix in {"csv", "tsv"}:
        return "csv"
    raise ValueError(f"{path}: cannot tell the format from the extension; pass --format")


class FileSource:
    """Streams one file; memory stays flat whatever its size."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        *,
        csv_columns: tuple[str, ...] | None = None,
        csv_row_hook: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ):
        self.path = path
        self.name = str(path)
        self.format = fmt
        self.from_csv = fmt == "csv"
        self.total_bytes = path.stat().st_size
        self.bytes_read = 0
        self._hash = hashlib.sha256()
        self._csv_columns = csv_columns
        self._csv_row_hook = csv_row_hook

    def digest(self) -> str:
        return self._hash.hexdigest()

    def __iter__(self) -> Iterator[Row]:
        return self._jsonl() if self.format == "jsonl" else self._csv()

    def _raw_lines(self) -> Iterator[bytes]:
        """Lines with their endings; read and hashed a block at a time (per-line hashing
        and accounting would cost a tenth of a large import)."""
        tail = b""
        with self.path.open("rb") as handle:
            while block := handle.read(READ_BLOCK_BYTES):
                self.bytes_read += len(block)
                self._hash.update(block)
                lines = (tail + block).splitlines(keepends=True)
                # A line is complete once its "\n" is read ("\r\n" may straddle blocks).
                tail = lines.pop() if not lines[-1].endswith(b"\n") else b""
                yield from lines
        if tail:
            yield tail

    def _jsonl(self) -> Iterator[Row]:
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        for line_number, raw in enumerate(self._raw_lines(), start=1):
            try:
                yield line_number, loads(raw)
            except decode_error as error:
                if raw.strip():  # blank lines are allowed
                    yield line_number, FieldError(None, f"malformed JSON: {error}")

    def _decoded_lines(self) -> Iterator[str]:
        first = True
        for raw in self._raw_lines():
            # Spreadsheets often start a CSV with a byte-order mark.
            yield raw.decode("utf-8-sig" if first else "utf-8")
            first = False

    def _csv(self) -> Iterator[Row]:
        reader = csv.reader(self._decoded_lines())
        try:
            header = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as error:
            yield 1, FieldError(None, f"not UTF-8: {error.reason}")
            return
        problem = self._header_problem(header)
        if problem:
            yield 1, FieldError(None, f"header {problem}")
            return
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as error:
                yield reader.line_num, FieldError(None, f"unreadable CSV: {error}")
                return
            line = reader.line_num
            if not cells:
                continue
            if len(cells) != len(header):
                yield (
                    line,
                    FieldError(None, f"has {len(cells)} cells, the header has {len(header)}"),
                )
                continue
            row: dict[str, Any] = dict(zip(header, cells, strict=True))
            yield line, self._csv_row_hook(row) if self._csv_row_hook else row

    def _header_problem(self, header: list[str]) -> str | None:
        if len(set(header)) != len(header):
            return "names a column twice"
        if self._csv_columns is not None:
            unknown = [c for c in header if c not in self._csv_columns]
            if unknown:
                return f"unknown column {unknown[0]!r} (expected: {', '.join(self._csv_columns)})"
        return None


class RecordSource:
    """In-memory rows (dicts in the JSON form), numbered from 1 like lines of a file."""

    from_csv = False
    total_bytes = 0
    bytes_read = 0

    def __init__(self, name: str, rows: Iterable[dict[str, Any]]):
        self.name = name
        self._rows = rows
        self._hash = hashlib.sha256()

    def digest(self) -> str:
        return self._hash.hexdigest()

    def __iter__(self) -> Iterator[Row]:
        for line_number, row in enumerate(self._rows, start=1):
            self._hash.update(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
            yield line_number, row
