"""Run an edge gateway: ``python manage.py edge_gateway --url … --token …``.

Attached devices upload to the box (``--listen``, the server's batch contract);
the page at ``http://<listen>/`` shows the current alarms. docs/edge.md.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from telemetry.edge.gateway import Gateway
from telemetry.edge.local_page import serve
from telemetry.edge.policy import Policy


class Command(BaseCommand):
    help = "Run an edge gateway (home hub or bedside box) for one patient."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", required=True, help="the server")
        parser.add_argument("--token", required=True, help="the hub's device token")
        parser.add_argument(
            "--policy", default="edge-first", choices=["edge-first", "forward-all"]
        )
        parser.add_argument("--store", help="default: var/edge/gateway.sqlite3")
        parser.add_argument("--listen", default="127.0.0.1:8780", help="host:port")
        parser.add_argument("--pair-token", help="token attached devices must send")
        parser.add_argument("--ca", help="CA file for the server")
        parser.add_argument("--pin", help="the server certificate's SHA-256")
        parser.add_argument("--window", type=float, default=10.0, help="seconds")
        parser.add_argument("--sample-every", type=float, default=600.0)
        parser.add_argument("--keep", type=float, default=86_400.0, help="seconds")
        parser.add_argument("--duration", type=float, default=0.0, help="0: forever")

    def handle(self, *args: Any, **options: Any) -> None:
        store = options["store"] or str(settings.VAR_DIR / "edge" / "gateway.sqlite3")
        policy = Policy(
            options["policy"],
            window_s=options["window"],
            sample_every_s=options["sample_every"],
            keep_s=options["keep"],
        )
        gateway = Gateway(
            options["url"],
            options["token"],
            store,
            policy=policy,
            ca_file=options["ca"],
            pin_sha256=options["pin"],
        )
        host, port = options["listen"].rsplit(":", 1)
        page = serve(gateway, host, int(port), options["pair_token"])
        self.stdout.write(
            f"Gateway ({policy.mode}) up: alarms and device port on "
            f"http://{host}:{page.server_address[1]}/"
        )
        stop = threading.Event()
        if options["duration"] > 0:
            threading.Timer(options["duration"], stop.set).start()
        try:
            gateway.run(stop)
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")
        finally:
            page.shutdown()
            gateway.close()
