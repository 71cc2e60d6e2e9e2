"""The device client: buffer durably, upload in batches, retry safely.

Delivery is exactly once by construction: every reading is committed to the
buffer before ``add_*`` returns; a batch gets its UUID when it is formed and keeps
it (and its body) for every attempt, so a retry is "the same batch" to the server,
which stores a batch_id once; and only a 2xx deletes the batch from the buffer.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from .buffer import Buffer, Limits, Pending, StoredBatch
from .transport import Link, PlainJson, Sealer, https_session

log = logging.getLogger(__name__)

UPLOAD_PATH = "/api/v1/telemetry/batches"
# 4xx answers that a retry cannot fix: the batch goes to the dead letters.
FINAL = {400, 401, 403, 404, 405, 409, 410, 415, 422}
TOO_LARGE = 413


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter (a uniform wait in [0, min(cap,
    base·2^attempt)]): devices that lost the server together do not return
    together."""

    base_s: float = 1.0
    cap_s: float = 300.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2.0 ** min(attempt, 30)))


@dataclass(frozen=True)
class DeadLetter:
    batch_id: str
    status: int
    problem: dict[str, Any]
    observations: int
    ecg_segments: int


@dataclass(frozen=True)
class FlushReport:
    delivered: int = 0  # 201: stored now
    duplicates: int = 0  # 200: the server had it already (an earlier attempt)
    dead_lettered: int = 0
    retry_in: float | None = None  # seconds until the next attempt is due

    def plus(self, other: FlushReport) -> FlushReport:
        return FlushReport(
            self.delivered + other.delivered,
            self.duplicates + other.duplicates,
            self.dead_lettered + other.dead_lettered,
            other.retry_in,
        )


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
        self._backoff = backoff or Backoff()
        self._timeout = timeout_s
        self._clock = clock  # the device's clock: it stamps sent_at
        self._on_dead_letter = on_dead_letter
        self._sealer = sealer or PlainJson()
        self._sealer.bind(
            Link(self._session, self.base_url, token, timeout_s), self._buffer
        )
        self._rng = random.Random()  # noqa: S311 (jitter, not secrecy)

    # --- producing ---

    def add_observation(
        self, code: str, value: float | str, unit: str, time: datetime
    ) -> None:
        self._buffer.add(
            "observation",
            {"code": code, "value": value, "unit": unit, "time": iso(time)},
        )

    def add_ecg(
        self, lead: str, fs_hz: int, start: datetime, samples_uv: list[int]
    ) -> None:
        samples = [int(s) for s in samples_uv]
        self._buffer.add(
            "ecg",
            {
                "lead": lead,
                "fs_hz": int(fs_hz),
                "start": iso(start),
                "unit": "uV",
                "samples": samples,
            },
            size=len(samples),
        )

    def set_battery(self, pct: int) -> None:
        """The charge reported with every batch formed from now on."""
        if not 0 <= pct <= 100:
            raise ValueError("battery percentage must be 0–100")
        self._buffer.set_state("battery_pct", int(pct))

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
        report = FlushReport()
        while (batch := self._buffer.oldest()) is not None:
            wait = batch.not_before - time.time()
            if wait > 0:
                return report.plus(FlushReport(retry_in=wait))
            step = self._attempt(batch)
            report = report.plus(step)
            if step.retry_in is not None:
                return report
        return report

    def _attempt(self, batch: StoredBatch) -> FlushReport:
        try:
            response = self._post(batch)
        except requests.RequestException as error:
            return self._retry(batch, f"{type(error).__name__}: {error}", None)
        status = response.status_code
        if 200 <= status < 300:
            self._buffer.delivered(batch)
            return FlushReport(delivered=status == 201, duplicates=status != 201)
        if self._sealer.refused(response):
            return self._retry(batch, f"sealed upload refused ({status})", None)
        if status == TOO_LARGE and self._buffer.split(batch):
            log.warning("batch %s too large: split in two", batch.batch_id)
            return FlushReport()
        if status in FINAL or status == TOO_LARGE:
            return self._give_up(batch, response)
        return self._retry(batch, f"HTTP {status}", retry_after(response))

    def _post(self, batch: StoredBatch) -> requests.Response:
        body = {**batch.body, "sent_at": iso(self._clock())}
        sealed = self._sealer.seal(json.dumps(body, separators=(",", ":")).encode())
        headers = {"Authorization": f"Bearer {self._token}", **sealed.headers}
        url = self.base_url + sealed.path if sealed.path else self.url
        return self._session.post(
            url, data=sealed.body, headers=headers, timeout=self._timeout
        )

    def _retry(
        self, batch: StoredBatch, error: str, retry_after_s: float | None
    ) -> FlushReport:
        delay = self._backoff.delay(batch.attempts, self._rng)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        self._buffer.retry_later(batch, delay, error)
        log.info("batch %s: %s; next attempt in %.1f s", batch.batch_id, error, delay)
        return FlushReport(retry_in=delay)

    def _give_up(self, batch: StoredBatch, response: requests.Response) -> FlushReport:
        problem = problem_details(response)
        self._buffer.dead_letter(batch, response.status_code, problem)
        letter = DeadLetter(
            batch.batch_id,
            response.status_code,
            problem,
            len(batch.body["observations"]),
            len(batch.body["ecg"]),
        )
        log.error(
            "batch %s refused (%s): %s",
            batch.batch_id,
            response.status_code,
            problem.get("detail", ""),
        )
        if self._on_dead_letter is not None:
            self._on_dead_letter(letter)
        return FlushReport(dead_lettered=1)


def problem_details(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"status": response.status_code, "detail": response.text[:500]}
    return body if isinstance(body, dict) else {"detail": body}


def retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds: delay-seconds or an HTTP date (RFC 9110)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    seconds = (when - utc_now()).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
