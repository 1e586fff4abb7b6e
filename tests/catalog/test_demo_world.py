"""seed_demo: a coherent world written through the importers."""

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from catalog.models import ImportRun, Item, LoggedInteraction, Topic, UserContext
from training.ml.simulator import LoggingPolicy, SimConfig, Simulator

pytestmark = pytest.mark.django_db(transaction=True)


def seed(*flags: str) -> str:
    out = io.StringIO()
    sizes = ["--items=400", "--users=60", "--interactions=3000", "--seed=3"]
    call_command("seed_demo", *sizes, *flags, stdout=out)
    return out.getvalue()


def test_the_demo_world_is_coherent():
    seed()

    assert Item.objects.count() == 400
    assert UserContext.objects.count() == 60
    assert LoggedInteraction.objects.count() == 3000
    assert Topic.objects.count() == 25
    assert set(Topic.objects.filter(sensitive=True).values_list("slug", flat=True)) == {
        "gambling", "graphic-violence", "alcohol", "extreme-dieting",
    }  # fmt: skip
    assert set(UserContext.objects.values_list("audience", flat=True)) == {"adult", "minor"}
    assert UserContext.objects.values("segment").distinct().count() == 5
    assert set(ImportRun.objects.values_list("kind", flat=True)) == {
        "items", "contexts", "interactions",
    }  # fmt: skip
    from annotation.models import QueueTask

    assert QueueTask.objects.filter(kind="compare", audience="labeler").exists()
    assert QueueTask.objects.filter(audience="study_participant").exists()
    assert QueueTask.objects.filter(kind="demonstrate").exists()
    _the_simulated_expert_demonstrated_within_the_policy()
    # Sensitive topics carry the sensitive items.
    severe = Item.objects.filter(sensitivity=3)
    assert severe.exists()
    assert not severe.exclude(audience_rating="adult").exists()


def _the_simulated_expert_demonstrated_within_the_policy():
    from annotation.models import Demonstration, DemonstrationStep
    from governance.engine.core import EngineContext
    from governance.policy_engine import catalog_index, compile_version
    from governance.selectors import policy_version_in_force

    demonstrations = Demonstration.objects.filter(reviewer__username="simulated-expert")
    assert demonstrations.count() == 120
    assert not demonstrations.first().reviewer.has_usable_password()
    engine = compile_version(policy_version_in_force())
    position = catalog_index().position_of_pk
    steps = DemonstrationStep.objects.select_related("demonstration__context")
    assert steps.count() == 240
    for step in steps:
        audience = EngineContext(step.demonstration.context.audience)
        assert len(step.chosen) == 5
        assert set(step.chosen) <= set(step.shown)
        assert not engine.violations(audience, [position[pk] for pk in step.chosen])
        assert step.rejected[0]["reason"] in ("unsafe", "irrelevant")


def test_logged_propensities_are_the_logging_policys_own():
    seed()
    sim = Simulator(SimConfig(n_items=400, n_users=60), seed=3)
    policy = LoggingPolicy(sim)
    index_of_item = {
        pk: sim.world.item_ids.index(ext)
        for pk, ext in Item.objects.values_list("pk", "external_id")
    }
    user_of_context = {
        pk: sim.world.user_ids.index(user)
        for pk, user in UserContext.objects.values_list("pk", "user_ref")
    }

    rows = list(LoggedInteraction.objects.values_list("context_id", "slate", "propensity")[:200])
    users = np.array([user_of_context[c] for c, _, _ in rows])
    slates = np.array([[index_of_item[pk] for pk in slate] for _, slate, _ in rows])

    np.testing.assert_allclose(
        policy.propensities(users, slates), [p for _, _, p in rows], rtol=1e-9
    )


def test_seeding_twice_is_refused_or_skipped():
    seed()

    with pytest.raises(CommandError, match="already has items"):
        seed()
    assert "already has items" in seed("--if-empty")
    assert LoggedInteraction.objects.count() == 3000
