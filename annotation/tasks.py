"""Queue housekeeping: thin tasks that call a service."""

from celery import shared_task
from django.utils import timezone

from annotation.services import leases_reclaim_expired


@shared_task
def reclaim_expired_leases() -> int:
    """Beat runs this every 30 s: a closed tab's lease frees its slot within a minute of
    expiring, even when nobody asks for a next task."""
    return leases_reclaim_expired(now=timezone.now())
