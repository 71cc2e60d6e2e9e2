"""Pushing stored events to the people who may see them (never the only record)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
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


PUSH_TIMEOUT_S = 5.0


class _PushLoop:
    """One event loop per process, in a daemon thread, for pushes from synchronous
    code. ``async_to_sync`` would build a loop and a thread for every call, and
    channels-redis keeps its connections per loop: 3.1 ms and a new Redis
    connection per push, measured from a worker. Rebuilt after a fork (Celery's
    prefork children), since the thread does not survive it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._loop, self._pid = asyncio.new_event_loop(), os.getpid()
                threading.Thread(
                    target=self._loop.run_forever, name="channel-push", daemon=True
                ).start()
            loop = self._loop
        asyncio.run_coroutine_threadsafe(coroutine, loop).result(PUSH_TIMEOUT_S)


_push_loop = _PushLoop()


def _send(groups: list[str], message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            if isinstance(layer, InMemoryChannelLayer):
                # Its queues belong to the consumers' loop: send from there.
                async_to_sync(layer.group_send)(group, message)
            else:
                _push_loop.run(layer.group_send(group, message))
        except Exception:
            # The push is best effort: the event is stored and clients catch up.
            log.exception("could not push to %s", group)
