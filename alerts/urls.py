from __future__ import annotations

from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()
router.register("alerts", api.AlertViewSet, basename="alert")

urlpatterns = router.urls
