"""The box's own web page and device port: a tiny HTTP server on the LAN.

- ``GET /`` shows the current alarms (refreshes itself every 5 s), the link
  state and what is waiting to be uploaded; ``GET /alarms.json`` the same as JSON.
- ``POST /api/v1/telemetry/batches`` takes an attached device's upload in the
  server's batch contract (so a DeviceClient points at the box instead of the
  cloud), commits it before answering, and is idempotent on batch_id.

With ``pair_token`` set, devices must send it as their bearer token.
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from telemetry import contract as c

from .gateway import Gateway, Refused

COLOURS = {"high": "#c0392b", "medium": "#e6a700", "low": "#2d7fb8"}


def status(gateway: Gateway) -> dict[str, Any]:
    return {
        "alarms": [
            {
                "kind": a.kind,
                "priority": a.priority,
                "message": a.message,
                "since": a.since.isoformat(),
                "last_at": a.last_at.isoformat(),
            }
            for a in gateway.alarms()
        ],
        "policy": gateway.policy.mode,
        "link": "down: " + gateway.link_error if gateway.link_error else "up",
        "pending": gateway.store.pending(),
    }


def render(gateway: Gateway) -> str:
    now = status(gateway)
    rows = "".join(
        f'<tr style="color:{COLOURS[a["priority"]]}"><td>{a["priority"]}</td>'
        f"<td>{html.escape(a['kind'])}</td><td>{html.escape(a['message'])}</td>"
        f"<td>{a['since']}</td></tr>"
        for a in now["alarms"]
    )
    body = rows or '<tr><td colspan="4">No alarms</td></tr>'
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="5"><title>Gateway alarms</title></head>'
        f"<body><h1>Alarms ({len(now['alarms'])})</h1>"
        "<table><tr><th>priority</th><th>kind</th><th>why</th><th>since</th></tr>"
        f"{body}</table><p>Link: {html.escape(now['link'])}. Policy: "
        f"{now['policy']}. Waiting: {html.escape(json.dumps(now['pending']))}.</p>"
        "</body></html>"
    )


def receive_upload(gateway: Gateway, token: str, body: bytes) -> tuple[int, dict]:
    """The server's answers: the shape checked here, the readings (and the
    device's clock) by the gateway, which keeps only what the server would."""
    batch, problems = c.parse_batch(body)
    if batch is None:
        return _not_stored(problems)
    items = [("observation", o.model_dump(mode="json")) for o in batch.observations]
    items += [("ecg", s.model_dump(mode="json")) for s in batch.ecg]
    source = hashlib.sha256(token.encode()).hexdigest()[:16]
    try:
        created = gateway.receive(
            source, str(batch.batch_id), items, sent_at=batch.sent_at
        )
    except Refused as refused:
        return _not_stored(refused.problems)
    answer = {
        "batch_id": str(batch.batch_id),
        "observations": len(batch.observations),
        "ecg_segments": len(batch.ecg),
    }
    return (201 if created else 200), answer


def _not_stored(problems: list[c.Problem]) -> tuple[int, dict]:
    errors = [{"path": p.path, "message": p.message} for p in problems]
    return 400, {"status": 400, "detail": "not stored", "errors": errors}


def make_handler(gateway: Gateway, pair_token: str | None) -> type:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/alarms.json":
                self._send(200, json.dumps(status(gateway)), "application/json")
            elif self.path == "/":
                self._send(200, render(gateway), "text/html; charset=utf-8")
            else:
                self._send(404, "{}", "application/json")

        def do_POST(self) -> None:
            if self.path != "/api/v1/telemetry/batches":
                self._send(404, "{}", "application/json")
                return
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if pair_token and token != pair_token:
                self._send(401, '{"detail": "not paired"}', "application/json")
                return
            length = int(self.headers.get("Content-Length") or 0)
            code, answer = receive_upload(gateway, token, self.rfile.read(length))
            self._send(code, json.dumps(answer), "application/json")

        def _send(self, code: int, text: str, content_type: str) -> None:
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the gateway logs what matters

    return Handler


def serve(
    gateway: Gateway, host: str, port: int, pair_token: str | None = None
) -> ThreadingHTTPServer:
    """Start the page and device port in a daemon thread; ``shutdown()`` stops it."""
    server = ThreadingHTTPServer((host, port), make_handler(gateway, pair_token))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
