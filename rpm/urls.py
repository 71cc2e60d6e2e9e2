from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from .exposition import metrics_view
from .health import healthz, readyz

# No free database connection: 503 with Retry-After (rpm/errors.py).
handler500 = "rpm.errors.server_error"

admin.site.site_header = "Remote patient monitoring — administration"
admin.site.site_title = "RPM admin"

urlpatterns = [
    # Operations: unauthenticated probes (exempt from the HTTPS redirect) and the
    # Prometheus scrape (a token or an admin session); see docs/deploy.md.
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("patients.urls")),
    path("api/v1/", include("telemetry.urls")),
    path("api/v1/", include("alerts.urls")),
    path("api/v1/", include("security.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file of its own, not
    # inline, so the docs run under the Content-Security-Policy (script-src 'self').
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema"),
        name="api-docs",
    ),
    path("", include("frontend.urls")),
]
