"""Alerts for clinicians: list (with catch-up after a dropped socket) and actions."""

from __future__ import annotations

from typing import Any

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from patients.models import Patient

from . import services
from .models import Alert
from .rules import KINDS
from .serializers import (
    AcknowledgeSerializer,
    AlertEventSerializer,
    AlertListSerializer,
    AlertSerializer,
    CommentSerializer,
    ResolveSerializer,
    SnoozeSerializer,
)

FILTERS = ("state", "priority", "kind", "category")
UNAUTHENTICATED = OpenApiResponse(description="not signed in")
NOT_FOUND = OpenApiResponse(description="no such alert among the caller's patients")
REFUSED = {
    401: UNAUTHENTICATED,
    404: NOT_FOUND,
    400: OpenApiResponse(description="the request body is not valid"),
    409: OpenApiResponse(description="the alert's state does not allow this"),
    415: OpenApiResponse(description="send application/json"),
}
MAX_CATCH_UP = 500


def visible_alerts(user: Any) -> QuerySet[Alert]:
    patients = Patient.objects.visible_to(user).values("pk")
    mine = Q(patient__in=patients)
    if user.is_org_admin:
        mine |= Q(patient__isnull=True, organisation_id=user.organisation_id)
        mine |= Q(patient__isnull=True, organisation__isnull=True)
    return Alert.objects.filter(mine).select_related("acknowledged_by")


class AlertViewSet(viewsets.GenericViewSet):
    serializer_class = AlertSerializer
    pagination_class = None  # list answers {results, max_seq, more}, not pages

    def get_queryset(self) -> QuerySet[Alert]:
        if getattr(self, "swagger_fake_view", False):
            return Alert.objects.none()
        return visible_alerts(self.request.user)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "after_seq",
                int,
                description=(
                    "catch-up: alerts changed after this event number, oldest first"
                ),
            ),
            OpenApiParameter("patient", int),
            *(OpenApiParameter(name, str) for name in FILTERS),
        ],
        responses={
            200: AlertListSerializer,
            400: OpenApiResponse(description="a filter is not a whole number"),
            401: UNAUTHENTICATED,
        },
    )
    def list(self, request: Request) -> Response:
        """Alerts of the caller's patients. Without ``after_seq``: open alerts
        (or those in ``state``), most urgent first."""
        # Read first: every event up to max_seq has committed before the
        # alerts are read (numbers commit in order), so a client may take it
        # as the point it has caught up to.
        max_seq = services.newest_seq()
        alerts = self._filtered(self.get_queryset(), request.query_params)
        after = request.query_params.get("after_seq")
        if after is not None:
            alerts = alerts.filter(last_seq__gt=_int(after, "after_seq")).order_by(
                "last_seq"
            )
        else:
            alerts = _by_urgency(alerts, request.query_params.get("state"))
        page = list(alerts[: MAX_CATCH_UP + 1])
        return Response(
            {
                "results": [services.snapshot(a) for a in page[:MAX_CATCH_UP]],
                "max_seq": max_seq,
                "more": len(page) > MAX_CATCH_UP,
            }
        )

    @extend_schema(
        responses={200: AlertSerializer, 401: UNAUTHENTICATED, 404: NOT_FOUND}
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(services.snapshot(self.get_object()))

    @extend_schema(
        responses={
            200: AlertEventSerializer(many=True),
            401: UNAUTHENTICATED,
            404: NOT_FOUND,
        }
    )
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str) -> Response:
        alert = self.get_object()
        return Response(
            AlertEventSerializer(alert.events.select_related("actor"), many=True).data
        )

    @extend_schema(
        request=AcknowledgeSerializer, responses={200: AlertSerializer, **REFUSED}
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str) -> Response:
        body = self._body(AcknowledgeSerializer, request)
        return self._act(services.acknowledge, note=body["note"])

    @extend_schema(
        request=ResolveSerializer, responses={200: AlertSerializer, **REFUSED}
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str) -> Response:
        body = self._body(ResolveSerializer, request)
        return self._act(services.resolve, how=body["resolution"])

    @extend_schema(
        request=SnoozeSerializer, responses={200: AlertSerializer, **REFUSED}
    )
    @action(detail=True, methods=["post"])
    def snooze(self, request: Request, pk: str) -> Response:
        body = self._body(SnoozeSerializer, request)
        return self._act(services.snooze, minutes=body["minutes"])

    @extend_schema(
        request=CommentSerializer,
        responses={
            201: AlertEventSerializer,
            401: UNAUTHENTICATED,
            404: NOT_FOUND,
            400: OpenApiResponse(description="a comment needs some text"),
        },
    )
    @action(detail=True, methods=["post"])
    def comments(self, request: Request, pk: str) -> Response:
        body = self._body(CommentSerializer, request)
        alert = self.get_object()
        try:
            event = services.comment(
                alert_pk=alert.pk, by=request.user, text=body["text"], request=request
            )
        except services.AlertActionError as error:
            raise exceptions.ValidationError({"detail": str(error)}) from error
        return Response(
            AlertEventSerializer(event).data, status=status.HTTP_201_CREATED
        )

    def _body(self, serializer_class: type, request: Request) -> dict:
        body = serializer_class(data=request.data)
        body.is_valid(raise_exception=True)
        return body.validated_data

    def _act(self, action_fn: Any, **kwargs: Any) -> Response:
        alert = self.get_object()
        try:
            changed = action_fn(
                alert_pk=alert.pk, by=self.request.user, request=self.request, **kwargs
            )
        except services.AlertActionError as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        changed.refresh_from_db()
        return Response(services.snapshot(changed))

    def _filtered(self, alerts: QuerySet[Alert], params: Any) -> QuerySet[Alert]:
        for name in FILTERS:
            if params.get(name):
                alerts = alerts.filter(**{name: _choice(name, params[name])})
        if params.get("patient"):
            alerts = alerts.filter(patient_id=_int(params["patient"], "patient"))
        return alerts


def _by_urgency(alerts: QuerySet[Alert], state: str | None) -> QuerySet[Alert]:
    if not state:
        alerts = alerts.exclude(state=Alert.State.RESOLVED)
    rank = {"high": 0, "medium": 1, "low": 2}
    order = Case(
        *(When(priority=p, then=Value(r)) for p, r in rank.items()),
        output_field=IntegerField(),
    )
    return alerts.order_by(order, "-raised_at")


# What each filter may name; anything else is a 400, not a query.
FILTER_CHOICES = {
    "state": set(Alert.State.values),
    "priority": set(Alert.Priority.values),
    "category": {"physiological", "technical", "security"},
    "kind": set(KINDS),
}


def _choice(name: str, raw: str) -> str:
    if raw not in FILTER_CHOICES[name]:
        allowed = ", ".join(sorted(FILTER_CHOICES[name]))
        raise exceptions.ValidationError({name: f"must be one of {allowed}"})
    return raw


def _int(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise exceptions.ValidationError({name: "must be a whole number"}) from None
    if not 0 <= value < 2**63:
        raise exceptions.ValidationError({name: "is out of range"})
    return value
