from __future__ import annotations

from django.urls import path

from . import api, clinician_api, edge_api

urlpatterns = [
    path("telemetry/batches", api.BatchUploadView.as_view(), name="telemetry-batches"),
    path(
        "telemetry/sealed-batches",
        api.SealedBatchUploadView.as_view(),
        name="telemetry-sealed-batches",
    ),
    path(
        "telemetry/edge-batches",
        edge_api.EdgeBatchUploadView.as_view(),
        name="telemetry-edge-batches",
    ),
    path(
        "telemetry/edge-requests",
        edge_api.EdgeRequestsView.as_view(),
        name="telemetry-edge-requests",
    ),
    path(
        "patients/<int:patient_id>/ecg-requests",
        edge_api.PatientEcgRequestList.as_view(),
        name="patient-ecg-requests",
    ),
    path(
        "patients/<int:patient_id>/ecg-requests/<int:request_id>",
        edge_api.PatientEcgRequestDetail.as_view(),
        name="patient-ecg-request",
    ),
    path(
        "patients/<int:patient_id>/observations/",
        clinician_api.PatientObservationList.as_view(),
        name="patient-observations",
    ),
    path(
        "patients/<int:patient_id>/ecg/",
        clinician_api.PatientEcgList.as_view(),
        name="patient-ecg",
    ),
    path(
        "patients/<int:patient_id>/ecg/<int:segment_id>/",
        clinician_api.PatientEcgDetail.as_view(),
        name="patient-ecg-segment",
    ),
    path(
        "fhir/Observation",
        clinician_api.FhirObservationSearch.as_view(),
        name="fhir-observation-search",
    ),
]
