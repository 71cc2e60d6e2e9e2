"""The gateway's durable store: one SQLite file (WAL, fsync'd commits).

- ``inbox``: readings the attached devices handed over, committed before the
  device hears 2xx (idempotent on the device's batch_id, like the server).
- ``outbox``: uploads formed with their batch_id and body fixed, in two lanes.
  Lane 0 (alerts: the gateway's alert outcomes and their evidence strips) is
  always drained before lane 1 (data), each oldest first. Only a 2xx deletes an
  upload, and a retry sends the same batch_id, so the server stores it once; an
  upload the server finds too large becomes two halves with batch_ids of their
  own, in its place (the device client's sending loop, telemetry/device/upload.py).
- ``kept``: raw ECG windows not uploaded, for a clinician to fetch until expiry.

A processing step (consume inbox rows, add uploads, keep strips, update state) is
one transaction, so after a crash a reading is in exactly one place.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from telemetry.device.buffer import DurableStore, split_body

ALERT_LANE, DATA_LANE = 0, 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS received (
    source TEXT NOT NULL, batch_id TEXT NOT NULL, PRIMARY KEY (source, batch_id)
);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('observation', 'ecg')),
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin INTEGER NOT NULL DEFAULT 0,     -- the id of the upload first formed with
                                           -- this content: halves of a split keep
                                           -- their place in the lane
    lane INTEGER NOT NULL,
    path TEXT NOT NULL,
    batch_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL, path TEXT NOT NULL, body TEXT NOT NULL,
    status INTEGER NOT NULL, problem TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kept (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lead TEXT NOT NULL, fs_hz INTEGER NOT NULL,
    start TEXT NOT NULL, start_ts REAL NOT NULL, end_ts REAL NOT NULL,
    samples TEXT NOT NULL
);
-- Fetches and expiry: "kept strips in a time range".
CREATE INDEX IF NOT EXISTS kept_time ON kept (start_ts);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# After _upgrade, which adds ``origin`` to a store made before splits.
INDEXES = """
DROP INDEX IF EXISTS outbox_order;
-- The sending loop's query: alerts first, then the oldest.
CREATE INDEX IF NOT EXISTS outbox_queue ON outbox (lane, origin, id);
"""
# The lists of an edge batch that a split divides, alert outcomes first.
PARTS = ("outcomes", "scores", "features", "observations", "ecg")


@dataclass(frozen=True)
class Upload:
    id: int
    origin: int
    lane: int
    path: str
    batch_id: str
    body: dict[str, Any]
    attempts: int
    not_before: float


@dataclass
class Step:
    """Everything one processing step changes, committed together."""

    consumed: list[int] = field(default_factory=list)
    leftover: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    uploads: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    unkept: list[int] = field(default_factory=list)  # kept strips now uploaded


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Store(DurableStore):
    def __init__(self, path: str | Path) -> None:
        super().__init__(path, SCHEMA)  # the local page's thread writes too
        self._upgrade()
        self._db.executescript(INDEXES)

    def _upgrade(self) -> None:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "origin" not in columns:
            with self._transaction() as db:
                db.execute(
                    "ALTER TABLE outbox ADD COLUMN origin INTEGER NOT NULL DEFAULT 0"
                )
                db.execute("UPDATE outbox SET origin = id")

    # --- what attached devices hand over ---

    def receive(
        self, source: str, batch_id: str, items: list[tuple[str, dict]]
    ) -> bool:
        """Commit a device's readings once; False if that batch came before."""
        with self._transaction() as db:
            try:
                db.execute("INSERT INTO received VALUES (?, ?)", (source, batch_id))
            except sqlite3.IntegrityError:
                return False
            db.executemany(
                "INSERT INTO inbox (kind, payload) VALUES (?, ?)",
                [(kind, _dumps(payload)) for kind, payload in items],
            )
        return True

    def inbox(self) -> list[tuple[int, str, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, payload FROM inbox ORDER BY id"
            ).fetchall()
        return [(i, kind, json.loads(payload)) for i, kind, payload in rows]

    # --- a processing step ---

    def commit(self, step: Step) -> None:
        with self._transaction() as db:
            db.executemany(
                "DELETE FROM inbox WHERE id = ?", [(i,) for i in step.consumed]
            )
            db.executemany(
                "INSERT INTO inbox (kind, payload) VALUES (?, ?)",
                [(kind, _dumps(payload)) for kind, payload in step.leftover],
            )
            for lane, path, body in step.uploads:
                _insert_upload(db, None, lane, path, body)
            db.executemany(
                "INSERT INTO kept (lead, fs_hz, start, start_ts, end_ts, samples) "
                "VALUES (:lead, :fs_hz, :start, :start_ts, :end_ts, :samples)",
                [{**k, "samples": _dumps(k["samples"])} for k in step.kept],
            )
            db.executemany("DELETE FROM kept WHERE id = ?", [(i,) for i in step.unkept])
            db.executemany(
                "INSERT OR REPLACE INTO state VALUES (?, ?)",
                [(key, _dumps(value)) for key, value in step.state.items()],
            )

    def state(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM state WHERE key = ?", (key,)
            ).fetchone()
        return json.loads(row[0]) if row else default

    # --- kept raw ECG ---

    def kept_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Kept strips overlapping [start, end). The caller uploads them and names
        their ids in ``Step.unkept``, so they leave the kept store in that step."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, lead, fs_hz, start, samples FROM kept "
                "WHERE end_ts > ? AND start_ts < ? ORDER BY start_ts",
                (start.timestamp(), end.timestamp()),
            ).fetchall()
        return [
            {"id": i, "lead": lead, "fs_hz": fs, "start": s, "samples": json.loads(x)}
            for i, lead, fs, s, x in rows
        ]

    def expire_kept(self, before: datetime) -> int:
        with self._transaction() as db:
            return db.execute(
                "DELETE FROM kept WHERE end_ts < ?", (before.timestamp(),)
            ).rowcount

    # --- sending ---

    def oldest(self) -> Upload | None:
        """The next to send: alerts first, each lane oldest first."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, origin, lane, path, batch_id, body, attempts, not_before "
                "FROM outbox ORDER BY lane, origin, id LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        *head, body, attempts, not_before = row
        return Upload(*head, json.loads(body), attempts, not_before)

    def delivered(self, upload: Upload) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM outbox WHERE id = ?", (upload.id,))

    def retry_later(self, upload: Upload, delay_s: float, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, not_before = ?, "
                "last_error = ? WHERE id = ?",
                (time.time() + delay_s, error[:500], upload.id),
            )

    def split(self, upload: Upload) -> bool:
        """Replace an upload the server found too large (a 413: nothing stored) by
        two halves under new batch_ids, in its place. False for one item only."""
        halves = split_body(upload.body, PARTS)
        if halves is None:
            return False
        with self._transaction() as db:
            db.execute("DELETE FROM outbox WHERE id = ?", (upload.id,))
            for half in halves:
                _insert_upload(db, upload.origin, upload.lane, upload.path, half)
        return True

    def dead_letter(self, upload: Upload, status: int, problem: dict) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM outbox WHERE id = ?", (upload.id,))
            db.execute(
                "INSERT INTO dead_letter (batch_id, path, body, status, problem) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    upload.batch_id,
                    upload.path,
                    _dumps(upload.body),
                    status,
                    _dumps(problem),
                ),
            )

    def pending(self) -> dict[str, int]:
        with self._lock:
            lanes = dict(
                self._db.execute(
                    "SELECT lane, count(*) FROM outbox GROUP BY lane"
                ).fetchall()
            )
            inbox = self._db.execute("SELECT count(*) FROM inbox").fetchone()[0]
            kept = self._db.execute("SELECT count(*) FROM kept").fetchone()[0]
            dead = self._db.execute("SELECT count(*) FROM dead_letter").fetchone()[0]
        return {
            "alert_uploads": lanes.get(ALERT_LANE, 0),
            "data_uploads": lanes.get(DATA_LANE, 0),
            "inbox": inbox,
            "kept_strips": kept,
            "dead_letters": dead,
        }


def _insert_upload(
    db: sqlite3.Connection,
    origin: int | None,
    lane: int,
    path: str,
    body: dict[str, Any],
) -> None:
    batch_id = str(uuid.uuid4())
    cursor = db.execute(
        "INSERT INTO outbox (origin, lane, path, batch_id, body) "
        "VALUES (coalesce(?, 0), ?, ?, ?, ?)",
        (origin, lane, path, batch_id, _dumps({"batch_id": batch_id, **body})),
    )
    if origin is None:
        db.execute("UPDATE outbox SET origin = id WHERE id = ?", (cursor.lastrowid,))
