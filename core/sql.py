"""Hand-written PostgreSQL for the few statements every request runs, where compiling the
ORM's query costs more CPU than PostgreSQL spends answering it. Column lists come from
the models, so a new field cannot be forgotten; rows come back as model instances."""

from django.db import connection
from django.db.models import Model


def columns(model: type[Model], alias: str = "") -> str:
    """``alias."col", …`` (or bare ``"col", …``) for every concrete field of ``model``, in
    field order: what ``instance`` reads back."""
    quote = connection.ops.quote_name
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{quote(f.column)}" for f in model._meta.concrete_fields)


def width(model: type[Model]) -> int:
    return len(model._meta.concrete_fields)


def instance(model: type[Model], row: tuple, start: int = 0) -> Model:
    """The model instance held in ``row[start:start + width(model)]`` (a ``columns``
    list), as the ORM would build it from a database row."""
    fields = model._meta.concrete_fields
    values = row[start : start + len(fields)]
    converted = [_from_db(field, value) for field, value in zip(fields, values, strict=True)]
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def _from_db(field, value):
    """The field's own conversion (JSON text to lists and dicts, for one)."""
    for converter in field.get_db_converters(connection):
        value = converter(value, field, connection)
    return value
