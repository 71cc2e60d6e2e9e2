"""How staff and devices prove who they are.

- Staff sign in with a password (admin, dashboard, or ``POST /api/v1/auth/token``);
  repeated failures for one username or one client address lock sign-in for a while.
- Programs acting for staff send ``Authorization: Token <token>`` (REST and WebSocket).
- Devices send ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import authentication, exceptions

from .credentials import token_digest
from .models import ClinicianToken, Device, User


def client_address(request: HttpRequest | None) -> str:
    if request is None:
        return "unknown"
    return request.META.get("REMOTE_ADDR") or "unknown"


def _failure_keys(username: str, address: str) -> list[str]:
    # The username is whatever a client typed: hash it, so a key is short, printable
    # and says nothing of the name (schemathesis sent control characters here).
    user = hashlib.sha256(username.lower().encode("utf-8", "replace")).hexdigest()
    return [f"login-fail:user:{user}", f"login-fail:addr:{address}"]


def login_locked(username: str, address: str) -> bool:
    limit = settings.LOGIN_FAILURE_LIMIT
    return any(
        (cache.get(key) or 0) >= limit for key in _failure_keys(username, address)
    )


def record_login_failure(username: str, address: str) -> None:
    for key in _failure_keys(username, address):
        # add() then incr() keeps the window fixed from the first failure.
        cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW_S)
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_S)


def clear_login_failures(username: str) -> None:
    cache.delete(_failure_keys(username, "")[0])


class ThrottledModelBackend(ModelBackend):
    """The model backend, refusing sign-in while too many recent attempts failed."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        name = username or kwargs.get(User.USERNAME_FIELD) or ""
        address = client_address(request)
        if login_locked(name, address):
            raise PermissionDenied("too many failed sign-ins; try again later")
        user = super().authenticate(
            request, username=username, password=password, **kwargs
        )
        if user is None:
            record_login_failure(name, address)
        else:
            clear_login_failures(name)
        return user


def user_for_token(raw: str) -> User | None:
    token = (
        ClinicianToken.objects.select_related("user")
        .filter(digest=token_digest(raw), expires_at__gt=timezone.now())
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    return token.user


class ClinicianTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Any) -> tuple[User, None] | None:
        raw = _credential(request.META.get("HTTP_AUTHORIZATION", ""), self.keyword)
        if raw is None:
            return None
        user = user_for_token(raw)
        if user is None:
            raise exceptions.AuthenticationFailed("invalid or expired token")
        return user, None

    def authenticate_header(self, request: Any) -> str:
        return self.keyword


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    """Authenticates a device; ``request.user`` becomes the Device itself."""

    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Device, None] | None:
        raw = _credential(request.META.get("HTTP_AUTHORIZATION", ""), self.keyword)
        if raw is None:
            return None
        device = device_for_token(raw)
        if device is None:
            raise exceptions.AuthenticationFailed(
                "unknown, revoked or rotated device token"
            )
        return device, None

    def authenticate_header(self, request: Any) -> str:
        return f'{self.keyword} realm="devices"'


def device_for_token(raw: str) -> Device | None:
    # token_digest is unique: a slice, not .first(), whose ORDER BY the ORM
    # would compile on every upload for nothing (0.2 ms of CPU, measured).
    found = Device.objects.select_related("patient").filter(
        token_digest=token_digest(raw), status=Device.Status.ACTIVE
    )[:1]
    return next(iter(found), None)


def _credential(header: str, keyword: str) -> str | None:
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != keyword.lower():
        return None
    return parts[1]


class TokenAuthMiddleware(BaseMiddleware):
    """Lets a program open a WebSocket with ``Authorization: Token …``; browsers
    use their session cookie, which the wrapped AuthMiddlewareStack reads."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers", []))
        raw = _credential(headers.get(b"authorization", b"").decode("latin-1"), "Token")
        if raw is not None:
            user = await database_sync_to_async(user_for_token)(raw)
            scope["user"] = user or AnonymousUser()
        return await super().__call__(scope, receive, send)


def TokenAuthMiddlewareStack(inner: Any) -> Any:
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
