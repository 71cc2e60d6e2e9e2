from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from . import api, views

urlpatterns = [
    path("", views.ward, name="ward"),
    path("ward/rows/", views.ward_rows_fragment, name="ward-rows"),
    path("patients/<int:patient_id>/", views.patient_page, name="patient"),
    path(
        "patients/<int:patient_id>/alerts/",
        views.patient_alerts_fragment,
        name="patient-alerts",
    ),
    path("patients/<int:patient_id>/notes/", views.add_note, name="patient-notes"),
    path("patients/<int:patient_id>/trends.json", api.trends, name="patient-trends"),
    path("dashboard/directory.json", api.directory, name="patient-directory"),
    path("security/", views.security_page, name="security"),
    path("security/data.json", api.security_data, name="security-data"),
    path("dashboard/keepalive/", api.keepalive, name="keepalive"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="frontend/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
