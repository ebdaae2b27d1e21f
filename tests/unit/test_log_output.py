"""The parent's log rendering: orjson lines, the per-second timestamp cache, `HotLine`."""

from __future__ import annotations

import asyncio
import calendar
import io
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from notifierd.log_file import LogFile
from notifierd.log_output import HotLine, Output, UtcTimestamp, render_json

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


def test_render_json_keeps_text_and_order() -> None:
    line = render_json({"event": "x", "text": 'Привет "q"\n', "n": 3, "f": 0.5, "none": None})
    assert line == '{"event":"x","text":"Привет \\"q\\"\\n","n":3,"f":0.5,"none":null}'
    assert "\n" not in line


def test_render_json_falls_back_for_what_orjson_refuses() -> None:
    event: dict[Any, Any] = {"big": 2**70, "thing": Opaque(), 7: "int key"}
    assert json.loads(render_json(event)) == {"big": 2**70, "thing": "<Opaque>", "7": "int key"}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({7: "int key"}, {"7": "int key"}),  # orjson needs an option for it
        ({"thing": Opaque()}, {"thing": "<Opaque>"}),  # a type orjson does not know
        ({"big": -(2**70)}, {"big": -(2**70)}),  # beyond orjson even with its options
    ],
)
def test_render_json_falls_back_for_each_refusal_alone(
    event: dict[Any, Any], expected: dict[str, Any]
) -> None:
    assert json.loads(render_json(event)) == expected


def test_timestamp_from_microseconds_matches_the_float_form() -> None:
    stamp = UtcTimestamp()
    assert stamp.format_micros(1_795_769_325_469_169) == "2026-11-27T08:48:45.469169Z"
    assert stamp.format_micros(1_795_769_325_469_169) == stamp.format(1_795_769_325.469169)
    assert stamp.format_micros(-1_500_000) == "1969-12-31T23:59:58.500000Z"


def test_timestamp_is_utc_with_microseconds() -> None:
    stamp = UtcTimestamp()
    assert stamp.format(0.25) == "1970-01-01T00:00:00.250000Z"
    assert stamp.format(86_399.000_001) == "1970-01-01T23:59:59.000001Z"
    assert stamp.format(86_400.5) == "1970-01-02T00:00:00.500000Z"  # the cached second moves on
    assert stamp.format(0.75) == "1970-01-01T00:00:00.750000Z"  # and back (a clock step)
    assert ISO.fullmatch(stamp(None, "info", {})["timestamp"])


@pytest.fixture
def hot_output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    HotLine.configure(Output(stream, console=False, file=None), logging.INFO)
    try:
        yield stream
    finally:
        HotLine.configure(None, logging.INFO)


def test_hot_line_writes_the_same_shape_as_structlog(hot_output: io.StringIO) -> None:
    line = HotLine("aiohttp.access", "http.request")
    line.write(logging.INFO, {"status": 204, "target": "/api/send/x"})
    line.write(logging.DEBUG, {"status": 200})  # below the level: dropped
    line.write(logging.ERROR, {"status": 500})
    records = [json.loads(text) for text in hot_output.getvalue().splitlines()]
    assert [r["status"] for r in records] == [204, 500]
    first = records[0]
    assert first["event"] == "http.request"
    assert first["logger"] == "aiohttp.access"
    assert first["level"] == "info"
    assert records[1]["level"] == "error"
    assert ISO.fullmatch(first["timestamp"])
    written = calendar.timegm(time.strptime(first["timestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(time.time() - written) < 5


def test_hot_line_goes_through_structlog_until_configured() -> None:
    line = HotLine("notifierd.channel", "delivery.attempt")
    with capture_logs() as logs:
        line.write(logging.WARNING, {"delivery_id": 4})
    assert logs == [{"event": "delivery.attempt", "delivery_id": 4, "log_level": "warning"}]


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[LogFile]:
    file = LogFile(tmp_path / "n.log", max_bytes=0, backups=0)
    yield file
    file.close()


def test_lines_of_one_loop_turn_leave_in_one_write_per_sink(
    tmp_path: Path, log_file: LogFile
) -> None:
    stream = CountingStream()
    output = Output(stream, console=False, file=log_file)

    async def burst() -> int:
        for n in range(5):
            output.write({"event": "e", "n": n})
        before = stream.writes
        await asyncio.sleep(0)  # the end of the turn
        await asyncio.sleep(0)
        return before

    assert asyncio.run(burst()) == 0
    assert stream.writes == 1
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == list(range(5))
    written = (tmp_path / "n.log").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["n"] for line in written] == list(range(5))


def test_lines_outside_a_loop_leave_at_once(tmp_path: Path, log_file: LogFile) -> None:
    stream = CountingStream()
    output = Output(stream, console=False, file=log_file)
    output.write({"event": "from a thread"})
    assert stream.writes == 1
    assert "from a thread" in (tmp_path / "n.log").read_text(encoding="utf-8")


def test_a_batch_still_rotates_the_file(tmp_path: Path, log_file: LogFile) -> None:
    log_file.max_bytes, log_file.backups = 100, 2
    output = Output(CountingStream(), console=False, file=log_file)

    async def burst() -> None:
        for n in range(10):
            output.write({"event": "rotate me", "n": n})
        await asyncio.sleep(0)
        output.write({"event": "after"})
        await asyncio.sleep(0)

    asyncio.run(burst())
    assert (tmp_path / "n.log.1").exists()
    assert "after" in (tmp_path / "n.log").read_text(encoding="utf-8")


def test_rotation_happens_before_the_line_that_would_pass_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "n.log"
    log_file = LogFile(path, max_bytes=25, backups=3)
    try:
        log_file.write_lines("a" * 9 + "\n" + "b" * 9 + "\n" + "c" * 9 + "\n")
        log_file.write("d" * 9)
        log_file.write("e" * 30)  # longer than the limit alone: a file of its own
        log_file.write("f" * 9)
    finally:
        log_file.close()
    assert path.read_text() == "f" * 9 + "\n"
    assert Path(f"{path}.1").read_text() == "e" * 30 + "\n"
    assert Path(f"{path}.2").read_text() == "c" * 9 + "\n" + "d" * 9 + "\n"
    assert Path(f"{path}.3").read_text() == "a" * 9 + "\n" + "b" * 9 + "\n"


def test_the_size_counts_what_is_at_the_path_after_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "n.log"
    log_file = LogFile(path, max_bytes=25, backups=1)
    try:
        log_file.write("a" * 20)
        log_file.reopen()
        path.rename(tmp_path / "moved.log")  # logrotate took it away
        log_file.write("b" * 20)  # a fresh file: no rotation
        assert not Path(f"{path}.1").exists()
        log_file.write("c" * 20)
    finally:
        log_file.close()
    assert Path(f"{path}.1").read_text() == "b" * 20 + "\n"
    assert path.read_text() == "c" * 20 + "\n"


def test_journal_lines_start_with_their_priority() -> None:
    stream = io.StringIO()
    output = Output(stream, console=False, file=None, journal=True)
    for level in ("debug", "info", "warning", "error", "critical"):
        output.write({"event": "e", "level": level})
    prefixes = [line[:3] for line in stream.getvalue().splitlines()]
    assert prefixes == ["<7>", "<6>", "<4>", "<3>", "<2>"]
    assert json.loads(stream.getvalue().splitlines()[3][3:])["level"] == "error"


def test_console_journal_lines_prefix_every_line() -> None:
    stream = io.StringIO()
    output = Output(stream, console=True, file=None, journal=True)
    output.write({"event": "boom", "level": "error", "exception": "Traceback\n  line"})
    assert all(line.startswith("<3>") for line in stream.getvalue().splitlines())


def test_no_prefix_when_stderr_is_not_the_journal() -> None:
    stream = io.StringIO()
    Output(stream, console=False, file=None).write({"event": "e", "level": "error"})
    assert stream.getvalue().startswith("{")
