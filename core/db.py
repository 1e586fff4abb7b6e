"""Database helpers that the ORM lacks."""

from django.db import connection, models


def increment(model: type[models.Model], keys: dict, deltas: dict) -> None:
    """Add ``deltas`` to the row ``keys`` names, creating it if missing, in one statement
    (INSERT … ON CONFLICT DO UPDATE, on PostgreSQL and SQLite alike): concurrent
    increments of the same row serialize in the database and none is lost. ``keys`` must
    be the fields of a unique constraint."""
    table = connection.ops.quote_name(model._meta.db_table)
    columns = {
        model._meta.get_field(name).column: value for name, value in {**keys, **deltas}.items()
    }
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    conflict = ", ".join(connection.ops.quote_name(model._meta.get_field(k).column) for k in keys)
    updates = ", ".join(
        f"{q} = {table}.{q} + excluded.{q}"
        for q in (connection.ops.quote_name(model._meta.get_field(d).column) for d in deltas)
    )
    placeholders = ", ".join(["%s"] * len(columns))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({names}) VALUES ({placeholders}) "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}",
            list(columns.values()),
        )
