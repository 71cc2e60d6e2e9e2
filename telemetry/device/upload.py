"""Sending a durable queue of batches: the loop the device client and the edge
gateway share.

Only a 2xx takes a batch off the queue. A retry sends the same batch_id and body
(only ``sent_at`` is new), so the server, idempotent on batch_id, stores it once.
A 413 means the server stored nothing: the queue replaces the batch by two halves
under new batch_ids, committed before either is sent, that keep its place in the
queue; after a crash the same halves go out again and the server answers 200 to
those it has. A batch of one reading still too large, and a refusal a retry cannot
fix, go to the dead letters; anything else waits and is tried again.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import requests

log = logging.getLogger(__name__)

# 4xx answers that a retry cannot fix: the batch goes to the dead letters.
FINAL = {400, 401, 403, 404, 405, 409, 410, 415, 422}
TOO_LARGE = 413


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


class Queued(Protocol):
    """One stored batch: its body is fixed, sent_at aside."""

    @property
    def batch_id(self) -> str: ...

    @property
    def body(self) -> dict[str, Any]: ...

    @property
    def attempts(self) -> int: ...

    @property
    def not_before(self) -> float: ...  # epoch seconds of the next attempt


B = TypeVar("B", bound=Queued)


class Queue(Protocol[B]):
    """The durable side: the device's Buffer, the gateway's Store."""

    def oldest(self) -> B | None: ...  # the next to send

    def delivered(self, batch: B) -> None: ...

    def retry_later(self, batch: B, delay_s: float, error: str) -> None: ...

    def dead_letter(self, batch: B, status: int, problem: dict) -> None: ...

    def split(self, batch: B) -> bool: ...  # False: one reading, cannot split


class Uploader(Generic[B]):
    """``post`` sends one attempt of a batch (with a fresh sent_at); ``refused``
    claims a refusal the sender can fix itself (a sealing session to renew), which
    is retried instead of given up; ``on_dead_letter`` hears of every batch given
    up, after it is stored with the server's problem details."""

    def __init__(
        self,
        queue: Queue[B],
        post: Callable[[B], requests.Response],
        *,
        backoff: Backoff,
        refused: Callable[[requests.Response], bool] | None = None,
        on_dead_letter: Callable[[B, int, dict[str, Any]], None] | None = None,
    ) -> None:
        self._queue = queue
        self._post = post
        self._backoff = backoff
        self._refused = refused
        self._on_dead_letter = on_dead_letter
        self._rng = random.Random()  # noqa: S311 (jitter, not secrecy)
        self.last_error: str | None = None  # why the last attempt failed, if it did

    def flush_once(self) -> FlushReport:
        """Send the queue in order until it is empty or an attempt must wait (then
        ``retry_in`` says how long)."""
        report = FlushReport()
        while (batch := self._queue.oldest()) is not None:
            wait = batch.not_before - time.time()
            if wait > 0:
                return report.plus(FlushReport(retry_in=wait))
            step = self.attempt(batch)
            report = report.plus(step)
            if step.retry_in is not None:
                return report
        return report

    def attempt(self, batch: B) -> FlushReport:
        """Send one batch once, and keep, split, retry or give it up."""
        try:
            response = self._post(batch)
        except requests.RequestException as error:
            return self._retry(batch, f"{type(error).__name__}: {error}", None)
        status = response.status_code
        if 200 <= status < 300:
            self._queue.delivered(batch)
            self.last_error = None
            return FlushReport(delivered=status == 201, duplicates=status != 201)
        if self._refused is not None and self._refused(response):
            return self._retry(batch, f"sealed upload refused ({status})", None)
        if status == TOO_LARGE and self._queue.split(batch):
            log.warning("batch %s too large: split in two", batch.batch_id)
            return FlushReport()
        if status in FINAL or status == TOO_LARGE:
            return self._give_up(batch, response)
        return self._retry(batch, f"HTTP {status}", retry_after(response))

    def _retry(self, batch: B, error: str, retry_after_s: float | None) -> FlushReport:
        delay = self._backoff.delay(batch.attempts, self._rng)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        self._queue.retry_later(batch, delay, error)
        self.last_error = error
        log.info("batch %s: %s; next attempt in %.1f s", batch.batch_id, error, delay)
        return FlushReport(retry_in=delay)

    def _give_up(self, batch: B, response: requests.Response) -> FlushReport:
        problem = problem_details(response)
        self._queue.dead_letter(batch, response.status_code, problem)
        log.error(
            "batch %s refused (%s): %s",
            batch.batch_id,
            response.status_code,
            problem.get("detail", ""),
        )
        if self._on_dead_letter is not None:
            self._on_dead_letter(batch, response.status_code, problem)
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
    seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
