"""Governance: the criteria reviewers judge by, content policies and their versions,
guidelines and their versions, API tokens, and the append-only audit log.

Versions are immutable once published: the services refuse changes, and database
triggers (migration 0003) refuse them too, whatever code path tries.
"""

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q


class Criterion(models.Model):
    """An axis of judgment. Safety, relevance, diversity and overall are seeded."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    # What reviewers read; study participants read the plain-language version.
    description = models.TextField()
    plain_description = models.TextField(blank=True)
    weight = models.FloatField(default=1.0)
    # A slate judged worse on a veto criterion never counts as preferred overall.
    is_veto = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(weight__gte=0), name="criterion_weight_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class VersionStatus(models.TextChoices):
    DRAFT = "draft"
    PUBLISHED = "published"
    RETIRED = "retired"


class ContentPolicy(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "content policies"

    def __str__(self) -> str:
        return self.slug


class PolicyVersion(models.Model):
    """A list of rules (``governance.rules`` validates them). Draft → published → retired;
    exactly one version of a policy is published (active) once any has been."""

    policy = models.ForeignKey(ContentPolicy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=VersionStatus.choices, default=VersionStatus.DRAFT
    )
    rules = models.JSONField(default=list)
    changelog = models.CharField(max_length=300, blank=True)
    # Null when the system made it (the demo world, a migration).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["policy", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "number"], name="policy_version_number"),
            models.UniqueConstraint(
                fields=["policy"],
                condition=Q(status=VersionStatus.PUBLISHED),
                name="policy_one_published_version",
            ),
            models.CheckConstraint(
                condition=Q(status__in=VersionStatus.values), name="policy_version_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status=VersionStatus.DRAFT) | Q(published_at__isnull=False),
                name="policy_version_published_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy.slug} v{self.number} ({self.status})"

    @property
    def is_draft(self) -> bool:
        return self.status == VersionStatus.DRAFT


class Guideline(models.Model):
    """A guideline document: the general one, or one per task kind."""

    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    # Which labeling task kind it governs ("" for the general guideline).
    task_kind = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class GuidelineVersion(models.Model):
    guideline = models.ForeignKey(Guideline, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=VersionStatus.choices, default=VersionStatus.DRAFT
    )
    body = models.TextField(help_text="Markdown; rendered sanitized")
    changelog = models.CharField(max_length=300)
    # Criteria whose labels this version changes the meaning of (issue #5 re-queues them).
    affects_criteria = models.ManyToManyField(Criterion, blank=True, related_name="+")
    # Null when the system made it (the demo world, a migration).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["guideline", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["guideline", "number"], name="guideline_version_number"
            ),
            models.UniqueConstraint(
                fields=["guideline"],
                condition=Q(status=VersionStatus.PUBLISHED),
                name="guideline_one_published_version",
            ),
            models.CheckConstraint(
                condition=Q(status__in=VersionStatus.values),
                name="guideline_version_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.guideline.slug} v{self.number} ({self.status})"


class GuidelineAcknowledgement(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(GuidelineVersion, on_delete=models.PROTECT, related_name="+")
    acknowledged_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "version"], name="guideline_ack_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.version_id}"


class ApiToken(models.Model):
    """A bearer token for the API. Only a SHA-256 of the secret is stored; the secret is
    shown once, when the token is created."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="shown so owners can tell tokens apart")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()


class AuditEvent(models.Model):
    """Append-only: who did what to which object, with the object before and after.
    ``save`` refuses updates and ``delete`` refuses; database triggers refuse both too."""

    # PROTECT: people who acted are deactivated, never deleted, so the log keeps them.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The actor's username at the time, kept when the account is gone.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["actor", "created_at"], name="audit_actor_idx"),
            models.Index(fields=["action", "created_at"], name="audit_action_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_name} {self.action} {self.object_type} {self.object_id}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit events are append-only")
