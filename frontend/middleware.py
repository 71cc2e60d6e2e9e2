"""Sign a clinician out after a period without activity, on the server too.

The page's own timer warns a minute before and signs out; this middleware makes
the rule hold when the page is closed, asleep or tampered with. Requests a page
makes by itself (refreshing a list, catching up on alerts) carry the header
``X-RPM-Background: 1`` and do not count as activity.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

LAST_ACTIVITY = "rpm_last_activity"
BACKGROUND_HEADER = "HTTP_X_RPM_BACKGROUND"
# Write the session at most this often: each write is a database round trip.
TOUCH_EVERY_S = 30


def idle_timeout_s() -> int:
    return int(getattr(settings, "SESSION_IDLE_TIMEOUT_S", 900))


def touch_activity(request: HttpRequest, now: float | None = None) -> None:
    now = time.time() if now is None else now
    last = request.session.get(LAST_ACTIVITY)
    if last is None or now - last >= TOUCH_EVERY_S:
        request.session[LAST_ACTIVITY] = now


class IdleTimeoutMiddleware:
    """After ``SessionMiddleware`` and ``AuthenticationMiddleware``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            self._check(request)
        return self.get_response(request)

    def _check(self, request: HttpRequest) -> None:
        now = time.time()
        last = request.session.get(LAST_ACTIVITY)
        if last is not None and now - last > idle_timeout_s():
            logout(request)
        elif request.META.get(BACKGROUND_HEADER) != "1":
            touch_activity(request, now)
