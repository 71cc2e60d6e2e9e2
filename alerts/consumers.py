"""Live streams for clinicians: their alerts, and one patient's measurements.

The socket is never the only record: every alert event is stored first and
carries its sequence number, so a client that reconnects, or learns from a
pong's ``max_seq`` that events were numbered past what it has caught up to,
asks ``GET /api/v1/alerts/?after_seq=N`` for whatever it missed.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from rpm import metrics

# Anyone who may not listen is closed with 4403 before joining any group.
CLOSE_FORBIDDEN = 4403


def staff_group(user_id: int) -> str:
    return f"staff.{user_id}"


def patient_group(patient_id: int) -> str:
    return f"patient.{patient_id}"


def _staff(scope: dict) -> Any:
    user = scope.get("user")
    if user is None or not user.is_authenticated or user.organisation_id is None:
        return None
    return user


class StreamConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def refuse(self) -> None:
        # Accept first: a close before the handshake can only say "HTTP 403",
        # and the client deserves the reason code.
        await self.accept()
        await self.close(code=CLOSE_FORBIDDEN)

    async def join(self, group: str, hello: dict[str, Any]) -> None:
        self.group = group
        await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        metrics.websocket_opened(group)
        await self.send_json(hello)

    async def disconnect(self, code: int) -> None:
        if self.group:
            metrics.websocket_closed(self.group)
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # Heartbeat: the client pings, we answer, so both notice a dead socket.
        if isinstance(content, dict) and content.get("type") == "ping":
            pong = {"type": "pong", "id": content.get("id")}
            await self.send_json({**pong, **await self.pong_news()})

    async def pong_news(self) -> dict[str, Any]:
        """What a pong tells besides "alive"."""
        return {}


class AlertStreamConsumer(StreamConsumer):
    """``/ws/alerts/``: every alert event of the clinician's patients."""

    async def connect(self) -> None:
        user = _staff(self.scope)
        if user is None:
            await self.refuse()
            return
        max_seq = await database_sync_to_async(_newest_seq)()
        await self.join(
            staff_group(user.pk),
            {"type": "hello", "user": user.username, "max_seq": max_seq},
        )

    async def alert_event(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])

    async def pong_news(self) -> dict[str, Any]:
        # The newest event number: a client that has not caught up to it asks
        # GET /api/v1/alerts/?after_seq=N. A push the channel layer dropped
        # (a clinician's channel full under a burst) is then late by one
        # heartbeat, not missing until the next reconnect.
        return {"max_seq": await database_sync_to_async(_newest_seq)()}


class PatientStreamConsumer(StreamConsumer):
    """``/ws/patients/{id}/``: live vitals, ECG features and NEWS2 of one patient."""

    async def connect(self) -> None:
        user = _staff(self.scope)
        patient_id = self.scope["url_route"]["kwargs"]["patient_id"]
        if user is None or not await database_sync_to_async(_may_see)(user, patient_id):
            await self.refuse()
            return
        await self.join(
            patient_group(patient_id), {"type": "hello", "patient_id": patient_id}
        )

    async def patient_update(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])


def _newest_seq() -> int:
    # Imported here: alerts.services imports this module (through alerts.stream).
    from .services import newest_seq

    return newest_seq()


def _may_see(user: Any, patient_id: int) -> bool:
    from patients.models import Patient

    return Patient.objects.visible_to(user).filter(pk=patient_id).exists()
