from django.db import migrations

CRITERIA = [
    ("safety", "Safety", True, 1.0,
     "Would anything in this slate harm this user, given their age, their tolerance and the "
     "content policy? Judge the worst item, not the average.",
     "Is anything here unsafe or upsetting for this person?"),
    ("relevance", "Relevance", False, 1.0,
     "How well does the slate match what this user wants now, given their history and "
     "situation?",
     "Would this person want to see these?"),
    ("diversity", "Diversity", False, 0.5,
     "Does the slate offer a healthy range of topics and sources rather than more of the same?",
     "Is there enough variety?"),
    ("overall", "Overall", False, 1.0,
     "All things considered, which slate should this user see? A slate judged unsafe never "
     "counts as preferred overall.",
     "Which would you rather show this person?"),
]  # fmt: skip


def seed(apps, schema_editor):
    Criterion = apps.get_model("governance", "Criterion")
    for position, (slug, name, veto, weight, description, plain) in enumerate(CRITERIA, start=1):
        Criterion.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name, "is_veto": veto, "weight": weight, "description": description,
                "plain_description": plain, "position": position,
            },
        )  # fmt: skip


def unseed(apps, schema_editor):
    apps.get_model("governance", "Criterion").objects.filter(
        slug__in=[c[0] for c in CRITERIA]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("governance", "0002_models")]
    operations = [migrations.RunPython(seed, unseed)]
