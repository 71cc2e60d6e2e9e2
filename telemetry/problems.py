"""RFC 9457 problem details for the device API: one shape for every refusal."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import JsonResponse

from .contract import Problem

# Relative URIs (RFC 9457 §3.1.1); the OpenAPI schema documents each refusal.
PROBLEM_BASE = "/api/problems/"


def problem(
    status: int,
    kind: str,
    title: str,
    detail: str,
    errors: Iterable[Problem] = (),
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JsonResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    error_list = [{"path": e.path, "message": e.message} for e in errors]
    if error_list:
        body["errors"] = error_list
    response = JsonResponse(
        body,
        status=status,
        content_type="application/problem+json",
        json_dumps_params={"ensure_ascii": False},
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response
