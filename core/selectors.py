from datetime import datetime, timedelta

from django.db import connection

from core.models import Heartbeat

# Beat schedules the heartbeat every 30 s; three missed beats means something is down.
HEARTBEAT_STALE_AFTER = timedelta(seconds=90)


def health_report(*, now: datetime) -> dict:
    """Database reachability and the age of the last beat heartbeat."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    beat = Heartbeat.objects.filter(name="beat").first()
    age = (now - beat.seen_at).total_seconds() if beat else None
    return {
        "database": "ok",
        "beat_last_seen": beat.seen_at.isoformat() if beat else None,
        "beat_seconds_ago": None if age is None else round(age, 1),
        "beat_ok": age is not None and age <= HEARTBEAT_STALE_AFTER.total_seconds(),
    }
