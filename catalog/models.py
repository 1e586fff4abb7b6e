"""The recommender's world: items and what describes them, the user contexts it
recommends in, and the interactions a live policy logged.

Feature vectors are stored as little-endian float32 bytes (``Item.features``), so a
million of them load into one NumPy array by concatenating buffers, not by parsing text
(see ``catalog.selectors.item_feature_matrix``).
"""

import numpy as np
from django.db import models
from django.db.models import Q

FEATURE_DTYPE = np.dtype("<f4")


class BrinOnPostgresIndex(models.Index):
    """BRIN on PostgreSQL: a few pages for 10⁸ rows and nearly free to maintain on an
    append-mostly log, good for time ranges. A plain B-tree on other databases."""

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor == "postgresql":
            using = " USING brin"
        return super().create_sql(model, schema_editor, using=using, **kwargs)


class Topic(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    # Sensitive topics are what content policies restrict (e.g. for minors).
    sensitive = models.BooleanField(default=False)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Source(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class AudienceRating(models.TextChoices):
    ALL = "all", "All ages"
    TEEN = "teen", "Teen"
    ADULT = "adult", "Adults only"


class Item(models.Model):
    external_id = models.CharField(max_length=128, unique=True)
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    topics = models.ManyToManyField(Topic, through="ItemTopic", related_name="items")
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="items")
    # 0 none, 1 mild, 2 strong, 3 severe.
    sensitivity = models.PositiveSmallIntegerField(default=0)
    audience_rating = models.CharField(
        max_length=8, choices=AudienceRating.choices, default=AudienceRating.ALL
    )
    features = models.BinaryField(help_text="float32 little-endian feature vector")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(sensitivity__gte=0, sensitivity__lte=3),
                name="item_sensitivity_0_to_3",
            ),
            models.CheckConstraint(
                condition=Q(audience_rating__in=AudienceRating.values),
                name="item_audience_rating_valid",
            ),
        ]
        indexes = [models.Index(fields=["sensitivity"], name="item_sensitivity_idx")]

    def __str__(self) -> str:
        return f"{self.external_id}: {self.title}"

    @property
    def feature_vector(self) -> np.ndarray:
        return np.frombuffer(bytes(self.features), dtype=FEATURE_DTYPE)


class ItemTopic(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE)
    topic = models.ForeignKey(Topic, on_delete=models.PROTECT)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "topic"], name="item_topic_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} in {self.topic_id}"


class Audience(models.TextChoices):
    ADULT = "adult", "Adult"
    MINOR = "minor", "Minor"


class UserContext(models.Model):
    """A pseudonymous user's situation. No personal data: ``user_ref`` is an opaque key."""

    external_id = models.CharField(max_length=128, unique=True)
    user_ref = models.CharField(max_length=128, db_index=True)
    segment = models.CharField(max_length=64, db_index=True)
    audience = models.CharField(max_length=8, choices=Audience.choices)
    # Keys and ranges: catalog.schema.SITUATION_FIELDS.
    situation = models.JSONField(default=dict)
    # [{"item": external id, "event": "click" | "view" | …}, …], oldest first.
    history = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(audience__in=Audience.values), name="context_audience_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.external_id


class LoggedInteraction(models.Model):
    """What a live policy showed in a context and how the user responded: the raw
    material for off-policy evaluation and offline RL (10⁶–10⁸ rows, so kept narrow).

    Written in bulk by the importer, so every index and check here is paid per row:
    - ``context`` has no database foreign-key constraint. Checking it costs a third of
      an import's time on PostgreSQL, and the importer already resolves every context id
      against the table before writing; deleting a context that logs refer to is still
      refused (``on_delete=PROTECT``, enforced by Django).
    - time ranges use a BRIN index; per-policy scans an index on (policy, id), which
      grows at its right edge instead of at random places.
    """

    # Indexed by the (context, logged_at) index below, not by a second one of its own.
    context = models.ForeignKey(
        UserContext,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    # Item primary keys in the order shown (position 0 first).
    slate = models.JSONField()
    # Positions the user clicked.
    clicks = models.JSONField(default=list)
    reward = models.FloatField()
    logging_policy = models.CharField(max_length=64)
    # The logging policy's probability of showing exactly this slate.
    propensity = models.FloatField()
    logged_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(propensity__gt=0, propensity__lte=1),
                name="interaction_propensity_in_0_1",
            ),
        ]
        indexes = [
            models.Index(fields=["context", "logged_at"], name="interaction_context_time_idx"),
            BrinOnPostgresIndex(fields=["logged_at"], name="interaction_time_brin"),
            models.Index(fields=["logging_policy", "id"], name="interaction_policy_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.logging_policy} in context {self.context_id} at {self.logged_at:%Y-%m-%d}"


class ImportRun(models.Model):
    """One committed import: provenance for the catalog and a guard against loading the
    same interactions file twice."""

    class Kind(models.TextChoices):
        ITEMS = "items"
        CONTEXTS = "contexts"
        INTERACTIONS = "interactions"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    source_name = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    rows = models.PositiveBigIntegerField()
    created = models.PositiveBigIntegerField(default=0)
    seconds = models.FloatField()
    finished_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "sha256"], name="importrun_kind_sha_idx")]

    def __str__(self) -> str:
        return f"{self.kind} from {self.source_name} ({self.rows} rows)"


class CatalogGeneration(models.Model):
    """A token changed, in the same transaction, by every change to items or topics, so
    that caches of catalog arrays (the constraint engine's) know when they are stale."""

    generation = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"catalog generation {self.generation}"
