from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()
router.register("patients", api.PatientViewSet, basename="patient")

urlpatterns = [
    path("auth/token", api.obtain_token, name="auth-token"),
    path("", include(router.urls)),
]
