"""ASGI entry point: Django over HTTP, Channels consumers over WebSocket."""

from __future__ import annotations

import os

import django
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rpm.settings")


class OneHopASGIHandler(ASGIHandler):
    """Django's ASGI handler with the request's middleware and view run in one
    worker thread, entered once.

    Every view and most middleware here are synchronous. Django's own handler
    builds the chain for async, so a request crossed between the event loop and
    a worker thread four times: into the outer middleware, back to the loop below
    the first sync-only one, out again for CSRF's process_view and for the view.
    Built for sync and wrapped in one ``sync_to_async`` it crosses once; the
    thread is the request's own (Django's ThreadSensitiveContext), as before.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(
            self._middleware_chain, thread_sensitive=True
        )


django.setup(set_prefix=False)
# Build the Django app first: it sets up the app registry the consumers import.
django_asgi_app = OneHopASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from patients.auth import TokenAuthMiddlewareStack  # noqa: E402
from rpm.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            TokenAuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
