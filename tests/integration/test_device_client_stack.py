"""The device client against the real stack: Daphne over TLS, PostgreSQL, Celery.

Exactly once means: every reading handed to the client is stored by the server
once, through a server restart, a long outage and the client's own death.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from telemetry.device import Backoff, DeviceClient, certificate_sha256
from telemetry.models import Batch, Observation

from .stack import ROOT, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
FAST = Backoff(base_s=0.05, cap_s=0.5)
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def client_for(stack, device, tmp_path, **kwargs) -> DeviceClient:
    kwargs.setdefault("ca_file", str(stack.cert))
    return DeviceClient(
        stack.base_url,
        device.token,
        tmp_path / "buffer.sqlite3",
        backoff=FAST,
        max_batch_observations=10,
        **kwargs,
    )


def hand_over(client: DeviceClient, first: int, count: int) -> None:
    for i in range(first, first + count):
        client.add_observation("8867-4", 60 + i % 30, "/min", T0 + timedelta(seconds=i))


def drain(client: DeviceClient, timeout: float = 60) -> None:
    stop = threading.Event()
    sender = threading.Thread(target=client.run, args=(stop, 0.05))
    sender.start()
    try:
        wait_until(lambda: client.pending().empty, timeout, "the buffer did not drain")
    finally:
        stop.set()
        sender.join()


def stored_seconds(device) -> list[int]:
    times = Observation.objects.filter(device=device.device).values_list(
        "time", flat=True
    )
    return sorted(int((t - T0).total_seconds()) for t in times)


def test_everything_is_delivered_once_across_a_server_restart(stack, device, tmp_path):
    client = client_for(stack, device, tmp_path)
    hand_over(client, 0, 30)
    assert client.flush_once().delivered == 3
    stack.daphne.stop()
    try:
        hand_over(client, 30, 30)
        assert client.flush_once().retry_in is not None
    finally:
        stack.start_daphne()
    hand_over(client, 60, 30)
    drain(client)
    assert stored_seconds(device) == list(range(90))
    assert Batch.objects.filter(device=device.device).count() == 9


def test_a_long_outage_grows_the_buffer_then_drains_exactly_once(
    stack, device, tmp_path
):
    client = client_for(stack, device, tmp_path)
    stack.daphne.stop()
    try:
        backlog = []
        for minute in range(12):  # "hours" offline: time compressed by the backoff
            hand_over(client, minute * 25, 25)
            client.flush_once()
            backlog.append(client.pending().observations)
            time.sleep(0.1)
        assert backlog == [25 * (m + 1) for m in range(12)]
    finally:
        stack.start_daphne()
    drain(client)
    assert stored_seconds(device) == list(range(300))
    assert client.pending().dead_letters == 0


KILLABLE_DEVICE = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timedelta
    from telemetry.device import Backoff, DeviceClient

    url, token, ca, path, t0 = sys.argv[1:6]
    t0 = datetime.fromisoformat(t0)
    client = DeviceClient(url, token, path, ca_file=ca, max_batch_observations=10,
                          backoff=Backoff(0.05, 0.5))
    for i in range(100_000):
        client.add_observation("8867-4", 60 + i % 30, "/min", t0 + timedelta(seconds=i))
        print(i, flush=True)
        if i % 10 == 9:
            client.flush_once()
    """
)


def test_a_client_killed_mid_stream_is_resumed_by_the_next_exactly_once(
    stack, device, tmp_path
):
    buffer = tmp_path / "buffer.sqlite3"
    killed = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLABLE_DEVICE,
            stack.base_url,
            device.token,
            str(stack.cert),
            str(buffer),
            T0.isoformat(),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: Batch.objects.filter(device=device.device).count() >= 5,
            60,
            "the device sent nothing",
        )
    finally:
        killed.send_signal(signal.SIGKILL)
        output, _ = killed.communicate(timeout=10)
    handed = int(output.split()[-1]) + 1  # the last reading add_* returned for
    client = client_for(stack, device, tmp_path)
    drain(client)
    seconds = stored_seconds(device)
    # Every reading handed over arrived, once; at most one more (committed, then
    # killed before it could say so).
    assert seconds == list(range(len(seconds)))
    assert handed <= len(seconds) <= handed + 1


def test_a_pinned_client_uploads_to_the_pinned_server(stack, device, tmp_path):
    pin = certificate_sha256(stack.cert.read_text())
    client = client_for(stack, device, tmp_path, ca_file=None, pin_sha256=pin)
    hand_over(client, 0, 5)
    assert client.flush_once().delivered == 1


def test_a_pinned_client_refuses_a_server_with_another_certificate(
    stack, device, tmp_path
):
    client = client_for(stack, device, tmp_path, ca_file=None, pin_sha256="0f" * 32)
    hand_over(client, 0, 5)
    report = client.flush_once()
    assert report.delivered == 0
    assert report.retry_in is not None
    assert client.pending().observations == 5
    assert not Batch.objects.exists()


def test_a_revoked_token_sends_the_batch_to_the_dead_letters(stack, device, tmp_path):
    from patients.services import revoke_device

    letters = []
    client = client_for(stack, device, tmp_path, on_dead_letter=letters.append)
    revoke_device(device=device.device)
    hand_over(client, 0, 5)
    assert client.flush_once().dead_lettered == 1
    assert [letter.status for letter in letters] == [401]
    assert letters[0].problem["status"] == 401
    assert client.pending().batches == 0


def test_sealed_uploads_over_a_qkd_session_arrive_exactly_once(stack, device, tmp_path):
    from security import kme
    from security.models import DeviceSession
    from telemetry.device.qkd import QkdSealer

    kme.fill_pools(kme.default_link(), os.urandom(32 * 4))
    client = DeviceClient(
        stack.base_url,
        device.token,
        tmp_path / "sealed.sqlite3",
        ca_file=str(stack.cert),
        sealer=QkdSealer(device_serial=device.device.serial),
    )
    for n in range(30):
        client.add_observation("8867-4", 60 + n, "/min", datetime.now(UTC))
        if n % 10 == 9:
            client.flush_once()
    assert client.pending().batches == 0
    session = DeviceSession.objects.get()
    assert session.hybrid
    assert session.batches == Batch.objects.count() == 3
    assert Observation.objects.count() == 30


def test_sealed_uploads_fall_back_to_tls_while_the_link_is_compromised(
    stack, device, tmp_path
):
    from security import kme
    from security.models import DeviceSession, QkdLink
    from telemetry.device.qkd import QkdSealer

    link = kme.default_link()
    kme.fill_pools(link, os.urandom(32 * 4))
    QkdLink.objects.filter(pk=link.pk).update(status=QkdLink.Status.COMPROMISED)
    client = DeviceClient(
        stack.base_url,
        device.token,
        tmp_path / "fallback.sqlite3",
        ca_file=str(stack.cert),
        sealer=QkdSealer(device_serial=device.device.serial),
    )
    client.add_observation("8867-4", 70, "/min", datetime.now(UTC))
    client.flush_once()
    assert client.pending().batches == 0
    assert Observation.objects.count() == 1
    assert not DeviceSession.objects.exists()
