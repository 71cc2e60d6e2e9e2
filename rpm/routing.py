"""WebSocket routes of every app."""

from __future__ import annotations

from django.urls import path

from alerts.consumers import AlertStreamConsumer, PatientStreamConsumer

websocket_urlpatterns = [
    path("ws/alerts/", AlertStreamConsumer.as_asgi()),
    path("ws/patients/<int:patient_id>/", PatientStreamConsumer.as_asgi()),
]
