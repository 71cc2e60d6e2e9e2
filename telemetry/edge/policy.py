"""What a gateway uploads raw, and when. Pure module."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Mode = Literal["forward-all", "edge-first"]


@dataclass(frozen=True)
class Policy:
    """``forward-all``: every reading raw, in strips of ``strip_s`` (today's
    behaviour, the server analyses). ``edge-first``: vitals, features, scores and
    alert outcomes at once; raw ECG only around events and a sample strip every
    ``sample_every_s``; the rest kept ``keep_s`` for a clinician to fetch."""

    mode: Mode = "edge-first"
    window_s: float = 10.0  # the edge's analysis window
    strip_s: float = 20.0  # forward-all: strip length, as the patch sends today
    sample_every_s: float = 600.0
    keep_s: float = 86_400.0
    context_windows: int = 1  # windows forwarded before and after an event

    def __post_init__(self) -> None:
        if self.mode not in ("forward-all", "edge-first"):
            raise ValueError(f"unknown policy {self.mode!r}")
        if not 5.0 <= self.window_s <= 60.0 or not 5.0 <= self.strip_s <= 60.0:
            raise ValueError("windows and strips are 5 to 60 s (the analyser's range)")

    @property
    def analysis_s(self) -> float:
        return self.strip_s if self.mode == "forward-all" else self.window_s


@dataclass(frozen=True)
class Window:
    """What the gateway knows about one analysed window when it decides."""

    start: datetime
    rhythm: str
    usable: bool
    new_findings: tuple[str, ...]  # kinds found now that were not found just before


def forward_reason(
    window: Window,
    *,
    previous_rhythm: str | None,
    last_sample: datetime | None,
    after_event: int,
    policy: Policy,
) -> str | None:
    """Why this window's raw ECG goes up now (None: keep it on the box)."""
    if policy.mode == "forward-all":
        return "forward-all"
    if window.new_findings:
        return "alert"
    if not window.usable:
        return "poor quality"
    if previous_rhythm is not None and window.rhythm != previous_rhythm:
        return "rhythm change"
    if after_event > 0:
        return "context"
    if last_sample is None or window.start - last_sample >= timedelta(
        seconds=policy.sample_every_s
    ):
        return "sample"
    return None
