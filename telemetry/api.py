"""The device upload API: ``POST /api/v1/telemetry/batches``."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.http.request import RawPostDataException
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from patients.auth import DeviceTokenAuthentication
from patients.models import Device, Patient
from rpm import metrics
from rpm.errors import busy, database_busy
from security.services import SealedRejected, open_sealed, report_integrity_failure

from .contract import (
    BatchIn,
    SealedBatchIn,
    check_batch,
    fingerprint,
    parse_batch,
    parse_envelope,
)
from .problems import problem
from .serializers import BatchAnswerSerializer, ProblemSerializer
from .services import BatchConflict, record_batch

log = logging.getLogger(__name__)


class IsAssignedDevice(BasePermission):
    message = (
        "this device is not assigned to an enrolled patient: "
        "ask the hospital to assign it"
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        device = request.user
        if not isinstance(device, Device):
            raise exceptions.NotAuthenticated("a device token is required")
        return (
            device.patient_id is not None
            and device.patient.status != Patient.Status.DISCHARGED
        )


class DeviceRateThrottle(SimpleRateThrottle):
    scope = "device"

    def get_rate(self) -> str:
        return settings.DEVICE_RATE

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


STATUS_KINDS = {
    401: "unauthenticated",
    403: "forbidden",
    429: "rate-limited",
    405: "method-not-allowed",
}


class DeviceView(APIView):
    """Base for device endpoints: device token, rate limit, problem-details errors."""

    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsAssignedDevice]
    throttle_classes = [DeviceRateThrottle]
    parser_classes: list = []

    def finalize_response(
        self, request: Request, response: HttpResponse, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        response = super().finalize_response(request, response, *args, **kwargs)
        metrics.count_upload(response)  # every answer: stored, duplicate or refused
        return response

    def handle_exception(self, exc: Exception) -> HttpResponse:
        if database_busy(exc):  # nothing written yet: the device may retry
            log.warning("upload refused with 503: no database connection came free")
            return busy("stored nothing: send the same batch")
        if not isinstance(exc, exceptions.APIException):
            raise exc
        response = super().handle_exception(exc)
        status = response.status_code
        headers = {
            k: v
            for k, v in response.items()
            if k in {"WWW-Authenticate", "Retry-After"}
        }
        return problem(
            status,
            STATUS_KINDS.get(status, "error"),
            response.status_text,
            str(exc.detail),
            headers=headers,
        )

    def read_json_body(self, request: Request) -> bytes | HttpResponse:
        content_type = request.content_type.split(";")[0].strip().lower()
        if content_type != "application/json":
            return problem(
                415,
                "unsupported-media-type",
                "Unsupported Media Type",
                f"send Content-Type: application/json, not {content_type or 'none'}",
            )
        try:
            return request._request.body
        except (RequestDataTooBig, RawPostDataException):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return problem(
                413,
                "too-large",
                "Content Too Large",
                f"the body is larger than {limit} bytes: send smaller batches",
            )


PROBLEM_RESPONSES = {
    400: "malformed or implausible: see errors[].path",
    401: "unknown, missing, revoked or rotated token",
    403: "the device is not assigned to a patient",
    409: "the batch_id was used for a different batch",
    413: "body over the limit",
    415: "not application/json",
    429: "over the device's rate; see Retry-After",
    503: "at capacity, nothing stored: send the same batch after Retry-After",
}


class BatchUploadView(DeviceView):
    @extend_schema(
        operation_id="upload_batch",
        # The view reads the body itself (no parsers), so name the media type.
        request={"application/json": BatchIn},
        responses={
            201: OpenApiResponse(BatchAnswerSerializer, description="stored"),
            200: OpenApiResponse(
                BatchAnswerSerializer,
                description="the same batch again: already stored, nothing changed",
            ),
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
        """Upload a batch of vital signs and ECG. Idempotent on ``batch_id``."""
        body = self.read_json_body(request)
        if isinstance(body, HttpResponse):
            return body
        batch, problems = parse_batch(body)
        if batch is not None:
            problems = check_batch(batch, now=timezone.now())
        if problems:
            return problem(
                400,
                "invalid-batch",
                "Bad Request",
                "the batch was not stored: fix the fields listed in errors",
                errors=problems,
            )
        return self._store(request.user, batch)

    def _store(self, device: Device, batch: BatchIn) -> HttpResponse:
        try:
            stored = record_batch(
                device=device, batch=batch, fingerprint=fingerprint(batch)
            )
        except BatchConflict:
            return problem(
                409,
                "batch-id-reused",
                "Conflict",
                f"batch_id {batch.batch_id} was already used for a different "
                "batch: use a new UUID for every batch",
            )
        return JsonResponse(stored.answer, status=201 if stored.created else 200)


class _Refused(Exception):
    """Roll back (the session counter does not advance) and answer this."""

    def __init__(self, response: HttpResponse):
        super().__init__(response.status_code)
        self.response = response


class SealedBatchUploadView(BatchUploadView):
    @extend_schema(
        operation_id="upload_sealed_batch",
        request={"application/json": SealedBatchIn},
        responses={
            201: OpenApiResponse(BatchAnswerSerializer, description="stored"),
            200: OpenApiResponse(BatchAnswerSerializer, description="already stored"),
            **{
                (status, "application/problem+json"): OpenApiResponse(
                    ProblemSerializer, description=description
                )
                for status, description in {
                    **PROBLEM_RESPONSES,
                    400: "malformed envelope, tampered ciphertext or invalid batch",
                    409: "replayed or stale counter, expired or unknown session, "
                    "or a reused batch_id",
                }.items()
            },
        },
        tags=["devices"],
    )
    def post(self, request: Request) -> HttpResponse:
        """Upload a batch sealed with a QKD session key (AES-256-GCM); the counter
        must increase, so a replayed, stale or tampered envelope stores nothing."""
        body = self.read_json_body(request)
        if isinstance(body, HttpResponse):
            return body
        envelope, problems = parse_envelope(body)
        if envelope is None:
            return problem(
                400,
                "invalid-envelope",
                "Bad Request",
                "the envelope was not stored: fix the fields listed in errors",
                errors=problems,
            )
        try:
            with transaction.atomic():
                return self._open_and_store(request.user, envelope)
        except _Refused as refused:
            return refused.response
        except SealedRejected as rejected:
            if rejected.kind == "envelope-invalid":
                report_integrity_failure(
                    device=request.user,
                    session_id=envelope.session_id,
                    why=rejected.detail,
                )
            return problem(rejected.status, rejected.kind, "Rejected", rejected.detail)

    def _open_and_store(self, device: Device, envelope: SealedBatchIn) -> HttpResponse:
        plaintext = open_sealed(
            device=device,
            session_id=envelope.session_id,
            counter=envelope.counter,
            ciphertext=envelope.ciphertext,
        )
        batch, problems = parse_batch(plaintext)
        if batch is not None:
            problems = check_batch(batch, now=timezone.now())
        if problems:
            raise _Refused(
                problem(
                    400,
                    "invalid-batch",
                    "Bad Request",
                    "the sealed batch was not stored: fix the fields listed in errors",
                    errors=problems,
                )
            )
        response = self._store(device, batch)
        if response.status_code >= 400:
            raise _Refused(response)
        return response
