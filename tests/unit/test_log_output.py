"""The parent's log rendering: orjson lines, the per-second timestamp cache, `HotLine`."""

from __future__ import annotations

import calendar
import io
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

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
