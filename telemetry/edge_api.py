"""The edge gateway's API, and the clinicians' fetches of ECG a gateway kept.

- ``POST /api/v1/telemetry/edge-batches`` (gateway token): readings plus the
  gateway's features, NEWS2 results and alert outcomes; idempotent on batch_id.
- ``GET /api/v1/telemetry/edge-requests`` (gateway token): the open ECG fetch
  requests for its patient and the patient's alert settings. The gateway is
  behind NAT, so it polls; it answers with an edge batch that names the requests.
- ``POST /api/v1/patients/{id}/ecg-requests`` and ``GET …/ecg-requests/{id}``
  (clinicians who may see the patient).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from patients.models import Device
from security.audit import record_event

from .api import PROBLEM_RESPONSES, DeviceView
from .clinician_api import NOT_VISIBLE, UNAUTHENTICATED, visible_patient
from .edge_contract import EdgeBatchIn, check_edge_batch, parse_edge_batch
from .edge_services import (
    MAX_FETCH,
    PatientSettings,
    open_requests,
    record_edge_batch,
    request_ecg,
)
from .models import EcgFetchRequest
from .problems import problem
from .serializers import AwareDateTimeField, ProblemSerializer
from .services import BatchConflict


def _not_a_gateway(device: Device) -> HttpResponse | None:
    if device.kind == Device.Kind.HUB:
        return None
    return problem(
        403,
        "forbidden",
        "Forbidden",
        "only a gateway (a device of kind hub) uploads edge results",
    )


class EdgeBatchUploadView(DeviceView):
    @extend_schema(
        operation_id="upload_edge_batch",
        request={"application/json": EdgeBatchIn},
        responses={
            201: OpenApiResponse(description="stored; edge alerts applied"),
            200: OpenApiResponse(description="the same batch again: nothing changed"),
            **{
                (status, "application/problem+json"): OpenApiResponse(
                    ProblemSerializer, description=description
                )
                for status, description in PROBLEM_RESPONSES.items()
            },
        },
        tags=["devices"],
    )
    def post(self, request: Request) -> HttpResponse:
        """Upload what a gateway found, with the readings it chose to send."""
        refused = _not_a_gateway(request.user)
        body = refused or self.read_json_body(request)
        if isinstance(body, HttpResponse):
            return body
        edge, problems = parse_edge_batch(body)
        if edge is not None:
            problems = check_edge_batch(edge, now=timezone.now())
        if problems:
            return problem(
                400,
                "invalid-batch",
                "Bad Request",
                "the edge batch was not stored: fix the fields listed in errors",
                errors=problems,
            )
        try:
            answer, created = record_edge_batch(gateway=request.user, edge=edge)
        except BatchConflict:
            return problem(
                409,
                "batch-id-reused",
                "Conflict",
                f"batch_id {edge.batch_id} was already used for a different batch",
            )
        return JsonResponse(answer, status=201 if created else 200)


class EdgeRequestsView(DeviceView):
    @extend_schema(
        operation_id="edge_requests",
        responses={
            200: OpenApiResponse(description="open fetch requests"),
            401: OpenApiResponse(description="unknown, revoked or rotated token"),
            403: OpenApiResponse(description="not a gateway assigned to a patient"),
            429: OpenApiResponse(description="over the device's rate"),
        },
        tags=["devices"],
    )
    def get(self, request: Request) -> HttpResponse:
        """Open ECG fetch requests for the gateway's patient, oldest first, and the
        patient's alert settings (so the gateway evaluates as the server does)."""
        refused = _not_a_gateway(request.user)
        if refused is not None:
            return refused
        gateway: Device = request.user
        settings = PatientSettings.of(gateway.patient)
        return JsonResponse(
            {
                "requests": [
                    {
                        "request_id": str(r.request_id),
                        "start": r.start.isoformat(),
                        "end": r.end.isoformat(),
                    }
                    for r in open_requests(gateway)
                ],
                "patient": {
                    "threshold_overrides": settings.threshold_overrides,
                    "spo2_scale": settings.spo2_scale,
                },
            }
        )


class EcgRequestSerializer(serializers.ModelSerializer):
    start = AwareDateTimeField()
    end = AwareDateTimeField()

    class Meta:
        model = EcgFetchRequest
        fields = [
            "id",
            "start",
            "end",
            "state",
            "created_at",
            "fulfilled_at",
            "segment_count",
        ]
        read_only_fields = ["id", "state", "created_at", "fulfilled_at"]
        read_only_fields += ["segment_count"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "must be after start"})
        if attrs["end"] - attrs["start"] > MAX_FETCH:
            raise serializers.ValidationError({"end": "ask for at most an hour"})
        return attrs


class PatientEcgRequestList(APIView):
    @extend_schema(
        operation_id="request_kept_ecg",
        request=EcgRequestSerializer,
        responses={
            201: EcgRequestSerializer,
            400: OpenApiResponse(description="bad range"),
            401: UNAUTHENTICATED,
            404: NOT_VISIBLE,
        },
        tags=["clinicians"],
    )
    def post(self, request: Request, patient_id: int) -> Response:
        """Ask the patient's gateway for raw ECG it kept (edge-first policy)."""
        patient = visible_patient(request, patient_id, "ecg.requested")
        incoming = EcgRequestSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        with transaction.atomic():  # the request with its audit row
            fetch = request_ecg(
                patient=patient, by=request.user, **incoming.validated_data
            )
            record_event(
                action="ecg.requested",
                user=request.user,
                patient=patient,
                obj=fetch,
                request=request,
            )
        return Response(EcgRequestSerializer(fetch).data, status=201)


class PatientEcgRequestDetail(APIView):
    @extend_schema(
        operation_id="kept_ecg_request",
        responses={200: EcgRequestSerializer, 401: UNAUTHENTICATED, 404: NOT_VISIBLE},
        tags=["clinicians"],
    )
    def get(self, request: Request, patient_id: int, request_id: int) -> Response:
        """Where a fetch stands: pending, fulfilled (its segments are in the ECG
        list) or unavailable (the gateway no longer kept that range)."""
        patient = visible_patient(request, patient_id, "ecg.request.read")
        fetch = get_object_or_404(EcgFetchRequest, pk=request_id, patient=patient)
        return Response(EcgRequestSerializer(fetch).data)
