"""Cut streamed ECG chunks into analysis windows. Pure module."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

MIN_WINDOW_S = 5.0  # the analyser's shortest segment


@dataclass(frozen=True)
class Chunk:
    lead: str
    fs_hz: int
    start: datetime
    samples: tuple[int, ...]

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=len(self.samples) / self.fs_hz)


def cut(chunks: Iterable[Chunk], seconds: float) -> tuple[list[Chunk], list[Chunk]]:
    """Full windows of ``seconds`` from contiguous chunks of one lead and rate, and
    what is left over (the unfinished tail of each run). A run that a gap ends is
    a window of its own when it is long enough to analyse, and dropped into the
    windows anyway otherwise, so that no sample is lost."""
    windows: list[Chunk] = []
    leftover: list[Chunk] = []
    for run in _runs(sorted(chunks, key=lambda c: (c.lead, c.fs_hz, c.start))):
        done, tail = _split(run, seconds)
        windows += done
        if tail is not None:
            leftover.append(tail)
    return windows, leftover


def _runs(chunks: list[Chunk]) -> Iterable[tuple[list[Chunk], bool]]:
    """Contiguous runs, each with whether a gap (or another lead) ends it."""
    run: list[Chunk] = []
    for chunk in chunks:
        if run and not _follows(run[-1], chunk):
            yield run, True
            run = []
        run.append(chunk)
    if run:
        yield run, False


def _follows(before: Chunk, after: Chunk) -> bool:
    tolerance = timedelta(seconds=1.5 / before.fs_hz)
    return (
        before.lead == after.lead
        and before.fs_hz == after.fs_hz
        and abs(after.start - before.end) <= tolerance
    )


def _split(
    run_and_gap: tuple[list[Chunk], bool], seconds: float
) -> tuple[list[Chunk], Chunk | None]:
    run, closed = run_and_gap
    first = run[0]
    samples = [s for chunk in run for s in chunk.samples]
    size = round(seconds * first.fs_hz)
    windows, offset = [], 0
    while len(samples) - offset >= size:
        windows.append(_piece(first, samples, offset, offset + size))
        offset += size
    if offset == len(samples):
        return windows, None
    if closed:  # a gap: the tail will never grow
        return [*windows, _piece(first, samples, offset, len(samples))], None
    return windows, _piece(first, samples, offset, len(samples))


def _piece(first: Chunk, samples: list[int], begin: int, end: int) -> Chunk:
    start = first.start + timedelta(seconds=begin / first.fs_hz)
    return Chunk(first.lead, first.fs_hz, start, tuple(samples[begin:end]))
