"""The import formats' checks. The interactions fast path must reach exactly the verdicts
of the field-by-field checks it stands in for."""

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.importing.schema import (
    INTERACTION_FIELDS,
    FieldError,
    _database_reads_alike,
    validate,
    validate_interaction,
)

GOOD = {
    "context": "ctx-1",
    "slate": ["item-1", "item-2", "item-3"],
    "clicks": [0, 2],
    "reward": 1.5,
    "logging_policy": "popularity-softmax",
    "propensity": 0.25,
    "timestamp": "2026-11-02T10:15:00.123456+00:00",
}

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=string.ascii_letters + " -:+.TZ0123456789", max_size=12),
    st.lists(st.one_of(st.integers(-1, 4), st.sampled_from(["item-1", "item-2", ""])), max_size=4),
    st.sampled_from(["2026-11-02T10:15:00Z", "2026-11-02 10:15", "2026-11-02T10:15:00+05:30"]),
)


def reference_verdict(row: dict) -> tuple | str:
    """The slow path, plus the cross-field rule on clicks, as a value or an error text."""
    try:
        checked = validate(INTERACTION_FIELDS, row, from_csv=False)
    except FieldError as error:
        return f"{error.field}: {error.message}"
    if any(p >= len(checked["slate"]) for p in checked["clicks"]):
        return "clicks: past the slate"
    return tuple(checked[f.name] for f in INTERACTION_FIELDS)


def fast_verdict(row: dict) -> tuple | str:
    try:
        result = validate_interaction(row, from_csv=False)
    except FieldError as error:
        if error.field == "clicks" and "past the slate" in error.message:
            return "clicks: past the slate"
        return f"{error.field}: {error.message}"
    *rest, moment = result
    from datetime import datetime

    return (*rest, datetime.fromisoformat(moment))


@settings(max_examples=600, deadline=None)
@given(field=st.sampled_from(sorted(GOOD) + ["extra"]), value=values)
def test_the_fast_path_agrees_with_the_field_checks(field, value):
    row = {**GOOD, field: value}

    assert fast_verdict(row) == reference_verdict(row)


def test_a_missing_optional_clicks_field_means_no_clicks():
    row = {k: v for k, v in GOOD.items() if k != "clicks"}

    assert validate_interaction(row, from_csv=False)[2] == []


def test_csv_cells_are_converted_before_checking():
    row = {**{k: str(v) for k, v in GOOD.items()}, "slate": "a|b", "clicks": "1"}

    context, slate, clicks, reward, policy, chance, moment = validate_interaction(
        row, from_csv=True
    )

    assert (slate, clicks, reward, chance) == (["a", "b"], [1], 1.5, 0.25)


@pytest.mark.parametrize(
    ("text", "alike"),
    [
        ("2026-11-02T10:15:00Z", True),
        ("2026-11-02T10:15:00.5+01:00", True),
        ("2026-11-02T10:15:00.123456-05:30", True),
        ("2026-11-02T10:15:00.1234567+00:00", False),  # databases round, Python truncates
        ("2026-11-02 10:15:00+00:00", False),
        ("2026-11-02T10:15+00:00", False),
        ("20261102T101500+0000", False),
    ],
)
def test_only_plain_extended_timestamps_are_written_as_given(text, alike):
    assert _database_reads_alike(text) is alike


def test_other_timestamp_forms_are_normalized():
    row = {**GOOD, "timestamp": "20261102T101500+0000"}

    assert validate_interaction(row, from_csv=False)[-1] == "2026-11-02T10:15:00+00:00"
