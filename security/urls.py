from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("keys/<str:slave_sae_id>/status", api.StatusView.as_view(), name="kme-status"),
    path(
        "keys/<str:slave_sae_id>/enc_keys",
        api.EncKeysView.as_view(),
        name="kme-enc-keys",
    ),
    path(
        "keys/<str:master_sae_id>/dec_keys",
        api.DecKeysView.as_view(),
        name="kme-dec-keys",
    ),
    path("security/sessions", api.SessionView.as_view(), name="security-sessions"),
]
