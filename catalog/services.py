"""Writes to the catalog that are not file imports (those live in catalog.importing)."""

from django.db import transaction

from catalog.models import Topic


@transaction.atomic
def topics_ensure(*, specs: list[tuple[str, str, bool]]) -> list[Topic]:
    """Create or update topics from (slug, name, sensitive) triples."""
    topics = []
    for slug, name, sensitive in specs:
        topic, _ = Topic.objects.update_or_create(
            slug=slug, defaults={"name": name, "sensitive": sensitive}
        )
        topics.append(topic)
    return topics
