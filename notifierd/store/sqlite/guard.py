"""Guards around the SQLite database file: checks before it is opened, and a watch on it while
the daemon runs, so that a lost, replaced, damaged or too new database is never silent.

- **Lost.** When notifierd creates its database it writes a marker file beside it
  (`notifierd.db.created`, naming the database's id). A start that finds the marker but not the
  database refuses, instead of creating an empty one in its place. A fresh state dir has neither
  and starts. While the daemon runs, the path's device and inode are compared with those the
  database had when it was opened (every half second, and before each commit): deleted or
  replaced, the Store refuses every write from then on.
- **Replaced.** A database whose id differs from the marker's is refused at start-up.
- **Damaged.** `PRAGMA quick_check` runs at start-up, for a bounded time.
- **Too new.** A schema version above this code's is refused before anything is written.
- **Disk full.** SQLite extends its `-shm` file by writing one byte per 4 KiB page and then maps
  it; on a filesystem of 1 KiB blocks the rest of each page is a hole, and the first store into
  a hole on a full disk is a SIGBUS. So a start needs `MIN_FREE_BYTES` free, and once open the
  `-shm` file's first pages are allocated for good, so that it can grow without faulting.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import structlog

from notifierd.errors import StoreError, StoreUnusable
from notifierd.store.sqlite.schema import SCHEMA_VERSION, schema_version

log = structlog.get_logger("notifierd.store")

#: Free space a start needs on the state dir's filesystem: SQLite's -shm file (32 KiB) and the
#: first pages of its WAL, with a wide margin.
MIN_FREE_BYTES = 1024 * 1024
#: The -shm file's pages allocated at open: its first four regions, enough for a WAL of 16,000
#: pages (a checkpoint normally keeps it under 1,000).
SHM_RESERVE_BYTES = 4 * 32 * 1024
QUICK_CHECK_SECONDS = 10.0
QUICK_CHECK_ERRORS = 5  # problems quoted in the error
WATCH_SECONDS = 0.5
_DAMAGED = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
_MARKER_TEXT = """\
# notifierd created its database {database} in this directory. While this file is here,
# notifierd refuses to start without that database, or with another one in its place, so that
# a lost database is never silently replaced by an empty one. To start with an empty database
# on purpose, remove this file.
database_id={database_id}
created_at={created_at}
"""

Identity = tuple[int, int]  # (st_dev, st_ino)


class DatabaseGuard:
    """The checks around one database file. `before_open` and `after_open` run on the thread
    that opens the database; `lost` may run on any thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.marker = path.with_name(path.name + ".created")
        self._marked_id: str | None = None
        self.wal = path.with_name(path.name + "-wal")
        self._identity: Identity | None = None
        self._wal_identity: Identity | None = None
        #: Held open until the database is closed: closing any descriptor of the -shm file
        #: would drop SQLite's fcntl locks on it (they belong to the process, not to the
        #: descriptor), and the next process to open the database would then truncate the
        #: file under this one's mapping.
        self._shm_fd: int | None = None

    def before_open(self) -> None:
        """Refuse, with the way out, a start on a full disk, or with a database that is lost,
        replaced, damaged or newer than this code. Writes nothing."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _check_free_space(self.path.parent)
        self._marked_id = _read_marker(self.marker)
        if not self.path.exists():
            if self._marked_id is not None:
                raise StoreUnusable(self._lost_message())
            return
        database_id = _inspect(self.path)
        if self._marked_id is not None and database_id != self._marked_id:
            raise StoreUnusable(self._replaced_message(database_id))

    def after_open(self, conn: sqlite3.Connection) -> None:
        """Once the schema is up to date: mark the state dir as holding this database, reserve
        the -shm file's pages and remember which file is open."""
        if self._marked_id is None:
            database_id = _database_id(conn)
            assert database_id is not None  # the migrations gave it one
            _write_marker(self.marker, self.path.name, database_id)
            self._marked_id = database_id
        self._shm_fd = _reserve_shm(self.path.with_name(self.path.name + "-shm"))
        self._identity = _identity(self.path)
        # SQLite made the WAL when it entered WAL mode; None only if something removed it since.
        with contextlib.suppress(FileNotFoundError):
            self._wal_identity = _identity(self.wal)

    def release(self) -> None:
        """After SQLite closed the database: let go of the -shm file."""
        if self._shm_fd is not None:
            os.close(self._shm_fd)
            self._shm_fd = None

    def lost(self) -> str | None:
        """How the open database's file left its path (deleted or replaced), or None."""
        if self._identity is None:
            return None
        try:
            now = _identity(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return (
                f"the database file {self.path} was deleted while notifierd was running:"
                " nothing can be stored from now on"
            )
        if now != self._identity:
            return (
                f"the database file {self.path} was replaced by another file while notifierd was"
                " running: nothing can be stored from now on"
            )
        return None

    def set_aside_wal(self) -> Path | None:
        """Once the database has left its path: rename its WAL, which SQLite would otherwise
        replay onto whatever file takes the database's name next (a restored backup, another
        database). Returns the new name; None when the WAL at the path is not the lost one's."""
        try:
            if _identity(self.wal) != self._wal_identity:
                return None
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            return self.wal.rename(self.wal.with_name(f"{self.wal.name}.orphaned-{stamp}"))
        except OSError:
            return None

    def recovery_hint(self, wal: Path | None) -> str:
        kept = f"; what it held since the last checkpoint is in {wal}" if wal else ""
        return (
            f"Stop notifierd, then restore {self.path} from a backup{kept}. A start without"
            f" the database, or with another one, is refused while {self.marker} exists; to start"
            " with an empty database on purpose, remove that file"
        )

    def _lost_message(self) -> str:
        return (
            f"the database {self.path} is missing, but {self.marker} shows that one was created"
            f" in this state dir: it was deleted or moved. To recover, move away any"
            f" {self.wal.name} left in {self.path.parent} (SQLite would replay it onto the file"
            f" put in the database's place) and restore {self.path} from a backup (with its -wal"
            f" file if it has one), or, to start with an empty database on purpose, remove"
            f" {self.marker}"
        )

    def _replaced_message(self, database_id: str | None) -> str:
        found = f"its id is {database_id}" if database_id else "it has no id"
        return (
            f"the database {self.path} is not the one created in this state dir ({found};"
            f" {self.marker} names {self._marked_id}): the file was replaced. Put the original"
            f" back, or, to use this file on purpose, remove {self.marker}"
        )


def _check_free_space(directory: Path) -> None:
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    if free < MIN_FREE_BYTES:
        raise StoreError(
            f"not enough free space to open the database in {directory}: {free} bytes free,"
            f" {MIN_FREE_BYTES} needed at least (the database's WAL and shared-memory files"
            " grow at start-up); free some space and start again"
        )


def _inspect(path: Path) -> str | None:
    """Read-only: the database's version and integrity, and its id (None: it has none yet)."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        with contextlib.closing(conn):
            found = schema_version(conn)
            if found > SCHEMA_VERSION:
                raise StoreUnusable(
                    f"the database {path} has schema version {found}, written by a newer"
                    f" notifierd; this one knows versions up to {SCHEMA_VERSION}. Nothing was"
                    " changed. Run the newer notifierd, or restore a backup made before the"
                    " upgrade"
                )
            _quick_check(conn, path)
            return _database_id(conn)
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorname", None) in _DAMAGED:
            raise StoreUnusable(_damaged_message(path, str(exc))) from exc
        raise StoreError(f"cannot read the database {path}: {exc}") from exc


def _quick_check(conn: sqlite3.Connection, path: Path) -> None:
    # Bounded by an interrupt from a timer: most of the check is one step of SQLite's VM (the
    # B-tree walk), which a progress handler cannot cut short. (1.3 s for 1,000,000 deliveries.)
    timer = threading.Timer(QUICK_CHECK_SECONDS, conn.interrupt)
    timer.start()
    try:
        rows = conn.execute(f"PRAGMA quick_check({QUICK_CHECK_ERRORS})").fetchall()
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorname", None) != "SQLITE_INTERRUPT":
            raise
        # A huge database: the start is not held longer for it.
        log.warning("store.quick_check_unfinished", database=str(path), seconds=QUICK_CHECK_SECONDS)
        return
    finally:
        timer.cancel()
    problems = [str(row[0]) for row in rows if row[0] != "ok"]
    if problems:
        raise StoreUnusable(_damaged_message(path, "; ".join(problems)))


def _damaged_message(path: Path, detail: str) -> str:
    return (
        f"the database {path} is damaged ({detail}). Keep a copy of it (with its -wal file), then"
        f" restore it from a backup, or save what SQLite can still read:"
        f" `sqlite3 {path} .dump > recovered.sql` (`.recover` instead of `.dump` where your"
        f" sqlite3 has it), move {path} and its -wal and -shm files away,"
        f" `sqlite3 {path} < recovered.sql`, and start again"
    )


def _database_id(conn: sqlite3.Connection) -> str | None:
    """None for a database from before ids (0.1.0) or an empty file."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
        return None
    row = conn.execute("SELECT value FROM meta WHERE name = 'database_id'").fetchone()
    return None if row is None else str(row[0])


def _read_marker(marker: Path) -> str | None:
    """The database id the marker names; None without a marker. A marker that names none (made
    by hand, damaged) still says that a database existed."""
    try:
        text = marker.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "database_id" and value.strip():
            return value.strip()
    return "unknown"


def _write_marker(marker: Path, database: str, database_id: str) -> None:
    text = _MARKER_TEXT.format(
        database=database,
        database_id=database_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    temporary = marker.with_name(marker.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    temporary.replace(marker)
    directory = os.open(marker.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _reserve_shm(shm: Path) -> int | None:
    """Allocate the -shm file's first pages; returns its descriptor, to be closed only after
    SQLite closed the database (see `DatabaseGuard._shm_fd`)."""
    try:
        fd = os.open(shm, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        log.warning("store.shm_not_reserved", path=str(shm), error=str(exc))
        return None
    try:
        os.posix_fallocate(fd, 0, SHM_RESERVE_BYTES)
    except OSError as exc:
        # Not every filesystem can: the start goes on, as it did before this reserve.
        log.warning("store.shm_not_reserved", path=str(shm), error=str(exc))
    return fd


def _identity(path: Path) -> Identity:
    stat = path.stat()
    return stat.st_dev, stat.st_ino
