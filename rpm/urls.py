from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

admin.site.site_header = "Remote patient monitoring — administration"
admin.site.site_title = "RPM admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("patients.urls")),
    path("api/v1/", include("telemetry.urls")),
    path("api/v1/", include("alerts.urls")),
    path("api/v1/", include("security.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"
    ),
    path("", include("frontend.urls")),
]
