"""Writing the audit log. Every service that changes governed state calls
``audit_record`` inside its own transaction, so the change and its event commit together
or not at all."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import models, transaction

from core.middleware import current_request_id
from governance.models import AuditEvent


def snapshot(instance: models.Model, fields: list[str] | None = None) -> dict[str, Any]:
    """A JSON-safe dict of an instance's concrete fields (foreign keys by id), for the
    before and after of an audit event."""
    data: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        if fields is not None and field.name not in fields:
            continue
        value = getattr(instance, field.attname)
        data[field.name] = _json_safe(value)
    return data


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return f"<{len(value)} bytes>"
    return value


def audit_record(
    *,
    actor,
    action: str,
    target: models.Model | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Append one event. Must run inside the transaction of the change it records."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the change")
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=getattr(actor, "username", "") or "system",
        action=action,
        object_type=object_type or (target._meta.label_lower if target is not None else ""),
        object_id=str(object_id if object_id is not None else getattr(target, "pk", "")),
        object_repr=str(target)[:200] if target is not None else "",
        before=before,
        after=after,
        request_id=current_request_id(),
    )
