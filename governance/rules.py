"""The rules of a content policy version, as admins write them (JSON), their validation,
and their translation into the constraint engine's rule objects.

    [{"id": "minors-no-gambling", "kind": "forbidden_topics", "topics": ["gambling"],
      "audiences": ["minor"]},
     {"id": "fatigue", "kind": "recent_topic_repeat", "weight": 0.3, "window": 10}, …]

Every error names the rule (its position and id), the field and why, e.g.
``rule 2 'minor-sensitivity': level: must be a whole number from 0 to 3``.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from governance.engine import core

AUDIENCES = ("adult", "minor")
RATINGS = ("all", "teen", "adult")
MAX_RULES = 200


@dataclass(frozen=True)
class RuleSpec:
    kind: str
    hard: bool
    label: str
    # field name -> (check, required); checks raise ValueError with a readable reason
    fields: dict[str, tuple[Callable[[Any], Any], bool]]


def _whole(low: int, high: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be {span}, got {value}")
        return value

    return check


def _weight(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError("must be a number above 0")
    if value > 1000:
        raise ValueError("must be at most 1000")
    return float(value)


def _one_of(options: tuple[str, ...], *, allow_none: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None and allow_none:
            return None
        if value not in options:
            suffix = " (or null for every audience)" if allow_none else ""
            raise ValueError(f"must be one of {', '.join(options)}{suffix}, got {value!r}")
        return value

    return check


def _string_list(what: str, *, allow_none: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None and allow_none:
            return None
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ValueError(f"must be a non-empty list of {what}")
        if len(set(value)) != len(value):
            raise ValueError(f"lists a {what[:-1]} twice")
        return value

    return check


def _audiences(value: Any) -> Any:
    if value is None:
        return None
    _string_list("audiences")(value)
    for audience in value:
        _one_of(AUDIENCES)(audience)
    return value


SPECS: dict[str, RuleSpec] = {
    spec.kind: spec
    for spec in (
        RuleSpec(
            "forbidden_topics", True, "Forbidden topics",
            {"topics": (_string_list("topics"), True), "audiences": (_audiences, False)},
        ),
        RuleSpec(
            "max_sensitivity", True, "Maximum sensitivity",
            {"audience": (_one_of(AUDIENCES, allow_none=True), False),
             "level": (_whole(0, 3), True)},
        ),
        RuleSpec(
            "max_audience_rating", True, "Maximum audience rating",
            {"audience": (_one_of(AUDIENCES, allow_none=True), False),
             "rating": (_one_of(RATINGS), True)},
        ),
        RuleSpec(
            "blocked_items", True, "Blocked items",
            {"items": (_string_list("item ids"), True)},
        ),
        RuleSpec(
            "min_distinct_sources", True, "Minimum distinct sources per slate",
            {"count": (_whole(1, 100), True)},
        ),
        RuleSpec(
            "max_items_per_topic", True, "Maximum items of one topic per slate",
            {"count": (_whole(1, 100), True)},
        ),
        RuleSpec(
            "sensitive_topic_penalty", False, "Penalty: sensitive topics",
            {"weight": (_weight, True), "topics": (_string_list("topics", allow_none=True), False)},
        ),
        RuleSpec(
            "recent_topic_repeat", False, "Penalty: repeating a recent topic (fatigue)",
            {"weight": (_weight, True), "window": (_whole(1, 500), True)},
        ),
        RuleSpec(
            "low_source_diversity", False, "Penalty: low source diversity",
            {"weight": (_weight, True), "target": (_whole(1, 100), True)},
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class RuleError:
    index: int
    rule_id: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"rule {self.index}" + (f" {self.rule_id!r}" if self.rule_id else "")
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class RulesInvalid(ValueError):
    def __init__(self, errors: list[RuleError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def validate_rules(
    rules: Any,
    *,
    topic_slugs: Iterable[str],
    known_items: Callable[[list[str]], set[str]],
) -> list[RuleError]:
    """Every problem with ``rules``; an empty list when they are all valid. ``known_items``
    returns which of the given external ids exist in the catalog."""
    if not isinstance(rules, list):
        return [RuleError(0, None, None, "the rules must be a JSON list of objects")]
    if len(rules) > MAX_RULES:
        return [RuleError(0, None, None, f"a policy version has at most {MAX_RULES} rules")]
    topics = set(topic_slugs)
    errors: list[RuleError] = []
    seen_ids: set[str] = set()
    for index, rule in enumerate(rules, start=1):
        errors.extend(_validate_rule(index, rule, seen_ids, topics, known_items))
    return errors


def _validate_rule(
    index: int,
    rule: Any,
    seen_ids: set[str],
    topics: set[str],
    known_items: Callable[[list[str]], set[str]],
) -> list[RuleError]:
    if not isinstance(rule, dict):
        return [RuleError(index, None, None, "must be an object")]
    rule_id = rule.get("id")
    if not isinstance(rule_id, str) or not rule_id.strip() or len(rule_id) > 64:
        return [RuleError(index, None, "id", "must be a non-empty string of at most 64 characters")]
    if rule_id in seen_ids:
        return [RuleError(index, rule_id, "id", "is used by an earlier rule")]
    seen_ids.add(rule_id)
    spec = SPECS.get(rule.get("kind"))
    if spec is None:
        return [RuleError(index, rule_id, "kind", f"must be one of {', '.join(SPECS)}")]
    errors = []
    for name in rule:
        if name not in ("id", "kind") and name not in spec.fields:
            errors.append(RuleError(index, rule_id, name, f"is not a field of {spec.kind}"))
    for name, (check, required) in spec.fields.items():
        if name not in rule:
            if required:
                errors.append(RuleError(index, rule_id, name, "is required"))
            continue
        try:
            check(rule[name])
        except ValueError as error:
            errors.append(RuleError(index, rule_id, name, str(error)))
            continue
        errors.extend(_references(index, rule_id, name, rule[name], topics, known_items))
    return errors


def _references(index, rule_id, name, value, topics, known_items) -> list[RuleError]:
    """Topics and items a rule names must exist."""
    if name == "topics" and value is not None:
        unknown = [t for t in value if t not in topics]
        if unknown:
            return [RuleError(index, rule_id, name, f"unknown topics: {', '.join(unknown)}")]
    if name == "items":
        unknown = sorted(set(value) - known_items(value))
        if unknown:
            shown = ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else "")
            return [RuleError(index, rule_id, name, f"unknown items: {shown}")]
    return []


def to_engine_rules(
    rules: list[dict],
    *,
    topic_index: dict[str, int],
    item_keys: dict[str, int],
) -> tuple[list, list]:
    """(hard, soft) engine rule objects for validated ``rules``. ``item_keys`` maps the
    external ids of blocked items to primary keys."""
    hard, soft = [], []
    for rule in rules:
        built = _engine_rule(rule, topic_index, item_keys)
        (hard if SPECS[rule["kind"]].hard else soft).append(built)
    return hard, soft


def _engine_rule(rule: dict, topic_index: dict[str, int], item_keys: dict[str, int]):
    rule_id, kind = rule["id"], rule["kind"]

    def topic_tuple(slugs):
        return None if slugs is None else tuple(topic_index[s] for s in slugs)

    if kind == "forbidden_topics":
        audiences = rule.get("audiences")
        return core.ForbiddenTopics(
            rule_id, topic_tuple(rule["topics"]), None if audiences is None else tuple(audiences)
        )
    if kind == "max_sensitivity":
        return core.MaxSensitivity(rule_id, rule.get("audience"), rule["level"])
    if kind == "max_audience_rating":
        return core.MaxAudienceRating(rule_id, rule.get("audience"), RATINGS.index(rule["rating"]))
    if kind == "blocked_items":
        return core.BlockedItems(rule_id, tuple(item_keys[i] for i in rule["items"]))
    if kind == "min_distinct_sources":
        return core.MinDistinctSources(rule_id, rule["count"])
    if kind == "max_items_per_topic":
        return core.MaxItemsPerTopic(rule_id, rule["count"])
    if kind == "sensitive_topic_penalty":
        return core.SensitiveTopicPenalty(rule_id, rule["weight"], topic_tuple(rule.get("topics")))
    if kind == "recent_topic_repeat":
        return core.RecentTopicRepeat(rule_id, rule["weight"], rule["window"])
    if kind == "low_source_diversity":
        return core.LowSourceDiversity(rule_id, rule["weight"], rule["target"])
    raise ValueError(f"unknown rule kind {kind!r}")
