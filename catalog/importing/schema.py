"""The import formats: one row per line (JSONL) or per CSV record, validated field by field.

Every check raises ``FieldError`` naming the field as it is spelled in the file, so the
importer can report ``FILE:LINE: field: what is wrong``. CSV cells arrive as strings;
each field's ``from_csv`` turns a cell into the value the JSON form would carry.
The README documents these formats with an example line each.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from catalog.models import Audience, AudienceRating

MAX_ID_LENGTH = 128
MAX_FEATURE_DIM = 4096
MAX_SLATE_SIZE = 100
MAX_HISTORY = 500
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
HISTORY_EVENTS = ("view", "click", "skip", "like", "dislike")
CSV_LIST_SEPARATOR = "|"


class FieldError(ValueError):
    """What is wrong with one field of a row (``field`` is None for the whole line)."""

    def __init__(self, field: str | None, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


# --- value checks: each takes the value and returns it normalized, or raises ValueError ---


def external_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"must be at most {MAX_ID_LENGTH} characters")
    if value != value.strip():
        raise ValueError("must not start or end with white space")
    return value


def text(max_length: int | None = None, required: bool = True) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if required and not value.strip():
            raise ValueError("must not be empty")
        if max_length is not None and len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        return value

    return check


def slug(value: Any) -> str:
    if not isinstance(value, str) or not SLUG_RE.match(value):
        raise ValueError(
            f"{value!r} is not a slug (lower-case letters, digits, '-' and '_', at most 64)"
        )
    return value


def slug_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("must be a list of slugs")
    slugs = [slug(v) for v in value]
    if len(set(slugs)) != len(slugs):
        raise ValueError("lists a slug twice")
    return slugs


def integer_between(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number from {low} to {high}")
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}, got {value}")
        return value

    return check


def number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError("must be finite")
    return value


def number_between(low: float, high: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        value = number(value)
        if not low <= value <= high:
            raise ValueError(f"must be from {low:g} to {high:g}, got {value:g}")
        return value

    return check


def propensity(value: Any) -> float:
    value = number(value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"must be in (0, 1], got {value:g}")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def choice(options: list[str]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {value!r}")
        return value

    return check


def features(value: Any) -> list[float]:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of numbers")
    if len(value) > MAX_FEATURE_DIM:
        raise ValueError(f"must have at most {MAX_FEATURE_DIM} numbers")
    for position, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"entry {position} is not a finite number")
    return value


def timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 timestamp string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} needs a UTC offset (e.g. 'Z' or '+00:00')")
    return moment


# --- CSV cells -> JSON-like values ---------------------------------------------------


def csv_int(cell: str) -> Any:
    try:
        return int(cell)
    except ValueError:
        return cell  # the field check then says what is wrong


def csv_float(cell: str) -> Any:
    try:
        return float(cell)
    except ValueError:
        return cell


def csv_bool(cell: str) -> Any:
    lowered = cell.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    return cell


def csv_list(cell: str) -> list[str]:
    return [part for part in cell.split(CSV_LIST_SEPARATOR) if part] if cell else []


def csv_int_list(cell: str) -> list[Any]:
    return [csv_int(part) for part in csv_list(cell)]


def csv_float_vector(cell: str) -> list[Any]:
    return [csv_float(part) for part in cell.split()]


@dataclass(frozen=True)
class Field:
    name: str
    check: Callable[[Any], Any]
    required: bool = True
    default: Any = None
    from_csv: Callable[[str], Any] | None = None


def validate(fields: tuple[Field, ...], row: dict[str, Any], *, from_csv: bool) -> dict:
    """Check every field of a row; return the normalized values or raise the first
    ``FieldError`` (one error per row keeps reports short and readable)."""
    if not isinstance(row, dict):
        raise FieldError(None, "a row must be a JSON object")
    known = {f.name for f in fields}
    for name in row:
        if name not in known:
            raise FieldError(str(name), f"unknown field (expected: {', '.join(sorted(known))})")
    values = {}
    for field in fields:
        raw = row.get(field.name)
        if raw is None or (from_csv and raw == "" and not field.required):
            if field.required:
                raise FieldError(field.name, "is required")
            values[field.name] = field.default() if callable(field.default) else field.default
            continue
        if from_csv and field.from_csv is not None:
            raw = field.from_csv(raw)
        try:
            values[field.name] = field.check(raw)
        except ValueError as error:
            raise FieldError(field.name, str(error)) from None
    return values


ITEM_FIELDS = (
    Field("id", external_id),
    Field("title", text(300)),
    Field("description", text(required=False), required=False, default=""),
    Field("topics", slug_list, required=False, default=list, from_csv=csv_list),
    Field("source", slug),
    Field("sensitivity", integer_between(0, 3), from_csv=csv_int),
    Field(
        "audience_rating",
        choice(AudienceRating.values),
        required=False,
        default=AudienceRating.ALL.value,
    ),
    Field("features", features, from_csv=csv_float_vector),
)

# Situation features of a context: name -> (check, default). Documented in the README.
SITUATION_FIELDS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "fatigue": (number_between(0.0, 1.0), 0.0),
    "traffic": (number_between(0.0, 1.0), 0.5),
    "hour": (integer_between(0, 23), 12),
    "weekday": (integer_between(0, 6), 0),
    "new_feature_exposure": (boolean, False),
    "policy_change_period": (boolean, False),
}
SITUATION_CSV = {
    "fatigue": csv_float,
    "traffic": csv_float,
    "hour": csv_int,
    "weekday": csv_int,
    "new_feature_exposure": csv_bool,
    "policy_change_period": csv_bool,
}


def situation(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be an object")
    result = {}
    for name, raw in value.items():
        if name not in SITUATION_FIELDS:
            raise ValueError(f"unknown key {name!r} (expected: {', '.join(SITUATION_FIELDS)})")
        try:
            result[name] = SITUATION_FIELDS[name][0](raw)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    for name, (_check, default) in SITUATION_FIELDS.items():
        result.setdefault(name, default)
    return result


def history(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise ValueError("must be a list of {item, event} objects")
    if len(value) > MAX_HISTORY:
        raise ValueError(f"must have at most {MAX_HISTORY} entries")
    entries = []
    for position, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) != {"item", "event"}:
            raise ValueError(f"entry {position} must be an object with 'item' and 'event'")
        try:
            entries.append({"item": external_id(entry["item"]), "event": entry["event"]})
        except ValueError as error:
            raise ValueError(f"entry {position}: item {error}") from None
        if entry["event"] not in HISTORY_EVENTS:
            raise ValueError(f"entry {position}: event must be one of {', '.join(HISTORY_EVENTS)}")
    return entries


def csv_history(cell: str) -> list[Any]:
    """``item-1:click|item-2:view`` -> [{"item": "item-1", "event": "click"}, …]."""
    entries: list[Any] = []
    for part in csv_list(cell):
        item, _, event = part.rpartition(":")
        entries.append({"item": item, "event": event} if item else part)
    return entries


CONTEXT_FIELDS = (
    Field("id", external_id),
    Field("user", external_id),
    Field("segment", slug),
    Field("audience", choice(Audience.values)),
    Field("situation", situation, required=False, default=dict),
    Field("history", history, required=False, default=list, from_csv=csv_history),
)
# In CSV the situation is spread over one column per key.
CONTEXT_CSV_COLUMNS = ("id", "user", "segment", "audience", *SITUATION_FIELDS, "history")


def slate(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of item ids")
    if len(value) > MAX_SLATE_SIZE:
        raise ValueError(f"must have at most {MAX_SLATE_SIZE} items")
    for position, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise ValueError(f"entry {position} is not an item id")
    if len(set(value)) != len(value):
        raise ValueError("shows an item twice")
    return value


def positions(value: Any) -> list[int]:
    if not isinstance(value, list):
        raise ValueError("must be a list of positions")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{v!r} is not a position (0 is the first)")
    if len(set(value)) != len(value):
        raise ValueError("lists a position twice")
    return value


INTERACTION_FIELDS = (
    Field("context", external_id),
    Field("slate", slate, from_csv=csv_list),
    Field("clicks", positions, required=False, default=list, from_csv=csv_int_list),
    Field("reward", number, from_csv=csv_float),
    Field("logging_policy", text(64)),
    Field("propensity", propensity, from_csv=csv_float),
    Field("timestamp", timestamp),
)


def situation_from_csv(row: dict[str, Any]) -> dict[str, Any]:
    """Gather a CSV context row's situation columns into the JSON form's object."""
    row = dict(row)
    found = {}
    for name, convert in SITUATION_CSV.items():
        cell = row.pop(name, None)
        if cell not in (None, ""):
            found[name] = convert(cell)
    row["situation"] = found
    return row


def _interaction_from_csv(row: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = dict(row)
    for spec in INTERACTION_FIELDS:
        cell = converted.get(spec.name)
        if cell == "" and not spec.required:
            del converted[spec.name]
        elif isinstance(cell, str) and spec.from_csv is not None:
            converted[spec.name] = spec.from_csv(cell)
    return converted


INTERACTION_KEYS = frozenset(f.name for f in INTERACTION_FIELDS)
_STR = {str}
_INT = {int}


def _database_reads_alike(text: str) -> bool:
    """Whether a timestamp that ``fromisoformat`` accepted is in the plain extended form
    (YYYY-MM-DDTHH:MM:SS[.ffffff] with Z or ±HH:MM) that any database reads the same way,
    so it can be written as it is. Re-formatting every timestamp costs a tenth of an import."""
    if text[-1] == "Z":
        longest = 27
    elif text[-6] in "+-" and text[-3] == ":":
        longest = 32
    else:
        return False
    return (
        len(text) <= longest
        and text[4] == text[7] == "-"
        and text[10] == "T"
        and text[13] == text[16] == ":"
        and text[19] in ".Z+-"
    )


def validate_interaction(row: Any, *, from_csv: bool) -> tuple:
    """The checks of ``validate(INTERACTION_FIELDS, …)`` plus clicks within the slate,
    written out inline: this is the hot path of imports of 10⁶–10⁸ rows, where a call per
    field would cost a third of the import. Any row the fast path does not accept goes
    through the field-by-field checks, which say exactly what is wrong.
    ``tests/catalog/test_schema.py`` holds both paths to the same verdicts.

    Returns (context, slate, clicks, reward, logging_policy, propensity, timestamp), the
    timestamp as an ISO 8601 string with its offset."""
    if type(row) is not dict:
        raise FieldError(None, "a row must be a JSON object")
    if from_csv:
        row = _interaction_from_csv(row)
    get = row.get
    context, slate_ids, clicks = get("context"), get("slate"), get("clicks", [])
    reward, policy, chance, moment = (
        get("reward"), get("logging_policy"), get("propensity"), get("timestamp")
    )  # fmt: skip
    if (
        type(context) is str
        and type(slate_ids) is list
        and type(clicks) is list
        and type(reward) in (int, float)
        and type(chance) in (int, float)
        and type(policy) is str
        and type(moment) is str
        and row.keys() <= INTERACTION_KEYS
        and 0 < len(context) <= MAX_ID_LENGTH
        and context == context.strip()
        and 0 < len(slate_ids) <= MAX_SLATE_SIZE
        and set(map(type, slate_ids)) == _STR
        and "" not in slate_ids
        and len(set(slate_ids)) == len(slate_ids)
        and (
            not clicks
            or (
                set(map(type, clicks)) == _INT
                and min(clicks) >= 0
                and max(clicks) < len(slate_ids)
                and len(set(clicks)) == len(clicks)
            )
        )
        and math.isfinite(reward)
        and 0 < len(policy) <= 64
        and policy.strip()
        and 0.0 < chance <= 1.0
    ):
        try:
            parsed = datetime.fromisoformat(moment)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            if not _database_reads_alike(moment):
                moment = parsed.isoformat()
            return (context, slate_ids, clicks, float(reward), policy, float(chance), moment)
    values = validate(INTERACTION_FIELDS, row, from_csv=False)
    slate_size = len(values["slate"])
    bad_click = next((p for p in values["clicks"] if p >= slate_size), None)
    if bad_click is not None:
        raise FieldError("clicks", f"position {bad_click} is past the slate's {slate_size} items")
    return (
        values["context"], values["slate"], values["clicks"], values["reward"],
        values["logging_policy"], values["propensity"], values["timestamp"].isoformat(),
    )  # fmt: skip
