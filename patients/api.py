from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    permission_classes,
)
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from security.audit import record_event

from .auth import client_address, login_locked
from .models import Patient
from .serializers import (
    PatientSerializer,
    TokenRequestSerializer,
    TokenResponseSerializer,
)
from .services import issue_clinician_token


@extend_schema(
    request=TokenRequestSerializer,
    responses={
        200: TokenResponseSerializer,
        400: OpenApiResponse(
            description="Missing fields, or wrong username or password"
        ),
        429: OpenApiResponse(description="Too many failed sign-ins; see Retry-After"),
    },
    auth=[],
)
@api_view(["POST"])
@authentication_classes([])
@permission_classes([AllowAny])
def obtain_token(request: Request) -> Response:
    """Exchange a clinician's username and password for an API token."""
    body = TokenRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    username = body.validated_data["username"]
    if login_locked(username, client_address(request)):
        return Response(
            {"detail": "Too many failed sign-ins. Try again later."},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(settings.LOGIN_FAILURE_WINDOW_S)},
        )
    user = authenticate(
        request, username=username, password=body.validated_data["password"]
    )
    if user is None:
        return Response(
            {"detail": "Wrong username or password."},
            status=status.HTTP_400_BAD_REQUEST,
        )
    token = issue_clinician_token(user=user, request=request)
    return Response({"token": token, "expires_in": settings.CLINICIAN_TOKEN_TTL_S})


UNAUTHENTICATED = OpenApiResponse(description="no clinician credentials")


@extend_schema_view(
    list=extend_schema(
        responses={200: PatientSerializer(many=True), 401: UNAUTHENTICATED}
    ),
    retrieve=extend_schema(
        responses={
            200: PatientSerializer,
            401: UNAUTHENTICATED,
            404: OpenApiResponse(description="no such patient, or not the caller's"),
        }
    ),
)
class PatientViewSet(viewsets.ReadOnlyModelViewSet):
    """The patients of the caller's care teams (an admin: the whole organisation's)."""

    serializer_class = PatientSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Patient.objects.none()
        return (
            Patient.objects.visible_to(self.request.user)
            .prefetch_related("devices")
            .order_by("family_name", "given_name", "pk")
        )

    def list(self, request: Request, *args, **kwargs) -> Response:
        response = super().list(request, *args, **kwargs)
        ids = [row["id"] for row in response.data["results"]]
        record_event(
            action="patient.list",
            user=request.user,
            request=request,
            details={"patient_ids": ids},
        )
        return response

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        patient = self.get_object()
        record_event(
            action="patient.read", user=request.user, patient=patient, request=request
        )
        return Response(self.get_serializer(patient).data)
