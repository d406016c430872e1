"""The study database (SQLite, the only storage): stimuli as PNG bytes, raters with their tokens and trial orders, and
the ratings, each committed before the server acknowledges it.

Durability: WAL journal with ``synchronous=FULL``, so a committed rating survives a ``kill -9`` of the server and
also a power loss (``NORMAL`` under WAL survives the kill but may lose the last commits on power loss). One connection
per :class:`StudyDB`, serialised by a lock: a study has a handful of raters, a rating is a tiny transaction, and
``busy_timeout`` covers a report reading the file meanwhile. Double submissions cannot be stored twice: a rating's
primary key is its trial.

Dependencies: the standard library only (``sqlite3``: one file, transactions, no server to run).
"""

from __future__ import annotations

import hashlib
import random
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = "sr_lib.mos/1"
_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE stimuli (id INTEGER PRIMARY KEY, image TEXT NOT NULL, method TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('study', 'calibration')), expected INTEGER, png BLOB NOT NULL,
    sha256 TEXT NOT NULL, UNIQUE (kind, image, method));
CREATE TABLE raters (id INTEGER PRIMARY KEY, token TEXT NOT NULL UNIQUE, seed INTEGER NOT NULL,
    created TEXT NOT NULL);
CREATE TABLE trials (id INTEGER PRIMARY KEY, public_id TEXT NOT NULL UNIQUE, rater_id INTEGER NOT NULL
    REFERENCES raters (id), position INTEGER NOT NULL, stimulus_id INTEGER NOT NULL REFERENCES stimuli (id),
    phase TEXT NOT NULL CHECK (phase IN ('calibration', 'study')), is_repeat INTEGER NOT NULL,
    UNIQUE (rater_id, position));
CREATE TABLE ratings (trial_id INTEGER PRIMARY KEY REFERENCES trials (id),
    score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5), rated_at TEXT NOT NULL);
"""
CALIBRATION_LABELS = {1: "this is 1 (bad)", 5: "this is 5 (excellent)"}


class NotFound(LookupError):
    """No such rater or trial (the server answers 404)."""


class Conflict(Exception):
    """A rating for a trial that is not the rater's next one, e.g. a double submission (the server answers 409)."""


@dataclass(frozen=True)
class Stimulus:
    """One encoded picture: an image shown by one method, or a calibration picture with its expected score."""

    image: str
    method: str
    png: bytes
    kind: str = "study"
    expected: int | None = None


def _now() -> str:
    """UTC with milliseconds, ISO 8601: sorts as text."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def connect(path, create=False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with WAL, ``synchronous=FULL`` and a busy timeout.

    Raises:
        OSError: naming ``path`` when it is missing (and ``create`` is false) or is not a MOS study database.
    """
    path = Path(path)
    if not create and not path.is_file():
        raise FileNotFoundError(f"no study database at {path}")
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        connection.execute("PRAGMA busy_timeout = 10000")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
        if not create or _schema(connection) is not None:
            if _schema(connection) != SCHEMA:
                connection.close()
                raise OSError(f"{path} is not a MOS study database (no {SCHEMA} schema)")
    except sqlite3.DatabaseError as error:
        raise OSError(f"{path}: {error}") from None
    return connection


def _schema(connection):
    try:
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.OperationalError:  # No meta table: an empty file or someone else's database.
        return None
    return row[0] if row else None


def is_study(path) -> bool:
    """Whether ``path`` already holds an imported study (``serve`` then resumes it)."""
    if not Path(path).is_file():
        return False
    connection = connect(path)
    connection.close()
    return True


def create_study(path, stimuli, calibration, meta: dict) -> None:
    """Writes a new study database at ``path`` (which must not exist) in one transaction.

    Args:
        stimuli: the study's :class:`Stimulus` list (every image by every method, anchors and HR included).
        calibration: calibration stimuli (``kind="calibration"``, ``expected`` 1 or 5).
        meta: study settings kept in the ``meta`` table (scale, seed, repeat_fraction, source...).
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = connect(path, create=True)
    try:
        connection.execute("BEGIN IMMEDIATE")
        for statement in filter(str.strip, _TABLES.split(";")):  # Not executescript: it would commit first.
            connection.execute(statement)
        rows = [(key, str(value)) for key, value in {"schema": SCHEMA, "created": _now(), **meta}.items()]
        connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows)
        connection.executemany(
            "INSERT INTO stimuli (image, method, kind, expected, png, sha256) VALUES (?, ?, ?, ?, ?, ?)",
            [(s.image, s.method, s.kind, s.expected, s.png, hashlib.sha256(s.png).hexdigest())
             for s in list(stimuli) + list(calibration)])
        connection.execute("COMMIT")
    except BaseException:
        connection.close()
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
        raise
    connection.close()


def trial_order(study_ids, calibration_ids, seed: int, repeat_fraction: float) -> list:
    """One rater's trials as (stimulus id, phase, is_repeat): the calibration first, shuffled, then every study
    stimulus once in a random order with ``repeat_fraction`` of them (at least one) shown again at a random later
    position, at least two trials after their first showing when there is room. Deterministic in ``seed``."""
    rng = random.Random(seed)
    calibration = list(calibration_ids)
    rng.shuffle(calibration)
    order = [(stimulus, False) for stimulus in study_ids]
    rng.shuffle(order)
    count = min(len(order), max(1, round(repeat_fraction * len(order)))) if repeat_fraction > 0 and order else 0
    for stimulus, _ in rng.sample(order, count):
        first = order.index((stimulus, False))
        order.insert(rng.randint(min(first + 2, len(order)), len(order)), (stimulus, True))
    return [(s, "calibration", False) for s in calibration] + [(s, "study", repeat) for s, repeat in order]


def ensure_raters(connection, count: int) -> list:
    """Creates raters until the study has ``count`` (never removes or re-creates one), each with a 128-bit token and
    its trial order from a seed derived from the study seed and its index. Returns every rater's token, in order."""
    study_seed = int(meta(connection)["seed"])
    fraction = float(meta(connection)["repeat_fraction"])
    connection.execute("BEGIN IMMEDIATE")
    try:
        have = connection.execute("SELECT COUNT(*) FROM raters").fetchone()[0]
        ids = {"study": [], "calibration": []}
        for stimulus_id, kind in connection.execute("SELECT id, kind FROM stimuli ORDER BY id"):
            ids[kind].append(stimulus_id)
        for index in range(have, count):
            seed = random.Random(f"{study_seed}:{index}").getrandbits(63)  # Reproducible, distinct per rater.
            rater = connection.execute("INSERT INTO raters (token, seed, created) VALUES (?, ?, ?)",
                                       (secrets.token_urlsafe(16), seed, _now())).lastrowid
            connection.executemany(
                "INSERT INTO trials (public_id, rater_id, position, stimulus_id, phase, is_repeat) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(secrets.token_urlsafe(12), rater, position, stimulus, phase, int(repeat)) for position,
                 (stimulus, phase, repeat) in enumerate(trial_order(ids["study"], ids["calibration"], seed, fraction))])
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return [token for (token,) in connection.execute("SELECT token FROM raters ORDER BY id")]


def meta(connection) -> dict:
    return dict(connection.execute("SELECT key, value FROM meta"))


def study_names(connection) -> tuple:
    """(sorted image names, sorted method names) of the study stimuli."""
    rows = connection.execute("SELECT DISTINCT image, method FROM stimuli WHERE kind = 'study'").fetchall()
    return sorted({image for image, _ in rows}), sorted({method for _, method in rows})


def ratings(connection) -> list:
    """Every stored rating with its context, as dicts, in rating order."""
    query = ("SELECT t.rater_id, s.image, s.method, r.score, t.position, t.is_repeat, r.rated_at, t.phase, "
             "s.expected FROM ratings r JOIN trials t ON t.id = r.trial_id JOIN stimuli s ON s.id = t.stimulus_id "
             "ORDER BY r.rated_at, t.rater_id, t.position")
    keys = ("rater", "image", "method", "score", "position", "repeat", "rated_at", "phase", "expected")
    return [dict(zip(keys, row)) for row in connection.execute(query)]


class StudyDB:
    """What the server asks of the database, thread-safe; it knows raters only by token and trials only by their
    random public ids, and nothing it returns for the browser names a method."""

    def __init__(self, path):
        self.path = Path(path)
        self._connection = connect(path)
        self._lock = threading.Lock()

    def close(self):
        with self._lock:
            self._connection.close()

    def _rater(self, token) -> int:
        row = self._connection.execute("SELECT id FROM raters WHERE token = ?", (token,)).fetchone()
        if row is None:
            raise NotFound("unknown rater token")
        return row[0]

    def _next(self, rater):
        return self._connection.execute(
            "SELECT t.id, t.public_id, t.position, t.phase, s.expected FROM trials t JOIN stimuli s ON "
            "s.id = t.stimulus_id LEFT JOIN ratings r ON r.trial_id = t.id WHERE t.rater_id = ? AND "
            "r.trial_id IS NULL ORDER BY t.position LIMIT 1", (rater,)).fetchone()

    def _state(self, token, rater) -> dict:
        counts = dict(self._connection.execute(
            "SELECT phase, COUNT(*) FROM trials WHERE rater_id = ? GROUP BY phase", (rater,)))
        calibration, study = counts.get("calibration", 0), counts.get("study", 0)
        row = self._next(rater)
        if row is None:
            return {"done": True, "total": study}
        _, public_id, position, phase, expected = row
        state = {"done": False, "trial": public_id, "phase": phase, "image": f"/r/{token}/img/{public_id}"}
        if phase == "calibration":
            state.update(number=position + 1, total=calibration, label=CALIBRATION_LABELS.get(expected))
        else:
            state.update(number=position - calibration + 1, total=study)
        return state

    def state(self, token) -> dict:
        """The rater's next trial (where a reload or a restart resumes), or ``{"done": true}``."""
        with self._lock:
            return self._state(token, self._rater(token))

    def image(self, token, public_id) -> bytes:
        """The PNG of the rater's current trial; any other trial (rated, later, someone else's) is NotFound."""
        with self._lock:
            row = self._next(self._rater(token))
            if row is None or row[1] != public_id:
                raise NotFound("no such image")
            return self._connection.execute("SELECT s.png FROM trials t JOIN stimuli s ON s.id = t.stimulus_id "
                                            "WHERE t.id = ?", (row[0],)).fetchone()[0]

    def rate(self, token, public_id, score: int) -> dict:
        """Stores one rating, committed (and synced) before returning the rater's next state.

        Raises:
            NotFound: an unknown token, or a trial that is not this rater's. Conflict: a trial already rated, or
            not the next one.
        """
        with self._lock:
            rater = self._rater(token)
            connection = self._connection
            connection.execute("BEGIN IMMEDIATE")
            try:
                trial = connection.execute("SELECT id FROM trials WHERE public_id = ? AND rater_id = ?",
                                           (public_id, rater)).fetchone()
                if trial is None:
                    raise NotFound("no such trial for this rater")
                if connection.execute("SELECT 1 FROM ratings WHERE trial_id = ?", trial).fetchone():
                    raise Conflict("this trial is already rated")
                if self._next(rater)[0] != trial[0]:
                    raise Conflict("this trial is not the next one to rate")
                try:
                    connection.execute("INSERT INTO ratings (trial_id, score, rated_at) VALUES (?, ?, ?)",
                                       (trial[0], score, _now()))
                except sqlite3.IntegrityError:
                    raise Conflict("this trial is already rated") from None
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            return self._state(token, rater)
