"""What clinicians read: a patient's observations and ECG, and the same readings as
FHIR R4. Every read is audited; a patient the caller may not see does not exist."""

from __future__ import annotations

import heapq
import itertools
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from patients.models import Patient
from security.audit import record_event
from security.models import AuditEvent

from . import fhir
from .contract import DIASTOLIC, SYSTOLIC
from .models import EcgSegment, Observation
from .serializers import (
    EcgQuerySerializer,
    EcgSegmentSerializer,
    EcgSegmentSummarySerializer,
    FhirObservationSearchSerializer,
    ObservationQuerySerializer,
    ObservationSerializer,
)

SUCCESS, DENIED = AuditEvent.Outcome.SUCCESS, AuditEvent.Outcome.DENIED
NOT_VISIBLE = OpenApiResponse(
    description="no such patient, or not one of the caller's (never 403)"
)
UNAUTHENTICATED = OpenApiResponse(
    description="no clinician credentials (a device token is refused too)"
)


def visible_patient(request: Request, patient_id: int, action: str) -> Patient:
    """The patient if the caller may see them; otherwise 404, audited as denied, so
    that a probe for other patients shows up in the log."""
    try:
        return get_object_or_404(
            Patient.objects.visible_to(request.user), pk=patient_id
        )
    except Http404:
        record_event(
            action=action,
            user=request.user,
            request=request,
            outcome=DENIED,
            details={"patient_id": patient_id},
        )
        raise


class NewestFirst(CursorPagination):
    """Cursor paging: readings keep arriving at the head of the list, which would
    shift offset pages under a reader and repeat or skip rows."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class ObservationPages(NewestFirst):
    ordering = ("-time", "-pk")


class EcgPages(NewestFirst):
    ordering = ("-start", "-pk")


class PatientReadView(generics.GenericAPIView):
    """Base of the per-patient reads: resolves the patient (404 unless visible) and
    validates the query parameters before any row is read."""

    query_serializer_class: type | None = None
    audit_action = ""

    @property
    def patient(self) -> Patient:
        if not hasattr(self, "_patient"):
            self._patient = visible_patient(
                self.request, self.kwargs["patient_id"], self.audit_action
            )
        return self._patient

    @property
    def query(self) -> dict[str, Any]:
        params = self.query_serializer_class(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return params.validated_data

    def audit(self, request: Request, **details: Any) -> None:
        record_event(
            action=self.audit_action,
            user=request.user,
            patient=self.patient,
            request=request,
            details=details,
        )


@extend_schema_view(
    get=extend_schema(
        operation_id="patient_observations",
        parameters=[ObservationQuerySerializer],
        responses={
            200: ObservationSerializer(many=True),
            400: OpenApiResponse(description="unknown code, or a time without zone"),
            401: UNAUTHENTICATED,
            404: NOT_VISIBLE,
        },
        tags=["clinicians"],
    )
)
class PatientObservationList(PatientReadView, generics.ListAPIView):
    """A patient's vital signs, newest first."""

    serializer_class = ObservationSerializer
    query_serializer_class = ObservationQuerySerializer
    audit_action = "observation.list"
    pagination_class = ObservationPages

    def get_queryset(self) -> QuerySet[Observation]:
        if getattr(self, "swagger_fake_view", False):
            return Observation.objects.none()
        patient, query = self.patient, self.query
        # With a code this is a range scan of obs_patient_code_time.
        rows = Observation.objects.filter(patient=patient).select_related("device")
        if "code" in query:
            rows = rows.filter(code=query["code"])
        if "since" in query:
            rows = rows.filter(time__gte=query["since"])
        if "until" in query:
            rows = rows.filter(time__lt=query["until"])
        return rows

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().list(request, *args, **kwargs)
        ids = [row["id"] for row in response.data["results"]]
        self.audit(request, observation_ids=ids)
        return response


@extend_schema_view(
    get=extend_schema(
        operation_id="patient_ecg_segments",
        parameters=[EcgQuerySerializer],
        responses={
            200: EcgSegmentSummarySerializer(many=True),
            400: OpenApiResponse(description="a time without zone"),
            401: UNAUTHENTICATED,
            404: NOT_VISIBLE,
        },
        tags=["clinicians"],
    )
)
class PatientEcgList(PatientReadView, generics.ListAPIView):
    """A patient's ECG segments, newest first, without their samples."""

    serializer_class = EcgSegmentSummarySerializer
    query_serializer_class = EcgQuerySerializer
    audit_action = "ecg.list"
    pagination_class = EcgPages

    def get_queryset(self) -> QuerySet[EcgSegment]:
        if getattr(self, "swagger_fake_view", False):
            return EcgSegment.objects.none()
        patient, query = self.patient, self.query
        # ecg_patient_start; the samples stay in the database.
        rows = (
            EcgSegment.objects.filter(patient=patient)
            .select_related("device")
            .defer("data")
        )
        if "since" in query:
            rows = rows.filter(start__gte=query["since"])
        return rows

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().list(request, *args, **kwargs)
        ids = [row["id"] for row in response.data["results"]]
        self.audit(request, segment_ids=ids)
        return response


@extend_schema_view(
    get=extend_schema(
        operation_id="patient_ecg_segment",
        responses={200: EcgSegmentSerializer, 401: UNAUTHENTICATED, 404: NOT_VISIBLE},
        tags=["clinicians"],
    )
)
class PatientEcgDetail(PatientReadView, generics.RetrieveAPIView):
    """One ECG segment with its samples, in µV."""

    serializer_class = EcgSegmentSerializer
    lookup_url_kwarg = "segment_id"
    pagination_class = None
    audit_action = "ecg.read"

    def get_queryset(self) -> QuerySet[EcgSegment]:
        if getattr(self, "swagger_fake_view", False):
            return EcgSegment.objects.none()
        return EcgSegment.objects.filter(patient=self.patient).select_related("device")

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        segment = self.get_object()
        record_event(
            action=self.audit_action,
            user=request.user,
            patient=self.patient,
            obj=segment,
            request=request,
        )
        return Response(self.get_serializer(segment).data)


class FhirJSONRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir"


class FhirOnly(BaseContentNegotiation):
    """FHIR JSON whatever the Accept header says: it is the only format served."""

    def select_parser(self, request: Request, parsers: list) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: Any = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


BUNDLE_SCHEMA = {
    "type": "object",
    "description": "FHIR R4 Bundle of type searchset, with Observation resources",
    "properties": {
        "resourceType": {"type": "string", "enum": ["Bundle"]},
        "type": {"type": "string", "enum": ["searchset"]},
        "total": {"type": "integer"},
        "link": {"type": "array", "items": {"type": "object"}},
        "entry": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "fullUrl": {"type": "string", "format": "uri"},
                    "resource": {"type": "object"},
                    "search": {"type": "object"},
                },
            },
        },
    },
    "required": ["resourceType", "type", "total"],
}
OUTCOME_SCHEMA = {
    "type": "object",
    "description": "FHIR R4 OperationOutcome",
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {"type": "array", "items": {"type": "object"}},
    },
}
FHIR_PARAMETERS = [
    OpenApiParameter(
        "patient", OpenApiTypes.STR, required=True, description="<id> or Patient/<id>"
    ),
    OpenApiParameter(
        "code",
        OpenApiTypes.STR,
        description="LOINC code (85354-9 for blood pressure) or MDC ECG lead code; "
        "comma-separated; system|code accepted",
    ),
    OpenApiParameter(
        "date",
        OpenApiTypes.STR,
        many=True,
        description="ge, gt, le or lt then an ISO 8601 time with zone, e.g. "
        "ge2025-01-31T08:00:00Z; repeatable",
    ),
    OpenApiParameter("_count", OpenApiTypes.INT, description="entries, at most 200"),
]


def _outcome(description: str) -> OpenApiResponse:
    return OpenApiResponse(OUTCOME_SCHEMA, description=description)


class FhirObservationSearch(APIView):
    """``GET /api/v1/fhir/Observation?patient=…``: vital signs and ECG as FHIR R4."""

    renderer_classes = [FhirJSONRenderer]
    content_negotiation_class = FhirOnly

    @extend_schema(
        operation_id="fhir_observation_search",
        parameters=FHIR_PARAMETERS,
        responses={
            (200, "application/fhir+json"): OpenApiResponse(
                BUNDLE_SCHEMA, description="searchset Bundle, newest first"
            ),
            (400, "application/fhir+json"): _outcome("invalid search parameter"),
            (401, "application/fhir+json"): _outcome("no clinician credentials"),
        },
        tags=["fhir"],
    )
    def get(self, request: Request) -> Response:
        """Search a patient's Observations, newest first. A patient the caller may
        not see gives an empty Bundle, as one that does not exist does."""
        params = FhirObservationSearchSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        search = params.validated_data
        patient = (
            Patient.objects.visible_to(request.user)
            .filter(pk=search["patient"])
            .first()
        )
        entries, total = ([], 0) if patient is None else fhir_search(patient, search)
        record_event(
            action="fhir.observation.search",
            user=request.user,
            patient=patient,
            request=request,
            outcome=DENIED if patient is None else SUCCESS,
            details={
                "patient_id": search["patient"],
                "resource_ids": [entry.resource["id"] for entry in entries],
            },
        )
        bundle = fhir.searchset(
            entries,
            total=total,
            base_url=request.build_absolute_uri("/api/v1/fhir"),
            self_url=request.build_absolute_uri(),
        )
        return Response(bundle)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        response.data = fhir.operation_outcome(
            _messages(response.data), code=_issue_code(response.status_code)
        )
        return response


DATE_LOOKUPS = {"ge": "gte", "gt": "gt", "le": "lte", "lt": "lt"}


def fhir_search(
    patient: Patient, search: dict[str, Any]
) -> tuple[list[fhir.Entry], int]:
    """The newest ``_count`` entries matching the search, and how many match."""
    count = search["_count"]
    codes = search.get("code")
    dates = search.get("date", [])
    rows = _vital_rows(patient, codes, dates)
    segments = _ecg_rows(patient, codes, dates)
    ecg = [fhir.ecg_entry(s, s.samples_uv()) for s in segments[:count]]
    newest = heapq.merge(
        _newest_vital_entries(rows, count),
        ecg,
        key=lambda entry: entry.time,
        reverse=True,
    )
    total = _vital_total(rows) + segments.count()
    return list(itertools.islice(newest, count)), total


def _date_filter(field: str, dates: list[tuple[str, Any]]) -> Q:
    return Q(
        *(Q(**{f"{field}__{DATE_LOOKUPS[prefix]}": moment}) for prefix, moment in dates)
    )


def _vital_rows(
    patient: Patient, codes: list[fhir.SearchCode] | None, dates: list
) -> QuerySet[Observation]:
    rows = Observation.objects.filter(patient=patient).filter(
        _date_filter("time", dates)
    )
    if codes is None:
        return rows
    return rows.filter(code__in={c for code in codes for c in code.observation_codes})


def _ecg_rows(
    patient: Patient, codes: list[fhir.SearchCode] | None, dates: list
) -> QuerySet[EcgSegment]:
    rows = EcgSegment.objects.filter(patient=patient).filter(
        _date_filter("start", dates)
    )
    if codes is not None:
        rows = rows.filter(lead__in={lead for code in codes for lead in code.ecg_leads})
    return rows.order_by("-start", "-pk")


def _newest_vital_entries(rows: QuerySet[Observation], count: int) -> list[fhir.Entry]:
    """Enough rows for ``count`` resources (a panel takes two rows), extended to
    whole moments so that no systolic loses its diastolic at the cut."""
    if count == 0:
        return []
    ordered = rows.order_by("-time", "device_id", "code", "-pk")
    boundary = list(ordered.values_list("time", flat=True)[2 * count - 1 : 2 * count])
    if boundary:
        ordered = ordered.filter(time__gte=boundary[0])
    return fhir.vital_sign_entries(list(ordered))


def _vital_total(rows: QuerySet[Observation]) -> int:
    """Rows, less one for each blood pressure pair (they make one resource)."""
    moments = (
        rows.filter(code__in=[SYSTOLIC, DIASTOLIC])
        .values("device_id", "time")
        .annotate(
            systolic=Count("pk", filter=Q(code=SYSTOLIC)),
            diastolic=Count("pk", filter=Q(code=DIASTOLIC)),
        )
    )
    pairs = sum(min(m["systolic"], m["diastolic"]) for m in moments)
    return rows.count() - pairs


def _issue_code(status: int) -> str:
    return {401: "login", 403: "forbidden", 404: "not-found"}.get(status, "invalid")


def _messages(detail: Any, field: str = "") -> list[str]:
    if isinstance(detail, dict):
        return [m for key, value in detail.items() for m in _messages(value, key)]
    if isinstance(detail, list):
        return [m for item in detail for m in _messages(item, field)]
    if field not in {"", "detail", "non_field_errors"}:
        return [f"{field}: {detail}"]
    return [str(detail)]
