"""Training runs and the model registry.

A run is one Celery job that trains one model from a snapshot of the labeled store. It
beats while it works; a run whose beat stops (its worker was killed) is retried or failed
by beat. A ModelVersion exists only once its artifact is on disk, complete and hashed:
the row and the run's success commit together, so no half model is ever registered.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class ModelKind(models.TextChoices):
    REWARD = "reward", "Reward model"
    POLICY = "policy", "Policy"


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


ACTIVE_RUN_STATES = (RunStatus.QUEUED, RunStatus.RUNNING)


class RunTrigger(models.TextChoices):
    LABELS = "labels", "New labels"
    SCHEDULE = "schedule", "Schedule"
    ADMIN = "admin", "Admin request"
    PROMOTION = "promotion", "Reward model promoted"


class TrainingRun(models.Model):
    kind = models.CharField(max_length=8, choices=ModelKind.choices)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    config = models.JSONField(default=dict, help_text="the training settings this run used")
    attempt = models.PositiveSmallIntegerField(default=0, help_text="starts so far")
    worker = models.CharField(max_length=200, blank=True, help_text="host and pid running it")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # {"stage", "epoch", "epochs", "losses": [[epoch, train, validation], …], "eta_seconds"}
    progress = models.JSONField(default=dict)
    # The snapshot of the labeled store the run trained on.
    dataset_hash = models.CharField(max_length=64, blank=True)
    label_counts = models.JSONField(
        default=dict, help_text="labels by channel, criterion and guideline version"
    )
    metrics = models.JSONField(default=dict)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # At most one run of a kind at a time: a second request joins the first.
            models.UniqueConstraint(
                fields=["kind"], condition=Q(status__in=ACTIVE_RUN_STATES),
                name="training_one_active_run_per_kind",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.get_kind_display()} run {self.pk} ({self.status})"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_RUN_STATES


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate"
    PROMOTED = "promoted"
    RETIRED = "retired"
    ROLLED_BACK = "rolled_back", "Rolled back"


class ExplorationStage(models.IntegerChoices):
    """How far the promoted policy may stray from what it is sure of (DESIGN: staged
    exploration). Moving up a stage is an admin's decision, audited."""

    GREEDY = 0, "0 · greedy: always the best slate"
    CLONED_TOP = 1, "1 · sample within the cloned policy's top items the reward model is sure of"
    WIDER = 2, "2 · sample among all allowed items"


class ModelVersion(models.Model):
    kind = models.CharField(max_length=8, choices=ModelKind.choices)
    version = models.PositiveIntegerField()
    status = models.CharField(
        max_length=12, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE
    )
    run = models.OneToOneField(
        TrainingRun, on_delete=models.PROTECT, null=True, blank=True, related_name="model"
    )
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children",
        help_text="the promoted model of this kind when this one was trained",
    )  # fmt: skip
    config = models.JSONField(default=dict)
    feature_schema = models.JSONField(default=dict)
    dataset_hash = models.CharField(max_length=64)
    label_counts = models.JSONField(default=dict)
    guideline_versions = models.JSONField(
        default=list, help_text="ids of the guideline versions its labels were made under"
    )
    policy_version = models.ForeignKey(
        "governance.PolicyVersion", on_delete=models.PROTECT, null=True, blank=True,
        related_name="+", help_text="the content policy in force when it was trained",
    )  # fmt: skip
    metrics = models.JSONField(default=dict)
    # The promotion gate's verdict: {"passed", "reasons": […], "compared_to"}.
    gate = models.JSONField(default=dict)
    artifact_path = models.CharField(max_length=500, help_text="relative to the model store")
    artifact_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", help_text="empty when the gate promoted it (auto-promotion)",
    )  # fmt: skip
    replaced = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="the model it took over from when promoted: what a rollback restores",
    )  # fmt: skip
    exploration_stage = models.PositiveSmallIntegerField(
        choices=ExplorationStage.choices, default=ExplorationStage.GREEDY,
        help_text="policies only: how the serving side may explore with it",
    )  # fmt: skip

    class Meta:
        ordering = ["kind", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="model_version_once"),
            models.UniqueConstraint(
                fields=["kind"], condition=Q(status=ModelStatus.PROMOTED),
                name="model_one_promoted_per_kind",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.kind} v{self.version} ({self.status})"


class TrainingSettings(models.Model):
    """One row (pk 1): when to retrain and what the promotion gate asks. Admins edit it;
    every change is audited."""

    retrain_after_labels = models.PositiveIntegerField(
        default=500, help_text="new labels since the last run that start a reward-model run"
    )
    accuracy_margin = models.FloatField(
        default=0.02, validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="how much worse a candidate's held-out accuracy may be",
    )  # fmt: skip
    max_calibration_error = models.FloatField(
        default=0.05, validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="the highest expected calibration error a candidate may have",
    )  # fmt: skip
    auto_promote = models.BooleanField(
        default=True, help_text="promote a candidate that passes the gate without an admin"
    )
    ensemble_members = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    max_epochs = models.PositiveSmallIntegerField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    time_limit_seconds = models.PositiveIntegerField(
        default=1800, validators=[MinValueValidator(60)],
        help_text="a run taking longer is stopped and failed",
    )  # fmt: skip
    heartbeat_timeout_seconds = models.PositiveIntegerField(
        default=120, validators=[MinValueValidator(3)],
        help_text="a run silent this long lost its worker (it beats three times as often)",
    )  # fmt: skip
    max_attempts = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1)],
        help_text="starts a run gets before a lost worker fails it",
    )  # fmt: skip
    audit_share = models.FloatField(
        default=0.1, validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="share of proposed comparisons drawn at random (unbiased evaluation)",
    )  # fmt: skip
    proposals_per_refresh = models.PositiveIntegerField(
        default=200, help_text="comparison tasks the active-learning refresh adds at most"
    )
    # The policy: its conservative improvement and its gate.
    kl_coefficient = models.FloatField(
        default=0.05, validators=[MinValueValidator(0.001), MaxValueValidator(100)],
        help_text="β, reward units per nat: how close the improved policy stays to the "
        "cloned one (higher: closer)",
    )  # fmt: skip
    penalty_budget = models.FloatField(
        default=0.5, validators=[MinValueValidator(0)],
        help_text="the expected soft-rule penalty per slate the policy may spend",
    )  # fmt: skip
    policy_critic_steps = models.PositiveIntegerField(
        default=1500, validators=[MinValueValidator(1), MaxValueValidator(100_000)],
        help_text="optimisation steps of the policy's critic on the logs and the reward model, "
        "at most: the fit stops early when held-out logs stop improving",
    )  # fmt: skip
    ope_margin = models.FloatField(
        default=0.02, validators=[MinValueValidator(0)],
        help_text="how far a candidate's OPE lower bound may be below the promoted estimate",
    )  # fmt: skip
    hit_margin = models.FloatField(
        default=0.05, validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="how much worse a candidate's held-out hit@k may be",
    )  # fmt: skip
    hit_k = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="k of hit@k on held-out demonstrations",
    )  # fmt: skip
    exploration_top_m = models.PositiveSmallIntegerField(
        default=20, validators=[MinValueValidator(1)],
        help_text="stage 1 samples only among the cloned policy's top m items",
    )  # fmt: skip
    exploration_budget_per_day = models.PositiveIntegerField(
        default=1000, help_text="exploratory slates served per day; greedy after that"
    )

    class Meta:
        verbose_name_plural = "training settings"
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="training_settings_singleton"),
            models.CheckConstraint(
                condition=Q(audit_share__gte=0, audit_share__lte=1),
                name="training_audit_share_0_1",
            ),
            models.CheckConstraint(
                condition=Q(accuracy_margin__gte=0, max_calibration_error__gte=0),
                name="training_gate_bounds_positive",
            ),
        ]

    def __str__(self) -> str:
        return "Training settings"
