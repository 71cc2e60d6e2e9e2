from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("telemetry/batches", api.BatchUploadView.as_view(), name="telemetry-batches"),
]
