from django.db import models


class Heartbeat(models.Model):
    """When a background process last proved it was alive ("beat" is written by a task
    that beat schedules and a worker runs, so it shows both are up)."""

    name = models.CharField(max_length=64, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.seen_at:%Y-%m-%d %H:%M:%S}"
