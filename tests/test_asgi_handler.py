"""The ASGI entry point runs a request's middleware and view in one worker
thread, entered once, instead of hopping between it and the event loop."""

from __future__ import annotations

import pytest
from asgiref.sync import AsyncToSync
from channels.testing import HttpCommunicator
from django.core.handlers.asgi import ASGIHandler

from rpm.asgi import OneHopASGIHandler, application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def get(app, path: str) -> tuple[dict, int]:
    """The response to a GET, and how often the request went back to the loop."""
    returns = []
    original = AsyncToSync.__call__

    def counting(self, *args, **kwargs):
        returns.append(self)
        return original(self, *args, **kwargs)

    AsyncToSync.__call__ = counting
    try:
        communicator = HttpCommunicator(
            app, "GET", path, headers=[(b"host", b"localhost")]
        )
        response = await communicator.get_response(timeout=10)
    finally:
        AsyncToSync.__call__ = original
    return response, len(returns)


# A sync DRF view behind the whole middleware stack, with no async work of its own.
PATH = "/api/v1/patients/"


async def test_a_request_never_returns_to_the_event_loop_midway():
    response, returns = await get(application, PATH)
    assert response["status"] == 401
    assert returns == 0
    assert isinstance(application.application_mapping["http"], OneHopASGIHandler)


async def test_djangos_own_handler_would_have_for_this_middleware():
    # The reason for OneHopASGIHandler: with this project's middleware the stock
    # handler adapts the chain back to async below the first sync-only one.
    response, returns = await get(ASGIHandler(), PATH)
    assert response["status"] == 401
    assert returns >= 1
