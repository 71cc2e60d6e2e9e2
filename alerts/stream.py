"""Pushing stored events to the people who may see them (never the only record)."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db.models import Q

from patients.models import Role, User

from .consumers import patient_group, staff_group

log = logging.getLogger(__name__)


def recipients(*, organisation_id: int | None, patient_id: int | None) -> list[int]:
    """Staff who may see the subject: the patient's care teams and the
    organisation's admins (infrastructure alerts: every admin)."""
    admins = Q(role=Role.ADMIN)
    if organisation_id is not None:
        admins &= Q(organisation_id=organisation_id)
    who = admins | Q(care_teams__patients=patient_id) if patient_id else admins
    return list(
        User.objects.filter(who, is_active=True).values_list("pk", flat=True).distinct()
    )


def send_to_staff(user_ids: list[int], payload: dict[str, Any]) -> None:
    _send(
        [staff_group(pk) for pk in user_ids],
        {"type": "alert.event", "payload": payload},
    )


def send_to_patient_watchers(patient_id: int, payload: dict[str, Any]) -> None:
    _send([patient_group(patient_id)], {"type": "patient.update", "payload": payload})


def _send(groups: list[str], message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:
            # The push is best effort: the event is stored and clients catch up.
            log.exception("could not push to %s", group)
