"""End to end: remotes that misbehave at the transport level. An endless answer is cut at
1 MiB and retried, without the worker holding it in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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
