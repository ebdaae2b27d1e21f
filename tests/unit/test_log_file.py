"""The log file beside logrotate: following the path, failing quietly, recovering."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notifierd.log_file import REPORT_INTERVAL, LogFile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reports() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log_file(tmp_path: Path, reports: list[dict[str, Any]], clock: Clock) -> Iterator[LogFile]:
    file = LogFile(tmp_path / "logs" / "n.log", report=reports.append, clock=clock)
    file.open()
    yield file
    file.close()


def test_open_creates_the_directory_and_says_why_it_cannot(tmp_path: Path) -> None:
    made = LogFile(tmp_path / "a" / "b" / "n.log")
    made.open()
    made.close()
    assert (tmp_path / "a" / "b" / "n.log").exists()
    (tmp_path / "plain").write_text("")
    with pytest.raises(OSError, match="plain"):
        LogFile(tmp_path / "plain" / "n.log").open()


def test_a_moved_file_keeps_the_lines_until_a_new_one_is_there(log_file: LogFile) -> None:
    log_file.write("one")
    moved = log_file.path.with_name("n.log.1")
    log_file.path.rename(moved)
    log_file.write("two")  # logrotate has not created the new file yet
    log_file.path.touch()
    log_file.write("three")
    assert moved.read_text() == "one\ntwo\n"
    assert log_file.path.read_text() == "three\n"


def test_a_truncated_file_is_written_from_its_new_end(log_file: LogFile) -> None:
    log_file.max_bytes = 30
    log_file.write("a" * 20)
    log_file.path.write_text("")  # copytruncate
    log_file.write("b" * 20)  # 20 bytes in the file now, not 40: no rotation
    assert log_file.path.read_text() == "b" * 20 + "\n"
    assert not log_file.path.with_name("n.log.1").exists()


def test_no_size_rotation_unless_asked(log_file: LogFile) -> None:
    for _ in range(1000):
        log_file.write("x" * 100)
    assert not log_file.path.with_name("n.log.1").exists()


def test_a_removed_file_is_made_again(log_file: LogFile, reports: list[dict[str, Any]]) -> None:
    log_file.write("one")
    log_file.path.unlink()
    log_file.write("two")
    assert log_file.path.read_text() == "two\n"
    assert reports == []


def test_a_failing_file_is_reported_once_a_minute_and_recovers(
    log_file: LogFile, reports: list[dict[str, Any]], clock: Clock
) -> None:
    directory = log_file.path.parent
    shutil.rmtree(directory)  # the file removed with its directory
    for n in range(100):
        log_file.write(f"lost {n}")
        clock.now += 0.1
    assert [r["event"] for r in reports] == ["log_file.write_failed"]
    assert reports[0]["level"] == "error"
    assert reports[0]["lost_lines"] == 1
    assert str(directory) in reports[0]["error"]

    clock.now += REPORT_INTERVAL
    log_file.write("lost again")
    assert [r["event"] for r in reports][1:] == ["log_file.write_failed"]
    assert reports[1]["lost_lines"] == 101

    directory.mkdir()
    log_file.write("back")
    log_file.write("and on")
    assert [r["event"] for r in reports][2:] == ["log_file.recovered"]
    assert reports[2]["lost_lines"] == 101
    assert log_file.path.read_text() == "back\nand on\n"


def test_disk_full_loses_the_lines_not_the_writer(
    log_file: LogFile, reports: list[dict[str, Any]]
) -> None:
    log_file.path.unlink()
    log_file.path.symlink_to("/dev/full")
    log_file.write("nowhere to go")
    assert [r["event"] for r in reports] == ["log_file.write_failed"]
    assert "No space left" in reports[0]["error"]
    log_file.path.unlink()
    log_file.write("room again")
    assert log_file.path.read_text() == "room again\n"
    assert reports[-1]["event"] == "log_file.recovered"
