"""Housekeeping tasks: thin interfaces that call a service."""

from celery import shared_task
from django.utils import timezone

from core.services import heartbeat_record


@shared_task
def beat_heartbeat() -> str:
    """Scheduled by beat every 30 s; the health page shows how long ago it last ran."""
    return heartbeat_record(name="beat", now=timezone.now()).seen_at.isoformat()


@shared_task
def ping(value: int) -> dict:
    """A round trip through the broker, a worker and the database (used by the health
    check's tests and by operators: ``celery -A config call core.tasks.ping --args=[1]``)."""
    from catalog.models import Item

    return {"echo": value, "items": Item.objects.count()}
