"""The device client: buffer durably, upload in batches, retry safely.

Delivery is exactly once by construction: every reading is committed to the
buffer before ``add_*`` returns; a batch gets its UUID when it is formed and keeps
it (and its body) for every attempt, so a retry is "the same batch" to the server,
which stores a batch_id once; and only a 2xx deletes the batch from the buffer.
The sending loop (retries, splitting on 413, dead letters) is upload.py's, shared
with the edge gateway.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from .buffer import Buffer, Limits, Pending, StoredBatch
from .precheck import Refused, refusals
from .transport import Link, PlainJson, Sealer, https_session
from .upload import Backoff, FlushReport, Uploader

UPLOAD_PATH = "/api/v1/telemetry/batches"


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class DeadLetter:
    batch_id: str
    status: int
    problem: dict[str, Any]
    observations: int
    ecg_segments: int


class DeviceClient:
    def __init__(
        self,
        url: str,
        token: str,
        buffer_path: str | Path,
        *,
        ca_file: str | None = None,
        pin_sha256: str | None = None,
        max_batch_observations: int = 600,
        backoff: Backoff | None = None,
        timeout_s: float = 15.0,
        clock: Callable[[], datetime] = utc_now,
        on_dead_letter: Callable[[DeadLetter], None] | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self.base_url = url.rstrip("/")
        self.url = self.base_url + UPLOAD_PATH
        self._token = token
        self._buffer = Buffer(buffer_path)
        self._limits = Limits(observations=max_batch_observations)
        self._session = https_session(ca_file, pin_sha256)
        self._timeout = timeout_s
        self._clock = clock  # the device's clock: it stamps sent_at
        self._on_dead_letter = on_dead_letter
        self._sealer = sealer or PlainJson()
        self._sealer.bind(
            Link(self._session, self.base_url, token, timeout_s), self._buffer
        )
        self._uploader = Uploader(
            self._buffer,
            self._post,
            backoff=backoff or Backoff(),
            refused=self._sealer.refused,
            on_dead_letter=self._dead_lettered,
        )

    # --- producing ---

    def add_observation(
        self, code: str, value: float | str, unit: str, time: datetime
    ) -> None:
        """Keep one reading for upload. Raises Refused, keeping nothing, when the
        server would refuse it (unknown code or unit, implausible value, a time
        over 5 minutes ahead of or 7 days behind the device's clock): one such
        reading would otherwise take every good one in its batch down with it."""
        payload = {"code": code, "value": value, "unit": unit, "time": iso(time)}
        self._precheck("observation", payload)
        self._buffer.add("observation", payload)

    def add_ecg(
        self, lead: str, fs_hz: int, start: datetime, samples_uv: list[int]
    ) -> None:
        """Keep one ECG segment for upload; Raises Refused as add_observation."""
        samples = [int(s) for s in samples_uv]
        payload = {
            "lead": lead,
            "fs_hz": int(fs_hz),
            "start": iso(start),
            "unit": "uV",
            "samples": samples,
        }
        self._precheck("ecg", payload)
        self._buffer.add("ecg", payload, size=len(samples))

    def set_battery(self, pct: int) -> None:
        """The charge reported with every batch formed from now on."""
        if not 0 <= pct <= 100:
            raise ValueError("battery percentage must be 0–100")
        self._buffer.set_state("battery_pct", int(pct))

    def _precheck(self, kind: str, payload: dict[str, Any]) -> None:
        problems = refusals([(kind, payload)], now=self._clock())
        if problems:
            raise Refused(problems)

    # --- state ---

    def pending(self) -> Pending:
        return self._buffer.pending()

    def dead_letters(self) -> list[dict[str, Any]]:
        return self._buffer.dead_letters()

    def close(self) -> None:
        self._session.close()
        self._buffer.close()

    # --- sending ---

    def run(self, stop: threading.Event, idle_s: float = 1.0) -> None:
        """Send until ``stop`` is set: as soon as data is due, else every idle_s."""
        while not stop.is_set():
            report = self.flush_once()
            wait = idle_s if report.retry_in is None else min(report.retry_in, idle_s)
            stop.wait(max(wait, 0.01))

    def flush_once(self) -> FlushReport:
        """Form batches from what is waiting and send them oldest first, until the
        buffer is empty or an attempt must wait (then ``retry_in`` says how long)."""
        self._buffer.form_batches(self._limits)
        return self._uploader.flush_once()

    def _post(self, batch: StoredBatch) -> requests.Response:
        body = {**batch.body, "sent_at": iso(self._clock())}
        sealed = self._sealer.seal(json.dumps(body, separators=(",", ":")).encode())
        headers = {"Authorization": f"Bearer {self._token}", **sealed.headers}
        url = self.base_url + sealed.path if sealed.path else self.url
        return self._session.post(
            url, data=sealed.body, headers=headers, timeout=self._timeout
        )

    def _dead_lettered(
        self, batch: StoredBatch, status: int, problem: dict[str, Any]
    ) -> None:
        if self._on_dead_letter is None:
            return
        self._on_dead_letter(
            DeadLetter(
                batch.batch_id,
                status,
                problem,
                len(batch.body["observations"]),
                len(batch.body["ecg"]),
            )
        )
