from __future__ import annotations

from django.urls import path

from . import api, clinician_api

urlpatterns = [
    path("telemetry/batches", api.BatchUploadView.as_view(), name="telemetry-batches"),
    path(
        "telemetry/sealed-batches",
        api.SealedBatchUploadView.as_view(),
        name="telemetry-sealed-batches",
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
