"""End to end: faults below the level of a remote's verdict. An endless answer is cut at
1 MiB and retried, without the worker holding it in memory; a worker that is still starting
when its parent dies ends without a word on stderr."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.gated_worker import GATE_VARIABLE
from tests.fakes.server import Huge
from tests.fakes.twilio import DEFAULT_SID, DEFAULT_TOKEN, FakeTwilio
from tests.harness import wait_for
from tests.integration.conftest import DaemonFactory

PHONE = "+79251234567"
MIB = 1024 * 1024


def peak_rss_mib(pid: int) -> float:
    """The most resident memory the process ever had (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


def test_a_128_mib_answer_is_a_temporary_failure_read_no_further_than_1_mib(
    make_daemon: DaemonFactory, twilio: FakeTwilio
) -> None:
    twilio.script(PHONE, Huge(128 * MIB))
    params = {
        "provider": "twilio",
        "account_sid": DEFAULT_SID,
        "auth_token": DEFAULT_TOKEN,
        "sender": "+15005550006",
        "phones": [PHONE],
        "base_url": twilio.base_url,
        "timeout": 10,
    }
    channel = {"worker": "sms", "retry": {"delay": 0.2, "jitter": 0}, "params": params}
    text = yaml.safe_dump({"channels": {"out": channel}}, sort_keys=False)
    daemon = make_daemon(text).start()

    assert daemon.send("out", "disk full").status_code == 204

    def delivered() -> dict[str, Any] | None:
        found = daemon.deliveries(channel="out")
        return found[0] if found and found[0]["state"] == "delivered" else None

    assert wait_for(delivered, timeout=30, what="the retry delivered")["attempts"] == 2
    [failed] = [e for e in daemon.events("delivery.attempt") if e["outcome"] == "temporary"]
    assert "AnswerTooLarge" in failed["error"] and str(MIB) in failed["error"]
    assert peak_rss_mib(failed["worker_pid"]) < 100
    assert [m.to for m in twilio.messages] == [PHONE]


# --- A worker starting while its parent dies ----------------------------------------------------


def children(pid: int) -> dict[int, str]:
    """The live child processes of `pid`, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            with contextlib.suppress(OSError):
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().decode()
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_worker_starting_while_its_parent_dies_exits_quietly(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    text = "channels:\n  out:\n    worker: tests.fakes.gated_worker:GatedWorker\n    processes: 2\n"
    daemon = make_daemon(text, env={GATE_VARIABLE: str(gate)}).start()
    assert daemon.process is not None
    parent = daemon.process.pid

    def started() -> dict[int, str] | None:
        found = children(parent)
        workers = [pid for pid, command in found.items() if "spawn_main" in command]
        return found if len(workers) == 2 else None

    helpers = list(wait_for(started, what="two worker processes and the resource tracker"))
    daemon.kill()  # kill -9, while both workers are held in their start-up
    gate.touch()

    wait_for(lambda: not any(alive(pid) for pid in helpers), what="the helpers to end")
    output = daemon.log.read_text(errors="replace")
    assert "Traceback" not in output and "BrokenPipeError" not in output
    assert "leaked semaphore" not in output
