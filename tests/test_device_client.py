"""The device client against a real local HTTP(S) server with scripted answers."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from security.tls import ensure_self_signed
from telemetry.device import Backoff, DeviceClient, Refused, certificate_sha256

ROOT = Path(__file__).resolve().parents[1]
FAST = Backoff(base_s=0.01, cap_s=0.05)


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict | None = None
    store_first: bool = False  # store the batch, then answer this (or stall)
    stall: threading.Event | None = None


@dataclass
class Received:
    at: float
    body: dict


class Server:
    """Stores batches once per batch_id (201, then 200), like the real server,
    unless the script says otherwise for the next request."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.script: list[Answer] = []
        self.received: list[Received] = []
        self.stored: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def readings(self) -> list[tuple]:
        """Every observation the server stored, with the batch that carried it."""
        return [
            (o["code"], o["value"], o["time"])
            for body in self.stored.values()
            for o in body["observations"]
        ]

    def answer(self, body: dict) -> Answer:
        with self.lock:
            self.received.append(Received(time.monotonic(), body))
            scripted = self.script.pop(0) if self.script else None
            if scripted is None or scripted.store_first:
                first = body["batch_id"] not in self.stored
                self.stored.setdefault(body["batch_id"], body)
                if scripted is None:
                    return Answer(201 if first else 200, body={"ok": True})
            return scripted

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                answer = server.answer(body)
                if answer.stall is not None:
                    answer.stall.wait(30)
                payload = json.dumps(answer.body or {}).encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/problem+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


@pytest.fixture
def tls_files(tmp_path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key)
    return cert, key


def make_client(server: Server, tmp_path: Path, **kwargs) -> DeviceClient:
    kwargs.setdefault("backoff", FAST)
    return DeviceClient(server.url, "dev_token", tmp_path / "buffer.sqlite3", **kwargs)


# Recent: add_* refuses readings over 7 days old, as the server would.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def add_heart_rates(client: DeviceClient, count: int, first: int = 0) -> None:
    for i in range(first, first + count):
        client.add_observation("8867-4", 60 + i % 40, "/min", T0 + timedelta(seconds=i))


def test_readings_go_out_in_batches_oldest_first_and_leave_the_buffer(server, tmp_path):
    client = make_client(server, tmp_path, max_batch_observations=4)
    add_heart_rates(client, 10)
    report = client.flush_once()
    assert report.delivered == 3
    times = [o["time"] for r in server.received for o in r.body["observations"]]
    assert times == sorted(times)
    assert [len(r.body["observations"]) for r in server.received] == [4, 4, 2]
    assert client.pending().empty


def test_ecg_and_battery_travel_with_the_batch(server, tmp_path):
    client = make_client(server, tmp_path)
    client.set_battery(57)
    client.add_ecg("II", 250, T0, [1, -2, 3])
    client.flush_once()
    body = server.received[0].body
    assert body["battery_pct"] == 57
    assert body["ecg"] == [
        {
            "lead": "II",
            "fs_hz": 250,
            "start": T0.isoformat().replace("+00:00", "Z"),
            "unit": "uV",
            "samples": [1, -2, 3],
        }
    ]


def test_a_retry_sends_the_same_batch_with_a_new_sent_at(server, tmp_path):
    ticks = iter(T0 + timedelta(seconds=s) for s in range(100))
    client = make_client(server, tmp_path, clock=lambda: next(ticks))
    server.script = [Answer(503), Answer(502)]
    add_heart_rates(client, 3)
    while not client.pending().empty:
        client.flush_once()
        time.sleep(0.02)
    first, *_, last = server.received
    assert len(server.received) == 3
    assert first.body["batch_id"] == last.body["batch_id"]
    assert first.body["sent_at"] != last.body["sent_at"]
    assert {k: v for k, v in first.body.items() if k != "sent_at"} == {
        k: v for k, v in last.body.items() if k != "sent_at"
    }


@pytest.mark.parametrize("status", [400, 401, 403, 409, 415])
def test_a_refusal_a_retry_cannot_fix_is_dead_lettered_and_never_retried(
    server, tmp_path, status
):
    letters = []
    client = make_client(server, tmp_path, on_dead_letter=letters.append)
    problem = {"type": "about:blank", "status": status, "detail": "fix me"}
    server.script = [Answer(status, body=problem)]
    add_heart_rates(client, 2)
    report = client.flush_once()
    client.flush_once()
    assert report.dead_lettered == 1
    assert len(server.received) == 1
    assert [(x.status, x.problem["detail"]) for x in letters] == [(status, "fix me")]
    assert client.dead_letters()[0]["problem"] == problem
    assert client.pending().batches == 0


def test_a_dead_letter_does_not_hold_up_the_batches_behind_it(server, tmp_path):
    client = make_client(server, tmp_path, max_batch_observations=1)
    server.script = [Answer(400, body={"detail": "bad"})]
    add_heart_rates(client, 3)
    report = client.flush_once()
    assert (report.dead_lettered, report.delivered) == (1, 2)


def test_a_batch_too_large_is_split_and_both_halves_delivered(server, tmp_path):
    client = make_client(server, tmp_path)
    server.script = [Answer(413, body={"detail": "too large"})]
    add_heart_rates(client, 5)
    report = client.flush_once()
    assert report.delivered == 2
    refused, *halves = server.received
    assert [len(h.body["observations"]) for h in halves] == [2, 3]
    ids = {refused.body["batch_id"], *(h.body["batch_id"] for h in halves)}
    assert len(ids) == 3
    assert len(server.readings()) == 5


def test_a_single_reading_too_large_is_dead_lettered(server, tmp_path):
    client = make_client(server, tmp_path)
    server.script = [Answer(413, body={"detail": "too large"})]
    add_heart_rates(client, 1)
    assert client.flush_once().dead_lettered == 1


def test_429_waits_at_least_retry_after(server, tmp_path):
    client = make_client(server, tmp_path)
    server.script = [Answer(429, headers={"Retry-After": "1"})]
    add_heart_rates(client, 1)
    report = client.flush_once()
    assert report.retry_in >= 1.0
    assert client.flush_once().delivered == 0  # not due yet: nothing sent
    stop = threading.Event()
    runner = threading.Thread(target=client.run, args=(stop, 0.05))
    runner.start()
    try:
        deadline = time.monotonic() + 5
        while not client.pending().empty and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        runner.join()
    first, second = server.received
    assert second.at - first.at >= 1.0
    assert client.pending().empty


def test_an_unreachable_server_keeps_everything_buffered(tmp_path):
    client = DeviceClient(
        "http://127.0.0.1:9", "t", tmp_path / "b.sqlite3", backoff=FAST
    )
    add_heart_rates(client, 7)
    report = client.flush_once()
    assert report.retry_in is not None
    assert report.retry_in <= FAST.cap_s
    assert client.pending().observations == 7


def test_backoff_grows_exponentially_within_its_cap_and_jitters():
    import random

    rng = random.Random(1)
    backoff = Backoff(base_s=1.0, cap_s=60.0)
    delays = [[backoff.delay(a, rng) for _ in range(200)] for a in range(10)]
    assert max(delays[0]) <= 1.0
    assert max(delays[3]) <= 8.0 < max(delays[4])
    assert max(delays[9]) <= 60.0
    assert min(delays[9]) < 30.0  # full jitter: anywhere from zero


def test_readings_survive_a_restart_of_the_client(server, tmp_path):
    client = make_client(server, tmp_path)
    add_heart_rates(client, 5)
    client.set_battery(33)
    client.close()
    again = make_client(server, tmp_path)
    assert again.pending().observations == 5
    assert again.flush_once().delivered == 1
    assert server.received[0].body["battery_pct"] == 33


KILLABLE_DEVICE = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from telemetry.device import Backoff, DeviceClient

    url, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = DeviceClient(url, "t", path, max_batch_observations=5,
                          backoff=Backoff(0.01, 0.05))
    t0 = datetime.now(UTC) - timedelta(hours=1)
    for i in range(count):
        client.add_observation("8867-4", 60 + i % 40, "/min", t0 + timedelta(seconds=i))
        if i % 5 == 4:
            client.flush_once()
    """
)


def test_a_client_killed_mid_upload_delivers_everything_exactly_once(server, tmp_path):
    """The server stores the third batch but the device dies before the answer:
    the next client sends that batch again, and the server has it once."""
    stall = threading.Event()
    server.script = [
        Answer(201),
        Answer(201),
        Answer(201, store_first=True, stall=stall),
    ]
    server.script[0].store_first = server.script[1].store_first = True
    buffer = tmp_path / "buffer.sqlite3"
    device = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_DEVICE, server.url, str(buffer), "40"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 30
        while len(server.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        device.send_signal(signal.SIGKILL)
        device.wait(10)
    finally:
        stall.set()
    assert len(server.stored) == 3
    client = make_client(server, tmp_path)
    while not client.pending().empty:
        client.flush_once()
    resent = [r.body["batch_id"] for r in server.received]
    assert len(resent) > len(set(resent))  # the stalled batch went out twice
    expected = [("8867-4", 60 + i % 40) for i in range(len(server.readings()))]
    assert sorted((c, v) for c, v, _ in server.readings()) == sorted(expected)
    times = [t for _, _, t in server.readings()]
    assert len(times) == len(set(times))


def test_a_pinned_client_talks_to_the_pinned_certificate(tls_files, tmp_path):
    server = Server(tls_files)
    try:
        pin = certificate_sha256(tls_files[0].read_text())
        client = make_client(server, tmp_path, pin_sha256=pin)
        add_heart_rates(client, 1)
        assert client.flush_once().delivered == 1
    finally:
        server.close()


def test_a_pinned_client_refuses_any_other_certificate(tls_files, tmp_path):
    server = Server(tls_files)
    try:
        wrong = "ab" * 32
        client = make_client(server, tmp_path, pin_sha256=wrong)
        add_heart_rates(client, 1)
        report = client.flush_once()
        assert report.retry_in is not None
        assert server.received == []  # not one byte of the batch was sent
        assert client.pending().observations == 1
    finally:
        server.close()


def test_a_client_verifies_the_server_against_its_ca_file(tls_files, tmp_path):
    other_cert, other_key = tmp_path / "other.pem", tmp_path / "other.key"
    ensure_self_signed(other_cert, other_key)
    server = Server(tls_files)
    try:
        trusting = make_client(server, tmp_path / "a", ca_file=str(tls_files[0]))
        stranger = make_client(server, tmp_path / "b", ca_file=str(other_cert))
        for client in (trusting, stranger):
            add_heart_rates(client, 1)
        assert trusting.flush_once().delivered == 1
        assert stranger.flush_once().delivered == 0
        assert len(server.received) == 1
    finally:
        server.close()


@pytest.mark.parametrize(
    ("reading", "path", "says"),
    [
        (("8867-4", 420, "/min"), "value", "not plausible"),
        (("8867-4", "72", "/min"), "value", "must be a number"),
        (("8867-4", float("nan"), "/min"), "value", "finite number"),
        (("8310-5", 37.0, "degC"), "unit", "takes 'Cel'"),
        (("1234-5", 1, "/min"), "code", "unknown code"),
    ],
)
def test_a_reading_the_server_would_refuse_is_refused_when_added(
    server, tmp_path, reading, path, says
):
    client = make_client(server, tmp_path)
    add_heart_rates(client, 3)
    with pytest.raises(Refused, match=says) as refused:
        client.add_observation(*reading, T0)
    assert all(f"].{path}" in p.path for p in refused.value.problems)
    assert client.pending().observations == 3  # the bad one is not kept
    # ... and the good ones travel in a batch the server accepts.
    assert client.flush_once().delivered == 1
    assert len(server.received[0].body["observations"]) == 3


def test_readings_from_beyond_the_servers_time_window_are_refused(server, tmp_path):
    now = T0 + timedelta(hours=1)
    client = make_client(server, tmp_path, clock=lambda: now)
    with pytest.raises(Refused, match="in the future"):
        client.add_observation("8867-4", 70, "/min", now + timedelta(minutes=6))
    with pytest.raises(Refused, match="older than 7 days"):
        client.add_observation("8867-4", 70, "/min", now - timedelta(days=8))
    client.add_observation("8867-4", 70, "/min", now + timedelta(minutes=4))
    client.add_observation("8867-4", 70, "/min", now - timedelta(days=6))
    assert client.pending().observations == 2


def test_an_ecg_segment_the_server_would_refuse_is_refused_when_added(server, tmp_path):
    client = make_client(server, tmp_path)
    with pytest.raises(Refused, match="more than 60 s"):
        client.add_ecg("II", 100, T0, [0] * 6001)
    with pytest.raises(Refused, match="100 mV"):
        client.add_ecg("II", 250, T0, [0, 150_000])
    with pytest.raises(Refused, match="lead"):
        client.add_ecg("X", 250, T0, [0, 1])
    assert client.pending().ecg_segments == 0


def test_timestamps_without_a_zone_are_refused(server, tmp_path):
    client = make_client(server, tmp_path)
    with pytest.raises(ValueError, match="timezone-aware"):
        client.add_observation("8867-4", 70, "/min", datetime(2026, 1, 1))  # noqa: DTZ001
