"""Writing the audit log: one call per event, never an update."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.http import HttpRequest

from .models import AuditEvent


def record_event(
    *,
    action: str,
    user: Any = None,
    device: Any = None,
    patient: Any = None,
    obj: Any = None,
    request: HttpRequest | None = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        action=action,
        actor_user=user if getattr(user, "is_authenticated", False) else None,
        actor_device=device,
        patient=patient,
        object_type=type(obj).__name__ if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        source_ip=_source_ip(request),
        outcome=outcome,
        details=details or {},
    )


def _source_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    address = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
