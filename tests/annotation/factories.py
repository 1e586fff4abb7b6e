"""Small worlds for labeling tests: a context, items, criteria and tasks."""

import numpy as np

from annotation.models import QueueTask, TaskKind, TaskReason
from catalog.models import Item, ItemTopic, Source, Topic, UserContext
from catalog.services import catalog_changed
from governance.models import Criterion

CRITERIA = [("safety", True), ("relevance", False), ("diversity", False), ("overall", False)]
ALL_TIE = {slug: "tie" for slug, _ in CRITERIA}


def ensure_criteria() -> None:
    """Transactional tests flush the criteria the migration seeded: put them back."""
    for position, (slug, veto) in enumerate(CRITERIA):
        Criterion.objects.get_or_create(
            slug=slug, defaults={"name": slug.capitalize(), "description": slug, "is_veto": veto,
                                 "position": position},
        )  # fmt: skip


def small_catalog(n_items: int = 6) -> tuple[UserContext, list[Item]]:
    sources = [
        Source.objects.get_or_create(slug=f"s{i}", defaults={"name": f"S{i}"})[0] for i in range(3)
    ]
    topic = Topic.objects.get_or_create(slug="cooking", defaults={"name": "Cooking"})[0]
    items = []
    for n in range(n_items):
        item, _ = Item.objects.get_or_create(
            external_id=f"item-{n}",
            defaults={"title": f"Item {n}", "source": sources[n % 3], "sensitivity": n % 2,
                      "features": np.full(4, n, "<f4").tobytes()},
        )  # fmt: skip
        ItemTopic.objects.get_or_create(item=item, topic=topic)
        items.append(item)
    catalog_changed()
    context, _ = UserContext.objects.get_or_create(
        external_id="ctx-1",
        defaults={"user_ref": "u-1", "segment": "casual", "audience": "adult",
                  "history": [{"item": "item-0", "event": "click"}]},
    )  # fmt: skip
    return context, items


def compare_tasks(context: UserContext, items: list[Item], count: int, **fields) -> list[QueueTask]:
    a = [i.pk for i in items[:3]]
    b = [i.pk for i in items[3:6]]
    fields = {"kind": TaskKind.COMPARE, "reason": TaskReason.AUDIT, **fields}
    tasks = [QueueTask(context=context, slate_a=a, slate_b=b, **fields) for _ in range(count)]
    return QueueTask.objects.bulk_create(tasks, batch_size=5000)
