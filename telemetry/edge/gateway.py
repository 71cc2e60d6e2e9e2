"""The gateway loop: take what the attached devices handed over, analyse it with
the server's code, alarm on the box, and upload by policy, alerts first.

Runs without Django (``requests``, NumPy and the pure analysis modules), so it
fits a small box: ``python manage.py edge_gateway`` is only its launcher.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TextIO

import requests

from alerts import rules
from telemetry import contract as c
from telemetry.device.buffer import Limits
from telemetry.device.client import iso, utc_now
from telemetry.device.precheck import Refused, refusals
from telemetry.device.transport import https_session
from telemetry.device.upload import Backoff, FlushReport, Uploader

from .alarms import Alarm, Change, LocalAlarms
from .evaluate import Vitals, WindowResult, analyse_window, outcome_json
from .outbox import ALERT_LANE, DATA_LANE, Step, Store, Upload
from .policy import Policy, Window, forward_reason
from .windows import Chunk, cut

log = logging.getLogger(__name__)

BATCHES = "/api/v1/telemetry/batches"
EDGE_BATCHES = "/api/v1/telemetry/edge-batches"
EDGE_REQUESTS = "/api/v1/telemetry/edge-requests"
MAX_STRIPS = Limits().ecg_segments  # per upload, as the device client


@dataclass(frozen=True)
class Analysed:
    chunk: Chunk
    result: WindowResult
    reason: str | None


class Gateway:
    def __init__(
        self,
        url: str,
        token: str,
        store_path: str,
        *,
        policy: Policy | None = None,
        ca_file: str | None = None,
        pin_sha256: str | None = None,
        backoff: Backoff | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], datetime] = utc_now,
        alarm_stream: TextIO | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.policy = policy or Policy()
        self._token = token
        self.store = Store(store_path)
        self._session = https_session(ca_file, pin_sha256)
        self._timeout = timeout_s
        self.uploader = Uploader(self.store, self._post, backoff=backoff or Backoff())
        self._clock = clock
        self._alarm_stream = alarm_stream or sys.stderr
        self._alarms = LocalAlarms()
        self._vitals = Vitals(
            overrides=self.store.state("overrides", {}),
            spo2_scale=self.store.state("spo2_scale", 1),
        )
        self._pending_state: dict[str, Any] = {}  # decisions of the step under way
        self._rng = random.Random()  # noqa: S311 (schedule phase, not secrecy)
        self._first_start()

    def _first_start(self) -> None:
        """A new box starts its sample-strip schedule at a random phase, so boxes
        started together do not all send a strip at once."""
        if self.store.state("sample") is None:
            phase = self._rng.uniform(0.0, self.policy.sample_every_s)
            first = self._clock() - timedelta(seconds=phase)
            self.store.commit(Step(state={"sample": first.isoformat()}))

    # --- what the attached devices hand over ---

    def add_observation(
        self, code: str, value: float | str, unit: str, time: datetime
    ) -> None:
        payload = {"code": code, "value": value, "unit": unit, "time": iso(time)}
        self.receive("local", str(uuid.uuid4()), [("observation", payload)])

    def add_ecg(
        self, lead: str, fs_hz: int, start: datetime, samples_uv: list[int]
    ) -> None:
        payload = {
            "lead": lead,
            "fs_hz": fs_hz,
            "start": iso(start),
            "unit": "uV",
            "samples": [int(s) for s in samples_uv],
        }
        self.receive("local", str(uuid.uuid4()), [("ecg", payload)])

    def receive(
        self,
        source: str,
        batch_id: str,
        items: list[tuple[str, dict]],
        *,
        sent_at: datetime | None = None,
    ) -> bool:
        """Durable before it returns; False for a batch already received.

        Raises Refused, keeping nothing, for readings the server's batch contract
        refuses (an unknown code or unit, an implausible value, a broken clock,
        ``sent_at`` in the future): the box could not analyse them, and the
        server would refuse the whole upload that carried them, with every good
        reading in it.
        """
        problems = refusals(items, now=self._clock(), sent_at=sent_at)
        if problems:
            refused = Refused(problems)
            log.warning("readings from %s refused: %s", source, refused)
            raise refused
        return self.store.receive(source, batch_id, items)

    def alarms(self) -> list[Alarm]:
        return self._alarms.active()

    # --- processing ---

    def step(self) -> list[Change]:
        """Analyse everything waiting; form the uploads; alarm on the box."""
        inbox = self.store.inbox()
        if not inbox:
            return []
        observations = [p for _, kind, p in inbox if kind == "observation"]
        chunks = [_chunk(p) for _, kind, p in inbox if kind == "ecg"]
        windows, leftover = cut(chunks, self.policy.analysis_s)
        outcomes, scores = self._vitals_outcomes(observations)
        analysed = self._analyse(windows)
        for item in analysed:
            outcomes += item.result.outcomes
        changes = self._alarms.apply(outcomes)
        step = Step(
            consumed=[i for i, _, _ in inbox],
            leftover=[("ecg", _chunk_json(chunk)) for chunk in leftover],
        )
        self._form(step, observations, analysed, outcomes, scores)
        self.store.commit(step)
        for change in changes:
            self._announce(change)
        return changes

    def _vitals_outcomes(
        self, observations: list[dict]
    ) -> tuple[list[rules.Outcome], list[dict]]:
        readings = c.readings(
            c.BatchIn.model_construct(
                observations=[
                    c.ObservationIn.model_validate_json(json.dumps(o))
                    for o in observations
                ]
            )
        )
        outcomes: list[rules.Outcome] = []
        for reading in sorted(readings, key=lambda r: r.time):
            outcomes += self._vitals.outcomes(reading)
        scored = [r.time for r in readings if r.code in c.SCORED_CODES]
        if not scored:
            return outcomes, []
        score, news2 = self._vitals.score(max(scored))
        return [*outcomes, news2], [score]

    def _analyse(self, windows: list[Chunk]) -> list[Analysed]:
        analysed = []
        rhythm = self.store.state("rhythm")
        found = set(self.store.state("found", []))
        for chunk in sorted(windows, key=lambda w: w.start):
            result = analyse_window(
                list(chunk.samples), chunk.fs_hz, chunk.lead, chunk.start
            )
            now_found = {
                o.kind for o in result.outcomes if isinstance(o, rules.Finding)
            }
            reason = forward_reason(
                Window(
                    chunk.start,
                    result.features["rhythm"],
                    result.features["usable"],
                    tuple(sorted(now_found - found)),
                ),
                previous_rhythm=rhythm,
                last_sample=_when(self._state("sample")),
                after_event=self._state("after_event", 0),
                policy=self.policy,
            )
            analysed.append(Analysed(chunk, result, reason))
            self._remember(chunk, result, reason, now_found)
            rhythm, found = result.features["rhythm"], now_found
        return analysed

    def _remember(
        self, chunk: Chunk, result: WindowResult, reason: str | None, found: set[str]
    ) -> None:
        """Decision state for the next window (committed with the step)."""
        after = self._state("after_event", 0)
        if reason in ("alert", "rhythm change", "poor quality"):
            after = self.policy.context_windows
        elif reason == "context":
            after = max(after - 1, 0)
        self._pending_state.update(
            rhythm=result.features["rhythm"], found=sorted(found), after_event=after
        )
        if reason == "sample":
            self._pending_state["sample"] = chunk.start.isoformat()

    def _state(self, key: str, default: Any = None) -> Any:
        if key in self._pending_state:
            return self._pending_state[key]
        return self.store.state(key, default)

    # --- forming uploads ---

    def _form(
        self,
        step: Step,
        observations: list[dict],
        analysed: list[Analysed],
        outcomes: list[rules.Outcome],
        scores: list[dict],
    ) -> None:
        step.state.update(self._pending_state)
        self._pending_state = {}
        if self.policy.mode == "forward-all":
            strips = [_strip(a.chunk) for a in analysed]
            if observations or strips:
                _add(step, DATA_LANE, BATCHES, {"observations": observations}, strips)
            return
        evidence = [_strip(a.chunk) for a in analysed if a.reason == "alert"]
        sent = self._worth_sending(step, outcomes)
        if sent:
            body = self._edge_body(outcomes=[outcome_json(o) for o in sent])
            _add(step, ALERT_LANE, EDGE_BATCHES, body, evidence)
        context = self._context_before(step, analysed)
        strips = context + [
            _strip(a.chunk) for a in analysed if a.reason not in (None, "alert")
        ]
        for a in analysed:
            if a.reason is None:
                step.kept.append(_kept(a.chunk))
        data = self._edge_body(
            observations=observations,
            features=[a.result.features for a in analysed],
            scores=scores,
        )
        if observations or analysed or strips:
            _add(step, DATA_LANE, EDGE_BATCHES, data, strips)

    def _worth_sending(
        self, step: Step, outcomes: list[rules.Outcome]
    ) -> list[rules.Outcome]:
        """Every finding, and a clear only when it ends a condition the gateway
        reported: a clear of what was never found changes nothing on the server,
        and one per kind per window would cost more than the findings."""
        reported = set(self._state("reported", []))
        sent = []
        for outcome in sorted(outcomes, key=lambda o: o.at):
            if isinstance(outcome, rules.Finding):
                reported.add(outcome.kind)
            elif outcome.kind in reported:
                reported.discard(outcome.kind)
            else:
                continue
            sent.append(outcome)
        step.state["reported"] = sorted(reported)
        return sent

    def _context_before(self, step: Step, analysed: list[Analysed]) -> list[dict]:
        """Kept windows just before the first event of this step go up with it."""
        first = next(
            (a for a in analysed if a.reason in ("alert", "rhythm change")), None
        )
        if first is None or self.policy.context_windows <= 0:
            return []
        span = timedelta(seconds=self.policy.analysis_s * self.policy.context_windows)
        kept = self.store.kept_between(first.chunk.start - span, first.chunk.start)
        step.unkept += [k["id"] for k in kept]
        return [_kept_strip(k) for k in kept]

    def _edge_body(self, **parts: Any) -> dict[str, Any]:
        return {"policy": self.policy.mode, **parts}

    def _announce(self, change: Change) -> None:
        alarm = change.alarm
        line = (
            f"ALARM {change.event.upper()} {alarm.priority} {alarm.kind}: "
            f"{alarm.message} (since {alarm.since:%H:%M:%S})"
        )
        bell = "\a" if change.event == "raised" else ""
        self._alarm_stream.write(bell + line + "\n")
        self._alarm_stream.flush()
        log.warning(line)

    # --- sending ---

    @property
    def link_error(self) -> str | None:
        """Why the last exchange with the server failed; None if it did not."""
        return self.uploader.last_error

    def flush_once(self) -> FlushReport:
        """Send what is due, alerts first, each lane oldest first, until the outbox
        is empty or an upload must wait."""
        return self.uploader.flush_once()

    def _post(self, upload: Upload) -> requests.Response:
        body = {**upload.body, "sent_at": iso(self._clock())}
        return self._session.post(
            self.url + upload.path,
            data=json.dumps(body, separators=(",", ":")),
            headers=self._headers(),
            timeout=self._timeout,
        )

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
        }

    # --- fetch requests (the server cannot call a box behind NAT: it polls) ---

    def poll_requests(self) -> int:
        """Answer the server's open ECG fetch requests with the strips still kept;
        returns how many requests were answered now."""
        try:
            response = self._session.get(
                self.url + EDGE_REQUESTS, headers=self._headers(), timeout=self._timeout
            )
        except requests.RequestException as error:
            self.uploader.last_error = f"{type(error).__name__}: {error}"
            return 0
        if response.status_code != 200:
            return 0
        answer = response.json()
        self._settings(answer.get("patient") or {})
        answered = set(self.store.state("answered", []))
        fresh = [r for r in answer["requests"] if r["request_id"] not in answered]
        for request in fresh:
            self._answer(request, answered)
        return len(fresh)

    def _settings(self, patient: dict[str, Any]) -> None:
        self._vitals.overrides = patient.get("threshold_overrides") or {}
        self._vitals.spo2_scale = patient.get("spo2_scale") or 1
        self.store.commit(
            Step(
                state={
                    "overrides": self._vitals.overrides,
                    "spo2_scale": self._vitals.spo2_scale,
                }
            )
        )

    def _answer(self, request: dict[str, str], answered: set[str]) -> None:
        start = datetime.fromisoformat(request["start"])
        end = datetime.fromisoformat(request["end"])
        kept = self.store.kept_between(start, end)
        strips = [_kept_strip(k) for k in kept]
        groups = [strips[i : i + MAX_STRIPS] for i in range(0, len(strips), MAX_STRIPS)]
        groups = groups or [[]]
        answered.add(request["request_id"])
        step = Step(
            unkept=[k["id"] for k in kept], state={"answered": sorted(answered)}
        )
        for i, group in enumerate(groups):
            last = i == len(groups) - 1
            body = self._edge_body(fulfils=[request["request_id"]] if last else [])
            step.uploads.append((DATA_LANE, EDGE_BATCHES, {**body, "ecg": group}))
        self.store.commit(step)

    def expire_kept(self) -> int:
        keep = timedelta(seconds=self.policy.keep_s)
        return self.store.expire_kept(self._clock() - keep)

    # --- running ---

    def run(
        self, stop: threading.Event, step_s: float = 1.0, poll_s: float = 10.0
    ) -> None:
        last_poll = 0.0
        while not stop.is_set():
            self.step()
            self.flush_once()
            if (
                self.policy.mode == "edge-first"
                and time.monotonic() - last_poll > poll_s
            ):
                last_poll = time.monotonic()
                self.poll_requests()
                self.expire_kept()
            stop.wait(step_s)

    def close(self) -> None:
        self.store.close()


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _chunk(payload: dict[str, Any]) -> Chunk:
    return Chunk(
        payload["lead"],
        payload["fs_hz"],
        datetime.fromisoformat(payload["start"].replace("Z", "+00:00")),
        tuple(payload["samples"]),
    )


def _chunk_json(chunk: Chunk) -> dict[str, Any]:
    return _strip(chunk)


def _strip(chunk: Chunk) -> dict[str, Any]:
    return {
        "lead": chunk.lead,
        "fs_hz": chunk.fs_hz,
        "start": iso(chunk.start),
        "unit": "uV",
        "samples": list(chunk.samples),
    }


def _kept(chunk: Chunk) -> dict[str, Any]:
    return {
        "lead": chunk.lead,
        "fs_hz": chunk.fs_hz,
        "start": iso(chunk.start),
        "start_ts": chunk.start.timestamp(),
        "end_ts": chunk.end.timestamp(),
        "samples": list(chunk.samples),
    }


def _kept_strip(kept: dict[str, Any]) -> dict[str, Any]:
    return {
        "lead": kept["lead"],
        "fs_hz": kept["fs_hz"],
        "start": kept["start"],
        "unit": "uV",
        "samples": kept["samples"],
    }


def _add(
    step: Step, lane: int, path: str, body: dict[str, Any], strips: list[dict]
) -> None:
    """One upload, or several when there are more strips than one may carry."""
    groups = [strips[i : i + MAX_STRIPS] for i in range(0, len(strips), MAX_STRIPS)]
    first, *rest = groups or [[]]
    step.uploads.append((lane, path, {**body, "ecg": first}))
    empty = {"policy": body["policy"]} if "policy" in body else {"observations": []}
    for group in rest:
        step.uploads.append((lane, path, {**empty, "ecg": group}))
