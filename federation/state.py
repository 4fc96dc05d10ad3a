"""The host's federation bookkeeping: who follows whom, group members, blocks, seen activity ids, outboxes.

Kept in one sqlite file in the host's data directory rather than in the RDF store: these rows are
read on every delivery and every inbox POST (is this id new? who gets this Note?), need transactions
(check-and-insert of an activity id must be atomic for idempotency) and must survive restarts. The
received activities themselves, which people query, go to the nodes' RDF graphs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FederationState", "Relation", "Recipient"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (activity_id TEXT PRIMARY KEY, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS relations (
    local TEXT NOT NULL, remote TEXT NOT NULL, kind TEXT NOT NULL,
    state TEXT NOT NULL, activity_id TEXT, inbox TEXT, shared_inbox TEXT, since REAL NOT NULL,
    PRIMARY KEY (local, remote, kind)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, local TEXT NOT NULL, activity_id TEXT UNIQUE NOT NULL,
    published REAL NOT NULL, document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_local ON outbox (local, seq);
CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, local TEXT NOT NULL, document TEXT NOT NULL);
"""


class Relation:
    """Relation kinds: ``follower``/``member`` are remote->local; ``following``/``blocking`` local->remote."""

    FOLLOWER = "follower"
    FOLLOWING = "following"
    MEMBER = "member"
    BLOCKING = "blocking"
    BLOCKED_BY = "blocked-by"


@dataclass(frozen=True)
class Recipient:
    actor: str
    inbox: str
    shared_inbox: str | None


class FederationState:
    """A thread-safe wrapper over one sqlite connection (the host is one process)."""

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._unwritten: dict[str, float] = {}  # ids sighted since the last write_sightings()

    def close(self) -> None:
        self.write_sightings()
        with self._lock:
            self._db.close()

    # -- idempotency -------------------------------------------------------------------------------
    def first_sighting(self, activity_id: str, now: float) -> bool:
        """Record an activity id; True only the first time (a replay is accepted but not processed).

        The check and the record are one step under the lock. The id is written to the table later,
        in one transaction with others, by :meth:`write_sightings` (the inbox worker calls it with
        each batch it stores; :meth:`close` too): a commit per inbox POST cost ~0.1 ms on the event
        loop. An id accepted but lost in a crash before its batch was stored was not processed either,
        so its sender's retry is processed rather than dropped as a replay.
        """
        with self._lock:
            if activity_id in self._unwritten:
                return False
            seen = self._db.execute("SELECT 1 FROM seen WHERE activity_id = ?", (activity_id,)).fetchone()
            if seen is not None:
                return False
            self._unwritten[activity_id] = now
            return True

    def forget_sighting(self, activity_id: str) -> None:
        """Undo a first sighting not yet written (the activity was refused after all, e.g. queue full),
        so that the sender's retry is not taken for a replay."""
        with self._lock:
            self._unwritten.pop(activity_id, None)

    def write_sightings(self) -> int:
        """Write the ids sighted since the last call, in one transaction; returns how many."""
        with self._lock:
            if not self._unwritten:
                return 0
            rows, self._unwritten = list(self._unwritten.items()), {}
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                self._unwritten.update(rows)
                raise
            self._db.execute("COMMIT")
            return len(rows)

    def forget_seen_before(self, moment: float) -> int:
        """Drop activity ids first seen before ``moment``; returns how many.

        Signatures older than the clock window are refused anyway, so an id only needs remembering
        for as long as its sender may legitimately retry it (the host keeps a week).
        """
        self.write_sightings()
        with self._lock:
            return self._db.execute("DELETE FROM seen WHERE received_at < ?", (moment,)).rowcount

    # -- relations -----------------------------------------------------------------------------------
    def relate(
        self,
        local: str,
        remote: str,
        kind: str,
        *,
        state: str = "accepted",
        activity_id: str | None = None,
        inbox: str | None = None,
        shared_inbox: str | None = None,
        now: float,
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO relations VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (local, remote, kind) DO UPDATE SET state = excluded.state,"
                " activity_id = COALESCE(excluded.activity_id, activity_id),"
                " inbox = COALESCE(excluded.inbox, inbox),"
                " shared_inbox = COALESCE(excluded.shared_inbox, shared_inbox)",
                (local, remote, kind, state, activity_id, inbox, shared_inbox, now),
            )

    def unrelate(self, local: str, remote: str, kind: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM relations WHERE local = ? AND remote = ? AND kind = ?", (local, remote, kind)
            )
            return cursor.rowcount > 0

    def forget_remote(self, remote: str) -> int:
        """Remove every relation with a remote actor (it was deleted)."""
        with self._lock:
            return self._db.execute("DELETE FROM relations WHERE remote = ?", (remote,)).rowcount

    def relation_state(self, local: str, remote: str, kind: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT state FROM relations WHERE local = ? AND remote = ? AND kind = ?",
                (local, remote, kind),
            ).fetchone()
        return None if row is None else str(row[0])

    def relation_activity(self, local: str, remote: str, kind: str) -> str | None:
        """The id of the activity that created a relation (the Follow or Join to undo)."""
        with self._lock:
            row = self._db.execute(
                "SELECT activity_id FROM relations WHERE local = ? AND remote = ? AND kind = ?",
                (local, remote, kind),
            ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def relation_by_activity(self, activity_id: str) -> tuple[str, str, str] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT local, remote, kind FROM relations WHERE activity_id = ?", (activity_id,)
            ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]))

    def related(self, local: str, kind: str, *, offset: int = 0, limit: int | None = None) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT remote FROM relations WHERE local = ? AND kind = ? AND state = 'accepted'"
                " ORDER BY since, remote LIMIT ? OFFSET ?",
                (local, kind, -1 if limit is None else limit, offset),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def count_related(self, local: str, kind: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM relations WHERE local = ? AND kind = ? AND state = 'accepted'",
                (local, kind),
            ).fetchone()
        return int(row[0])

    def locals_related_to(self, remote: str, kinds: Iterable[str]) -> list[str]:
        """Local actors that have ``remote`` as follower/member/followee: who a shared-inbox POST concerns."""
        kinds = list(kinds)
        marks = ",".join("?" * len(kinds))
        with self._lock:
            rows = self._db.execute(
                f"SELECT DISTINCT local FROM relations WHERE remote = ? AND kind IN ({marks})",  # noqa: S608 - marks only
                (remote, *kinds),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def recipients(self, local: str, kinds: Iterable[str]) -> list[Recipient]:
        kinds = list(kinds)
        marks = ",".join("?" * len(kinds))
        with self._lock:
            rows = self._db.execute(
                f"SELECT remote, inbox, shared_inbox FROM relations WHERE local = ? AND kind IN ({marks})"  # noqa: S608
                " AND state = 'accepted' AND inbox IS NOT NULL",
                (local, *kinds),
            ).fetchall()
        return [Recipient(str(r[0]), str(r[1]), None if r[2] is None else str(r[2])) for r in rows]

    # -- outbox and local objects -------------------------------------------------------------------
    def record_outgoing(self, local: str, activity: dict[str, Any], now: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO outbox (local, activity_id, published, document) VALUES (?, ?, ?, ?)",
                (local, activity["id"], now, json.dumps(activity)),
            )

    def outgoing(self, local: str, *, offset: int, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT document FROM outbox WHERE local = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
                (local, limit, offset),
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def count_outgoing(self, local: str) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM outbox WHERE local = ?", (local,)).fetchone()[0]
            )

    def put_object(self, object_id: str, local: str, document: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?)", (object_id, local, json.dumps(document))
            )

    def get_object(self, object_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT document FROM objects WHERE id = ?", (object_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def delete_object(self, object_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM objects WHERE id = ?", (object_id,))
