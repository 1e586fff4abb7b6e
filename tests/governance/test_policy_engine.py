"""The Django side of the engine: catalog arrays that match the database, caches that
notice changes, contexts as the engine sees them."""

import numpy as np
import pytest

from catalog.importing.importers import import_records
from catalog.models import Item, Topic, UserContext
from governance import services
from governance.engine.core import EngineContext
from governance.policy_engine import active_version, catalog_index, compile_version, engine_context

pytestmark = pytest.mark.django_db


def items(*rows):
    import_records(
        "items",
        "test",
        [
            {"id": ext, "title": ext, "topics": topics, "source": source, "sensitivity": sens,
             "audience_rating": rating, "features": [1.0]}
            for ext, topics, source, sens, rating in rows
        ],
    )  # fmt: skip


def test_the_arrays_hold_each_items_topics_primary_first_and_its_attributes():
    items(("a", ["travel", "cooking"], "s1", 2, "teen"), ("b", ["cooking"], "s2", 0, "all"))

    index = catalog_index()

    arrays = index.arrays
    a = index.position_of_pk[Item.objects.get(external_id="a").pk]
    names = arrays.topic_names
    assert [names[t] for t in arrays.topics[a] if t >= 0] == ["travel", "cooking"]
    assert arrays.sensitivity[a] == 2
    assert arrays.rating[a] == 1
    assert index.primary_topic_of_external_id["a"] == names.index("travel")
    assert (
        arrays.source[a]
        != arrays.source[index.position_of_pk[Item.objects.get(external_id="b").pk]]
    )


def test_an_import_or_a_topic_change_refreshes_the_cached_arrays(policy_admin):
    items(("a", ["cooking"], "s1", 0, "all"))
    first = catalog_index()
    assert catalog_index() is first  # cached

    items(("b", ["cooking"], "s1", 0, "all"))
    second = catalog_index()
    assert second is not first
    assert second.arrays.n_items == 2

    services.topic_update(
        actor=policy_admin, topic=Topic.objects.get(slug="cooking"), name="Cooking",
        sensitive=True, description="",
    )  # fmt: skip
    assert catalog_index().arrays.topic_sensitive.tolist() == [True]


def test_a_context_is_its_audience_and_the_primary_topics_of_its_history():
    items(("a", ["travel", "cooking"], "s1", 0, "all"), ("b", ["cooking"], "s1", 0, "all"))
    import_records(
        "contexts", "test",
        [{"id": "c", "user": "u", "segment": "teen", "audience": "minor",
          "history": [{"item": "a", "event": "click"}, {"item": "b", "event": "view"}]}],
    )  # fmt: skip
    index = catalog_index()

    situation = engine_context(UserContext.objects.get(external_id="c"), index=index)

    assert situation.audience == "minor"
    names = index.arrays.topic_names
    assert [names[t] for t in situation.recent_topics] == ["travel", "cooking"]


def test_the_active_version_compiles_and_masks_what_its_rules_forbid(policy_admin, settings):
    settings.SHEPHERD_CONTENT_POLICY = "platform"
    items(("safe", ["cooking"], "s1", 0, "all"), ("harsh", ["cooking"], "s1", 3, "adult"))
    policy = services.policy_create(actor=policy_admin, slug="platform", name="Platform")
    draft = services.policy_version_create_draft(
        actor=policy_admin, policy=policy, changelog="v1",
        rules=[{"id": "minors", "kind": "max_sensitivity", "audience": "minor", "level": 1}],
    )  # fmt: skip
    services.policy_version_publish(actor=policy_admin, version=draft)
    index = catalog_index()

    engine = compile_version(active_version())

    mask = engine.allowed_mask(EngineContext("minor", np.zeros(0, np.int64)))
    allowed = {index.arrays.item_keys[i] for i in np.flatnonzero(mask)}
    assert allowed == {Item.objects.get(external_id="safe").pk}
    assert engine.allowed_mask(EngineContext("adult", np.zeros(0, np.int64))).all()
