"""The gateway's pure parts: what goes up raw, how streamed ECG becomes windows,
and the box's own alarms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.rules import Clear, Finding
from telemetry.edge.alarms import LocalAlarms
from telemetry.edge.policy import Policy, Window, forward_reason
from telemetry.edge.windows import Chunk, cut

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EDGE = Policy("edge-first", sample_every_s=600)


def window(rhythm="sinus", usable=True, new=(), at=T0) -> Window:
    return Window(at, rhythm, usable, tuple(new))


def reason(w: Window, previous="sinus", last_sample=T0, after_event=0, policy=EDGE):
    return forward_reason(
        w,
        previous_rhythm=previous,
        last_sample=last_sample,
        after_event=after_event,
        policy=policy,
    )


def test_forward_all_sends_every_window():
    assert reason(window(), policy=Policy("forward-all")) == "forward-all"


def test_a_quiet_window_stays_on_the_box():
    assert reason(window(at=T0 + timedelta(seconds=10))) is None


@pytest.mark.parametrize(
    ("w", "previous", "after", "expected"),
    [
        (window("af", new=("af",)), "sinus", 0, "alert"),
        (window("noise", usable=False), "sinus", 0, "poor quality"),
        (window("tachycardia"), "sinus", 0, "rhythm change"),
        (window(), "sinus", 1, "context"),
    ],
)
def test_events_send_the_raw_window(w, previous, after, expected):
    at = T0 + timedelta(seconds=30)
    w = Window(at, w.rhythm, w.usable, w.new_findings)
    assert reason(w, previous=previous, after_event=after) == expected


def test_a_sample_strip_goes_up_once_per_period():
    assert reason(window(at=T0 + timedelta(seconds=599))) is None
    assert reason(window(at=T0 + timedelta(seconds=600))) == "sample"


def test_a_window_outside_the_analysers_range_is_refused():
    with pytest.raises(ValueError, match="5 to 60 s"):
        Policy("edge-first", window_s=2)


def chunk(start_s: float, n: int, lead="II") -> Chunk:
    return Chunk(lead, 250, T0 + timedelta(seconds=start_s), tuple(range(n)))


def test_contiguous_chunks_make_full_windows_and_keep_the_tail():
    windows, left = cut([chunk(0, 500), chunk(2, 500), chunk(4, 1000)], 5.0)
    assert [len(w.samples) for w in windows] == [1250]
    assert [w.start for w in windows] == [T0]
    assert sum(len(c.samples) for c in left) == 750
    assert left[0].start == T0 + timedelta(seconds=5)


def test_a_gap_closes_a_window_so_no_sample_is_lost():
    windows, left = cut([chunk(0, 500), chunk(30, 500)], 5.0)
    assert [len(w.samples) for w in windows] == [500]
    assert [len(c.samples) for c in left] == [500]


def test_the_box_alarms_after_the_kinds_persistence_delay():
    alarms = LocalAlarms()
    first = Finding("tachycardia", "medium", T0, "fast")
    assert alarms.apply([first]) == []  # 20 s persistence, as on the server
    later = Finding("tachycardia", "medium", T0 + timedelta(seconds=20), "fast")
    [change] = alarms.apply([later])
    assert change.event == "raised"
    assert [a.kind for a in alarms.active()] == ["tachycardia"]
    [change] = alarms.apply([Clear("tachycardia", T0 + timedelta(seconds=30))])
    assert change.event == "cleared"
    assert alarms.active() == []


def test_an_older_clear_does_not_silence_a_newer_alarm():
    alarms = LocalAlarms()
    alarms.apply([Finding("af", "medium", T0 + timedelta(seconds=20), "AF")])
    assert alarms.apply([Clear("af", T0)]) == []
    assert [a.kind for a in alarms.active()] == ["af"]


def test_an_older_clear_does_not_restart_a_conditions_wait():
    alarms = LocalAlarms()
    alarms.apply([Finding("tachycardia", "medium", T0, "fast")])
    assert alarms.apply([Clear("tachycardia", T0 - timedelta(seconds=60))]) == []
    later = Finding("tachycardia", "medium", T0 + timedelta(seconds=20), "fast")
    [change] = alarms.apply([later])
    assert change.event == "raised"
    assert change.alarm.since == T0


def test_late_data_from_a_cleared_episode_raises_nothing_on_the_box():
    alarms = LocalAlarms()
    alarms.apply([Finding("af", "medium", T0, "AF")])
    alarms.apply([Clear("af", T0 + timedelta(seconds=10))])
    # A reading from t+5 arrives afterwards (a device's stored backlog).
    assert (
        alarms.apply([Finding("af", "medium", T0 + timedelta(seconds=5), "AF")]) == []
    )
    assert alarms.active() == []
    # After the clearance, it is a new episode.
    [change] = alarms.apply([Finding("af", "medium", T0 + timedelta(seconds=11), "AF")])
    assert change.event == "raised"
