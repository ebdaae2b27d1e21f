"""Worker-process logging: `ChildLogShipper` and the parent's `reemit`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from notifierd.logs import ChildLogShipper, configure_child_logging, reemit

Sent = list[tuple[Any, ...]]


class Unpicklable:
    def __repr__(self) -> str:
        return "<Unpicklable>"

    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle")


def test_shipper_ships_a_plain_dict_and_drops_the_event() -> None:
    sent: Sent = []
    shipper = ChildLogShipper(sent.append)
    event = {
        "event": "null.delivered",
        "level": "warning",
        "n": 3,
        "ratio": 0.5,
        "ok": True,
        "none": None,
        "text": "Привет",
        "path": Path("/x"),
        "thing": Unpicklable(),
        "items": [1, 2],
    }
    with pytest.raises(structlog.DropEvent):
        shipper(None, "info", event)
    [(tag, level, plain)] = sent
    assert (tag, level) == ("log", "warning")
    assert type(plain) is dict
    assert plain == {
        "event": "null.delivered",
        "n": 3,
        "ratio": 0.5,
        "ok": True,
        "none": None,
        "text": "Привет",
        "path": repr(Path("/x")),
        "thing": "<Unpicklable>",
        "items": "[1, 2]",
    }


def test_shipper_uses_the_method_when_no_level() -> None:
    sent: Sent = []
    with pytest.raises(structlog.DropEvent):
        ChildLogShipper(sent.append)(None, "error", {"event": "x"})
    assert sent == [("log", "error", {"event": "x"})]


def test_shipper_survives_a_gone_parent() -> None:
    def broken_pipe(message: tuple[Any, ...]) -> None:
        raise BrokenPipeError("parent gone")

    with pytest.raises(structlog.DropEvent):
        ChildLogShipper(broken_pipe)(None, "info", {"event": "x"})


def test_shipper_in_a_processor_chain() -> None:
    sent: Sent = []
    logger = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[structlog.stdlib.add_log_level, ChildLogShipper(sent.append)],
    )
    logger.info("hello", channel="devnull", count=2)
    assert sent == [("log", "info", {"event": "hello", "channel": "devnull", "count": 2})]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    try:
        yield
    finally:
        root.handlers, root.level = handlers, level
        structlog.configure(**config)


@pytest.mark.usefixtures("restore_logging")
def test_configure_child_logging_ships_structlog_and_stdlib() -> None:
    sent: Sent = []
    configure_child_logging("info", sent.append)
    structlog.get_logger("notifierd.test").info("from structlog", key="v")
    structlog.get_logger("notifierd.test").debug("filtered out")
    logging.getLogger("urllib3").warning("from %s", "stdlib")
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("notifierd.test").exception("failed")
    assert [(level, event["event"]) for _, level, event in sent] == [
        ("info", "from structlog"),
        ("warning", "from stdlib"),
        ("error", "failed"),
    ]
    assert sent[0][2]["key"] == "v"
    assert sent[1][2]["logger"] == "urllib3"
    assert "ValueError: boom" in sent[2][2]["exception"]


def test_reemit_with_colliding_keys() -> None:
    event = {
        "event": "null.delivered",
        "logger": "notifierd.worker.null",
        "level": "info",
        "timestamp": "2024-01-01T00:00:00Z",
        "channel": "from-the-worker",
        "worker_pid": 1,
        "delivery_id": 5,
    }
    with capture_logs() as logs:
        reemit("info", event, channel="devnull", worker_pid=4242)
    assert logs == [
        {
            "event": "null.delivered",
            "log_level": "info",
            "channel": "devnull",
            "worker_pid": 4242,
            "delivery_id": 5,
        }
    ]


def test_reemit_levels_and_defaults() -> None:
    with capture_logs() as logs:
        reemit("warning", {"event": "w"}, channel="c")
        reemit("error", {}, channel="c")
        reemit("no-such-level", {"event": "x"})
    assert [entry["log_level"] for entry in logs] == ["warning", "error", "info"]
    assert logs[1]["event"] == ""


def test_reemit_through_the_parent_configuration(tmp_path: Path) -> None:
    """The real parent set-up (stdlib + ProcessorFormatter), in a fresh interpreter so the
    global logging configuration of this process is left alone."""
    log_file = tmp_path / "parent.log"
    script = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        from notifierd.logs import configure_parent_logging, reemit
        configure_parent_logging("debug", "json", Path({str(log_file)!r}))
        reemit(
            "info",
            {{"event": "null.delivered", "logger": "notifierd.worker.null", "level": "info",
              "channel": "worker-side", "exception": "Traceback...", "extra": 1, "msg": "m"}},
            channel="devnull",
            worker_pid=77,
        )
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    [line] = log_file.read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert record["event"] == "null.delivered"
    assert record["channel"] == "devnull"
    assert record["worker_pid"] == 77
    assert record["logger"] == "notifierd.worker.null"
