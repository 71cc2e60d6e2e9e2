"""The client's durable buffer: one SQLite file in WAL mode, fsync'd on every commit.

A reading handed to the client is committed here before ``add_*`` returns, so it
survives a crash. Readings wait in ``item`` until they are formed into a batch;
forming a batch (new UUID4, body fixed) and deleting its items is one transaction,
so every reading is in exactly one place at any time: an item, a batch, or a dead
letter. Only a 2xx from the server deletes a batch.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS item (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order: oldest first
    kind TEXT NOT NULL CHECK (kind IN ('observation', 'ecg')),
    payload TEXT NOT NULL,                 -- one observation or segment, as sent
    size INTEGER NOT NULL                  -- ECG samples (0 for an observation)
);
CREATE TABLE IF NOT EXISTS batch (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin INTEGER NOT NULL,               -- the id of the batch first formed with
                                           -- these readings: halves of a split
                                           -- keep their place in the queue
    batch_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,                    -- everything but sent_at, fixed for good
    observations INTEGER NOT NULL,
    ecg_segments INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,    -- epoch seconds of the next attempt
    last_error TEXT NOT NULL DEFAULT ''
);
-- The sending loop's query: the oldest batch.
CREATE INDEX IF NOT EXISTS batch_order ON batch (origin, id);
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL,
    body TEXT NOT NULL,
    status INTEGER NOT NULL,
    problem TEXT NOT NULL,                 -- the server's problem details (JSON)
    failed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


READINGS = ("observations", "ecg")  # the lists of a batch that a split divides


@dataclass(frozen=True)
class Limits:
    """How much one batch may carry (the server takes 10,000 observations, 64
    segments and 2 MiB; stay well inside)."""

    observations: int = 600
    ecg_segments: int = 16
    ecg_samples: int = 90_000


@dataclass(frozen=True)
class StoredBatch:
    row: int
    origin: int
    batch_id: str
    body: dict[str, Any]
    attempts: int
    not_before: float


@dataclass(frozen=True)
class Pending:
    """Waiting: readings not yet in a batch, batches not yet acknowledged."""

    observations: int
    ecg_segments: int
    batches: int
    dead_letters: int

    @property
    def empty(self) -> bool:
        return not (self.observations or self.ecg_segments or self.batches)


class DurableStore:
    """A SQLite file whose every commit is on disk before the call returns (the
    device buffer here, the gateway's store in telemetry/edge/outbox.py)."""

    def __init__(self, path: str | Path, schema: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the producer and the sending thread, guarded by
        # a lock; isolation_level=None so that transactions are the explicit BEGINs.
        self._db = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: in WAL mode every commit is fsync'd, so a returned write is durable.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


class Buffer(DurableStore):
    def __init__(self, path: str | Path) -> None:
        super().__init__(path, SCHEMA)

    def add(self, kind: str, payload: dict[str, Any], size: int = 0) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO item (kind, payload, size) VALUES (?, ?, ?)",
                (kind, json.dumps(payload, separators=(",", ":")), size),
            )

    def set_state(self, key: str, value: Any) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def state(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM state WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def form_batches(self, limits: Limits) -> int:
        """Turn every waiting reading into batches, oldest first; returns how many."""
        formed = 0
        with self._transaction() as db:
            items = db.execute(
                "SELECT id, kind, payload, size FROM item ORDER BY id"
            ).fetchall()
            battery = self.state("battery_pct")
            for chunk in _chunks(items, limits):
                observations = [json.loads(p) for _, k, p, _ in chunk if k != "ecg"]
                ecg = [json.loads(p) for _, k, p, _ in chunk if k == "ecg"]
                self._insert_batch(db, None, observations, ecg, battery)
                db.execute(
                    "DELETE FROM item WHERE id BETWEEN ? AND ?",
                    (chunk[0][0], chunk[-1][0]),
                )
                formed += 1
        return formed

    def _insert_batch(
        self,
        db: sqlite3.Connection,
        origin: int | None,
        observations: list[dict[str, Any]],
        ecg: list[dict[str, Any]],
        battery: int | None,
    ) -> None:
        body: dict[str, Any] = {"batch_id": str(uuid.uuid4())}
        if battery is not None:
            body["battery_pct"] = battery
        body |= {"observations": observations, "ecg": ecg}
        cursor = db.execute(
            "INSERT INTO batch (origin, batch_id, body, observations, ecg_segments) "
            "VALUES (coalesce(?, 0), ?, ?, ?, ?)",
            (origin, body["batch_id"], json.dumps(body), len(observations), len(ecg)),
        )
        if origin is None:
            db.execute("UPDATE batch SET origin = id WHERE id = ?", (cursor.lastrowid,))

    def oldest(self) -> StoredBatch | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, origin, batch_id, body, attempts, not_before FROM batch "
                "ORDER BY origin, id LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return StoredBatch(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])

    def delivered(self, batch: StoredBatch) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM batch WHERE id = ?", (batch.row,))

    def retry_later(self, batch: StoredBatch, delay_s: float, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE batch SET attempts = attempts + 1, not_before = ?, "
                "last_error = ? WHERE id = ?",
                (time.time() + delay_s, error[:500], batch.row),
            )

    def dead_letter(self, batch: StoredBatch, status: int, problem: dict) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO dead_letter (batch_id, body, status, problem, failed_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    batch.batch_id,
                    json.dumps(batch.body),
                    status,
                    json.dumps(problem),
                    time.time(),
                ),
            )
            db.execute("DELETE FROM batch WHERE id = ?", (batch.row,))

    def split(self, batch: StoredBatch) -> bool:
        """Replace a batch the server found too large by two halves under new IDs
        (a 413 means nothing was stored). False when it holds one reading only."""
        halves = split_body(batch.body, READINGS)
        if halves is None:
            return False
        with self._transaction() as db:
            db.execute("DELETE FROM batch WHERE id = ?", (batch.row,))
            for half in halves:
                self._insert_batch(
                    db,
                    batch.origin,
                    half["observations"],
                    half["ecg"],
                    half.get("battery_pct"),
                )
        return True

    def dead_letters(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT batch_id, status, problem, body FROM dead_letter ORDER BY id"
            ).fetchall()
        return [
            {
                "batch_id": batch_id,
                "status": status,
                "problem": json.loads(problem),
                "body": json.loads(body),
            }
            for batch_id, status, problem, body in rows
        ]

    def pending(self) -> Pending:
        with self._lock:
            counts = dict(
                self._db.execute("SELECT kind, count(*) FROM item GROUP BY kind")
            )
            obs, ecg, batches = self._db.execute(
                "SELECT coalesce(sum(observations), 0), coalesce(sum(ecg_segments), 0),"
                " count(*) FROM batch"
            ).fetchone()
            dead = self._db.execute("SELECT count(*) FROM dead_letter").fetchone()[0]
        return Pending(
            observations=obs + counts.get("observation", 0),
            ecg_segments=ecg + counts.get("ecg", 0),
            batches=batches,
            dead_letters=dead,
        )


def split_body(
    body: dict[str, Any], parts: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The two halves of a batch body the server refused as too large, without its
    batch_id (each half is stored under a new one before either is sent).

    The items of the ``parts`` lists, taken in that order, are divided in two; the
    other fields go with both halves, except a list that is not a part (a
    gateway's ``fulfils``), which goes with the second: the server acts on it when
    the upload carrying it lands, and the second half lands last. None when the body
    holds fewer than two items.
    """
    items = [(name, item) for name in parts for item in body.get(name, [])]
    if len(items) < 2:
        return None
    rest = {k: v for k, v in body.items() if k not in parts and k != "batch_id"}
    shared = {k: v for k, v in rest.items() if not isinstance(v, list)}
    half = len(items) // 2
    first = _regroup(shared, items[:half], body, parts)
    return first, _regroup(rest, items[half:], body, parts)


def _regroup(
    fields: dict[str, Any],
    items: list[tuple[str, Any]],
    body: dict[str, Any],
    parts: tuple[str, ...],
) -> dict[str, Any]:
    """Fields plus the items back in their lists (only the lists the body had:
    the plain batch contract refuses fields it does not know)."""
    lists = {name: [i for n, i in items if n == name] for name in parts if name in body}
    return {**fields, **lists}


def _chunks(items: list[tuple], limits: Limits) -> Iterator[list[tuple]]:
    """Consecutive runs of items that fit the limits of one batch."""
    chunk: list[tuple] = []
    obs = segments = samples = 0
    for item in items:
        is_ecg = item[1] == "ecg"
        if is_ecg:
            full = segments >= limits.ecg_segments
            full = full or samples + item[3] > limits.ecg_samples
        else:
            full = obs >= limits.observations
        if chunk and full:
            yield chunk
            chunk, obs, segments, samples = [], 0, 0, 0
        chunk.append(item)
        obs += 0 if is_ecg else 1
        segments += 1 if is_ecg else 0
        samples += item[3]
    if chunk:
        yield chunk
