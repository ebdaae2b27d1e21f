"""Real-process tests of the database file's life: deleted or replaced under the daemon, lost
between runs, damaged, newer than the code, upgraded from 0.1.0, and a start on a full disk."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from notifierd.store.sqlite.schema import SCHEMA_VERSION, migrate
from tests.harness import BIN, Daemon, wait_for
from tests.integration.conftest import DaemonFactory

NULL_CHANNEL = 'channels:\n  devnull:\n    worker: "null"\n'
FIXTURE_0_1_0 = Path(__file__).resolve().parent.parent / "fixtures" / "notifierd-0.1.0.sql"
TABLES_0_1_0 = ("jobs", "deliveries", "attempts", "flags")


def database(daemon: Daemon) -> Path:
    return daemon.state_dir / "notifierd.db"


def refused_start(daemon: Daemon) -> tuple[int, str]:
    """Start a daemon that must not start: its exit code and the error it logged."""
    daemon.start(wait=False)
    assert daemon.process is not None
    code = daemon.process.wait(30)
    failed = daemon.event("notifierd.failed", since_start=True)
    assert failed is not None, daemon.log.read_text(errors="replace")[-3000:]
    assert not daemon.events("notifierd.started", since_start=True)
    return code, str(failed["error"])


def storage_lost_answers(daemon: Daemon, count: int) -> list[tuple[int, Any]]:
    answers = []
    for n in range(count):
        response = daemon.send("devnull", f"after {n}")
        body = response.json() if response.content else None
        answers.append((response.status_code, body and body.get("code")))
    return answers


def timestamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


def test_a_database_deleted_under_the_daemon_stops_intake_and_blocks_a_restart(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(NULL_CHANNEL).start()
    job_id = daemon.send("devnull", "before").headers["X-Job-Id"]

    deleted_at = time.time()
    database(daemon).unlink()
    # The watch notices on its own, without a write to trip over it.
    lost = wait_for(lambda: daemon.event("store.lost"), timeout=10, what="store.lost")
    assert timestamp(lost) - deleted_at < 1.5
    assert "deleted" in lost["error"]
    assert "notifierd.db.created" in lost["recovery"]

    assert storage_lost_answers(daemon, 20) == [(503, "storage_lost")] * 20
    assert daemon.events("store.lost") == [lost]  # one line, not one per poll or request
    assert not daemon.events("store.failed")
    # What it holds can still be read, to see what was lost.
    assert requests.get(daemon.url(f"/api/jobs/{job_id}"), timeout=10).status_code == 200
    assert daemon.ctl("status").returncode == 0
    assert daemon.terminate() == 0

    code, error = refused_start(daemon)
    assert code == 2
    assert f"the database {database(daemon)} is missing" in error
    assert f"remove {daemon.state_dir / 'notifierd.db.created'}" in error
    assert not database(daemon).exists()  # no empty database was made in its place


def test_the_first_write_after_the_file_was_replaced_is_refused(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = make_daemon(NULL_CHANNEL).start()
    assert daemon.send("devnull", "before").status_code == 204
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other, isolation_level=None)) as conn:
        migrate(conn)

    other.replace(database(daemon))
    # At once, not at the watch's next look: the commit itself checks the file.
    response = daemon.send("devnull", "into the old file")

    assert response.status_code == 503
    assert response.json()["code"] == "storage_lost"
    lost = wait_for(lambda: daemon.event("store.lost"), what="store.lost")
    assert "replaced" in lost["error"]
    # Its WAL is set aside: the next start would replay it onto the new file.
    [orphaned] = daemon.state_dir.glob("notifierd.db-wal.orphaned-*")
    assert str(orphaned) in lost["recovery"]
    assert daemon.terminate() == 0

    code, error = refused_start(daemon)
    assert code == 2
    assert "is not the one created in this state dir" in error
    assert "the file was replaced" in error


def test_a_fresh_state_dir_starts_marks_its_database_and_restarts(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(NULL_CHANNEL)
    assert not daemon.state_dir.exists()
    daemon.start()
    started = daemon.event("notifierd.started")
    assert started is not None
    assert started["schema_version"] == SCHEMA_VERSION
    job_id = daemon.send("devnull", "kept").headers["X-Job-Id"]
    assert daemon.terminate() == 0
    with contextlib.closing(sqlite3.connect(database(daemon))) as conn:
        [(database_id,)] = conn.execute("SELECT value FROM meta WHERE name = 'database_id'")
    marker = (daemon.state_dir / "notifierd.db.created").read_text()
    assert f"database_id={database_id}\n" in marker

    daemon.start()
    assert requests.get(daemon.url(f"/api/jobs/{job_id}"), timeout=10).json()["id"] == int(job_id)


def test_version_names_the_schema_version() -> None:
    result = subprocess.run(
        [str(BIN / "notifierd"), "--version"], capture_output=True, text=True, check=True
    )
    assert f"database schema version {SCHEMA_VERSION}" in result.stdout


def test_a_damaged_database_is_refused_with_the_way_to_recover(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(NULL_CHANNEL).start()
    for n in range(50):
        assert daemon.send("devnull", f"message {n} " + "x" * 200).status_code == 204
    assert daemon.terminate() == 0
    # Page 2 is the jobs table's root (the first table of the schema): scribble over it.
    with database(daemon).open("r+b") as file:
        file.seek(4096 + 8)
        file.write(b"\xa5" * 2000)

    code, error = refused_start(daemon)

    assert code == 2
    assert f"the database {database(daemon)} is damaged" in error
    assert f"sqlite3 {database(daemon)} .dump > recovered.sql" in error


def test_a_database_from_a_newer_notifierd_is_refused_untouched(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(NULL_CHANNEL)
    daemon.state_dir.mkdir()
    with contextlib.closing(sqlite3.connect(database(daemon), isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        migrate(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = database(daemon).read_bytes()
    mtime = database(daemon).stat().st_mtime_ns

    code, error = refused_start(daemon)

    assert code == 2
    assert f"schema version {SCHEMA_VERSION + 1}, written by a newer notifierd" in error
    assert "Nothing was changed" in error
    assert database(daemon).read_bytes() == before
    assert database(daemon).stat().st_mtime_ns == mtime
    assert not (daemon.state_dir / "notifierd.db.created").exists()


def columns(conn: sqlite3.Connection) -> dict[str, str]:
    """Each table's columns, as a SELECT list."""
    return {
        table: ", ".join(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
        for table in TABLES_0_1_0
    }


def rows(conn: sqlite3.Connection, selected: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of each table, in the `selected` columns (migrations add columns: those of
    0.1.0 must keep their values)."""
    return {
        table: conn.execute(f"SELECT {selected[table]} FROM {table} ORDER BY rowid").fetchall()
        for table in TABLES_0_1_0
    }


def test_a_0_1_0_database_is_upgraded_with_every_job_intact(
    make_daemon: DaemonFactory,
) -> None:
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        conn.executescript(FIXTURE_0_1_0.read_text(encoding="utf-8"))
        columns_0_1_0 = columns(conn)
        expected = rows(conn, columns_0_1_0)
    assert len(expected["jobs"]) == 5
    daemon = make_daemon(NULL_CHANNEL, extra_args=["--journal-retention", "1e10"])
    daemon.state_dir.mkdir()
    with contextlib.closing(sqlite3.connect(database(daemon))) as conn:
        conn.executescript(FIXTURE_0_1_0.read_text(encoding="utf-8"))
        assert conn.execute("PRAGMA user_version").fetchone() == (0,)

    daemon.start()

    migrated = daemon.event("store.migrated")
    assert migrated is not None
    assert (migrated["from_version"], migrated["to_version"]) == (0, SCHEMA_VERSION)
    for job_id, _, message, _ in expected["jobs"]:
        job = requests.get(daemon.url(f"/api/jobs/{job_id}"), timeout=10).json()
        assert job["message"] == message
        assert [d["state"] for d in job["deliveries"]] == [
            row[4] for row in expected["deliveries"] if row[1] == job_id
        ]
    assert daemon.channel_status("devnull")["state"] == "stopped"  # the flags came along
    assert daemon.terminate() == 0
    with contextlib.closing(sqlite3.connect(database(daemon))) as conn:
        assert rows(conn, columns_0_1_0) == expected
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        # Migration 4's column: no lease of 0.1.0 had an owner.
        assert conn.execute("SELECT COUNT(lease_owner) FROM deliveries").fetchone() == (0,)


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB ext4 of 1 KiB blocks, loop-mounted: where SQLite's -shm extension faults once
    the disk is full (a tmpfs allocates whole pages and does not)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop filesystem needs root")
    image = tmp_path / "small.img"
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    with image.open("wb") as file:
        file.truncate(8 * 1024 * 1024)
    made = subprocess.run(
        ["mkfs.ext4", "-q", "-b", "1024", "-F", str(image)], capture_output=True, check=False
    )
    mounted = made.returncode == 0 and (
        subprocess.run(
            ["mount", "-o", "loop", str(image), str(mount_point)], capture_output=True, check=False
        ).returncode
        == 0
    )
    if not mounted:
        pytest.skip(f"cannot make or loop-mount an ext4 filesystem here: {made.stderr!r}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode:
            subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1024 * 1024, 1024):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    stats = os.statvfs(directory)
    assert stats.f_bavail * stats.f_frsize < 64 * 1024
    return filler


def test_a_start_on_a_full_disk_is_refused_without_sigbus(
    small_filesystem: Path, make_daemon: DaemonFactory
) -> None:
    # small_filesystem first: set up first, torn down last, once the daemons are gone.
    daemon = make_daemon(NULL_CHANNEL)
    daemon.state_dir = small_filesystem / "state"
    daemon.start()
    job_id = daemon.send("devnull", "kept").headers["X-Job-Id"]
    # Killed: its -shm and -wal files stay, and the next start re-extends the -shm file.
    daemon.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    daemon.process.wait(10)  # type: ignore[union-attr]
    filler = fill(small_filesystem)

    code, error = refused_start(daemon)

    assert code == 1, f"exit {code} (-{signal.SIGBUS.value} is SIGBUS)"
    assert "not enough free space to open the database" in error
    assert str(daemon.state_dir) in error

    filler.unlink()
    daemon.start()
    assert requests.get(daemon.url(f"/api/jobs/{job_id}"), timeout=10).status_code == 200
    assert daemon.send("devnull", "after").status_code == 204
    assert daemon.terminate() == 0
