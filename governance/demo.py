"""The demo world's governance: the platform content policy and the guidelines, published
by the system through the same services an admin uses (so they are audited too)."""

from django.db import transaction

from governance import services
from governance.models import ContentPolicy, Guideline

PLATFORM_RULES = [
    {"id": "minors-no-sensitive-topics", "kind": "forbidden_topics",
     "topics": ["gambling", "graphic-violence", "alcohol", "extreme-dieting"],
     "audiences": ["minor"]},
    {"id": "minors-max-sensitivity", "kind": "max_sensitivity", "audience": "minor", "level": 1},
    {"id": "adults-max-sensitivity", "kind": "max_sensitivity", "audience": "adult", "level": 2},
    {"id": "minors-teen-rated-at-most", "kind": "max_audience_rating", "audience": "minor",
     "rating": "teen"},
    {"id": "three-sources", "kind": "min_distinct_sources", "count": 3},
    {"id": "two-per-topic", "kind": "max_items_per_topic", "count": 2},
    {"id": "sensitive-topics", "kind": "sensitive_topic_penalty", "weight": 0.5, "topics": None},
    {"id": "topic-fatigue", "kind": "recent_topic_repeat", "weight": 0.2, "window": 10},
    {"id": "source-diversity", "kind": "low_source_diversity", "weight": 0.3, "target": 4},
]  # fmt: skip

GUIDELINES = {
    "general": (
        "How we judge recommendations",
        "",
        """\
# How we judge recommendations

You are teaching a recommender how to behave **before** it meets real people. Judge each
slate for *this* user, in *this* situation: their age group, what they looked at lately,
how tired of a topic they may be.

1. **Safety first.** Anything harmful for this user makes a slate worse, whatever else it
   offers. Minors must never see adults-only or strongly sensitive items.
2. **Relevance.** Would this user want to see these items now?
3. **Diversity.** A good slate offers a range of topics and sources, not more of the same.

When you cannot tell, say so ("cannot tell"): a guess is worse than no label.
""",
    ),
    "compare": (
        "Comparing two slates",
        "compare",
        """\
# Comparing two slates

For each criterion, choose the slate that is better **for this user**: A, B, tie, or
cannot tell. Keys: `1` A, `2` B, `3` tie, `0` cannot tell.

- Judge **safety** on the worst item of each slate. A rationale is required.
- If you prefer the slate that is worse on safety overall, explain why in the rationale.
- Confidence 1–5: how sure you are, not how strongly you prefer.
""",
    ),
    "demonstrate": (
        "Demonstrating a recommendation",
        "demonstrate",
        """\
# Demonstrating a recommendation

Build the slate you would show, best first. Mark candidates you reject with a reason
(unsafe, irrelevant, repetitive, low quality). Write a line of rationale per step, then
advance the user's state and continue: good demonstrations show what to do *next*, too.
""",
    ),
    "review_flag": (
        "Reviewing user flags",
        "review_flag",
        """\
# Reviewing user flags

A user reported something they did not want to see. Decide whether the item broke the
content policy, whether the policy should change, and which rule applies.
""",
    ),
}


@transaction.atomic
def seed_governance() -> None:
    """Create and publish the platform policy and the guidelines, once."""
    if not ContentPolicy.objects.filter(slug="platform").exists():
        policy = services.policy_create(
            actor=None, slug="platform", name="Platform policy",
            description="What every recommendation must respect, for every user.",
        )  # fmt: skip
        draft = services.policy_version_create_draft(
            actor=None, policy=policy, rules=PLATFORM_RULES,
            changelog="First version: protect minors, cap sensitivity, keep slates diverse.",
        )  # fmt: skip
        services.policy_version_publish(actor=None, version=draft)
    for slug, (title, task_kind, body) in GUIDELINES.items():
        if Guideline.objects.filter(slug=slug).exists():
            continue
        guideline = services.guideline_create(
            actor=None, slug=slug, title=title, task_kind=task_kind
        )
        draft = services.guideline_version_create_draft(
            actor=None, guideline=guideline, body=body, changelog="First version."
        )
        services.guideline_version_publish(actor=None, version=draft)
