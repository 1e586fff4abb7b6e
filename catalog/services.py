"""Writes to the catalog that are not file imports (those live in catalog.importing)."""

import secrets

from django.db import transaction

from catalog.models import CatalogGeneration, Topic


def catalog_changed() -> None:
    """Mark cached catalog arrays stale (call inside the transaction that changes items or
    topics). The new generation is random, not the old one plus one: if the change rolls
    back, a cache built from its uncommitted rows stays keyed by a number nobody sees."""
    generation = secrets.randbits(62)
    updated = CatalogGeneration.objects.filter(pk=1).update(generation=generation)
    if not updated:
        CatalogGeneration.objects.update_or_create(pk=1, defaults={"generation": generation})


@transaction.atomic
def topics_ensure(*, specs: list[tuple[str, str, bool]]) -> list[Topic]:
    """Create or update topics from (slug, name, sensitive) triples."""
    topics = []
    for slug, name, sensitive in specs:
        topic, _ = Topic.objects.update_or_create(
            slug=slug, defaults={"name": name, "sensitive": sensitive}
        )
        topics.append(topic)
    catalog_changed()
    return topics
