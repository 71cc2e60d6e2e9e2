"""The clinician's live alert stream (``/ws/alerts/``)."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

# Anyone who may not listen is closed with 4403 before joining any group.
CLOSE_FORBIDDEN = 4403


def staff_group(user_id: int) -> str:
    return f"staff.{user_id}"


class AlertStreamConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or user.organisation_id is None:
            # Accept first: a close before the handshake can only say "HTTP 403",
            # and the client deserves the reason code.
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = staff_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "user": user.username})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # Heartbeat: the client pings, we answer, so both notice a dead socket.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "id": content.get("id")})

    async def alert_event(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])
