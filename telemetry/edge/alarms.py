"""The box's own alarms: the rules' outcomes with the engine's persistence delays,
kept in memory for the bell and the local page. Pure module."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from alerts.rules import KINDS, Clear, Finding, Outcome, of_an_ended_episode


@dataclass(frozen=True)
class Alarm:
    kind: str
    priority: str
    message: str
    since: datetime
    last_at: datetime


@dataclass(frozen=True)
class Change:
    event: str  # "raised" or "cleared"
    alarm: Alarm


class LocalAlarms:
    """One alarm per kind, raised once the condition has held for its kind's delay
    (as on the server), cleared by the first Clear after it."""

    def __init__(self) -> None:
        self._since: dict[str, datetime] = {}
        self._active: dict[str, Alarm] = {}
        # Per kind, the last cleared alarm's last finding and its clearance.
        self._ended: dict[str, tuple[datetime, datetime]] = {}

    def active(self) -> list[Alarm]:
        rank = {"high": 0, "medium": 1, "low": 2}
        return sorted(self._active.values(), key=lambda a: (rank[a.priority], a.kind))

    def apply(self, outcomes: Iterable[Outcome]) -> list[Change]:
        changes = []
        for outcome in sorted(outcomes, key=lambda o: o.at):
            change = (
                self._found(outcome)
                if isinstance(outcome, Finding)
                else self._cleared(outcome)
            )
            if change is not None:
                changes.append(change)
        return changes

    def _found(self, finding: Finding) -> Change | None:
        ended = self._ended.get(finding.kind)
        if (
            finding.kind not in self._active
            and ended is not None
            and of_an_ended_episode(finding.at, *ended)
        ):
            return None  # late data from a cleared episode, as on the server
        since = self._since.setdefault(finding.kind, finding.at)
        held = finding.at - since >= KINDS[finding.kind].delay
        alarm = Alarm(
            finding.kind, finding.priority, finding.message, since, finding.at
        )
        was_active = finding.kind in self._active
        if was_active or held:
            self._active[finding.kind] = alarm
        return Change("raised", alarm) if held and not was_active else None

    def _cleared(self, clear: Clear) -> Change | None:
        # As on the server: a reading from before the condition began (another
        # device's, arriving late) does not restart its wait.
        if clear.at >= self._since.get(clear.kind, clear.at):
            self._since.pop(clear.kind, None)
        alarm = self._active.get(clear.kind)
        if alarm is None or clear.at < alarm.last_at:
            return None
        del self._active[clear.kind]
        self._ended[clear.kind] = (alarm.last_at, clear.at)
        return Change("cleared", alarm)
